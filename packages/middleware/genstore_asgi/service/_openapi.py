"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

pydantic emits JSON Schema 2020-12, which is OpenAPI 3.1's schema dialect, so the models' schemas
go into ``components/schemas`` unchanged; this module only walks the route table to lay out the
paths, parameters, bodies, responses and the bearer security scheme.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ._models import ErrorBody
from ._routing import ApiRoute

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")
_SECURITY = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
# Every guarded route may answer these besides its own errors.
_GUARD_ERRORS = {401: "No valid bearer token", 429: "Rate limit exceeded"}
_DESCRIPTIONS = {
    400: "Invalid input",
    404: "Not found (or another user's)",
    413: "Body over the size limit",
    503: "Storage unavailable, or too many uploads in flight; retry later",
}


def _schemas(table: Sequence[ApiRoute]) -> tuple[dict[Any, Any], Any]:
    used: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for r in table:
        used += [(m, "validation") for m in (r.body, r.query) if m is not None]
        used += [(r.response, "serialization")] if r.response is not None else []
    refs, defs = models_json_schema(list(dict.fromkeys(used)), ref_template=_REF)
    return dict(refs), defs.get("$defs", {})


def _parameters(route: ApiRoute, defs: dict[str, Any]) -> list[dict[str, Any]]:
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for n in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        schema = defs[route.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": _absent(prop)}
            )
    return params


def _absent(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its ``null`` branch: null is spelled by leaving it out."""
    options = prop.get("anyOf")
    if not options:
        return prop
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _responses(route: ApiRoute, refs: dict[Any, Any]) -> dict[str, Any]:
    error = refs[(ErrorBody, "serialization")]
    out: dict[str, Any] = {}
    if route.media_type is not None:
        binary = {"schema": {"type": "string", "contentMediaType": route.media_type}}
        out[str(route.status)] = {"description": "OK", "content": {route.media_type: binary}}
    elif route.response is not None:
        ok = refs[(route.response, "serialization")]
        out[str(route.status)] = _json(ok, route.response.__doc__ or "OK")
        out.update({str(s): _json(ok, _DESCRIPTIONS.get(s, "")) for s in route.also})
    extra = _GUARD_ERRORS if route.guarded else {}
    for status, text in {**{s: _DESCRIPTIONS[s] for s in route.errors}, **extra}.items():
        out[str(status)] = _json(error, text)
    return out


def _operation(route: ApiRoute, refs: dict[Any, Any], defs: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route, defs),
        "responses": _responses(route, refs),
    }
    if route.body is not None:
        body = refs[(route.body, "validation")]
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = [{"bearerAuth": []}] if route.guarded else []
    return op


def openapi_document(
    table: Sequence[ApiRoute], *, title: str = "genstore images API", version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``table`` (paths relative to where the app is mounted)."""
    refs, defs = _schemas(table)
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, defs)
    method: Literal["3.1.0"] = "3.1.0"
    return {
        "openapi": method,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": _SECURITY},
    }
