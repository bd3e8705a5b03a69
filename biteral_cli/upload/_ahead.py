"""Chunks read and worked out one ahead, in a background thread, while the caller uses the current one.

An upload's per-row work (reading a chunk and normalizing its columns: a few hundred ms for 8192
rows) runs in the event loop that also sends the requests; done there in one piece it holds back
every answer that arrives meanwhile. ``ChunksAhead`` moves that work off the loop: while the rows
of chunk k are turned into batches and sent, a thread reads chunk k+1 and works it out. The
thread holds the GIL only in slices (``sys.getswitchinterval``), so the loop answers within
milliseconds instead of waiting for the whole chunk.

The work of one source runs one chunk at a time: the thread is joined before the caller's own
thread works a chunk out (``result`` of a chunk it did not read ahead), so ``work`` never runs
twice at once and needs no lock of its own. Chunks come out in order; an error raised while
reading comes out where it happened, after the chunks before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")


class _Next(Generic[C, R]):
    """One read-ahead: the next chunk and its work, done in a thread of its own."""

    def __init__(self, chunks: Iterator[C], work: Callable[[C], R]) -> None:
        self.chunk: C | None = None
        self.result: R | None = None
        self.error: BaseException | None = None
        self.ended = False
        self._thread = threading.Thread(target=self._run, args=(chunks, work), name="biteral-read-ahead", daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[C], work: Callable[[C], R]) -> None:
        try:
            chunk = next(chunks)
        except StopIteration:
            self.ended = True
            return
        except BaseException as exc:  # handed to the caller where it would have seen it
            self.error = exc
            return
        self.chunk = chunk
        try:
            self.result = work(chunk)
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join()


class ChunksAhead(Generic[C, R]):
    """Iterate ``chunks`` with ``work(chunk)`` done one chunk ahead in a background thread.

    ``result(chunk)`` is the work of a chunk this iterator handed out (done already, or waited
    for), or of any other chunk (done in the caller's thread, after the read-ahead in flight).
    """

    def __init__(self, chunks: Iterator[C], work: Callable[[C], R]) -> None:
        self._chunks = chunks
        self._work = work
        self._next: _Next[C, R] | None = None
        self._current: _Next[C, R] | None = None
        self._ended = False

    def _start(self) -> None:
        if self._next is None and not self._ended:
            self._next = _Next(self._chunks, self._work)

    def __iter__(self) -> ChunksAhead[C, R]:
        return self

    def __next__(self) -> C:
        self._start()
        ahead = self._next
        assert ahead is not None or self._ended
        if ahead is None:
            raise StopIteration
        ahead.join()
        self._next = None
        if ahead.ended:
            self._ended = True
            raise StopIteration
        if ahead.error is not None and ahead.chunk is None:
            self._ended = True  # the source broke: nothing after it
            raise ahead.error
        self._current = ahead
        self._start()  # the next chunk is read and worked out while this one is used
        assert ahead.chunk is not None
        return ahead.chunk

    def result(self, chunk: C) -> R:
        """The work of ``chunk``: the one done ahead when this iterator handed it out."""
        current = self._current
        if current is not None and current.chunk is chunk:
            self._current = None
            if current.error is not None:
                raise current.error
            return current.result  # type: ignore[return-value]
        if self._next is not None:
            self._next.join()  # never two works at once
        result = self._work(chunk)
        self._start()  # chunks read before this iterator (a sample): start reading ahead now
        return result
