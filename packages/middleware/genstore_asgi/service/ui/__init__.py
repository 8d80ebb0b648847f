"""The web UI of the images service: server-rendered pages (Jinja2), mounted at ``/ui``.

    from genstore_asgi.service.ui import ui_routes
    app = Starlette(routes=[..., ui_routes(lambda: store, authenticator.user_id)])

Pages: ``/ui/operations`` (history, filters, prompt search), ``/ui/operations/{id}`` (detail),
``/ui/images`` (the seed's grid: status changes, delete), ``/ui/sign-in``. Reading works without
JavaScript; a small script only adds conveniences. Needs the ``server`` extra (jinja2, Pillow).
"""

from __future__ import annotations

from ._routes import ui_routes
from ._session import Authenticate

__all__ = ["Authenticate", "ui_routes"]
