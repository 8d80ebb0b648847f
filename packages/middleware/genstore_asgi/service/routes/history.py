"""The caller's generation history (the operations genstore recorded for them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import RequestContext, query
from .._models import HistoryPage, HistoryQuery, dump
from .._routing import ApiRoute

__all__ = ["ROUTES"]


async def history(request: Request, ctx: RequestContext) -> Response:
    q = query(request, HistoryQuery)
    page = await ctx.read(
        ctx.store.history,
        user_id=ctx.user_id,
        operation_type=q.type,
        status=q.status.value if q.status else None,
        limit=q.limit,
        cursor=q.cursor,
    )
    return JSONResponse(dump(HistoryPage(data=page.items, next_cursor=page.next_cursor)))


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET", "/api/history", "history", "The caller's operations, newest first", history,
        tag="history", query=HistoryQuery, response=HistoryPage, errors=(400, 503),
    ),
)  # fmt: skip
