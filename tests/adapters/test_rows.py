"""Catalog rows back into records (``genstore_adapters._rows``): whatever a row holds, the answer
is the record or ``CorruptRecord`` naming it, never a pydantic error and never the row's text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from genstore import CorruptRecord, ImageRecord, OperationRecord, OperationStatus
from genstore_adapters._rows import load_image, load_operation, parses
from hypothesis import given
from hypothesis import strategies as st

RECORD = OperationRecord(
    operation_id="20250101_01JGB00000000000000000000A",
    operation_type="t",
    status=OperationStatus.SUCCEEDED,
    created_at=datetime(2025, 1, 1, tzinfo=UTC),
    prompt="secret prompt",
)


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_row_is_a_record_or_corrupt_record_naming_it(data: bytes | str) -> None:
    if parses(OperationRecord, data):
        assert isinstance(load_operation(data, operation_id="op-1", where="w"), OperationRecord)
        return
    with pytest.raises(CorruptRecord) as raised:  # never a ValidationError, never anything else
        load_operation(data, operation_id="op-1", where="the test catalog")
    assert (raised.value.key, raised.value.kind) == ("op-1", "operation")
    assert str(raised.value).startswith("the operation 'op-1' in the test catalog is corrupt (")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=12, max_size=60))
def test_the_message_never_repeats_the_row(secret: str) -> None:
    row = RECORD.model_copy(update={"prompt": secret}).model_dump_json()
    with pytest.raises(CorruptRecord) as raised:
        load_operation(row.replace('"succeeded"', '"maybe"'), operation_id="op", where="w")
    assert secret not in str(raised.value) and "status" in str(raised.value)


def test_a_valid_row_round_trips_and_an_image_is_named_user_slash_image() -> None:
    assert load_operation(RECORD.model_dump_json(), operation_id="x", where="w") == RECORD
    with pytest.raises(CorruptRecord) as raised:
        load_image("{}", user_id="alice", image_id="img_1", where="w")
    assert (raised.value.key, raised.value.kind) == ("alice/img_1", "image")
    assert "(and " in str(raised.value)  # several fields missing: the first, and a count
    assert not parses(ImageRecord, "{}")


def test_a_parsed_jsonb_object_is_read_as_the_record_it_holds() -> None:
    row = RECORD.model_dump(mode="json")
    assert load_operation(row, operation_id=RECORD.operation_id, where="w") == RECORD
    assert parses(OperationRecord, row) and not parses(ImageRecord, row)
    with pytest.raises(CorruptRecord, match="status"):
        load_operation(row | {"status": "maybe"}, operation_id="op", where="w")
