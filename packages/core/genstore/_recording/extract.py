"""Finding every output in what a generation function returned or a route answered.

    extract_results(value) -> list[Output]      # in the provider's order; [] when none

``value`` may be anything: parsed JSON, an SDK's response object (pydantic models such as the
``openai`` SDK's ``ImagesResponse`` and stream events), ``replicate``'s ``FileOutput`` objects and
lists of them, dataclasses, a Starlette/FastAPI ``Response``, bytes, a PIL image, a
``pathlib`` path, a file object, or a ``str`` URL. What is found, in order:

1. plugins first: every ``genstore_extract_results`` implementation of a third-party plugin, at
   the top and again at each nested value, until one answers (see ``genstore.hookspecs``);
2. this module's built-in extractor (registered through the same plugin manager, last): a
   mapping is matched against the providers' shapes (``providers.RECOGNISERS``), else its first
   ``RESULT_KEYS`` entry that yields outputs; a list gives the outputs of every item, in order;
   pydantic models and dataclasses are looked into as their fields, an object with a string
   ``url`` attribute (``FileOutput``) is that URL, and leaves become ``Output``s (``outputs``).

Bounded whatever the input: at most ``MAX_DEPTH`` nested containers, ``MAX_NODES`` values
visited and ``MAX_OUTPUTS`` outputs. It never raises, never iterates a generator or stream (that
would consume it), and never reads a file object.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import pluggy

from .._sniff import sniff_content_type
from .._sources import is_pil_image
from ..plugin import hookimpl
from .outputs import Output, string_output
from .providers import RECOGNISERS, RESULT_KEYS, base64_field

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_OUTPUTS",
    "builtin_results",
    "extract_results",
    "genstore_extract_results",
]

logger = logging.getLogger(__name__)

MAX_DEPTH = 10
"""Containers nested deeper than this are not looked into."""
MAX_NODES = 5000
"""Values visited per call, at most: a huge response costs bounded work."""
MAX_OUTPUTS = 100
"""Outputs returned per call, at most (the first ones, in order)."""

_MEDIA_PREFIXES = ("image/", "video/", "audio/")

Consult = Callable[[Any], "list[Output] | None"]


def extract_results(value: object) -> list[Output]:
    """Every output in ``value``, in the provider's order (see the module documentation)."""
    try:
        hook = _plugin_manager().hook.genstore_extract_results
        impls = list(reversed(hook.get_hookimpls()))  # pluggy's call order: tryfirst ... trylast
    except Exception:
        logger.exception("genstore: the plugin manager could not be loaded")
        return builtin_results(value)
    for impl in impls:
        found = _call(impl, value)
        if found is not None:
            return found
    return []


@hookimpl(trylast=True)
def genstore_extract_results(value: object) -> list[Output]:
    """The built-in extractor: every shape this module knows, consulting plugins when nested."""
    return builtin_results(value, consult=_third_party_consult())


def builtin_results(value: object, *, consult: Consult | None = None) -> list[Output]:
    """The outputs the built-in shapes find in ``value``; ``consult`` is asked first at each
    nested value (an answer other than None replaces the built-in one there)."""
    return _Walker(consult).outputs(value, 0)[:MAX_OUTPUTS]


class _Walker:
    """One extraction, and the budget it has left."""

    __slots__ = ("consult", "nodes")

    def __init__(self, consult: Consult | None) -> None:
        self.consult = consult
        self.nodes = 0

    def outputs(self, value: Any, depth: int) -> list[Output]:
        """The outputs of ``value``; [] past the budget or if looking into it fails."""
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            return []
        try:
            leaf = _leaf(value)
            if leaf is not None:
                return leaf
            if depth > 0 and self.consult is not None:
                answered = self.consult(value)
                if answered is not None:
                    return answered
            return self.container(value, depth)
        except Exception:  # a hostile object (a raising property) must not hide the other outputs
            logger.debug("genstore: cannot look into a %s", type(value).__name__, exc_info=True)
            return []

    def container(self, value: Any, depth: int) -> list[Output]:
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, (list, tuple)):
            found: list[Output] = []
            for item in value:
                if self.nodes > MAX_NODES:
                    break
                found.extend(self.outputs(item, depth + 1))
            return found
        fields = _fields(value)
        if fields is not None:
            return self.mapping(fields, depth)
        return self.other(value, depth)

    def mapping(self, value: Mapping[str, Any], depth: int) -> list[Output]:
        def walk(nested: Any) -> list[Output]:
            return self.outputs(nested, depth + 1)

        for recognise in RECOGNISERS:
            found = recognise(value, walk)
            if found is not None:
                return found
        for key in RESULT_KEYS:
            if key in value:
                nested = value[key]
                found = base64_field(key, nested) if key in ("b64_json", "base64") else walk(nested)
                if found:
                    return found
        return []

    def other(self, value: Any, depth: int) -> list[Output]:
        response = _response_body(value)
        if response is not None:
            return response if isinstance(response, list) else self.outputs(response, depth + 1)
        if hasattr(value, "status_code") and hasattr(value, "headers"):
            return []  # an HTTP client's response: its ``url`` is the request's, not a result
        url = getattr(value, "url", None)
        if isinstance(url, str):  # replicate's FileOutput, and any object that names its file
            found = string_output(url)
            return [] if found is None else [found]
        if _is_binary_file(value):
            return [Output("file", value)]
        return []


