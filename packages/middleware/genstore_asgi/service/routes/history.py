"""The caller's generation history (the operations genstore recorded for them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import RequestContext
from .._routing import ApiRoute
from ._params import int_param

__all__ = ["ROUTES"]


async def history(request: Request, ctx: RequestContext) -> Response:
    page = await ctx.run(
        ctx.store.history,
        user_id=ctx.user_id,
        operation_type=request.query_params.get("type") or None,
        status=request.query_params.get("status") or None,
        limit=int_param(request, "limit", 50),
        cursor=request.query_params.get("cursor") or None,
    )
    data = [r.model_dump(mode="json") for r in page.items]
    return JSONResponse({"success": True, "data": data, "next_cursor": page.next_cursor})


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("GET", "/api/history", "history", "The caller's operations", history, tag="history"),
)
