"""The recording subsystem: what the middleware and ``@genstore.record`` share.

The background recorder and its worker, the spool, the decorator, the shared rules (redaction,
result fields, error text) and result extraction live here; ``genstore_asgi`` imports them.
"""
