"""The operations pages: the signed-in user's history, one operation, its artefacts."""

from __future__ import annotations

from typing import Any

from genstore import OperationRecord, Store
from genstore.exceptions import NotFound
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ._context import UI
from ._files import etag_matches, image_response, not_modified, stream_blob
from ._filters import HistoryFilters, matches_search, parse_filters
from ._session import Session
from ._thumbs import cached_thumbnail
from ._views import artifact_views

__all__ = ["artifact", "artifact_thumbnail", "operation", "operations"]

PAGE_SIZE = 25
SEARCH_SCAN = 1000
"""The catalog has no text search: a search reads at most this many operations per page shown."""


def _history(store: Store, user_id: str, filters: HistoryFilters) -> dict[str, Any]:
    """One page of the user's history. With a search, pages are read and filtered by prompt
    until a page's worth matched or ``SEARCH_SCAN`` operations were read."""
    kwargs = filters.store_kwargs()
    if not filters.q:
        page = store.history(user_id=user_id, limit=PAGE_SIZE, **kwargs)
        return {"items": page.items, "next_cursor": page.next_cursor, "scanned": None}
    items: list[OperationRecord] = []
    scanned = 0
    cursor = kwargs.pop("cursor")
    while True:
        page = store.history(user_id=user_id, limit=100, cursor=cursor, **kwargs)
        scanned += len(page.items)
        items += [r for r in page.items if matches_search(r.prompt, filters.q)]
        cursor = page.next_cursor
        if cursor is None or len(items) >= PAGE_SIZE or scanned >= SEARCH_SCAN:
            return {"items": items, "next_cursor": cursor, "scanned": scanned}


async def operations(ui: UI, request: Request, session: Session) -> Response:
    """The history page: newest first, filters by type, status, dates and prompt."""
    filters = parse_filters(request.query_params)
    page = await run_in_threadpool(_history, ui.get_store(), session.user_id, filters)
    rows = [(r, artifact_views(r, "results")) for r in page["items"]]
    return ui.render(request, "operations.html", session, filters=filters, rows=rows, **page)


def _owned(store: Store, user_id: str, operation_id: str) -> OperationRecord:
    """The operation if it is the user's; ``NotFound`` otherwise (never 'forbidden': another
    user's ids must not be confirmed to exist)."""
    record = store.get_operation(operation_id)
    if record.user_id != user_id:
        raise NotFound("no such operation")
    return record


async def operation(ui: UI, request: Request, session: Session) -> Response:
    """One operation: prompt, parameters, inputs, every result, error, timings, request."""
    record = await run_in_threadpool(
        _owned, ui.get_store(), session.user_id, request.path_params["operation_id"]
    )
    return ui.render(
        request,
        "operation.html",
        session,
        op=record,
        results=artifact_views(record, "results"),
        inputs=artifact_views(record, "inputs"),
        completed_at=getattr(record, "completed_at", None),
        job_id=getattr(record, "job_id", None),
    )


async def _artifact_view(ui: UI, request: Request, session: Session) -> Any:
    params = request.path_params
    if params["role"] not in ("results", "inputs"):
        raise NotFound("no such artefact")
    record = await run_in_threadpool(
        _owned, ui.get_store(), session.user_id, params["operation_id"]
    )
    views = artifact_views(record, params["role"])
    if not 0 <= params["index"] < len(views):
        raise NotFound("no such artefact")
    return views[params["index"]]


async def artifact(ui: UI, request: Request, session: Session) -> Response:
    """The stored bytes of one input or result (``?download=1`` to save it)."""
    view = await _artifact_view(ui, request, session)
    etag = f'"{view.ref.sha256}"'
    if etag_matches(request, etag):
        return not_modified(etag)
    file = await run_in_threadpool(ui.get_store().open_artifact, view.ref)
    return stream_blob(
        request,
        file,
        content_type=view.ref.content_type,
        size=view.ref.size,
        etag=etag,
        filename=view.filename,
        download=request.query_params.get("download") == "1",
    )


async def artifact_thumbnail(ui: UI, request: Request, session: Session) -> Response:
    """A cached WebP thumbnail of one input or result image."""
    view = await _artifact_view(ui, request, session)
    if not view.thumbnail:
        raise NotFound("no thumbnail for this artefact")
    etag = f'"{view.ref.sha256}-{ui.thumbnail_px}"'
    if etag_matches(request, etag):
        return not_modified(etag)
    store = ui.get_store()
    data = await run_in_threadpool(
        cached_thumbnail,
        store,
        view.ref.sha256,
        ui.thumbnail_px,
        lambda: store.read_artifact(view.ref),
    )
    return image_response(data, media_type="image/webp", etag=etag)
