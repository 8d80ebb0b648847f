"""The service's routes, one module per area; ``API_ROUTES`` is the whole table, in order."""

from __future__ import annotations

from .._routing import ApiRoute
from . import health, history, images

__all__ = ["API_ROUTES"]

API_ROUTES: tuple[ApiRoute, ...] = (*health.ROUTES, *images.ROUTES, *history.ROUTES)
