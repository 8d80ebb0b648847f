"""``StoreOptions``: the limits and timeouts of a store. A leaf module: it imports nothing of genstore."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = ["StoreOptions"]


@dataclass(frozen=True)
class StoreOptions:
    """Limits and timeouts of a store (keyword arguments of ``open_store``)."""

    max_input_bytes: int = 100 * 1024 * 1024
    """Largest input image accepted."""
    max_result_bytes: int = 4 * 1024 * 1024 * 1024
    """Largest result stored (bigger downloads are abandoned and noted in ``result_error``)."""
    max_image_bytes: int = 10 * 1024 * 1024
    """Largest user image accepted by ``images.create`` (the seed's 10 MB)."""
    download_timeout: float = 60.0
    """Seconds without progress before a result download is abandoned."""
    download_deadline: float = 300.0
    """Total seconds one result download may take: resolving, connecting, every redirect and
    every read together, however steadily the server trickles bytes. Past it the download is
    abandoned and noted in ``result_error``."""
    private_urls: Literal["allow", "deny"] | None = None
    """Whether a result URL given directly may point at loopback, private (LAN) or other
    non-public addresses: ``"allow"`` (self-hosted workers, ComfyUI on the LAN) or ``"deny"``
    (services whose results may echo user-supplied URLs). None: the ``GENSTORE_PRIVATE_URLS``
    environment variable, else ``"allow"``. Whatever this says, a redirect from a public address
    into non-public space, and any link-local or cloud-metadata address (169.254.0.0/16,
    fe80::/10, fd00:ec2::254, ...), are refused unless in ``url_allowlist``."""
    url_allowlist: tuple[str, ...] = ()
    """Host names (``comfy.lan``), addresses (``10.0.0.7``) and networks (``10.0.0.0/8``,
    ``fd00::/8``) result downloads may always reach, whatever the rules above say."""
    url_expires: int = 3600
    """Lifetime of signed URLs handed out, in seconds."""
    known_inputs_ttl: float = 60.0
    """Seconds an input this store wrote or found is trusted to exist without asking the
    backend again (0: ask on every save). A ``cleanup`` in another process that deletes it is
    noticed after at most this long; one in this store, at once."""
    pending_timeout: timedelta = timedelta(hours=24)
    """How long a started operation may stay pending before ``verify`` reports it and
    ``cleanup`` marks it failed ("never completed")."""
    accepted_image_types: tuple[str, ...] = ("image/png",)
    """User image types ``images.create`` accepts: PNG as the seed says; add ``image/jpeg`` and
    ``image/webp`` to accept those too (each checked by its signature and by Pillow)."""
