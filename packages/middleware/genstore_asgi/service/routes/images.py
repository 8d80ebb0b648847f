"""The seed's images API: create, list, get, read the PNG, change the status, delete."""

from __future__ import annotations

import binascii

import genstore
from genstore._redaction import redact
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import RequestContext, query, validate
from .._models import (
    CreateImage,
    Deleted,
    ImageOut,
    ImagePage,
    ImageQuery,
    OneImage,
    Pagination,
    StatusChange,
    dump,
)
from .._routing import ApiRoute

__all__ = ["ROUTES", "image_out"]


def image_out(
    record: genstore.ImageRecord, request: Request, base_url: str | None = None
) -> ImageOut:
    """The record as the API shows it: no storage key, and an ``image_url`` a browser can open."""
    data = record.model_dump(exclude={"key", "schema_version"})
    url = data.get("image_url")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        # Local files have no URL a browser can use: serve them through the API. The path is
        # relative to the server (root_path covers a mount or a proxy prefix): a URL built from
        # the Host header would let a request choose where its links point.
        root = request.scope.get("root_path", "")
        data["image_url"] = f"{base_url or ''}{root}/api/images/{record.image_id}/file"
    return ImageOut.model_validate(data)


def _decoded(image_data: str) -> str | bytes:
    """Canonical base64 decoded here, so the text can be dropped before the store runs (a
    10 MB image is 14 MB of text, and the store's own decoding copies it three times); any
    other spelling (data: URL, URL-safe, line breaks, bad input) goes to the store as text,
    which accepts or refuses it with its own messages."""
    try:
        return binascii.a2b_base64(image_data, strict_mode=True)
    except (binascii.Error, ValueError):
        return image_data


async def create_image(request: Request, ctx: RequestContext) -> Response:
    body = validate(CreateImage, await ctx.body(request))
    # The one redaction rule set: an image's metadata never keeps a credential a client put in.
    prompt, metadata, image = body.prompt, redact(body.metadata), _decoded(body.imageData)
    del body  # the base64 text: only the decoded image stays alive while the store works
    record = await ctx.run(
        ctx.store.images.create,
        user_id=ctx.user_id,
        prompt=prompt,
        image_data=image,
        metadata=metadata,
    )
    return JSONResponse(
        dump(OneImage(data=image_out(record, request, ctx.deps.base_url))), status_code=201
    )


async def list_images(request: Request, ctx: RequestContext) -> Response:
    q = query(request, ImageQuery)
    status = q.status.value if q.status else None
    page = await ctx.read(
        ctx.store.images.list, user_id=ctx.user_id, page=q.page, limit=q.limit, status=status
    )
    total = page.total or 0
    pagination = Pagination(page=q.page, limit=q.limit, total=total, pages=-(-total // q.limit))
    items = [image_out(r, request, ctx.deps.base_url) for r in page.items]
    return JSONResponse(dump(ImagePage(data=items, pagination=pagination)))


async def get_image(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    record = await ctx.read(ctx.store.images.get, user_id=ctx.user_id, image_id=image_id)
    return JSONResponse(dump(OneImage(data=image_out(record, request, ctx.deps.base_url))))


async def image_file(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    data = await ctx.read(ctx.store.images.read, user_id=ctx.user_id, image_id=image_id)
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


async def delete_image(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    await ctx.read(ctx.store.images.delete, user_id=ctx.user_id, image_id=image_id)
    return JSONResponse(dump(Deleted(message="image deleted")))


async def update_status(request: Request, ctx: RequestContext) -> Response:
    body = validate(StatusChange, await ctx.body(request))
    record = await ctx.read(
        ctx.store.images.update_status,
        user_id=ctx.user_id,
        image_id=request.path_params["image_id"],
        status=body.status.value,
    )
    return JSONResponse(dump(OneImage(data=image_out(record, request, ctx.deps.base_url))))


_ONE = "/api/images/{image_id}"
ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "POST", "/api/images", "create_image", "Store a generated image", create_image,
        body=CreateImage, response=OneImage, status=201, errors=(400, 413, 503),
    ),
    ApiRoute(
        "GET", "/api/images", "list_images", "The caller's images, newest first", list_images,
        query=ImageQuery, response=ImagePage, errors=(400, 503),
    ),
    ApiRoute(
        "GET", _ONE, "get_image", "One image", get_image,
        response=OneImage, errors=(400, 404, 503),
    ),
    ApiRoute(
        "DELETE", _ONE, "delete_image", "Delete an image and its file", delete_image,
        response=Deleted, errors=(400, 404, 503),
    ),
    ApiRoute(
        "PATCH", f"{_ONE}/status", "update_status", "Change an image's status", update_status,
        body=StatusChange, response=OneImage, errors=(400, 404, 413, 503),
    ),
    ApiRoute(
        "GET", f"{_ONE}/file", "image_file", "The image's PNG", image_file,
        media_type="image/png", errors=(400, 404, 503),
    ),
)  # fmt: skip
