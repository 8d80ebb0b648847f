"""Routes whose result comes later: what a ``JobStart`` or ``JobComplete`` request records.

- ``JobStart``: a pending operation under the job id of its answer; complete at once when the
  answer already shows the job finished; a plain operation (with a note) when it names no job.
- ``JobComplete``: nothing while the job runs; once the answer (or a webhook's body) shows it
  finished, a ``JobCompletion``: it completes the operation started for that job, or is saved as
  an operation of its own when no ``JobStart`` recorded one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from genstore._recording.extract import extract_results
from genstore._recording.status import error_of, terminal_state
from genstore._save_request import JobCompletion, SaveRequest

from ._results import Outputs, sources_of
from ._routes import JobComplete, JobStart

__all__ = ["complete_job", "field_at", "start_job"]

logger = logging.getLogger(__name__)

_STATUS_KEYS = ("status", "state", "task_status")
_MAX_JOB_ID = 512


def field_at(document: Any, path: str) -> str | None:
    """The job id at the dotted ``path`` of ``document`` (a string, or an integer as text)."""
    value = document
    for name in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= _MAX_JOB_ID:
        return value
    return None


def start_job(
    job: JobStart, fields: dict[str, Any], document: Any, outputs: Outputs, note: Callable[[], str]
) -> SaveRequest:
    """The record of a successful ``JobStart`` request (``fields``: the request's own)."""
    job_id = field_at(document, job.job_id)
    state = terminal_state(document)
    if state is not None or outputs.found:  # answered synchronously: nothing left to wait for
        return _finished(fields, document, state, outputs, job_id, note)
    if job_id is None:
        notes = [*outputs.notes, f"no job id in the response (field {job.job_id!r})"]
        return SaveRequest.build(**fields, result_note="; ".join(notes))
    return SaveRequest.build(**fields, pending=True, job_id=job_id)


def complete_job(
    job: JobComplete,
    fields: dict[str, Any],
    documents: list[tuple[Any, Outputs | None]],
    base_url: str | None,
    note: Callable[[], str],
) -> JobCompletion | None:
    """The completion a ``JobComplete`` request shows, or None (still running, or no job id).

    ``documents``: the answer's JSON (with its outputs, already found) then the request body's.
    """
    job_id = next(
        (found for doc, _ in documents if (found := field_at(doc, job.job_id)) is not None), None
    )
    if job_id is None:
        logger.info("genstore: no job id (field %r) on %s; not recorded", job.job_id, job)
        return None
    for document, outputs in documents:
        if document is None:
            continue
        if outputs is None:
            outputs = sources_of(extract_results(document), base_url)
        if not _done(job, document, outputs):
            continue
        state = terminal_state(document)
        fallback = _finished(fields, document, state, outputs, job_id, note)
        return JobCompletion(job_id=job_id, fallback=fallback)
    return None


def _done(job: JobComplete, document: Any, outputs: Outputs) -> bool:
    if job.done is not None:
        try:
            return bool(job.done(document))
        except Exception:
            logger.exception("genstore: the done= callable of %s raised; not recorded", job)
            return False
    if terminal_state(document) is not None:
        return True
    # Outputs without a status (a webhook's bare result); a running job's partial outputs
    # (Replicate's ``processing``) do not end it.
    return outputs.found > 0 and not _has_status(document)


def _has_status(document: Any) -> bool:
    if not isinstance(document, Mapping):
        return False
    inner = document.get("data")
    return any(key in document for key in _STATUS_KEYS) or (
        isinstance(inner, Mapping) and any(key in inner for key in _STATUS_KEYS)
    )


def _finished(
    fields: dict[str, Any],
    document: Any,
    state: str | None,
    outputs: Outputs,
    job_id: str | None,
    note: Callable[[], str],
) -> SaveRequest:
    """A finished job's record: its outputs, or its error."""
    if state == "failed":
        error = fields.get("error") or error_of(document) or "failed"
        return SaveRequest.build(**{**fields, "error": error}, job_id=job_id)
    notes = list(outputs.notes)
    if not outputs.found:
        notes.append(note())
    return SaveRequest.build(
        **fields, outputs=outputs.sources, job_id=job_id, result_note="; ".join(notes) or None
    )
