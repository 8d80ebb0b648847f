"""``@genstore.record``: record every call of a generation function, without changing it.

    @genstore.record("text_to_image")
    async def generate(prompt: str, aspect_ratio: str = "1:1") -> str: ...

What a call becomes (handed to ``store.recorder``, saved in the background):

- ``prompt``: the argument named ``prompt_arg`` (``"prompt"``), else that field of a pydantic
  model or dict argument (a request body).
- ``input_images``: arguments named in ``image_args`` (bytes, PIL images, file paths, uploaded
  files with a ``.file``, or lists of them), plus any other argument that *is* bytes or a PIL image
  (or a list of them).
- ``user_id``: ``user_id=`` names the argument holding it, or is a callable given the bound
  arguments (a ``dict``); by default an argument named ``user_id``. A value the store would refuse
  as an id is kept in ``parameters`` instead, so the record is never lost for it.
- ``parameters``: every other argument, JSON-safe (non-JSON values as their ``repr``), except
  ``self``/``cls`` and secret-looking names (api keys, tokens, passwords, cookies). What the
  function returned, beyond its result, goes under the key ``"return"`` (never an argument name).
- The return value: an ``http(s)://`` string is the ``result_url`` (downloaded into the store);
  bytes, a PIL image or a ``pathlib.Path`` is the ``result``; a dict (or pydantic model,
  dataclass, JSON or image ``Response``) gives its first of ``resultUrl``, ``result_url``, ``url``,
  ``image_url``, ``imageUrl``, ``output``, ``images``, ``result`` that holds a URL or image, and is
  kept whole, JSON-safe, under ``parameters["return"]``; a list gives its first item the same way.
  Anything else (e.g. a plain text answer) is only kept under ``parameters["return"]``.
- Generators: the result is what the generator returns, else the last value it yielded; closing
  it before the end records a failure (``"cancelled"``).
- An exception is recorded as a failed operation (``error=str(exc)``) and re-raised unchanged.
- ``duration_ms``: from the call (a generator's first step) to its end.

Recording never raises into the function and never waits for the store. The wrapper keeps the
function's signature (``inspect.signature``, ``__wrapped__``) and kind (coroutine, generator), so
FastAPI dependency injection and OpenAPI docs are unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from datetime import date, datetime
from datetime import time as dtime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel

from .._ids import check_id
from .._save_request import SaveRequest, error_text
from .._sources import is_pil_image
from ..exceptions import InvalidInput
from .extract import extract_results
from .items import unlink_all
from .outputs import decode_base64_media, result_sources
from .rules import is_secret_name, redact, redact_text

if TYPE_CHECKING:
    from .._store import Store

__all__ = ["record"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_MAX_DEPTH = 32
_MAX_REPR = 500
_MEDIA_TEXT = 64
"""Strings this long are checked for inline media before being kept in ``parameters``."""
_MISSING: Any = object()


def record(
    operation_type: str,
    *,
    store: Store | None = None,
    prompt_arg: str = "prompt",
    image_args: Sequence[str] | None = None,
    user_id: str | Callable[[dict[str, Any]], str | None] | None = None,
    results: bool = True,
    base_url: str | None = None,
) -> Callable[[F], F]:
    """Decorate a function (sync or async, or a generator of either) to record each call.

    ``store=None`` records into ``genstore.default_store()``, looked up at call time.
    ``results=False`` declares a function that returns no generation output (no "no result
    found" note then). ``base_url`` resolves result URLs the function returns relative (a
    ComfyUI ``/view?...``); without it they are noted in ``result_error``, never guessed.
    See the module documentation for what is recorded.
    """
    if not isinstance(operation_type, str) or not operation_type:
        raise InvalidInput("operation_type must be a non-empty string")
    outputs = _OutputRules(expects_results=bool(results), base_url=base_url)

    def decorate(fn: F) -> F:
        spec = _Spec(fn, str(operation_type), store, prompt_arg, image_args, user_id, outputs)
        if inspect.isasyncgenfunction(fn):
            return cast(F, _wrap_async_generator(fn, spec))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _wrap_generator(fn, spec))
        if inspect.iscoroutinefunction(fn):
            return cast(F, _wrap_coroutine(fn, spec))
        return cast(F, _wrap_function(fn, spec))

    return decorate


# -- wrappers: the call's own behaviour is untouched ----------------------------------------------


def _wrap_function(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = spec.begin(args, kwargs)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            call.end(error=exc)
            raise
        call.end(result=value)
        return value

    return wrapper


def _wrap_coroutine(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = spec.begin(args, kwargs)
        try:
            value = await fn(*args, **kwargs)
        except BaseException as exc:
            call.end(error=exc)
            raise
        call.end(result=value)
        return value

    return wrapper


def _wrap_generator(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        call = spec.begin(args, kwargs)
        inner = fn(*args, **kwargs)
        last: Any = None
        try:
            # `yield from`, spelled out so each yielded value can be seen (PEP 380's expansion).
            value = next(inner)
            while True:
                last = value
                try:
                    sent = yield value
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as exc:
                    value = inner.throw(exc)
                else:
                    value = inner.send(sent)
        except StopIteration as stop:
            call.end(result=last if stop.value is None else stop.value)
            return stop.value
        except GeneratorExit:
            call.end(error="cancelled: the generator was closed before it finished")
            raise
        except BaseException as exc:
            call.end(error=exc)
            raise

    return wrapper


def _wrap_async_generator(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        call = spec.begin(args, kwargs)
        inner = fn(*args, **kwargs)
        last: Any = None
        try:
            value = await inner.__anext__()
            while True:
                last = value
                try:
                    sent = yield value
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as exc:
                    value = await inner.athrow(exc)
                else:
                    value = await inner.asend(sent)
        except StopAsyncIteration:
            call.end(result=last)
            return
        except GeneratorExit:
            call.end(error="cancelled: the generator was closed before it finished")
            raise
        except BaseException as exc:
            call.end(error=exc)
            raise

    return wrapper


# -- what a call becomes ------------------------------------------------------------------------


class _Spec:
    """One decorated function's recording settings."""

    def __init__(
        self,
        fn: Callable[..., Any],
        operation_type: str,
        store: Store | None,
        prompt_arg: str,
        image_args: Sequence[str] | None,
        user_id: str | Callable[[dict[str, Any]], str | None] | None,
        outputs: _OutputRules,
    ) -> None:
        self.name = getattr(fn, "__qualname__", repr(fn))
        self.outputs = outputs
        self.signature = inspect.signature(fn)
        self.operation_type = operation_type
        self.store = store
        self.prompt_arg = prompt_arg
        self.image_args = frozenset(image_args or ())
        params = list(self.signature.parameters)
        self.skip = {params[0]} if params and params[0] in ("self", "cls") else set()
        self.user_id = user_id if user_id is not None or "user_id" not in params else "user_id"
        self._warned = False
        self.warned_no_result = False

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
        try:
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
        except TypeError:  # the function itself will say what is wrong with the call
            arguments = {}
        return _Call(self, arguments)

    def recorder_submit(self, owned: list[str], fields: dict[str, Any]) -> None:
        store = self.store
        if store is None:
            from .._config import default_store

            try:
                store = default_store()
            except Exception as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning("genstore.record(%s): no default store: %s", self.name, exc)
                unlink_all(owned)
                return
        try:
            request = SaveRequest.build(**fields)
        except InvalidInput as exc:
            store.recorder.reject(exc, owned)
            return
        store.recorder.submit_request(request, owned)


