"""Incremental sync: fingerprints of what was last accepted per code, a run lock, and sharding."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from biteral_cli.errors import LockedError, ReportError, UsageError

_SCHEMA_VERSION = 1
#: Codes per query: below SQLite's oldest default limit of 999 bound parameters.
_QUERY_CHUNK = 900


def fingerprint(body: bytes) -> str:
    """A short hex digest of ``body`` that changes whenever the bytes change."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


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


def lock_path(path: Path) -> Path:
    """Where the lock of the state file ``path`` lives: ``<path>.lock``."""
    return path.with_name(path.name + ".lock")


class SyncState:
    """SQLite store of code -> fingerprint of the last accepted payload, locked while open.

    The lock is ``fcntl.flock`` on ``<path>.lock``: the kernel drops it when the process dies, so a
    crashed run never leaves a lock that blocks the next one (except on network filesystems).
    At volume, ask ``unchanged_many`` per batch of rows: one query per 900 codes, not per code.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_fd: int) -> None:
        """Use ``SyncState.open``; this only assembles an opened, locked store."""
        self.path = path
        self._db: sqlite3.Connection | None = connection
        self._lock_fd: int | None = lock_fd

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
                f"another biteral-import run is using {path} (lock {lock}); "
                "wait for it or remove a stale lock"
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
        db = self._conn()
        known: dict[str, str] = {}
        try:
            for start in range(0, len(pairs), _QUERY_CHUNK):
                codes = list({code for code, _ in pairs[start : start + _QUERY_CHUNK]})
                marks = ",".join("?" * len(codes))
                query = f"SELECT code, fp FROM customers WHERE code IN ({marks})"
                known.update(db.execute(query, codes).fetchall())
        except sqlite3.Error as exc:
            raise ReportError(f"cannot read state {self.path}: {exc}") from exc
        return [known.get(code) == fp for code, fp in pairs]

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


def _connect(path: Path) -> sqlite3.Connection:
    """Open the state database, creating its table; ReportError when it is not our database."""
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, isolation_level="DEFERRED")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise ReportError(
                f"{path} is a state file of another biteral-import version "
                f"(schema {version}); use a new --state path"
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
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise ReportError(f"{path} cannot be used as a state file: {exc}") from exc
    except BaseException:
        if db is not None:
            db.close()
        raise
    return db
