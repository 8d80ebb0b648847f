"""The public names of genstore_asgi are exactly these (a change here is an API change)."""

from __future__ import annotations

import genstore_asgi


def test_exported_names_are_pinned() -> None:
    assert genstore_asgi.__all__ == [
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


def test_every_exported_name_exists_and_the_list_is_sorted() -> None:
    missing = [name for name in genstore_asgi.__all__ if not hasattr(genstore_asgi, name)]
    assert missing == []
    assert sorted(genstore_asgi.__all__) == genstore_asgi.__all__
