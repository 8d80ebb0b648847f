"""What the recorder stores of values JSON or UTF-8 cannot hold: always storable, always noted."""

from __future__ import annotations

import json
from typing import Any

from genstore._storable import MAX_DEPTH, storable_json, storable_text
from hypothesis import given
from hypothesis import strategies as st

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included
    | st.text(st.characters(codec=None, exclude_categories=[]), max_size=10),  # surrogates too
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=15,
)


@given(anything)
def test_what_comes_out_is_strict_utf8_json_and_stable(value: Any) -> None:
    notes: list[str] = []
    out = storable_json(value, "parameters", notes)
    json.dumps(out, allow_nan=False).encode("utf-8")  # neither raises
    again: list[str] = []
    assert storable_json(out, "parameters", again) == out and again == []
    if notes:
        assert all(n.startswith("parameters: ") for n in notes)


def test_deep_nesting_is_cut_at_the_limit_and_noted() -> None:
    deep: Any = []
    for _ in range(MAX_DEPTH + 10):
        deep = [deep]
    notes: list[str] = []
    out = storable_json({"a": deep}, "parameters", notes)
    depth, node = 0, out["a"]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert depth == MAX_DEPTH - 1 and isinstance(node, str)
    assert notes == [f"parameters: values nested deeper than {MAX_DEPTH} levels replaced"]


def test_valid_text_is_untouched() -> None:
    notes: list[str] = []
    assert storable_text("un café ☕ 𝄞", "prompt", notes) == "un café ☕ 𝄞" and notes == []
