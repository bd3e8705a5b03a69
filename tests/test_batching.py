"""Batches respect the API's item cap, the byte cap and keep repeated codes apart."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biteral_cli.batching import SeenCodes, batches, chunks


@dataclass(frozen=True)
class Fake:
    code: str
    body: bytes


def make(codes: list[str], size: int = 10) -> list[Fake]:
    return [Fake(code, b"x" * size) for code in codes]


def test_chunks_is_lazy_and_complete() -> None:
    consumed: list[int] = []

    def source():
        for i in range(7):
            consumed.append(i)
            yield i

    it = chunks(source(), 3)
    assert next(it) == [0, 1, 2]
    assert consumed == [0, 1, 2]
    assert list(it) == [[3, 4, 5], [6]]


def test_batches_never_exceed_one_hundred_items() -> None:
    out = list(batches(make([f"c{i}" for i in range(250)])))
    assert [len(b) for b in out] == [100, 100, 50]


def test_byte_cap_splits_large_records() -> None:
    # 10 records of 400 bytes under a 1000-byte cap: 2 per request (2 + 400 + 1 + 400 = 803).
    out = list(batches(make([f"c{i}" for i in range(10)], size=400), max_bytes=1000))
    assert [len(b) for b in out] == [2] * 5


def test_single_record_over_cap_gets_its_own_batch() -> None:
    items = [Fake("a", b"x" * 10), Fake("big", b"x" * 5000), Fake("b", b"x" * 10)]
    assert [[i.code for i in b] for b in batches(items, max_bytes=100)] == [["a"], ["big"], ["b"]]


def test_repeated_code_starts_a_new_batch() -> None:
    out = list(batches(make(["a", "b", "a", "c", "a"])))
    assert [[i.code for i in b] for b in out] == [["a", "b"], ["a", "c"], ["a"]]


def test_batch_size_outside_api_limits_is_refused() -> None:
    with pytest.raises(ValueError):
        list(batches(make(["a"]), size=101))


@pytest.mark.slow
@given(st.lists(st.sampled_from("abcdefgh"), max_size=300), st.integers(1, 100))
def test_batches_keep_order_and_every_item(codes: list[str], size: int) -> None:
    items = make(codes)
    out = list(batches(items, size=size))
    assert [i for b in out for i in b] == items
    for b in out:
        assert len(b) <= size
        assert len({i.code for i in b}) == len(b)


@given(st.lists(st.text(max_size=8), max_size=3000))
def test_seen_codes_behaves_like_a_set(codes: list[str]) -> None:
    seen = SeenCodes(recent=4)
    reference: set[str] = set()
    for code in codes:
        assert seen.add(code) == (code not in reference)
        reference.add(code)
    assert len(seen) == len(reference)


@given(
    st.lists(
        st.one_of(st.text(alphabet="abc", max_size=3), st.lists(st.text(alphabet="abc", max_size=3), max_size=40)),
        max_size=60,
    )
)
@pytest.mark.slow
def test_seen_codes_in_bulk_name_the_same_repeats_as_one_by_one(steps: list[str | list[str]]) -> None:
    """A chunk's codes checked at once flag exactly the rows a one-by-one check would: codes seen
    in earlier chunks, in single additions, or earlier in the same chunk."""
    seen = SeenCodes(recent=3)
    reference: set[str] = set()
    for step in steps:
        if isinstance(step, str):
            assert seen.add(step) == (step not in reference)
            reference.add(step)
            continue
        expected = []
        for index, code in enumerate(step):
            if code in reference:
                expected.append(index)
            reference.add(code)
        assert seen.add_many(step) == expected
        assert all(code in seen for code in step)
    assert len(seen) == len(reference)


@pytest.mark.slow
def test_seen_codes_stays_small_for_many_codes() -> None:
    seen = SeenCodes()
    for i in range(200_000):
        assert seen.add(f"C{i:07d}")
    assert not seen.add("C0000042")
    assert seen.nbytes <= 200_000 * 8  # 8 bytes a code
