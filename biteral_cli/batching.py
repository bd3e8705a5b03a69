"""Lazy grouping of prepared customers into API batches.

A batch holds at most ``size`` customers and at most ``max_bytes`` of JSON (the array brackets and
commas included), and never the same ``code`` twice: a repeated code starts a new batch, and the
uploader keeps batches that share a code in input order, so the server ends in the state a
top-to-bottom application of the file would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Protocol, TypeVar

import numpy as np

T = TypeVar("T")

#: The API takes at most this many customers per request.
MAX_BATCH = 100
#: Default byte cap per request body; the API documents none, so stay well under common proxy limits.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024


class Batchable(Protocol):
    """Anything with a customer code and its serialized JSON body."""

    @property
    def code(self) -> str: ...

    @property
    def body(self) -> bytes: ...


B = TypeVar("B", bound=Batchable)


def chunks(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of up to ``size`` consecutive items, reading the iterable lazily."""
    if size < 1:
        raise ValueError("size must be at least 1")
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def batches(items: Iterable[B], *, size: int = MAX_BATCH, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[list[B]]:
    """Yield batches of at most ``size`` items and ``max_bytes`` of JSON, with no code twice in one batch.

    An item larger than ``max_bytes`` on its own still gets a batch of its own: the API, not this
    function, decides whether it is too large.
    """
    counter = BatchCounter(size=size, max_bytes=max_bytes)
    batch: list[B] = []
    for item in items:
        if counter.add(item.code, len(item.body)) and batch:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


class BatchCounter:
    """Where ``batches`` cuts a stream of (code, body length): the rule itself, and a count of the
    batches, for a dry run that never holds the items."""

    __slots__ = ("_codes", "_count", "_longest", "_used", "batches", "max_bytes", "size")

    def __init__(self, *, size: int = MAX_BATCH, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not 1 <= size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
        self.size = size
        self.max_bytes = max_bytes
        self.batches = 0
        self._count = 0
        self._used = 2  # the array's brackets
        self._codes: set[str] = set()
        self._longest = 0

    def add(self, code: str, length: int) -> bool:
        """Place one item; True when it starts a new batch."""
        cost = length + (1 if self._count else 0)
        if not self._count or self._count >= self.size or self._used + cost > self.max_bytes or code in self._codes:
            self.batches += 1
            self._count, self._used, self._codes, self._longest = 0, 2, set(), 0
            cost = length
            started = True
        else:
            started = False
        self._count += 1
        self._codes.add(code)
        self._used += cost
        self._longest = max(self._longest, length)
        return started

    def add_new(self, codes: list[str], lengths: list[int]) -> None:
        """Place items whose codes no earlier item had, as ``add`` one by one would, in a few steps
        when their size cannot reach ``max_bytes`` (a full batch of the longest stays under it)."""
        k = len(codes)
        if not k:
            return
        longest = max(self._longest, max(lengths))
        if 2 + self.size * (longest + 1) > self.max_bytes:
            for code, length in zip(codes, lengths, strict=True):
                self.add(code, length)
            return
        count, size = self._count, self.size
        self.batches += (count + k - 1) // size - (count - 1) // size
        last = (count + k - 1) % size + 1  # items in the batch left open
        if last > k:  # still the batch that was open before
            self._codes.update(codes)
            self._used += sum(lengths) + k
            self._longest = longest
        else:
            tail = lengths[k - last :]
            self._codes = set(codes[k - last :])
            self._used = 2 + sum(tail) + last - 1
            self._longest = max(tail)
        self._count = last


class SeenCodes:
    """A set of customer codes in about 8 bytes a code, for noticing repeats across a huge file.

    Codes are kept as their 64-bit hashes in sorted numpy arrays of doubling sizes (a log-structured
    merge: each level is searched with ``searchsorted``, two levels of one size are merged), and the
    last few thousand single additions in a Python set (a Python ``set`` of a million codes costs
    ~90 MB; this costs 8 MB, and a chunk of codes is checked in a few vectorized calls). Two different
    codes share a hash with odds of about 1 in 10^7 at a million codes; the price of that is one
    spurious "appears earlier" warning, never a lost row.
    """

    __slots__ = ("_levels", "_recent", "_recent_limit", "_size")

    def __init__(self, recent: int = 4096) -> None:
        self._levels: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self._recent: set[int] = set()
        self._recent_limit = recent
        """Single additions kept in a Python set before they become a sorted level."""
        self._size = 0

    @property
    def nbytes(self) -> int:
        """Bytes the sorted levels take (the recent set aside)."""
        return sum(level.nbytes for level in self._levels)

    def __len__(self) -> int:
        return self._size

    def _known(self, key: int) -> bool:
        if key in self._recent:
            return True
        for level in self._levels:
            at = int(np.searchsorted(level, key))
            if at < len(level) and int(level[at]) == key:
                return True
        return False

    def add(self, code: str) -> bool:
        """Remember ``code``; True when it was new, False when it was seen before."""
        key = hash(code)
        if self._known(key):
            return False
        self._recent.add(key)
        self._size += 1
        if len(self._recent) >= self._recent_limit:
            self._push(np.sort(np.fromiter(self._recent, np.int64, len(self._recent))))
            self._recent = set()
        return True

    def add_many(self, codes: Sequence[str]) -> list[int]:
        """Remember ``codes`` in order; the indices of those seen before (earlier in ``codes`` too)."""
        n = len(codes)
        if n == 0:
            return []
        keys = np.fromiter(map(hash, codes), np.int64, n)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        later = np.empty(n, dtype=bool)
        later[0] = False
        np.equal(ordered[1:], ordered[:-1], out=later[1:])  # the first of equal keys stays new
        repeat = np.zeros(n, dtype=bool)
        repeat[order[later]] = True
        # Searched in sorted order (cache-friendly), answers put back in row order.
        found = np.zeros(n, dtype=bool)
        for level in self._levels:
            at = np.minimum(np.searchsorted(level, ordered), len(level) - 1)
            found |= level[at] == ordered
        if self._recent:
            found |= np.isin(ordered, np.fromiter(self._recent, np.int64, len(self._recent)))
        known = np.empty(n, dtype=bool)
        known[order] = found
        fresh = ordered[~(later | found)]  # sorted, distinct, none known before
        self._size += len(fresh)
        if len(fresh):
            self._push(fresh)
        repeat |= known
        return np.flatnonzero(repeat).tolist()

    def __contains__(self, code: object) -> bool:
        """Whether ``code`` was added (with the same rare false positives as ``add``)."""
        return self._known(hash(code))

    def _push(self, keys: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        """Add sorted distinct ``keys`` (none known yet) as a level; merge levels no larger than it."""
        levels = self._levels
        levels.append(keys)
        while len(levels) > 1 and len(levels[-2]) <= 2 * len(levels[-1]):
            top = levels.pop()
            # Two sorted runs: the stable sort (timsort for int64) merges them in linear time.
            levels[-1] = np.sort(np.concatenate((levels[-1], top)), kind="stable")
