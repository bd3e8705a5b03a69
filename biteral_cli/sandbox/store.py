"""The sandbox's SQLite database: one connection, one table per entity, upserts by ``code``.

A table holds ``code`` (the key the API upserts by), an ``id`` made here with the entity's prefix,
the stored payload as JSON and its timestamps. ``Store.table(spec)`` creates an entity's table
the first time; every entity shares the connection and its lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from biteral_cli.errors import UsageError

#: Codes per ``IN (...)`` query: below SQLite's oldest default limit of 999 bound parameters.
_QUERY_CHUNK = 500


def now_text() -> str:
    """The current UTC time as the API writes it (ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TableSpec:
    """How an entity is stored: its table, its id prefix, its fields in order, its defaults."""

    name: str
    """The table's name; also the entity's path without its slash (``customers``)."""
    id_prefix: str
    """The start of the ids made here (``cus_``)."""
    fields: tuple[str, ...]
    """The payload's fields in the order GET returns them."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Values a stored record has when the field is absent (removing it is setting it back)."""

    def ordered(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload with its fields in the documented order."""
        return {name: payload[name] for name in self.fields if name in payload}


class Store:
    """One SQLite connection shared by the server's event loop and the tables of every entity."""

    def __init__(self, path: Path | None) -> None:
        target = str(path) if path is not None else ":memory:"
        self.target = target
        try:
            self.conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # A test server need not survive a power cut, or an OS crash: no fsync at all.
            self.conn.execute("PRAGMA synchronous=OFF")
        except sqlite3.Error as exc:
            raise UsageError(f"--db: cannot open the sandbox database {target}: {exc}") from exc
        self.lock = threading.Lock()
        self.tables: dict[str, Table] = {}
        # Ids are 20 hex digits: 8 random ones for this server's run, then a counter from a random
        # start. Consecutive ids land side by side in the id index (random ones cost a page each).
        self._id_run = os.urandom(4).hex()
        self._id_next = int.from_bytes(os.urandom(4)) << 8

    def new_ids(self, prefix: str, n: int) -> list[str]:
        """``n`` ids never made before in this database, ``prefix`` first (``cus_``)."""
        start = self._id_next
        self._id_next += n
        run = f"{prefix}{self._id_run}"
        return [f"{run}{i & 0xFFFFFFFFFFFF:012x}" for i in range(start, start + n)]

    def table(self, spec: TableSpec) -> Table:
        """The table of an entity, created the first time it is asked for."""
        found = self.tables.get(spec.name)
        if found is None:
            try:
                # Clustered by code (WITHOUT ROWID): an upsert touches one tree less. A database
                # made by an older sandbox keeps its rowid table, which works the same.
                self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {spec.name} (code TEXT PRIMARY KEY, id TEXT NOT NULL"
                    " UNIQUE, payload TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise UsageError(f"--db: cannot use the sandbox database {self.target}: {exc}") from exc
            found = self.tables[spec.name] = Table(self, spec)
        return found

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self.lock:
            self.conn.close()


class Table:
    """The records of one entity: read, upsert in order, delete."""

    def __init__(self, store: Store, spec: TableSpec) -> None:
        self.store = store
        self.spec = spec
        self.conn = store.conn

    def get(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """The stored row for a code or id, or None."""
        column, value = ("code", code) if code is not None else ("id", id_)
        row = self.conn.execute(
            f"SELECT code, id, payload, created_at, updated_at FROM {self.spec.name} WHERE {column} = ?",
            (value,),
        ).fetchone()
        if row is None:
            return None
        return {
            "code": row[0],
            "id": row[1],
            "payload": json.loads(row[2]),
            "created_at": row[3],
            "updated_at": row[4],
        }

    def _payloads(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored payloads of those codes that exist, a few hundred per query."""
        unique = list(dict.fromkeys(codes))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), _QUERY_CHUNK):
            chunk = unique[start : start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            for code, payload in self.conn.execute(
                f"SELECT code, payload FROM {self.spec.name} WHERE code IN ({marks})", chunk
            ):
                found[code] = json.loads(payload)
        return found

    def upsert_all(self, changes: list[dict[str, Any]]) -> tuple[int, int]:
        """Apply the changes in order in one transaction; return (written, unchanged) counts."""
        spec = self.spec
        written = unchanged = 0
        with self.store.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                # One read and at most two writes per batch, however many records it holds;
                # a code repeated within the batch sees the earlier change, as in order one by one.
                current = self._payloads([change["code"] for change in changes])
                existing = set(current)
                updated: dict[str, bool] = {}  # code written -> changed after it existed
                for change in changes:
                    code = change["code"]
                    before = current.get(code)
                    if before is None:
                        payload = {k: v for k, v in change.items() if v is not None}
                    else:
                        payload = dict(before)
                        for key, value in change.items():
                            if value is None:
                                payload.pop(key, None)
                            else:
                                payload[key] = value
                    for key, value in spec.defaults.items():
                        payload.setdefault(key, value)
                    if before is not None and payload == before:
                        unchanged += 1
                        continue
                    current[code] = payload
                    updated[code] = updated.get(code, False) or before is not None
                    written += 1
                now = now_text()
                new = [code for code in updated if code not in existing]
                ids = self.store.new_ids(spec.id_prefix, len(new))
                self.conn.executemany(
                    f"INSERT INTO {spec.name} (code, id, payload, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            code,
                            id_,
                            self._text(current[code]),
                            now,
                            now if updated[code] else None,  # created, then changed within this batch
                        )
                        for id_, code in zip(ids, new, strict=True)
                    ],
                )
                self.conn.executemany(
                    f"UPDATE {spec.name} SET payload = ?, updated_at = ? WHERE code = ?",
                    [(self._text(current[code]), now, code) for code in updated if code in existing],
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return written, unchanged

    def _text(self, payload: dict[str, Any]) -> str:
        """A payload as the JSON text stored (field order as documented)."""
        ordered = self.spec.ordered(payload)
        try:
            return orjson.dumps(ordered).decode()
        except TypeError:  # an integer beyond 64 bits, which the stdlib writes
            return json.dumps(ordered)

    def delete(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """Delete a record by code or id; return what was deleted, or None."""
        with self.store.lock:
            current = self.get(code=code, id_=id_)
            if current is not None:
                self.conn.execute(f"DELETE FROM {self.spec.name} WHERE code = ?", (current["code"],))
        return current
