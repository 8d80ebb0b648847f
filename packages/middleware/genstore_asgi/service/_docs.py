"""The /docs page: the OpenAPI document rendered to HTML on the server.

No script and no CDN: the page is built from the same document /openapi.json serves, so it works
offline and cannot disagree with it.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["docs_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222;padding:0 1rem}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{font-weight:bold;text-transform:uppercase;display:inline-block;min-width:4.5rem}
code,pre{background:#f4f4f4;border-radius:4px}pre{padding:.5rem;overflow:auto;font-size:.8rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
summary{cursor:pointer}
"""


def _pre(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2))}</pre>"


def _params(op: dict[str, Any]) -> str:
    params = op.get("parameters") or []
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
        f"<td>{'yes' if p.get('required') else 'no'}</td>"
        f"<td><code>{escape(json.dumps(p.get('schema', {})))}</code></td></tr>"
        for p in params
    )
    return f"<table><tr><th>name</th><th>in</th><th>required</th><th>schema</th></tr>{rows}</table>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    lock = " 🔒 bearer token" if op.get("security") else ""
    parts = [
        f'<div class="op" id="{escape(op["operationId"])}">',
        f'<p><span class="m">{escape(method)}</span> <code>{escape(path)}</code>{lock}</p>',
        f"<p>{escape(op.get('summary', ''))}</p>",
        _params(op),
    ]
    if "requestBody" in op:
        parts.append("<p>Request body (application/json):</p>")
        parts.append(_pre(op["requestBody"]["content"]["application/json"]["schema"]))
    for status, resp in op["responses"].items():
        media = ", ".join(resp.get("content", {}))
        schemas = [c.get("schema") for c in resp.get("content", {}).values()]
        parts.append(
            f"<details><summary><b>{escape(status)}</b> {escape(resp['description'])} "
            f"<small>{escape(media)}</small></summary>{''.join(_pre(s) for s in schemas)}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def docs_html(document: dict[str, Any]) -> str:
    """The page for ``document``: every operation, then every schema."""
    title = escape(document["info"]["title"])
    ops = [
        _operation(path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    schemas = [
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>{_pre(schema)}'
        for name, schema in document["components"]["schemas"].items()
    ]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        '<p>OpenAPI 3.1: <a href="openapi.json">openapi.json</a>. Authenticated routes take '
        "<code>Authorization: Bearer &lt;token&gt;</code>.</p>"
        f"<h2>Operations</h2>{''.join(ops)}<h2>Schemas</h2>{''.join(schemas)}</body></html>"
    )
