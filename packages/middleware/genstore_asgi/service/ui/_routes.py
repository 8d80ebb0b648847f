"""``ui_routes``: the UI's routes in one Starlette ``Mount``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from genstore import Store
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import _images as images
from . import _operations as operations
from . import _signin as signin
from ._context import UI
from ._guard import form, page, public
from ._session import Authenticate

__all__ = ["ui_routes"]

_STATIC = Path(__file__).parent / "static"


def _routes(ui: UI) -> list[BaseRoute]:
    artefact = "/operations/{operation_id}/{role}/{index:int}"
    image = "/images/{image_id}"
    post = ["POST"]
    return [
        Route("/", public(ui, signin.home), name="home"),
        Route("/sign-in", public(ui, signin.sign_in_form), methods=["GET"], name="sign_in"),
        Route("/sign-in", public(ui, signin.sign_in), methods=post),
        Route("/sign-out", form(ui, signin.sign_out), methods=post, name="sign_out"),
        Route("/operations", page(ui, operations.operations), name="operations"),
        Route("/operations/{operation_id}", page(ui, operations.operation), name="operation"),
        Route(artefact, page(ui, operations.artifact, bare=True), name="artifact"),
        Route(
            artefact + "/thumb",
            page(ui, operations.artifact_thumbnail, bare=True),
            name="artifact_thumb",
        ),
        Route("/images", page(ui, images.images), name="images"),
        Route(image + "/file", page(ui, images.image_file, bare=True), name="image_file"),
        Route(image + "/thumb", page(ui, images.image_thumbnail, bare=True), name="image_thumb"),
        Route(image + "/status", form(ui, images.set_status), methods=post, name="image_status"),
        Route(image + "/delete", form(ui, images.delete_image), methods=post, name="image_delete"),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]


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
    ui.router.routes.extend(_routes(ui))
    return Mount(path, app=ui.router, name="ui")
