"""What a route answered (run off the request path): its JSON document and its outputs.

The outputs of a successful answer come from, in this order of media types:
- a stream (``text/event-stream``, NDJSON): the newest event that carries any (``_stream``);
- an ``image/*`` or ``video/*`` body: the body itself;
- JSON: what the result extractor finds (genstore's shared extraction by default).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genstore._recording.outputs import Output, result_sources
from genstore._save_request import ResultSource

from ._capture import CapturedBody
from ._extract import ResultExtractor, outputs_of
from ._stream import StreamEvents, last_outputs

__all__ = ["NO_RESULT", "Answer", "Outputs", "read_answer", "sources_of"]

logger = logging.getLogger(__name__)

NO_RESULT = "no result found in the response"
_WORKFLOW_FIELDS = ("workflowAnalysis", "workflow_analysis")


@dataclass(slots=True)
class Outputs:
    """Outputs made ready for a save: what to store, and why some could not be."""

    sources: list[ResultSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    found: int = 0
    """Outputs found, including those noted as unfetchable."""


@dataclass(slots=True)
class Answer:
    """A successful answer, read."""

    document: Any = None
    """The parsed JSON body (None if it was not JSON)."""
    outputs: Outputs = field(default_factory=Outputs)
    owned: list[str] = field(default_factory=list)
    """Spool files handed over with the outputs."""
    workflow_analysis: Any = None


def sources_of(outputs: list[Output], base_url: str | None) -> Outputs:
    """``outputs`` as save sources: relative URLs resolved under ``base_url`` (else noted)."""
    sources, notes = result_sources(outputs, base_url=base_url)
    return Outputs(sources, notes, len(outputs))


def read_answer(
    body: CapturedBody | None,
    stream: StreamEvents | None,
    kind: str,
    extractor: ResultExtractor,
    base_url: Callable[[], str | None],
) -> Answer:
    """Read a successful answer; consumes ``body`` (hands its file over, or deletes it)."""
    answer = Answer()
    if stream is not None:
        if stream.complete:
            answer.outputs = sources_of(last_outputs(stream), base_url())
        return answer
    if body is None:
        return answer
    if not body.usable:
        body.discard()
        return answer
    if kind.startswith(("image/", "video/")):
        if body.path is not None:
            answer.owned.append(body.path)
            answer.outputs = Outputs([body.path], [], 1)
        else:
            answer.outputs = Outputs([b"".join(body.chunks)], [], 1)
        return answer
    try:
        answer.document = json.loads(body.read())
    except (ValueError, OSError) as exc:
        logger.info("genstore: could not parse the JSON response (%s)", exc)
        return answer
    finally:
        body.discard()
    document = answer.document
    if isinstance(document, dict):
        for name in _WORKFLOW_FIELDS:
            if document.get(name) is not None:
                answer.workflow_analysis = document[name]
                break
    try:
        found = outputs_of(extractor(document))
    except Exception:
        logger.exception("genstore: the result extractor raised; recording without a result")
        answer.outputs.notes.append("the result extractor raised")
        return answer
    answer.outputs = sources_of(found, base_url())
    return answer
