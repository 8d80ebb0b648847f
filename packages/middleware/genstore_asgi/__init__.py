"""genstore_asgi: record an ASGI app's generation routes into a genstore store, with one line.

    from genstore_asgi import RecordingMiddleware

    app.add_middleware(
        RecordingMiddleware,
        store=store,
        routes={
            "/api/generate/text-to-image": "text_to_image",
            "/api/edit/*": "image_edit_single",
            "/api/caption": Operation("caption", results=False),
            "/v1/video": JobStart("text_to_video", job_id="id"),  # answers 202 {"id": ...}
            "/v1/jobs/*": JobComplete(job_id="id"),  # its poll (or a provider's webhook)
        },
        user_id=lambda scope: scope["state"].get("user_id"),
    )

Records are built and saved in the background after each response is sent: recording never
raises into the app and never delays a response.

``create_app(store)`` is the images service (``genstore serve``), to mount in an existing app;
it needs the ``server`` extra and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genstore._recording.rules import Redact, is_secret_name
from genstore.exceptions import MissingDependency

from ._extract import RESULT_FIELDS, ResultExtractor, default_result_extractor
from ._middleware import RecordingMiddleware, RecordStatuses, UserId
from ._routes import JobComplete, JobStart, Operation, Routes

if TYPE_CHECKING:
    from .service import create_app

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/asgi/test_exports.py pins
    "JobComplete",
    "JobStart",
    "Operation",
    "RESULT_FIELDS",
    "RecordStatuses",
    "RecordingMiddleware",
    "Redact",
    "ResultExtractor",
    "Routes",
    "UserId",
    "create_app",
    "default_result_extractor",
    "is_secret_name",
]


def __getattr__(name: str) -> Any:
    # The service needs the server extra; importing genstore_asgi for the middleware must not.
    if name == "create_app":
        try:
            from .service import create_app
        except ImportError as exc:
            raise MissingDependency(
                "genstore_asgi.create_app", extra="server", package=exc.name or "uvicorn"
            ) from exc
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
