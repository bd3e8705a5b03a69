"""Records a run holds back until it knows it may send them (``--max-changed`` with ``--state``).

The run reads its whole input before sending anything, so that a mass change is refused with
nothing sent; the records it would send wait here, in input order. The first ones wait in memory,
up to a bound; the rest in a temporary file created owner-only (0600) and without a name that
lasts (deleted at once: it is gone when closed, or when the process dies), because they are
personal data. Each record keeps what the reports need: its input rows as read.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .outcomes import Ref
from .records import SourceRow
from .upload import Item

#: Memory the held records may take (an estimate) before the rest go to the temporary file.
HOLD_BYTES = 32 << 20
#: Records written to the temporary file at once (one pickle each group).
_SPOOL_GROUP = 1024

#: (seq, code, body, fingerprint, input name, rows as (number, cells, warnings)).
_Record = tuple[int, str, bytes, str, str, tuple[tuple[int, Any, Any], ...]]


class Held:
    """Items in input order, kept in memory up to ``memory_bytes``, then in a private temporary file."""

    def __init__(self, memory_bytes: int | None = None) -> None:
        self._memory: list[_Record] = []
        self._bound = HOLD_BYTES if memory_bytes is None else memory_bytes
        self._used = 0
        self._spool: IO[bytes] | None = None
        self._waiting: list[_Record] = []  # spooled records not yet written
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, items: Iterable[Item]) -> None:
        """Hold ``items`` (after those held before)."""
        for item in items:
            ref: Ref = item.ref
            rows = tuple((row.row, row.cells, row.warnings) for row in ref.rows)
            record: _Record = (item.seq, item.code, item.body, ref.fingerprint, ref.source, rows)
            self._count += 1
            if self._spool is None and self._used < self._bound:
                self._memory.append(record)
                # What a record costs, roughly: its body, its cells (about as large) and the objects.
                self._used += 4 * len(item.body) + 256
                continue
            if self._spool is None:
                # Owner-only, and unlinked at once: nobody else can read it, nothing is left behind.
                self._spool = tempfile.TemporaryFile(prefix="biteral-import-held-")  # noqa: SIM115
            self._waiting.append(record)
            if len(self._waiting) >= _SPOOL_GROUP:
                self._write()

    def _write(self) -> None:
        assert self._spool is not None
        pickle.dump(self._waiting, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self._waiting = []

    def __iter__(self) -> Iterator[Item]:
        """The held items in the order they were added, each given out once (memory is freed as they go)."""
        memory, self._memory = self._memory, []
        memory.reverse()
        while memory:
            yield _item(memory.pop())
        if self._spool is None:
            return
        if self._waiting:
            self._write()
        spool = self._spool
        spool.seek(0)
        while True:
            try:
                group: list[_Record] = pickle.load(spool)
            except EOFError:
                break
            for record in group:
                yield _item(record)

    def close(self) -> None:
        """Forget every held item and close (so delete) the temporary file; safe to call twice."""
        self._memory, self._waiting, self._count = [], [], 0
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _item(record: _Record) -> Item:
    seq, code, body, fp, source, rows = record
    read = [SourceRow(source, number, cells, None, warnings) for number, cells, warnings in rows]
    return Item(seq=seq, code=code, body=body, ref=Ref.of_rows(read, [], fp))
