"""Units of the importer that the end-to-end tests do not pin down on their own."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biteral_cli.importer import _encode, reason_key

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
)


@pytest.mark.slow
@given(st.dictionaries(st.text(), values, max_size=8))
def test_payloads_serialize_exactly_as_the_standard_library_would(payload: dict) -> None:
    assert _encode(payload) == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_metadata_keeps_its_value(number: float) -> None:
    assert json.loads(_encode({"metadata": {"x": number}})) == {"metadata": {"x": number}}


def test_error_reasons_aggregate_across_values() -> None:
    first = reason_key("country", "country 'Spian' is not a known country; sent as written")
    second = reason_key("country", "country 'Atlantis' is not a known country; sent as written")
    assert first == second == "country '…' is not a known country; sent as written"
    assert reason_key("state", "not a known state 'X'") == "state: not a known state '…'"