def _leaf(value: Any) -> list[Output] | None:
    """The outputs of a value that holds no other value, or None for containers and objects."""
    if isinstance(value, (dict, list)):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return []
    if isinstance(value, str):
        found = string_output(value)
        return [] if found is None else [found]
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return [Output("bytes", data, sniff_content_type(data[:64]))] if data else []
    if isinstance(value, Output):
        return [value]
    if isinstance(value, PurePath):
        return [Output("path", os.fspath(value))]
    if is_pil_image(value):
        return [Output("image", value)]
    if isinstance(value, (set, frozenset)) or _is_iterator(value):
        return []  # no order to keep, or consumed by looking at it
    return None


def _fields(value: Any) -> Mapping[str, Any] | None:
    """A pydantic model's or dataclass's fields (and a model's extra fields), not deep-copied."""
    cls = type(value)
    names: Any = getattr(cls, "model_fields", None)
    if not isinstance(names, Mapping):
        names = getattr(cls, "__fields__", None)  # pydantic v1 models, as some SDKs still ship
    stored = getattr(value, "__dict__", None)
    if isinstance(names, Mapping) and isinstance(stored, Mapping):
        # Read from __dict__, not getattr: a field pydantic marks deprecated warns when read.
        fields = {name: stored.get(name) for name in names}
        extra = getattr(value, "model_extra", None)  # what an OpenAI-compatible server added
        if isinstance(extra, Mapping):
            fields.update({k: v for k, v in extra.items() if k not in fields})
        return fields
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    return None


def _response_body(value: Any) -> list[Output] | Any | None:
    """A Starlette/FastAPI response: media bytes as an output, JSON parsed; None if not one."""
    body, media = getattr(value, "body", None), getattr(value, "media_type", None)
    if not isinstance(body, bytes) or not isinstance(media, str):
        return None
    if media.startswith(_MEDIA_PREFIXES):
        return [Output("bytes", body, media.split(";")[0].strip())] if body else []
    if "json" in media:
        try:
            return json.loads(body)
        except ValueError:
            return []
    return []


def _is_iterator(value: Any) -> bool:
    """A generator or stream (a file object iterates too, but is read, not iterated)."""
    if callable(getattr(value, "read", None)):
        return False
    return hasattr(value, "__next__") or hasattr(value, "__anext__")


def _is_binary_file(value: Any) -> bool:
    if isinstance(value, io.TextIOBase):
        return False
    mode = getattr(value, "mode", "b")
    return callable(getattr(value, "read", None)) and (not isinstance(mode, str) or "b" in mode)


# -- plugins ---------------------------------------------------------------------------------------


def _plugin_manager() -> pluggy.PluginManager:
    from .._plugins import get_plugin_manager  # at call time: the manager is built on first use

    return get_plugin_manager()


_warned: set[str] = set()


def _call(impl: pluggy.HookImpl, value: object) -> list[Output] | None:
    """One implementation's answer, as outputs; None if it declined, failed or answered nonsense."""
    try:
        answer = impl.function(value=value)
    except Exception:
        logger.exception("genstore plugin %r: genstore_extract_results failed", impl.plugin_name)
        return None
    if answer is None:
        return None
    if not isinstance(answer, (list, tuple)):
        if impl.plugin_name not in _warned:
            _warned.add(impl.plugin_name)
            logger.warning(
                "genstore plugin %r: genstore_extract_results returned %s, not a list; ignored",
                impl.plugin_name,
                type(answer).__name__,
            )
        return None
    found: list[Output] = []
    for item in answer[:MAX_OUTPUTS]:
        # A URL, bytes or path a plugin returned becomes an Output as if found by the built-ins.
        found.extend([item] if isinstance(item, Output) else builtin_results(item))
    return found[:MAX_OUTPUTS]


def _third_party_consult() -> Consult | None:
    """Asks the other plugins' implementations about a nested value, or None if there are none."""
    try:
        hook = _plugin_manager().hook.genstore_extract_results
        impls = [
            impl
            for impl in reversed(hook.get_hookimpls())
            if impl.function is not genstore_extract_results
        ]
    except Exception:
        return None
    if not impls:
        return None

    def consult(value: Any) -> list[Output] | None:
        for impl in impls:
            found = _call(impl, value)
            if found is not None:
                return found
        return None

    return consult
