"""The response shapes of the providers people use, recognised in a JSON object (a mapping).

Each recogniser takes a mapping and a ``walk`` function (which finds the outputs of a nested
value, within the caller's depth and count bounds) and returns the outputs in the provider's
order, ``[]`` when the shape is recognised but carries no output (a preview event, a failed
prediction), or None when the mapping is not its shape. They are tried in ``RECOGNISERS`` order;
a mapping none recognises falls back to ``RESULT_KEYS`` (see ``extract``).

Shapes, from each provider's public API reference:

- OpenAI and compatible servers (Together, Azure, many self-hosted): ``{"created", "data":
  [{"url"} | {"b64_json"}]}``; image stream events ``image_generation.completed`` /
  ``image_edit.completed`` (``b64_json``), while ``*.partial_image`` previews carry no output;
  Responses API ``image_generation_call`` items (``result``: base64) and the events that wrap them.
- Replicate predictions: ``{"id", "status", "output", "error"}``; a failed or canceled one has no
  output, any other gives what ``output`` holds (a URL, ``data:`` URLs, a list of them).
- Stability: ``{"artifacts": [{"base64", "finishReason"}]}`` (artifacts that errored are skipped).
- ComfyUI history: ``{prompt_id: {"prompt", "outputs": {node: {"images": [{"filename",
  "subfolder", "type"}]}}, "status"}}`` and its entries; each file becomes its relative
  ``/view?filename=..&subfolder=..&type=..`` URL. ``temp`` files (preview nodes) count only when a
  prompt saved no ``output`` file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from .outputs import Output, string_output
from .rules import RESULT_FIELDS

__all__ = ["RECOGNISERS", "RESULT_KEYS", "Recogniser", "Walk", "comfy_view_url"]

Walk = Callable[[Any], list[Output]]
Recogniser = Callable[[Mapping[str, Any], Walk], "list[Output] | None"]

RESULT_KEYS = RESULT_FIELDS
"""The fields looked at, in order, when no provider shape matches (``rules.RESULT_FIELDS``)."""

_BASE64_KEYS = frozenset({"b64_json", "base64"})
_FAILED_PREDICTION = frozenset({"failed", "canceled", "cancelled"})
_COMFY_MEDIA = ("images", "gifs", "videos", "audio", "files")
_COMFY_TYPES = frozenset({"output", "temp", "input"})


def base64_field(key: str, value: Any) -> list[Output]:
    """A field holding base64 by definition (``b64_json``, ``base64``), or a URL in its place."""
    if not isinstance(value, str) or not value:
        return []
    found = string_output(value, base64_field=key in _BASE64_KEYS)
    return [] if found is None else [found]


def openai_images(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """``{"data": [{"b64_json"} | {"url"}, ...]}``: base64 first (it is the image; a URL expires)."""
    items = d.get("data")
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(i, Mapping) and ("b64_json" in i or "url" in i) for i in items):
        return None
    found: list[Output] = []
    for item in items:
        found.extend(base64_field("b64_json", item.get("b64_json")) or walk(item.get("url")))
    return found


def openai_events(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """Image stream events and Responses API items, by their ``type``."""
    kind = d.get("type")
    if not isinstance(kind, str):
        return None
    if kind.endswith("partial_image"):  # a preview of an image still being made, never a result
        return []
    if kind in ("image_generation.completed", "image_edit.completed"):
        return base64_field("b64_json", d.get("b64_json"))
    if kind == "image_generation_call":
        return base64_field("base64", d.get("result"))
    if kind == "response.output_item.done":
        return walk(d.get("item"))
    if kind == "response.completed":
        return walk(d.get("response"))
    return None


def replicate_prediction(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """A prediction: its ``output``, unless it failed or was canceled."""
    status = d.get("status")
    if not isinstance(status, str) or "output" not in d:
        return None
    if status.lower() in _FAILED_PREDICTION:
        return []
    return walk(d.get("output"))


def stability_artifacts(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """``{"artifacts": [{"base64", "finishReason"}]}``; an artifact that errored holds no image."""
    artifacts = d.get("artifacts")
    if not isinstance(artifacts, list) or not any(
        isinstance(a, Mapping) and "base64" in a for a in artifacts
    ):
        return None
    found: list[Output] = []
    for artifact in artifacts:
        if isinstance(artifact, Mapping) and artifact.get("finishReason") != "ERROR":
            found.extend(base64_field("base64", artifact.get("base64")))
    return found


def comfy_view_url(item: Mapping[str, Any]) -> str | None:
    """The relative ``/view`` URL of a ComfyUI file descriptor, or None if ``item`` is not one."""
    filename, kind = item.get("filename"), item.get("type")
    if not isinstance(filename, str) or not filename or kind not in _COMFY_TYPES:
        return None
    subfolder = item.get("subfolder")
    query = {"filename": filename, "subfolder": subfolder if isinstance(subfolder, str) else ""}
    return "/view?" + urlencode({**query, "type": kind})


def comfy_file(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """One file descriptor, as in a websocket ``executed`` message's ``output.images``."""
    url = comfy_view_url(d)
    return None if url is None else [Output("url", url)]


def comfy_entry(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """A history entry ``{"prompt", "outputs": {node: {"images": [...]}}, "status"}``."""
    outputs = d.get("outputs")
    if not isinstance(outputs, Mapping) or not ("prompt" in d or "status" in d):
        return None
    saved: list[Output] = []
    previews: list[Output] = []
    for node in outputs.values():
        if not isinstance(node, Mapping):
            continue
        for media in _COMFY_MEDIA:
            for item in _mappings(node.get(media)):
                url = comfy_view_url(item)
                if url is not None:
                    (previews if item.get("type") == "temp" else saved).append(Output("url", url))
    return saved or previews


def comfy_history(d: Mapping[str, Any], walk: Walk) -> list[Output] | None:
    """``GET /history`` (or ``/history/{id}``): entries keyed by prompt id, in the server's order."""
    if not d or not all(isinstance(v, Mapping) and "outputs" in v for v in d.values()):
        return None
    found: list[Output] = []
    for entry in d.values():
        found.extend(comfy_entry(entry, walk) or [])
    return found


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [v for v in value if isinstance(v, Mapping)]
    return []


RECOGNISERS: tuple[Recogniser, ...] = (
    openai_events,
    openai_images,
    replicate_prediction,
    stability_artifacts,
    comfy_history,
    comfy_entry,
    comfy_file,
)
"""Tried in this order on every mapping; the first that recognises it answers."""