class _Call:
    __slots__ = ("arguments", "spec", "start")

    def __init__(self, spec: _Spec, arguments: dict[str, Any]) -> None:
        self.spec = spec
        self.arguments = arguments
        self.start = time.perf_counter()

    def end(self, *, result: Any = _MISSING, error: BaseException | str | None = None) -> None:
        duration_ms = (time.perf_counter() - self.start) * 1000.0
        owned: list[str] = []
        try:
            fields = self._fields(owned)
            fields["duration_ms"] = duration_ms
            if error is not None:
                fields["error"] = redact_text(error_text(error) or "")
            elif result is not _MISSING:
                _add_result(fields, result, self.spec)
            self.spec.recorder_submit(owned, fields)
        except Exception:
            logger.exception("genstore.record(%s): the call could not be recorded", self.spec.name)
            unlink_all(owned)

    def _fields(self, owned: list[str]) -> dict[str, Any]:
        spec = self.spec
        parameters: dict[str, Any] = {}
        images: list[Any] = []
        prompt: str | None = None
        user: str | None = None
        for name, value in self._flat_arguments():
            if name in spec.skip:
                continue
            if name == spec.prompt_arg:
                prompt = value if isinstance(value, str) or value is None else str(value)
            elif isinstance(spec.user_id, str) and name == spec.user_id:
                user = None if value is None else str(value)
            elif name in spec.image_args:
                found = _explicit_images(value, owned)
                if found is None:
                    parameters[name] = _json_safe(value)
                else:
                    images.extend(found)
            elif (found := _detected_images(value)) is not None:
                images.extend(found)
            elif not is_secret_name(name):
                parameters[name] = _json_safe(value)
        if prompt is None:
            prompt = self._prompt_inside_arguments()
        if callable(spec.user_id):
            try:
                user = spec.user_id(dict(self.arguments))
            except Exception:
                logger.exception("genstore.record(%s): the user_id callable failed", spec.name)
        if user is not None:
            try:
                check_id(user, "user_id")
            except InvalidInput:
                parameters["user_id"], user = user, None
        return {
            "operation_type": spec.operation_type,
            "prompt": prompt,
            "parameters": redact(parameters) or None,
            "input_images": images,
            "user_id": user,
        }

    def _prompt_inside_arguments(self) -> str | None:
        """The prompt as a field of a model or dict argument (a FastAPI request body)."""
        key = self.spec.prompt_arg
        for value in self.arguments.values():
            if isinstance(value, Mapping):
                found = value.get(key)
            elif isinstance(value, BaseModel):
                found = getattr(value, key, None)
            else:
                continue
            if isinstance(found, str):
                return found
        return None

    def _flat_arguments(self) -> list[tuple[str, Any]]:
        flat: list[tuple[str, Any]] = []
        for name, value in self.arguments.items():
            kind = self.spec.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                flat.extend(value.items())
            else:
                flat.append((name, value))
        return flat


