"""Incremental sync: fingerprints of what was last accepted per code, the decisions the last run
made (which column feeds each field, value rules), a run lock, and sharding."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from biteral_cli.errors import LockedError, ReportError, UsageError

_SCHEMA_VERSION = 1
#: Codes per query: below SQLite's oldest default limit of 999 bound parameters.
_QUERY_CHUNK = 900
#: Records read at once by ``preload`` (one query each).
_PRELOAD_PIECE = 65536


def fingerprint(body: bytes) -> str:
    """A short hex digest of ``body`` that changes whenever the bytes change."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def fingerprints(bodies: Iterable[bytes]) -> list[str]:
    """``fingerprint`` of each of ``bodies``, in order (without a call per body)."""
    blake2b = hashlib.blake2b
    return [blake2b(body, digest_size=16).hexdigest() for body in bodies]


def payload_fingerprint(payload: dict[str, Any]) -> str:
    """The fingerprint of a customer payload, independent of its key order and JSON spacing."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return fingerprint(body.encode("utf-8"))


def shard_of(code: str, n: int) -> int:
    """The 0-based shard (of ``n``) a code belongs to, the same on every machine and Python run.

    ``--shard K/N`` is 1-based: a row belongs to shard K when ``shard_of(code, N) == K - 1``.
    """
    digest = hashlib.blake2b(code.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard K/N`` ("2/4" -> (2, 4)); UsageError unless 1 <= K <= N."""
    k_text, sep, n_text = text.strip().partition("/")
    try:
        k, n = int(k_text), int(n_text)
    except ValueError:
        k = n = 0
    if not sep or n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard must be K/N with 1 <= K <= N (e.g. --shard 2/4), not {text!r}")
    return k, n


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision a run made about its input, as text; ``guarded`` ones must not drift."""

    value: str
    guarded: bool = True


#: What a field's decision is named; a column that disappears is recorded as NO_COLUMN.
NO_COLUMN = "(none)"


@dataclass(frozen=True, slots=True)
class Change:
    """A decision whose value differs from the one recorded; ``refused`` when it may not drift."""

    name: str
    before: str
    after: str
    refused: bool


def compare_decisions(before: Mapping[str, Decision], after: Mapping[str, Decision]) -> list[Change]:
    """What changed between the recorded decisions and this run's, in this run's order.

    A guarded decision refuses any change, except a field that had no column and gains one (new
    data, not drift); a decision recorded for the first time, or an unguarded one (format,
    encoding...), is reported but not refused.
    """
    # A decision only the last run has counts when it was about an input this run also has
    # ("input 2: ..." is another file when the run had several; "..." the only one).
    inputs = {_input_of(name) for name in after}
    gone = [n for n in before if n not in after and _input_of(n) in inputs]
    changes: list[Change] = []
    for name in [*after, *gone]:
        old, new = before.get(name), after.get(name)
        if old is None or (new is not None and old.value == new.value):
            continue
        new_value = new.value if new is not None else NO_COLUMN
        refused = old.guarded and old.value != NO_COLUMN
        changes.append(Change(name, old.value, new_value, refused))
    return changes


def _input_of(name: str) -> str:
    return name.split(": ", 1)[0] if name.startswith("input ") and ": " in name else ""


def changes_table(changes: Sequence[Change]) -> str:
    """The changes as a small plain-text table: decision, last run, this run."""
    rows = [("decision", "last run", "this run"), *((c.name, c.before, c.after) for c in changes)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def lock_path(path: Path) -> Path:
    """Where the lock of the state file ``path`` lives: ``<path>.lock``."""
    return path.with_name(path.name + ".lock")


class SyncState:
    """SQLite store of code -> fingerprint of the last accepted payload, locked while open.

    The lock is ``fcntl.flock`` on ``<path>.lock``: the kernel drops it when the process dies, so a
    crashed run never leaves a lock that blocks the next one (except on network filesystems).
    At volume, ask ``differing`` per chunk of rows: one query for thousands of codes, not one per code.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_fd: int) -> None:
        """Use ``SyncState.open``; this only assembles an opened, locked store."""
        self.path = path
        self._db: sqlite3.Connection | None = connection
        self._lock_fd: int | None = lock_fd
        self._pairs: set[str] | None = None  # "<fingerprint> <code>" of every record, once preloaded

    @classmethod
    def open(cls, path: Path) -> SyncState:
        """Lock and open (creating if needed) the state at ``path``; LockedError if it is in use."""
        lock = lock_path(path)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ReportError(f"cannot create lock {lock}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise LockedError(
                f"another biteral-import run is using {path} (lock {lock}); wait for it or remove a stale lock"
            ) from exc
        try:
            # The pid only helps a person find the holder; the flock itself is the lock.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            db = _connect(path)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        return cls(path, db, fd)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError(f"state {self.path} is closed")
        return self._db

    def unchanged(self, code: str, fp: str) -> bool:
        """True when ``code`` was last accepted with exactly this fingerprint."""
        try:
            found = self._conn().execute("SELECT fp FROM customers WHERE code = ?", (code,))
            row = found.fetchone()
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        return row is not None and row[0] == fp

    def unchanged_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """``unchanged`` for many ``(code, fingerprint)`` pairs at once, in their order (faster)."""
        known = self.stored_many([code for code, _ in pairs])
        return [known.get(code) == fp for code, fp in pairs]

    def stored_many(self, codes: Sequence[str]) -> dict[str, str]:
        """The recorded fingerprint of each of ``codes`` the state knows (unknown codes are absent)."""
        db = self._conn()
        known: dict[str, str] = {}
        try:
            for start in range(0, len(codes), _QUERY_CHUNK):
                chunk = list(set(codes[start : start + _QUERY_CHUNK]))
                marks = ",".join("?" * len(chunk))
                query = f"SELECT code, fp FROM customers WHERE code IN ({marks})"
                known.update(db.execute(query, chunk).fetchall())
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        return known

    def differing(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[int, bool]]:
        """The ``(code, fingerprint)`` pairs the state does not hold as they are, in order, each as
        (its position in ``pairs``, whether the code is known with another fingerprint).

        One query for all of them (the comparison runs inside SQLite), so a chunk of unchanged
        records costs no Python object per record; fingerprints contain no space (``fingerprint``
        gives hex).
        """
        if not pairs:
            return []
        keys = [f"{fp} {code}" for code, fp in pairs]
        if self._pairs is not None:
            held = self._pairs
            missing = [i for i, key in enumerate(keys) if key not in held]
            if not missing:
                return []
            known = self.stored_many([pairs[i][0] for i in missing])
            return [(i, pairs[i][0] in known) for i in missing]
        try:
            text = orjson.dumps(keys).decode()
        except orjson.JSONEncodeError:  # a code JSON cannot carry (a lone surrogate): ask per code
            known = self.stored_many([code for code, _ in pairs])
            return [(i, code in known) for i, (code, fp) in enumerate(pairs) if known.get(code) != fp]
        try:
            found = self._conn().execute(_DIFFERING, (text,)).fetchall()
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        return [(int(index), bool(known)) for index, known in found]

    def preload(self) -> None:
        """Read every recorded (code, fingerprint) into memory at once (about 120 bytes a record),
        so that ``differing`` answers from memory for records that did not change: a full read is
        several times cheaper than looking each code up. What ``record`` writes afterwards is not
        seen by ``differing``: preload before sending starts, when comparing against the state as
        the run found it."""
        db = self._conn()
        pairs: set[str] = set()
        lower: str | None = None  # the last code read so far
        try:
            while True:
                # One piece of records in code order, after the last one read, joined by SQLite.
                where, bound = ("", ()) if lower is None else ("WHERE code > ? ", (lower,))
                rows = f"FROM customers {where}ORDER BY code LIMIT {_PRELOAD_PIECE}"
                joined = "SELECT count(*), group_concat(key, char(10)), max(code)"
                query = f"{joined} FROM (SELECT {_KEY} AS key, code {rows})"
                count, text, lower = db.execute(query, bound).fetchone()
                if not count:
                    break
                keys = text.split("\n")
                if len(keys) != count:  # a code holds a line break: these records one by one
                    keys = [key for (key,) in db.execute(f"SELECT {_KEY} {rows}", bound)]
                pairs.update(keys)
                if count < _PRELOAD_PIECE:
                    break
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        self._pairs = pairs

    def decisions(self) -> dict[str, Decision]:
        """The decisions recorded by the last run that sent (empty before the first)."""
        try:
            rows = self._conn().execute("SELECT name, value, guarded FROM decisions").fetchall()
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        return {name: Decision(value, bool(guarded)) for name, value, guarded in rows}

    def record_decisions(self, decisions: Mapping[str, Decision]) -> None:
        """Replace the recorded decisions with ``decisions``; committed at once."""
        db = self._conn()
        try:
            with db:
                db.execute("DELETE FROM decisions")
                db.executemany(
                    "INSERT INTO decisions (name, value, guarded) VALUES (?, ?, ?)",
                    ((name, d.value, int(d.guarded)) for name, d in decisions.items()),
                )
        except sqlite3.Error as exc:
            raise ReportError(f"cannot write state {self.path}: {exc}") from exc

    def record(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember ``(code, fingerprint)`` of customers the API accepted; committed at once."""
        now = int(time.time())
        db = self._conn()
        try:
            with db:
                db.executemany(
                    "INSERT INTO customers (code, fp, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(code) DO UPDATE SET fp = excluded.fp, "
                    "updated_at = excluded.updated_at",
                    ((code, fp, now) for code, fp in pairs),
                )
        except sqlite3.Error as exc:
            raise ReportError(f"cannot write state {self.path}: {exc}") from exc

    def __len__(self) -> int:
        """How many codes the state remembers."""
        try:
            return int(self._conn().execute("SELECT count(*) FROM customers").fetchone()[0])
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database and release the lock; safe to call twice."""
        db, self._db = self._db, None
        fd, self._lock_fd = self._lock_fd, None
        try:
            if db is not None:
                db.close()
        finally:
            if fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A record as ``differing`` and ``preload`` compare it: "<fingerprint> <code>".
_KEY = "fp || ' ' || code"
#: ``differing``: each JSON array element is "<fingerprint> <code>"; the rows are those whose code is
#: unknown (``c.fp`` NULL) or known with another fingerprint, by position in the array.
_DIFFERING = (
    "SELECT j.key, c.fp IS NOT NULL FROM json_each(?) AS j "
    "LEFT JOIN customers AS c ON c.code = substr(j.value, instr(j.value, ' ') + 1) "
    "WHERE c.fp IS NOT substr(j.value, 1, instr(j.value, ' ') - 1) "
    "ORDER BY j.key"
)


def _connect(path: Path) -> sqlite3.Connection:
    """Open the state database, creating its table; ReportError when it is not our database."""
    db: sqlite3.Connection | None = None
    try:
        # Created owner-only: the codes it holds may be emails.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(path, isolation_level="DEFERRED")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise ReportError(
                f"{path} is a state file of another biteral-import version (schema {version}); use a new --state path"
            )
        # WAL with synchronous=NORMAL halves the cost of a commit; losing the last commit on a
        # power cut only re-sends those customers next time.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS customers ("
                "code TEXT PRIMARY KEY, fp TEXT NOT NULL, updated_at INTEGER NOT NULL"
                ") WITHOUT ROWID"
            )
            # Added after schema 1 was released; older files gain it, older tools ignore it.
            db.execute(
                "CREATE TABLE IF NOT EXISTS decisions ("
                "name TEXT PRIMARY KEY, value TEXT NOT NULL, guarded INTEGER NOT NULL"
                ") WITHOUT ROWID"
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise ReportError(f"{path} cannot be used as a state file: {exc}") from exc
    except OSError as exc:
        raise ReportError(f"{path} cannot be used as a state file: {exc.strerror or exc}") from exc
    except BaseException:
        if db is not None:
            db.close()
        raise
    return db
