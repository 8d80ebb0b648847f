"""``ui_routes``: the UI's routes in one Starlette ``Mount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from genstore import Store
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import _images as images
from . import _operations as operations
from . import _signin as signin
from ._context import UI
from ._guard import form, page
from ._session import Authenticate

__all__ = ["ui_routes"]


def _open(
    ui: UI, fn: Callable[[UI, Request], Awaitable[Response]]
) -> Callable[..., Awaitable[Response]]:
    return partial(fn, ui)


def ui_routes(
    get_store: Callable[[], Store],
    authenticate: Authenticate,
    *,
    dev_token: str | None = None,
    path: str = "/ui",
    thumbnail_px: int = 256,
) -> Mount:
    """The UI as a ``Mount`` at ``path``, to add to an app's routes.

    ``get_store`` returns the store to show (called per request); ``authenticate`` takes an
    ``Authorization`` value (``Bearer <token>``) and returns the user id or raises ``AuthFailed``
    (``JWTAuthenticator.user_id``). ``dev_token``: offer a one-click sign-in with this token
    (``genstore serve --dev``). Every page shows only the signed-in user's records.
    """
    ui = UI(get_store, authenticate, dev_token=dev_token, thumbnail_px=thumbnail_px)
    artefact = "/operations/{operation_id}/{role}/{index:int}"
    ui.router.routes.extend(
        [
            Route("/", _open(ui, signin.home), name="home"),
            Route("/sign-in", _open(ui, signin.sign_in_form), methods=["GET"], name="sign_in"),
            Route("/sign-in", _open(ui, signin.sign_in), methods=["POST"]),
            Route(
                "/sign-out",
                form(ui, partial(signin.sign_out, ui)),
                methods=["POST"],
                name="sign_out",
            ),
            Route("/operations", page(ui, partial(operations.operations, ui)), name="operations"),
            Route(
                "/operations/{operation_id}",
                page(ui, partial(operations.operation, ui)),
                name="operation",
            ),
            Route(artefact, page(ui, partial(operations.artifact, ui), bare=True), name="artifact"),
            Route(
                artefact + "/thumb",
                page(ui, partial(operations.artifact_thumbnail, ui), bare=True),
                name="artifact_thumb",
            ),
            Route("/images", page(ui, partial(images.images, ui)), name="images"),
            Route(
                "/images/{image_id}/file",
                page(ui, partial(images.image_file, ui), bare=True),
                name="image_file",
            ),
            Route(
                "/images/{image_id}/thumb",
                page(ui, partial(images.image_thumbnail, ui), bare=True),
                name="image_thumb",
            ),
            Route(
                "/images/{image_id}/status",
                form(ui, partial(images.set_status, ui)),
                methods=["POST"],
                name="image_status",
            ),
            Route(
                "/images/{image_id}/delete",
                form(ui, partial(images.delete_image, ui)),
                methods=["POST"],
                name="image_delete",
            ),
            Mount(
                "/static",
                app=StaticFiles(directory=Path(__file__).parent / "static"),
                name="static",
            ),
        ]
    )
    return Mount(path, app=ui.router, name="ui")
