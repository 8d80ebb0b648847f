"""Records round-trip through JSON exactly, whatever JSON the caller put in them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from genstore import SCHEMA_VERSION, ArtifactRef, ImageRecord, OperationRecord, RequestInfo
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), UTC]),
)
refs = st.builds(
    ArtifactRef,
    key=st.text(min_size=1, max_size=40),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    size=st.integers(0, 2**40),
    content_type=st.sampled_from(["image/png", "video/mp4"]),
    width=st.none() | st.integers(1, 10_000),
    height=st.none() | st.integers(1, 10_000),
    source_url=st.none() | st.text(max_size=60),
)


@settings(max_examples=150)
@given(
    parameters=json_values,
    analysis=json_values,
    prompt=st.none() | st.text(),
    created=datetimes,
    inputs=st.lists(refs, max_size=3),
    results=st.lists(refs, max_size=4),
    status=st.sampled_from(["pending", "succeeded", "failed"]),
    job_id=st.none() | st.text(min_size=1, max_size=30),
    completed=st.none() | datetimes,
    duration=st.none() | st.floats(0, 1e9),
    status_code=st.none() | st.integers(100, 599),
)
def test_operation_record_json_round_trip_is_exact(
    parameters: object,
    analysis: object,
    prompt: str | None,
    created: datetime,
    inputs: list[ArtifactRef],
    results: list[ArtifactRef],
    status: str,
    job_id: str | None,
    completed: datetime | None,
    duration: float | None,
    status_code: int | None,
) -> None:
    record = OperationRecord(
        operation_id="20250101_01JGB0000000000000000000XX",
        operation_type="text_to_image",
        status=status,
        prompt=prompt,
        parameters=parameters,
        workflow_analysis=analysis,
        inputs=inputs,
        results=results,
        created_at=created,
        duration_ms=duration,
        request=RequestInfo(route="/api/x", method="POST", status_code=status_code),
        job_id=job_id,
        completed_at=completed,
    )
    back = OperationRecord.model_validate_json(record.model_dump_json())
    assert back == record
    assert back.schema_version == SCHEMA_VERSION == 2
    assert back.created_at.tzinfo == UTC
    assert back.created_at == created
    assert back.result == (results[0] if results else None)


@settings(max_examples=100)
@given(result=st.none() | refs, source=st.none() | st.text(max_size=40), created=datetimes)
def test_version_1_records_read_as_version_2(
    result: ArtifactRef | None, source: str | None, created: datetime
) -> None:
    v1 = {
        "schema_version": 1,
        "operation_id": "20250101_01JGB0000000000000000000XX",
        "operation_type": "text_to_image",
        "status": "succeeded",
        "result": None
        if result is None
        else result.model_dump(mode="json", exclude={"source_url"}),
        "result_source_url": source,
        "created_at": created.isoformat(),
    }
    record = OperationRecord.model_validate_json(json.dumps(v1))
    assert record.schema_version == 2
    expected = [] if result is None else [result.model_copy(update={"source_url": None})]
    assert record.results == expected and record.result_source_url == source
    assert OperationRecord.model_validate_json(record.model_dump_json()) == record


def test_result_and_results_together_are_refused() -> None:
    ref = ArtifactRef(key="k", sha256="0" * 64, size=1, content_type="image/png")
    with pytest.raises(ValidationError):
        OperationRecord.model_validate(
            {
                "operation_id": "x",
                "operation_type": "t",
                "status": "succeeded",
                "result": ref,
                "results": [ref],
                "created_at": datetime.now(UTC),
            }
        )


@given(metadata=st.dictionaries(st.text(max_size=10), json_values, max_size=5), when=datetimes)
def test_image_record_json_round_trip_is_exact(metadata: dict[str, object], when: datetime) -> None:
    record = ImageRecord(
        image_id="img_1",
        user_id="user_1",
        prompt="p",
        key="images/user_1/1_generated_1.png",
        metadata=metadata,
        size=10,
        sha256="0" * 64,
        width=1,
        height=1,
        created_at=when,
        updated_at=when,
    )
    assert ImageRecord.model_validate_json(record.model_dump_json()) == record


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"a": [float("-inf")]}])
def test_non_finite_numbers_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        OperationRecord(
            operation_id="x",
            operation_type="t",
            status="succeeded",
            parameters=bad,
            created_at=datetime.now(UTC),
        )


def test_naive_datetimes_are_taken_as_utc() -> None:
    record = OperationRecord(
        operation_id="x",
        operation_type="t",
        status="succeeded",
        created_at=datetime(2025, 6, 18, 12, 0),
    )
    assert record.created_at == datetime(2025, 6, 18, 12, 0, tzinfo=UTC)
    assert record.schema_version == 2
