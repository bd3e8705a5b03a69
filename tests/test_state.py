"""Incremental sync state, its lock, and sharding of codes across machines."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from biteral_cli.errors import LockedError, ReportError, UsageError
from biteral_cli.state import (
    NO_COLUMN,
    Decision,
    SyncState,
    changes_table,
    compare_decisions,
    fingerprint,
    parse_shard,
    payload_fingerprint,
    shard_of,
)


def test_recorded_codes_are_unchanged_in_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "sync.sqlite"
    with SyncState.open(path) as state:
        assert not state.unchanged("C1", fingerprint(b'{"code":"C1"}'))
        state.record([("C1", fingerprint(b'{"code":"C1"}')), ("C2", fingerprint(b"two"))])
    with SyncState.open(path) as state:
        assert len(state) == 2
        assert state.unchanged("C1", fingerprint(b'{"code":"C1"}'))
        assert not state.unchanged("C1", fingerprint(b'{"code":"C1","city":"Q1"}'))
        assert not state.unchanged("C3", fingerprint(b"two"))
        state.record([("C1", fingerprint(b"changed"))])
    with SyncState.open(path) as state:
        assert state.unchanged("C1", fingerprint(b"changed"))
        assert len(state) == 2


def test_unchanged_many_answers_like_unchanged_in_order(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "sync.sqlite") as state:
        state.record([(f"C{i}", fingerprint(str(i).encode())) for i in range(2_000)])
        pairs = [(f"C{i}", fingerprint(str(i if i % 3 else -i).encode())) for i in range(2_500)]
        pairs.append(("C1", fingerprint(b"1")))  # the same code twice in one call
        expected = [state.unchanged(code, fp) for code, fp in pairs]
        assert state.unchanged_many(pairs) == expected
        assert expected.count(True) == 1_333 + 1 + 1  # i % 3 != 0, i == 0 (-0 == 0), the repeat


@pytest.mark.parametrize("preloaded", [False, True])
def test_differing_names_the_pairs_to_send_and_whether_each_code_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preloaded: bool
) -> None:
    # Codes as odd as a user's export can make them: spaces, a line break, accents, quotes.
    odd = ["C 1", "line\nbreak", "Ñandú", 'quo"te', "", "x" * 300]
    stored = [*(f"C{i}" for i in range(500)), *odd]
    monkeypatch.setattr("biteral_cli.state._PRELOAD_PIECE", 7)  # many pieces, one with the line break
    with SyncState.open(tmp_path / "sync.sqlite") as state:
        state.record([(code, fingerprint(code.encode())) for code in stored])
        state.record([("short", "abc")])  # a fingerprint of another length than ours
        if preloaded:
            state.preload()
        pairs = [(code, fingerprint(code.encode())) for code in stored]  # all unchanged
        pairs += [("C7", fingerprint(b"new")), ("new one", fingerprint(b"x")), ("short", "abcd")]
        pairs += [("line\nbreak", fingerprint(b"moved")), ("short", "abc"), ("C7", fingerprint(b"C7"))]
        expected = [
            (i, code in stored or code == "short")
            for i, (code, fp) in enumerate(pairs)
            if not state.unchanged(code, fp)
        ]
        assert state.differing(pairs) == expected
        n = len(stored)
        assert expected == [(n, True), (n + 1, False), (n + 2, True), (n + 3, True)]
        assert state.differing([]) == []


def test_a_preloaded_state_reads_what_the_database_holds_not_what_is_recorded_after(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "sync.sqlite") as state:
        state.record([("C1", "fp1")])
        state.preload()
        state.record([("C1", "fp2")])  # written after: the database has it
        assert state.unchanged("C1", "fp2")
        # The snapshot compares with the state as the run found it (the run sends repeats itself).
        assert state.differing([("C1", "fp1"), ("C1", "fp2")]) == [(1, True)]


def test_payload_fingerprint_ignores_key_order_but_not_values() -> None:
    a = payload_fingerprint({"code": "C1", "country": "ES"})
    assert a == payload_fingerprint({"country": "ES", "code": "C1"})
    assert a != payload_fingerprint({"code": "C1", "country": "FR"})


def test_a_second_run_on_the_same_state_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "sync.sqlite"
    first = SyncState.open(path)
    try:
        with pytest.raises(LockedError) as locked:
            SyncState.open(path)
        message = str(locked.value)
        assert "another biteral-import run" in message and f"{path}.lock" in message
        assert locked.value.exit_code == 2
    finally:
        first.close()
    SyncState.open(path).close()  # released on close


@pytest.mark.slow
def test_the_lock_holds_against_another_process(tmp_path: Path) -> None:
    path = tmp_path / "sync.sqlite"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from biteral_cli.errors import LockedError\n"
        "from biteral_cli.state import SyncState\n"
        "try:\n"
        "    SyncState.open(Path(sys.argv[1])).close()\n"
        "except LockedError:\n"
        "    sys.exit(2)\n"
    )
    cwd = Path(__file__).resolve().parent.parent
    with SyncState.open(path):
        held = subprocess.run([sys.executable, "-c", script, str(path)], cwd=cwd, timeout=60)
    assert held.returncode == 2
    free = subprocess.run([sys.executable, "-c", script, str(path)], cwd=cwd, timeout=60)
    assert free.returncode == 0


def test_a_file_that_is_not_a_state_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("code,country\n" * 200, encoding="utf-8")
    with pytest.raises(ReportError, match="cannot be used as a state file"):
        SyncState.open(path)
    # The failed open released its lock.
    with pytest.raises(ReportError):
        SyncState.open(path)


def test_a_state_in_a_missing_directory_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError):
        SyncState.open(tmp_path / "missing" / "sync.sqlite")


# A compatibility contract, not a formula to recompute: machines running different versions split
# one import between them, so a code must land in the same shard on every version. The values were
# taken once from the implementation (blake2b, 8 bytes, big-endian, modulo N) and are frozen here.
SHARD_CODES = ("C001", "C00002", "D314K1432", "cliente-ñ", "ana@example.com", "7283105923251", "cus_PZ0xK3mJ9qR2aB")
FROZEN_SHARDS = {
    2: [0, 0, 1, 0, 1, 1, 0],
    3: [1, 1, 0, 2, 1, 1, 1],
    4: [2, 2, 1, 2, 1, 3, 0],
    7: [4, 5, 6, 3, 4, 1, 4],
    10: [6, 8, 7, 4, 7, 3, 2],
    1000: [906, 278, 897, 894, 437, 563, 772],
}


@pytest.mark.parametrize("n", sorted(FROZEN_SHARDS))
def test_shard_of_is_stable_across_machines_and_versions(n: int) -> None:
    assert [shard_of(code, n) for code in SHARD_CODES] == FROZEN_SHARDS[n]


def test_a_code_is_hashed_as_written() -> None:
    # No trimming or case folding inside shard_of: the importer hands it the final code.
    assert [shard_of(code, 1000) for code in ("  spaced ", "", "c001", "C001")] == [921, 876, 768, 906]


def test_every_code_lands_in_exactly_one_shard_and_shards_are_even() -> None:
    codes = [f"CUST-{i:06d}" for i in range(20_000)]
    n = 4
    counts = Counter(shard_of(code, n) for code in codes)
    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(count - 5_000) < 300 for count in counts.values()), counts
    for code in codes[:100]:
        k, _ = parse_shard(f"{shard_of(code, n) + 1}/{n}")
        owners = [k2 for k2 in range(1, n + 1) if shard_of(code, n) == k2 - 1]
        assert owners == [k]


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "x", "2/", "/4", "2/0", "-1/4", "2/4/8", ""])
def test_parse_shard_rejects_bad_values_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_decisions_are_recorded_next_to_the_fingerprints(tmp_path: Path) -> None:
    path = tmp_path / "sync.sqlite"
    with SyncState.open(path) as state:
        assert state.decisions() == {}
        state.record([("C1", fingerprint(b"one"))])
        state.record_decisions({"column for code": Decision("Customer ID"), "format": Decision("csv", False)})
    with SyncState.open(path) as state:
        assert state.decisions() == {"column for code": Decision("Customer ID"), "format": Decision("csv", False)}
        assert state.unchanged("C1", fingerprint(b"one"))  # the fingerprints are untouched
        state.record_decisions({"column for code": Decision("Id")})
        assert state.decisions() == {"column for code": Decision("Id")}


def test_a_state_file_of_the_first_schema_gains_the_decisions_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # as the first release wrote it
        db.execute("CREATE TABLE customers (code TEXT PRIMARY KEY, fp TEXT NOT NULL, updated_at INTEGER NOT NULL)")
        db.execute("INSERT INTO customers VALUES ('C1', 'abc', 0)")
        db.execute("PRAGMA user_version = 1")
    db.close()
    with SyncState.open(path) as state:
        assert state.unchanged("C1", "abc")
        assert state.decisions() == {}
        state.record_decisions({"column for code": Decision("code")})


def test_a_state_file_is_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with SyncState.open(tmp_path / "sync.sqlite") as state:
            state.record([("ana@example.com", "fp")])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sync.sqlite").stat().st_mode) == 0o600


def test_stored_many_gives_the_recorded_fingerprint_of_known_codes_only(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "sync.sqlite") as state:
        state.record([(f"C{i}", f"fp{i}") for i in range(1_000)])
        assert state.stored_many(["C1", "C999", "nope", "C1"]) == {"C1": "fp1", "C999": "fp999"}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"column for code": "Customer ID"}, {"column for code": "Email"}, [("column for code", True)]),
        ({"column for city": "City"}, {"column for city": NO_COLUMN}, [("column for city", True)]),
        ({"column for city": NO_COLUMN}, {"column for city": "City"}, [("column for city", False)]),
        ({"gender 'M' means": "female (2)"}, {"gender 'M' means": "male (1)"}, [("gender 'M' means", True)]),
        (
            {"column for gender": "G", "values of gender": '{"M": 2}'},
            {"column for gender": "G"},
            [("values of gender", True)],
        ),
        ({}, {"column for code": "Customer ID"}, []),  # first recorded: nothing to compare
        # Two inputs last time, one now: the other file's decisions are not this file's.
        ({"input 1: column for code": "Id", "input 2: column for code": "Id"}, {"column for code": "Id"}, []),
        ({"column for code": "Customer ID"}, {"column for code": "Customer ID"}, []),
    ],
)
def test_compare_decisions_refuses_drift_but_not_new_data(
    before: dict[str, str], after: dict[str, str], expected: list[tuple[str, bool]]
) -> None:
    changes = compare_decisions({k: Decision(v) for k, v in before.items()}, {k: Decision(v) for k, v in after.items()})
    assert [(c.name, c.refused) for c in changes] == expected


def test_unguarded_decisions_are_reported_not_refused() -> None:
    changes = compare_decisions({"encoding": Decision("utf-8", False)}, {"encoding": Decision("cp1252", False)})
    assert [(c.name, c.before, c.after, c.refused) for c in changes] == [("encoding", "utf-8", "cp1252", False)]
    table = changes_table(changes).splitlines()
    assert table[0].split() == ["decision", "last", "run", "this", "run"]
    assert table[1].split() == ["encoding", "utf-8", "cp1252"]