# -- classifying values ---------------------------------------------------------------------------


def _is_image(value: object) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview)) or is_pil_image(value)


def _detected_images(value: object) -> list[Any] | None:
    if _is_image(value):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(_is_image(v) for v in value):
        return list(value)
    return None


def _explicit_images(value: object, owned: list[str]) -> list[Any] | None:
    """Images from an argument named in ``image_args``; None if it holds none."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    images: list[Any] = []
    for item in items:
        if _is_image(item):
            images.append(item)
        elif isinstance(item, (str, os.PathLike)) and not _is_url(item):
            images.append(os.fspath(item))
        elif hasattr(item, "file") and hasattr(getattr(item, "file", None), "read"):
            images.append(_copy_upload(item.file, owned))
        else:
            return None
    return images


def _copy_upload(file: Any, owned: list[str]) -> str:
    # An uploaded file is closed once the response is sent, before the background save reads it.
    if hasattr(file, "seek"):
        file.seek(0)
    with tempfile.NamedTemporaryFile(prefix="genstore-upload-", delete=False) as out:
        owned.append(out.name)
        shutil.copyfileobj(file, out)
    if hasattr(file, "seek"):
        file.seek(0)
    return out.name


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


@dataclasses.dataclass(frozen=True, slots=True)
class _OutputRules:
    """What a decorated function's return value is expected to carry."""

    expects_results: bool
    base_url: str | None


NO_RESULT = "no result found in the return value"


def _add_result(fields: dict[str, Any], value: Any, spec: _Spec) -> None:
    """The outputs ``value`` carries (shared extraction), and ``value`` itself when it is more
    than a bare output (kept, JSON-safe, under ``parameters["return"]``)."""
    found, notes = result_sources(extract_results(value), base_url=spec.outputs.base_url)
    fields["outputs"] = found
    if not found and spec.outputs.expects_results:
        notes.append(NO_RESULT)
        if not spec.warned_no_result:
            spec.warned_no_result = True
            logger.warning("genstore.record(%s): %s (results=False if none is expected)",
                           spec.name, NO_RESULT)  # fmt: skip
    if notes:
        fields["result_note"] = "; ".join(notes)
    if value is None or _is_url(value) or _is_image(value) or isinstance(value, PurePath):
        return
    structured = _structured(value)
    kept = structured if structured is not _MISSING else value
    returned = redact(_json_safe(kept))
    fields["parameters"] = dict(fields.get("parameters") or {}, **{"return": returned})


def _structured(value: Any) -> Any:
    """A model, dataclass or Response as plain data; ``_MISSING`` if ``value`` is none of those."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    body, media = getattr(value, "body", None), getattr(value, "media_type", None)
    if isinstance(body, bytes) and isinstance(media, str):
        if media.startswith(("image/", "video/")):
            return body
        if "json" in media:
            import json

            try:
                return json.loads(body)
            except ValueError:
                return _MISSING
    return _MISSING


def _json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON the store accepts; what JSON cannot hold becomes a short description,
    and media inlined as base64 or ``data:`` URLs (stored as results) a note of their size."""
    if isinstance(value, str):
        return _without_media(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > _MAX_DEPTH:
        return _short_repr(value)
    if isinstance(value, enum.Enum):
        return _json_safe(value.value, depth + 1)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if _is_image(value):
        return f"<image {getattr(value, 'width', '?')}x{getattr(value, 'height', '?')}>"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    structured = _structured(value)
    if structured is not _MISSING:
        return _json_safe(structured, depth + 1)
    return _short_repr(value)


def _without_media(text: str) -> str:
    if len(text) < _MEDIA_TEXT and text[:5].lower() != "data:":
        return text
    if text[:5].lower() == "data:" or decode_base64_media(text, require_signature=True):
        return f"<{len(text)} characters of inline media, stored as a result>"
    return text


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."
