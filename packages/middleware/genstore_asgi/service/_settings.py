"""Every setting of the images service, with its environment variable, default and meaning.

``ENVIRONMENT`` is the one list: ``genstore serve --help`` prints it, the README's table mirrors
it, and a test checks that each variable is documented. Importing this module needs nothing but
the standard library, so the CLI can show help without the server extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENVIRONMENT", "Setting", "environment_help"]


@dataclass(frozen=True)
class Setting:
    """One environment variable the service reads."""

    name: str
    default: str
    help: str


ENVIRONMENT: tuple[Setting, ...] = (
    Setting("GENSTORE_URL", "./genstore-data", "the store (also --url)"),
    Setting("GENSTORE_CATALOG", "sqlite next to local data", "the catalog (also --catalog)"),
    Setting("HOST", "127.0.0.1", "interface to listen on (also --host)"),
    Setting("PORT", "5002", "port to listen on, the seed's (also --port)"),
    Setting("LOG_LEVEL", "info", "log level of the JSON logs on stdout"),
    Setting("CLERK_JWT_KEY", "-", "Clerk instance's PEM public key: verify without network"),
    Setting("CLERK_SECRET_KEY", "-", "Clerk secret key: JWKS from Clerk's Backend API"),
    Setting("CLERK_PUBLISHABLE_KEY", "-", "Clerk publishable key: the issuer to check (and JWKS)"),
    Setting("CLERK_AUTHORIZED_PARTIES", "-", "comma-separated origins allowed in azp"),
    Setting("CLERK_API_URL", "https://api.clerk.com", "Clerk's Backend API"),
    Setting("GENSTORE_JWT_SECRET", "-", "HS256 shared secret verifying bearer tokens"),
    Setting("GENSTORE_JWT_PUBLIC_KEY", "-", "PEM public key verifying RS256/ES256 tokens"),
    Setting("GENSTORE_JWKS_URL", "-", "JWKS URL of any issuer verifying RS256/ES256 tokens"),
    Setting("GENSTORE_JWT_ISSUER", "-", "required iss claim"),
    Setting("GENSTORE_JWT_AUDIENCE", "-", "required aud claim"),
    Setting("GENSTORE_RATE_LIMIT", "100/minute", "requests per user (limits' notation)"),
    Setting(
        "GENSTORE_RATE_LIMIT_ANONYMOUS", "120/minute", "requests per client address without token"
    ),
    Setting(
        "GENSTORE_RATE_LIMIT_STORAGE",
        "memory://",
        "redis://host:port/db to share the limits between instances",
    ),
    Setting(
        "GENSTORE_MAX_INFLIGHT_BYTES", "50331648", "request bytes in flight before 503 Retry-After"
    ),
    Setting("GENSTORE_BASE_URL", "-", "absolute links start here (else links are paths)"),
    Setting("GENSTORE_TRUSTED_HOSTS", "-", "comma-separated Host headers accepted (else any)"),
)


def environment_help() -> str:
    """The variables as help text: one paragraph each (``NAME (default X): meaning``)."""
    lines = ["Environment variables (secrets are read only from the environment):"]
    for s in ENVIRONMENT:
        default = "" if s.default == "-" else f" (default {s.default})"
        lines.append(f"{s.name}{default}: {s.help}")
    lines.append(
        "With no token verification configured, or with --dev, a development secret is made "
        "for this run and a token for it is printed (loopback addresses only without --dev)."
    )
    return "\n\n".join(lines)
