"""The seed's images API: create, list, get, read the PNG, change the status, delete."""

from __future__ import annotations

from typing import Any

import genstore
from genstore.exceptions import InvalidInput
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import RequestContext, read_json
from .._routing import ApiRoute
from ._params import int_param

__all__ = ["ROUTES"]


def public(record: genstore.ImageRecord, request: Request) -> dict[str, Any]:
    """The record as the API shows it: no storage key, and an ``image_url`` a browser can open."""
    data = record.model_dump(mode="json", exclude={"key", "schema_version"})
    url = data.get("image_url")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        # Local files have no URL a browser can use: serve them through the API. The path is
        # relative to the server (root_path covers a mount or a proxy prefix): a URL built from
        # the Host header would let a request choose where its links point.
        root = request.scope.get("root_path", "")
        data["image_url"] = f"{root}/api/images/{record.image_id}/file"
    return data


async def create_image(request: Request, ctx: RequestContext) -> Response:
    body = await read_json(request, ctx.deps.stores.max_body())
    if "imageData" not in body:
        raise InvalidInput("imageData is required")
    if "prompt" not in body:
        raise InvalidInput("prompt is required")
    record = await ctx.run(
        ctx.store.images.create,
        user_id=ctx.user_id,
        prompt=body["prompt"],
        image_data=body["imageData"],
        metadata=body.get("metadata"),
    )
    return JSONResponse({"success": True, "data": public(record, request)}, status_code=201)


async def list_images(request: Request, ctx: RequestContext) -> Response:
    page_no, limit = int_param(request, "page", 1), int_param(request, "limit", 10)
    status = request.query_params.get("status") or None
    page = await ctx.run(
        ctx.store.images.list, user_id=ctx.user_id, page=page_no, limit=limit, status=status
    )
    total = page.total or 0
    pagination = {"page": page_no, "limit": limit, "total": total, "pages": -(-total // limit)}
    items = [public(r, request) for r in page.items]
    return JSONResponse({"success": True, "data": items, "pagination": pagination})


async def get_image(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    record = await ctx.run(ctx.store.images.get, user_id=ctx.user_id, image_id=image_id)
    return JSONResponse({"success": True, "data": public(record, request)})


async def image_file(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    data = await ctx.run(ctx.store.images.read, user_id=ctx.user_id, image_id=image_id)
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


async def delete_image(request: Request, ctx: RequestContext) -> Response:
    image_id = request.path_params["image_id"]
    await ctx.run(ctx.store.images.delete, user_id=ctx.user_id, image_id=image_id)
    return JSONResponse({"success": True, "message": "image deleted"})


async def update_status(request: Request, ctx: RequestContext) -> Response:
    body = await read_json(request, ctx.deps.stores.max_body())
    if "status" not in body:
        raise InvalidInput("status is required")
    record = await ctx.run(
        ctx.store.images.update_status,
        user_id=ctx.user_id,
        image_id=request.path_params["image_id"],
        status=body["status"],
    )
    return JSONResponse({"success": True, "data": public(record, request)})


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("POST", "/api/images", "create_image", "Store a generated image", create_image),
    ApiRoute("GET", "/api/images", "list_images", "The caller's images, newest first", list_images),
    ApiRoute("GET", "/api/images/{image_id}", "get_image", "One image's record", get_image),
    ApiRoute("DELETE", "/api/images/{image_id}", "delete_image", "Delete an image", delete_image),
    ApiRoute(
        "PATCH",
        "/api/images/{image_id}/status",
        "update_status",
        "Change the status",
        update_status,
    ),
    ApiRoute("GET", "/api/images/{image_id}/file", "image_file", "The image's PNG", image_file),
)
