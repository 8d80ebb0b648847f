"""RouteMatcher: exact paths, ``*`` and ``**`` globs, trailing slashes, callables."""

from __future__ import annotations

import pytest
from genstore_asgi._routes import RouteMatcher
from starlette.types import Scope

ROUTES = {
    "/api/generate/text-to-image": "text_to_image",
    "/api/edit/image": "image_edit_single",
    "/api/edit/*": "image_edit_multiple",
    "/api/workflow/**": "edit_then_video",
    "/": "root",
}


def scope(path: str) -> Scope:
    return {"type": "http", "path": path, "method": "POST"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/generate/text-to-image", "text_to_image"),
        ("/api/generate/text-to-image/", "text_to_image"),
        ("/api/edit/image", "image_edit_single"),  # exact wins over the glob
        ("/api/edit/pose", "image_edit_multiple"),
        ("/api/edit/pose/", "image_edit_multiple"),
        ("/api/edit/", None),  # the same path as /api/edit: not one of its children
        ("/api/edit/pose/extra", None),  # "*" never crosses a "/"
        ("/api/workflow/execute", "edit_then_video"),
        ("/api/workflow/a/b/c", "edit_then_video"),
        ("/api/generate/text-to-image-v2", None),
        ("/API/edit/pose", None),  # paths are case-sensitive
        ("/", "root"),
        ("/api/edit.pose", None),  # "." in a pattern is literal, not a regex
    ],
)
def test_mapping_patterns(path: str, expected: str | None) -> None:
    assert RouteMatcher(ROUTES).match(scope(path)) == expected


def test_regex_characters_in_patterns_are_literal() -> None:
    matcher = RouteMatcher({"/v1/(a)+/*": "t"})
    assert matcher.match(scope("/v1/(a)+/x")) == "t"
    assert matcher.match(scope("/v1/aa/x")) is None


def test_callable_routes_get_the_scope() -> None:
    matcher = RouteMatcher(lambda s: "t" if s["path"].endswith("/gen") else None)
    assert matcher.match(scope("/x/gen")) == "t"
    assert matcher.match(scope("/x/other")) is None


@pytest.mark.parametrize("routes", [{"api/x": "t"}, {"/api/x": ""}, {"/api/x": None}])
def test_bad_patterns_are_refused_at_startup(routes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="route"):
        RouteMatcher(routes)
