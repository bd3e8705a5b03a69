"""What a --state run holds back until it knows it may send (biteral_cli/held.py): every record
comes back as it went in, in order, and what goes to disk is private and gone afterwards."""

from __future__ import annotations

import os
import stat

import pytest

from biteral_cli.held import Held
from biteral_cli.outcomes import Ref
from biteral_cli.records import SourceRow
from biteral_cli.upload import Item


def _item(n: int) -> Item:
    rows = [SourceRow("in.csv", n + 2, {"code": f"C{n}", "city": "Ñandú " * (n % 3)}, None, None)]
    if n % 5 == 0:  # a product made of several rows, one with a warning from the reader
        rows.append(SourceRow("in.csv", n + 3, {"code": f"C{n}", "size": "XL"}, None, [("size", "cut")]))
    body = b'{"code":"C%d","n":%d}' % (n, n)
    return Item(seq=n, code=f"C{n}", body=body, ref=Ref.of_rows(rows, ["code", "city"], f"fp{n}"))


def _plain(item: Item) -> tuple[object, ...]:
    ref: Ref = item.ref
    rows = [(r.source, r.row, r.cells, r.error, r.warnings) for r in ref.rows]
    return item.seq, item.code, item.body, ref.fingerprint, ref.source, ref.number, ref.size, rows


@pytest.mark.slow
@pytest.mark.parametrize("memory_bytes", [0, 2_000, 1 << 30])
def test_held_items_come_back_in_order_as_they_went_in(memory_bytes: int) -> None:
    items = [_item(n) for n in range(3_000)]
    with Held(memory_bytes) as held:
        held.add(items[:1_000])
        held.add(items[1_000:])
        assert len(held) == 3_000
        assert [_plain(item) for item in held] == [_plain(item) for item in items]


def test_what_is_held_on_disk_is_owner_only_nameless_and_closed_after(umask_022: None) -> None:
    held = Held(memory_bytes=0)
    held.add([_item(n) for n in range(10)])
    spool = held._spool
    assert spool is not None
    info = os.fstat(spool.fileno())
    assert stat.S_IMODE(info.st_mode) == 0o600  # never readable by another user
    assert info.st_nlink == 0  # no name in any directory: nothing to find, nothing left behind
    held.close()
    assert spool.closed
    held.close()  # twice is fine
