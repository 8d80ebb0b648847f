"""genstore_asgi: record an ASGI app's generation routes into a genstore store, with one line.

    from genstore_asgi import RecordingMiddleware

    app.add_middleware(
        RecordingMiddleware,
        store=store,
        routes={"/api/generate/text-to-image": "text_to_image", "/api/edit/*": "image_edit_single"},
        user_id=lambda scope: scope["state"].get("user_id"),
    )

Records are built and saved in the background after each response is sent: recording never
raises into the app and never delays a response.
"""

from __future__ import annotations

from genstore._recording.rules import Redact, is_secret_name

from ._extract import RESULT_FIELDS, ResultExtractor, default_result_extractor
from ._middleware import RecordingMiddleware, UserId
from ._routes import Routes

__all__ = [
    "RESULT_FIELDS",
    "RecordingMiddleware",
    "Redact",
    "ResultExtractor",
    "Routes",
    "UserId",
    "default_result_extractor",
    "is_secret_name",
]
