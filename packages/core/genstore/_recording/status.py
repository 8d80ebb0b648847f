"""Whether a job's status body (a poll answer or a webhook) shows it finished, and its error.

    terminal_state({"id": "p1", "status": "succeeded", "output": [...]})  -> "succeeded"
    terminal_state({"status": "processing"})                              -> None
    error_of({"status": "failed", "error": "NSFW content detected"})      -> "NSFW content detected"

The status is read from ``status``, ``state`` or ``task_status`` (a string, or ComfyUI's
``{"status_str", "completed"}``), at the top or, when the top has none, inside ``data`` (APIs that
wrap their answer) or a single ComfyUI history entry. Pydantic models and dataclasses (an SDK's
prediction object) are read as their fields. Values are compared without case, ``-`` or spaces:
Replicate's ``succeeded/failed/canceled``, OpenAI's ``completed/failed``, fal's ``COMPLETED``
(failed when it carries an ``error``), BFL's ``Ready`` / ``Error`` / ``Content Moderated``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["TerminalState", "error_of", "terminal_state"]

TerminalState = Literal["succeeded", "failed"]

_SUCCEEDED = frozenset(
    {"succeeded", "succeed", "success", "successful", "completed", "complete", "done"}
    | {"finished", "ready", "ok"}
)
_FAILED = frozenset(
    {"failed", "fail", "failure", "error", "errored", "canceled", "cancelled", "aborted"}
    | {"timeout", "timed_out", "expired", "rejected", "content_moderated", "request_moderated"}
)
_STATUS_KEYS = ("status", "state", "task_status")
_MAX_ERROR = 2000


def terminal_state(value: object) -> TerminalState | None:
    """``"succeeded"`` or ``"failed"`` if ``value`` shows a finished job, else None (still running,
    or no status at all). A body with no status but an ``error`` is ``"failed"``."""
    body = _body(value)
    if body is None:
        return None
    status = _status(body)
    if status in _FAILED:
        return "failed"
    if status in _SUCCEEDED:
        return "failed" if _explicit_error(body) else "succeeded"
    if status is None and _explicit_error(body):
        return "failed"
    return None


def error_of(value: object) -> str | None:
    """The error message of a failed job: its ``error`` (a string, or an object's ``message``),
    ComfyUI's ``execution_error``, else the failed status itself (``"canceled"``); None if the job
    did not fail."""
    body = _body(value)
    if body is None:
        return None
    message = _explicit_error(body)
    if message:
        return _clip(message)
    if terminal_state(body) == "failed":
        raw = _raw_status(body)
        return _clip(raw) if raw else "failed"
    return None


def _body(value: object) -> Mapping[str, Any] | None:
    """The mapping that carries the status: ``value`` itself, ``data``, or one history entry."""
    body = _as_mapping(value)
    if body is None:
        return None
    if _raw_status(body) is None:
        for nested in (body.get("data"), _single_value(body)):
            inner = _as_mapping(nested)
            if inner is not None and _raw_status(inner) is not None:
                return inner
    return body


def _single_value(body: Mapping[str, Any]) -> Any:
    return next(iter(body.values())) if len(body) == 1 else None


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    names: Any = getattr(type(value), "model_fields", None) or getattr(
        type(value), "__fields__", None
    )
    stored = getattr(value, "__dict__", None)
    if isinstance(names, Mapping) and isinstance(stored, Mapping):
        return {name: stored.get(name) for name in names}  # no getattr: deprecated fields warn
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    return None


def _raw_status(body: Mapping[str, Any]) -> str | None:
    for key in _STATUS_KEYS:
        value = body.get(key)
        if isinstance(value, Mapping):  # ComfyUI history: {"status_str": "success", ...}
            value = value.get("status_str")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _status(body: Mapping[str, Any]) -> str | None:
    raw = _raw_status(body)
    return None if raw is None else raw.lower().replace("-", "_").replace(" ", "_")


def _explicit_error(body: Mapping[str, Any]) -> str | None:
    error = body.get("error")
    if isinstance(error, Mapping) and error:
        inner = error.get("message") or error.get("detail")
        return inner.strip() if isinstance(inner, str) and inner.strip() else _json(error)
    if isinstance(error, str) and error.strip():
        return error.strip()
    if error is None or error is False or isinstance(error, (str, Mapping)) or error == []:
        return _comfy_error(body)
    return _json(error)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _comfy_error(body: Mapping[str, Any]) -> str | None:
    status = body.get("status")
    messages = status.get("messages") if isinstance(status, Mapping) else None
    if not isinstance(messages, list):
        return None
    for message in messages:
        if (
            isinstance(message, (list, tuple))
            and len(message) == 2
            and message[0] == "execution_error"
            and isinstance(message[1], Mapping)
        ):
            text = message[1].get("exception_message")
            return str(text).strip() if text else "execution_error"
    return None


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_ERROR else message[: _MAX_ERROR - 1] + "…"
