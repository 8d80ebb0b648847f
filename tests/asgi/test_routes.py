"""RouteMatcher: exact paths, ``*`` and ``**`` globs, trailing slashes, callables, and the
typed route values (Operation, JobStart, JobComplete)."""

from __future__ import annotations

import pytest
from genstore_asgi import JobComplete, JobStart, Operation
from genstore_asgi._routes import RouteMatcher, RouteSpec
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


def operation_type(spec: RouteSpec | None) -> str | None:
    return None if spec is None else spec.operation_type


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
    assert operation_type(RouteMatcher(ROUTES).match(scope(path))) == expected


def test_regex_characters_in_patterns_are_literal() -> None:
    matcher = RouteMatcher({"/v1/(a)+/*": "t"})
    assert operation_type(matcher.match(scope("/v1/(a)+/x"))) == "t"
    assert matcher.match(scope("/v1/aa/x")) is None


def test_callable_routes_get_the_scope() -> None:
    matcher = RouteMatcher(lambda s: "t" if s["path"].endswith("/gen") else None)
    assert operation_type(matcher.match(scope("/x/gen"))) == "t"
    assert matcher.match(scope("/x/other")) is None


def test_typed_route_values() -> None:
    matcher = RouteMatcher(
        {
            "/caption": Operation("caption", results=False),
            "/video": JobStart("text_to_video", job_id="data.id"),
            "/jobs/*": JobComplete(),
        }
    )
    caption, video, job = (matcher.match(scope(p)) for p in ("/caption", "/video", "/jobs/1"))
    assert caption == RouteSpec("caption", frozenset({"POST"}), results=False, pattern="/caption")
    assert video is not None and video.job == JobStart("text_to_video", job_id="data.id")
    assert video.methods == frozenset({"POST"})
    assert job is not None and job.methods == frozenset({"GET", "POST"})
    assert matcher.methods == frozenset({"GET", "POST"})  # a poll is a GET


def test_a_callable_may_return_typed_values() -> None:
    matcher = RouteMatcher(lambda s: JobComplete() if s["path"].startswith("/jobs/") else None)
    spec = matcher.match(scope("/jobs/1"))
    assert spec is not None and spec.job == JobComplete()
    assert matcher.match(scope("/jobs/2")) is spec  # made once per value


@pytest.mark.parametrize(
    "routes",
    [
        {"api/x": "t"},
        {"/api/x": ""},
        {"/api/x": None},
        {"/api/x": JobStart("t", job_id="")},
        {"/api/x": JobComplete(job_id="a..b")},
        {"/api/x": Operation("")},
    ],
)
def test_bad_patterns_are_refused_at_startup(routes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="route"):
        RouteMatcher(routes)
