"""The images pages: the seed's grid, status changes (generated -> printed -> ordered), delete."""

from __future__ import annotations

from urllib.parse import urlencode

from genstore import ImageStatus
from genstore.exceptions import InvalidInput
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ._context import UI
from ._files import etag_matches, image_response, not_modified, stream_blob
from ._session import Session
from ._thumbs import cached_thumbnail, thumbnail_key

__all__ = ["delete_image", "image_file", "image_thumbnail", "images", "set_status"]

PAGE_SIZE = 24


def _page_number(raw: str | None) -> int:
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidInput("page must be a number from 1 to 1000000")
    return int(raw)


def _status(raw: str | None) -> str | None:
    if not raw:
        return None
    if raw not in {s.value for s in ImageStatus}:
        raise InvalidInput(f"status must be one of {[s.value for s in ImageStatus]}")
    return raw


async def images(ui: UI, request: Request, session: Session) -> Response:
    """The grid of the user's images, newest first, by status, paged as the seed pages."""
    number = _page_number(request.query_params.get("page"))
    status = _status(request.query_params.get("status"))
    page = await run_in_threadpool(
        ui.get_store().images.list,
        user_id=session.user_id,
        page=number,
        limit=PAGE_SIZE,
        status=status,
    )
    total = page.total or 0
    pages = max(1, -(-total // PAGE_SIZE))

    def query(**changes: str | int) -> str:
        values: dict[str, str | int] = {"status": status or "", "page": number, **changes}
        return urlencode({k: v for k, v in values.items() if v})

    return ui.render(
        request,
        "images.html",
        session,
        images=page.items,
        status=status or "",
        number=number,
        pages=pages,
        total=total,
        query=query,
        flash=request.query_params.get("done", "")[:80],
    )


def _back(ui: UI, request: Request, done: str) -> RedirectResponse:
    """Back to the grid (the page and filter the form was posted from), saying what was done."""
    referer_query = {k: v for k, v in request.query_params.items() if k in ("status", "page")}
    query = urlencode({**referer_query, "done": done})
    return RedirectResponse(f"{ui.url(request, 'images')}?{query}", status_code=303)


async def set_status(ui: UI, request: Request, session: Session) -> Response:
    """POST ``status``: move the image along generated -> printed -> ordered (or back)."""
    form = await request.form(max_files=0, max_fields=20)
    status = _status(str(form.get("status", ""))) or ""
    if not status:
        raise InvalidInput("status is required")
    record = await run_in_threadpool(
        ui.get_store().images.update_status,
        user_id=session.user_id,
        image_id=request.path_params["image_id"],
        status=status,
    )
    return _back(ui, request, f"{record.prompt[:40]}: {record.status.value}")


async def delete_image(ui: UI, request: Request, session: Session) -> Response:
    """POST: delete the image for good (record, catalog row, PNG and its cached thumbnail)."""
    store = ui.get_store()
    image_id = request.path_params["image_id"]
    record = await run_in_threadpool(store.images.get, user_id=session.user_id, image_id=image_id)
    await run_in_threadpool(store.images.delete, user_id=session.user_id, image_id=image_id)
    # The cache is content-addressed and refills on demand, so dropping the entry is always safe,
    # and a deleted image should not live on as a thumbnail.
    await run_in_threadpool(store.blobs.delete, thumbnail_key(record.sha256, ui.thumbnail_px))
    return _back(ui, request, f"deleted: {record.prompt[:40]}")


async def image_file(ui: UI, request: Request, session: Session) -> Response:
    """The PNG itself (``?download=1`` to save it)."""
    store = ui.get_store()
    record = await run_in_threadpool(
        store.images.get, user_id=session.user_id, image_id=request.path_params["image_id"]
    )
    etag = f'"{record.sha256}"'
    if etag_matches(request, etag):
        return not_modified(etag)
    file = await run_in_threadpool(store.blobs.open, record.key)
    return stream_blob(
        request,
        file,
        content_type="image/png",
        size=record.size,
        etag=etag,
        filename=record.key.rsplit("/", 1)[-1],
        download=request.query_params.get("download") == "1",
    )


async def image_thumbnail(ui: UI, request: Request, session: Session) -> Response:
    """A cached WebP thumbnail of the PNG."""
    store = ui.get_store()
    record = await run_in_threadpool(
        store.images.get, user_id=session.user_id, image_id=request.path_params["image_id"]
    )
    etag = f'"{record.sha256}-{ui.thumbnail_px}"'
    if etag_matches(request, etag):
        return not_modified(etag)
    data = await run_in_threadpool(
        cached_thumbnail,
        store,
        record.sha256,
        ui.thumbnail_px,
        lambda: store.blobs.read(record.key),
    )
    return image_response(data, media_type="image/webp", etag=etag)
