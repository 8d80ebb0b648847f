"""The reference images service of the seed, on Starlette: the REST API, health, history, gallery.

    POST   /api/images                 {prompt, imageData, metadata}  -> 201 {success, data}
    GET    /api/images?page&limit&status                                -> {success, data, pagination}
    GET    /api/images/{id}            PATCH /api/images/{id}/status {status}
    DELETE /api/images/{id}            GET   /api/images/{id}/file  (the PNG)
    GET    /api/history?type&status&limit&cursor   GET /api/health   GET /gallery

Every /api route but health needs ``Authorization: Bearer <jwt>`` and is limited per user.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import genstore
from genstore.exceptions import (
    BackendUnavailable,
    GenstoreError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ._auth import AuthFailed, JWTAuthenticator
from ._gallery import GALLERY_HTML
from ._ratelimit import RateLimiter
from .ui import ui_routes

__all__ = ["create_app"]

logger = logging.getLogger("genstore_asgi.service")

Handler = Callable[[Request, str], Awaitable[Response]]


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


def create_app(
    store: genstore.Store | None = None,
    *,
    auth: JWTAuthenticator | None = None,
    rate_limit: int = 100,
    rate_window: float = 60.0,
) -> Starlette:
    """The images service over ``store`` (default: ``genstore.default_store()``).

    ``auth`` defaults to ``JWTAuthenticator.from_env()``. The store is the caller's: the app
    never closes it.
    """
    authenticator = auth or JWTAuthenticator.from_env()
    limiter = RateLimiter(rate_limit, rate_window)

    def the_store() -> genstore.Store:
        return store if store is not None else genstore.default_store()

    def max_body() -> int:
        # base64 inflates by 4/3; allow room for the prompt and metadata around it.
        return the_store().options.max_image_bytes * 4 // 3 + 256 * 1024

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            user_id = "-"
            try:
                user_id = authenticator.user_id(request.headers.get("authorization"))
                wait = limiter.check(user_id)
                if wait:
                    response: Response = _error(
                        429, "rate limit exceeded", **{"Retry-After": limiter.retry_after(wait)}
                    )
                else:
                    response = await handler(request, user_id)
            except AuthFailed as exc:
                response = _error(401, str(exc), **{"WWW-Authenticate": "Bearer"})
            except PayloadTooLarge as exc:
                response = _error(413, str(exc))
            except InvalidInput as exc:
                response = _error(400, str(exc))
            except NotFound:
                response = _error(404, "not found")
            except BackendUnavailable as exc:
                logger.error("storage unavailable: %s", exc)
                response = _error(503, "storage unavailable, try again later")
            except GenstoreError as exc:
                logger.exception("request failed")
                response = _error(500, f"internal error: {type(exc).__name__}")
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "user_id": user_id,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response

        return endpoint

    def public(record: genstore.ImageRecord, request: Request) -> dict[str, Any]:
        data = record.model_dump(mode="json", exclude={"key", "schema_version"})
        url = data.get("image_url")
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            # Local files have no URL a browser can use: serve them through the API.
            data["image_url"] = str(request.url_for("image_file", image_id=record.image_id))
        return data

    async def read_json(request: Request) -> dict[str, Any]:
        limit = max_body()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object")
        return data

    async def create_image(request: Request, user_id: str) -> Response:
        body = await read_json(request)
        if "imageData" not in body:
            raise InvalidInput("imageData is required")
        if "prompt" not in body:
            raise InvalidInput("prompt is required")
        record = await run_in_threadpool(
            the_store().images.create,
            user_id=user_id,
            prompt=body["prompt"],
            image_data=body["imageData"],
            metadata=body.get("metadata"),
        )
        return JSONResponse({"success": True, "data": public(record, request)}, status_code=201)

    def _int(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be an integer") from None

    async def list_images(request: Request, user_id: str) -> Response:
        page_no, limit = _int(request, "page", 1), _int(request, "limit", 10)
        status = request.query_params.get("status") or None
        page = await run_in_threadpool(
            the_store().images.list, user_id=user_id, page=page_no, limit=limit, status=status
        )
        total = page.total or 0
        return JSONResponse(
            {
                "success": True,
                "data": [public(r, request) for r in page.items],
                "pagination": {
                    "page": page_no,
                    "limit": limit,
                    "total": total,
                    "pages": -(-total // limit),
                },
            }
        )

    async def get_image(request: Request, user_id: str) -> Response:
        image_id = request.path_params["image_id"]
        record = await run_in_threadpool(the_store().images.get, user_id=user_id, image_id=image_id)
        return JSONResponse({"success": True, "data": public(record, request)})

    async def image_file(request: Request, user_id: str) -> Response:
        image_id = request.path_params["image_id"]
        data = await run_in_threadpool(the_store().images.read, user_id=user_id, image_id=image_id)
        return Response(
            data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
        )

    async def delete_image(request: Request, user_id: str) -> Response:
        image_id = request.path_params["image_id"]
        await run_in_threadpool(the_store().images.delete, user_id=user_id, image_id=image_id)
        return JSONResponse({"success": True, "message": "image deleted"})

    async def update_status(request: Request, user_id: str) -> Response:
        body = await read_json(request)
        if "status" not in body:
            raise InvalidInput("status is required")
        record = await run_in_threadpool(
            the_store().images.update_status,
            user_id=user_id,
            image_id=request.path_params["image_id"],
            status=body["status"],
        )
        return JSONResponse({"success": True, "data": public(record, request)})

    async def history(request: Request, user_id: str) -> Response:
        page = await run_in_threadpool(
            the_store().history,
            user_id=user_id,
            operation_type=request.query_params.get("type") or None,
            status=request.query_params.get("status") or None,
            limit=_int(request, "limit", 50),
            cursor=request.query_params.get("cursor") or None,
        )
        return JSONResponse(
            {
                "success": True,
                "data": [r.model_dump(mode="json") for r in page.items],
                "next_cursor": page.next_cursor,
            }
        )

    async def health(request: Request) -> Response:
        def probe() -> None:
            s = the_store()
            s.blobs.exists("health/probe")
            s.catalog.get_operation("health-probe")

        try:
            await run_in_threadpool(probe)
        except GenstoreError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        s = the_store()
        return JSONResponse(
            {"status": "ok", "store": s.blobs.url, "catalog": type(s.catalog).__name__}
        )

    async def gallery(request: Request) -> Response:
        return HTMLResponse(GALLERY_HTML)

    return Starlette(
        routes=[
            Route("/api/health", health, methods=["GET"]),
            Route("/api/images", guarded(create_image), methods=["POST"]),
            Route("/api/images", guarded(list_images), methods=["GET"]),
            Route("/api/images/{image_id}", guarded(get_image), methods=["GET"]),
            Route("/api/images/{image_id}", guarded(delete_image), methods=["DELETE"]),
            Route("/api/images/{image_id}/status", guarded(update_status), methods=["PATCH"]),
            Route(
                "/api/images/{image_id}/file",
                guarded(image_file),
                methods=["GET"],
                name="image_file",
            ),
            Route("/api/history", guarded(history), methods=["GET"]),
            Route("/gallery", gallery, methods=["GET"]),
            ui_routes(the_store, authenticator.user_id),
        ]
    )
