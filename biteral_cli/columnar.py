"""Normalization of a whole chunk, column by column: each value rule runs once per distinct value.

For every value rule of the normalizer (code; isActive; country, state and city together;
yearBorn; gender) and every metadata column, the chunk's distinct cells are turned once into the
JSON fragment the payload carries (``,"country":"ES","state":"ES-V"``), and each row's payload
line is the concatenation of its fragments: byte for byte what ``orjson.dumps`` of the row's
payload dict writes, because a rule's fragment depends on nothing but the cells it reads.

A row whose rules say anything (a warning, an error), that the reader flagged, or that comes from
a JSON input gets no line here (``None``): the caller sends it through ``Normalizer.prepare`` one
row at a time, which words every message exactly. Those rows are the rare ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from .chunk import Chunk
from .mapping import Mapping
from .normalize import RULE_FIELDS, Normalizer
from .records import Issue

#: Distinct cell combinations a rule remembers across chunks before it starts over (memory bound:
#: ~100 bytes an entry, the fragments themselves shared). Birth dates are the one field with this
#: many distinct values (~175,000 in a million rows); computing one costs ~5 µs.
CACHE_LIMIT = 1 << 18
_CODE = b'{"code":'
_CLOSE = b"}"
_METADATA = b',"metadata":{'
#: Stands for "this row is prepared alone" among fragments: a byte valid UTF-8 (all orjson writes)
#: never holds, so one ``in`` on the joined line finds it.
_BAD = b"\xff"

#: A cell's field value from the mapping (value maps, inverted columns, defaults), or None: as is.
Convert = Callable[[Any], Any] | None
_ABSENT: Any = object()


@dataclass(slots=True)
class Normalized:
    """One chunk's payload lines: ``bodies[i]`` for a clean row, None for a row to prepare alone."""

    bodies: list[bytes | None]
    codes: list[str | None]
    """The code of each clean row as normalized (what --shard divides by)."""
    sent_codes: list[str | None]
    """The code each clean row is sent with: ``codes``, hashed with --hash-code sha256."""
    places: list[Any] | None
    """Per row, (review key, fields, payload) of its places rule, for the locations review."""


@dataclass(slots=True)
class _Source:
    field: str
    column: str | None
    convert: Convert
    constant: Any  # the default of a field without a column


class _Rule:
    """One value rule over the fields it reads; distinct cell combinations computed once."""

    def __init__(
        self,
        rule: Callable[..., None],
        sources: list[_Source],
        *,
        keep: bool,
        value_of: Callable[[Any], tuple[Any, str | None]] | None,
        fragment: Callable[[str, Any], bytes | None],
    ) -> None:
        self.rule = rule
        self.sources = sources
        # A rule of one field read from a column: each distinct cell straight to its fragment.
        self.value_of = value_of if len(sources) == 1 and sources[0].column is not None else None
        self.fragment = fragment
        self.columns = [s.column for s in sources if s.column is not None]
        self.keep = keep
        self.table: dict[Any, bytes] = {}
        self.fragments: dict[Any, bytes] = {}
        self.info: dict[Any, tuple[Any, dict[str, Any], dict[str, Any]]] = {}

    def run(self, chunk: Chunk) -> tuple[list[bytes], Sequence[Any]]:
        """(fragment per row, key per row) for ``chunk``."""
        n = len(chunk)
        columns = [chunk.column(c) for c in self.columns]
        if not columns:
            keys: Sequence[Any] = [()] * n
        elif len(columns) == 1:
            keys = columns[0]  # type: ignore[assignment]
        else:
            keys = list(zip(*columns, strict=True))
        table = self.table
        if len(table) > CACHE_LIMIT:
            table.clear()
            self.info.clear()
        single = len(columns) == 1
        for key in set(keys).difference(table):
            table[key] = self._compute((key,) if single else key)
        return list(map(table.__getitem__, keys)), keys

    def _compute(self, cells: tuple[Any, ...]) -> bytes:
        if self.value_of is not None:
            source = self.sources[0]
            value = source.convert(cells[0]) if source.convert is not None else cells[0]
            outcome, message = self.value_of(value)
            if message is not None:
                return _BAD
            try:  # one bytes object per outcome, however many cells give it (True is not 1 here)
                key = (type(outcome), outcome)
                shared = self.fragments.get(key)
            except TypeError:  # an unhashable value from a mapping file
                key, shared = None, None
            if shared is None:
                fragment = self.fragment(source.field, outcome)
                shared = _BAD if fragment is None else fragment
                if key is not None:
                    self.fragments[key] = shared
            return shared
        fields: dict[str, Any] = {}
        given = iter(cells)
        for source in self.sources:
            if source.column is None:
                fields[source.field] = source.constant
            else:
                value = next(given)
                fields[source.field] = source.convert(value) if source.convert is not None else value
        payload: dict[str, Any] = {}
        errors: list[Issue] = []
        warnings: list[Issue] = []
        self.rule(fields.get, payload, errors, warnings)
        if errors or warnings:
            return _BAD
        try:
            out = orjson.dumps(payload)
        except orjson.JSONEncodeError:
            return _BAD
        if self.keep:
            review_key = (fields.get("country"), fields.get("state"), fields.get("city"))
            self.info[cells if len(cells) != 1 else cells[0]] = (review_key, fields, payload)
        return b"," + out[1:-1] if len(out) > 2 else b""


class ChunkNormalizer:
    """Builds the payload lines of one input's chunks (see the module docstring)."""

    def __init__(self, mapping: Mapping, normalizer: Normalizer, headers: Sequence[str], *, hash_code: bool) -> None:
        self.normalizer = normalizer
        self.hash_code = hash_code
        sources: dict[str, _Source] = {}
        for fld, column, convert in mapping.field_values():
            constant = mapping.defaults.get(fld, _ABSENT) if column is None else _ABSENT
            if fld in sources:  # two columns for one field: the row decides, not the column
                self.enabled = False
                return
            sources[fld] = _Source(fld, column, convert, constant)
        meta = mapping.metadata_plan(headers)
        self.enabled = meta is not None
        if meta is None:
            return
        self.meta_pairs, self.json_column = meta
        self.meta_tables: list[dict[str, bytes]] = [{} for _ in self.meta_pairs]
        self.code = sources.get("code")
        self.rules = [
            _Rule(
                rule,
                [sources[f] for f in fields if f in sources],
                keep=fields == ("country", "state", "city"),
                value_of=value_of,
                fragment=normalizer.fragment,
            )
            for rule, value_of, fields in zip(normalizer.rules, normalizer.values, RULE_FIELDS, strict=True)
        ]
        self.max_metadata = normalizer.options.max_metadata_chars

    def run(self, chunk: Chunk, *, review: bool) -> Normalized | None:
        """The payload lines of ``chunk``'s clean rows, or None when no row of it can be done here."""
        if not self.enabled or not chunk.tabular or self.code is None:
            return None
        codes = self._codes(chunk)
        sent = [None if c is None else sha256_code(c) for c in codes] if self.hash_code else codes
        parts: list[Sequence[bytes]] = [self._code_fragments(sent)]
        places: list[Any] | None = None
        for rule in self.rules:
            fragments, keys = rule.run(chunk)
            parts.append(fragments)
            if rule.keep and review:
                info = rule.info
                places = [info.get(key) for key in keys]
        parts.append(self._metadata(chunk))
        parts.append(list(repeat(_CLOSE, len(chunk))))
        lines = [b"".join(t) for t in zip(*parts, strict=True)]
        bodies: list[bytes | None] = [None if _BAD in line else line for line in lines]
        for index in (*chunk.errors, *chunk.warnings):
            bodies[index] = None
        return Normalized(bodies, codes, sent, places)

    def _codes(self, chunk: Chunk) -> list[str | None]:
        source = self.code
        assert source is not None
        if source.column is None:
            values: Sequence[Any] = [source.constant] * len(chunk)
        else:
            values = chunk.column(source.column)  # type: ignore[assignment]
            if source.convert is not None:
                values = [source.convert(v) for v in values]
        limit = self.normalizer.options.max_code_length
        slow = self._code_of
        return [
            c if type(v) is str and (c := v.strip()) and c[0] != "'" and len(c) <= limit else slow(v) for v in values
        ]

    def _code_of(self, value: Any) -> str | None:
        """The code of an unusual cell (a leading apostrophe, say), or None when it is no code."""
        payload: dict[str, Any] = {}
        errors: list[Issue] = []
        self.normalizer.code_rule({"code": value}.get, payload, errors, [])
        code = payload.get("code")
        return code if not errors and type(code) is str else None

    @staticmethod
    def _code_fragments(codes: list[str | None]) -> list[bytes]:
        dumps = orjson.dumps
        try:
            return [_BAD if c is None else _CODE + dumps(c) for c in codes]
        except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): those rows alone
            return [_BAD if c is None else _code_fragment(c) for c in codes]

    def _metadata(self, chunk: Chunk) -> list[bytes]:
        """Per row, ``,"metadata":{...}`` of its non-blank extra columns, "" without any; None
        for a row with JSON metadata text or possibly too long metadata (prepared alone)."""
        n = len(chunk)
        columns: list[list[bytes]] = []
        for (column, key), table in zip(self.meta_pairs, self.meta_tables, strict=True):
            cells = chunk.column(column)
            assert cells is not None
            if len(table) > CACHE_LIMIT:
                table.clear()
            prefix = b"," + orjson.dumps(key) + b":"
            distinct = set(cells)
            if len(distinct) > n // 4:  # mostly distinct (amounts, ids): remembering them gains nothing
                dumps = orjson.dumps
                try:
                    columns.append([b"" if not v or v.isspace() else prefix + dumps(v) for v in cells])
                except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): those rows alone
                    columns.append([b"" if not v or v.isspace() else _fragment(prefix, v) for v in cells])
                continue
            for value in distinct.difference(table):
                table[value] = b"" if not value or value.isspace() else _fragment(prefix, value)
            columns.append(list(map(table.__getitem__, cells)))
        limit = self.max_metadata
        out: list[bytes]
        if not columns:
            out = [b""] * n
        else:
            out = []
            append = out.append
            for t in zip(*columns, strict=True):
                joined = b"".join(t)
                if not joined:
                    append(b"")
                elif 6 * len(joined) + 2 > limit or _BAD in joined:  # may be too long: measured by prepare
                    append(_BAD)
                else:
                    append(_METADATA + joined[1:] + _CLOSE)
        if self.json_column is not None:
            json_cells = chunk.column(self.json_column)
            assert json_cells is not None
            for index, text in enumerate(json_cells):
                if text.strip():
                    out[index] = _BAD
        return out


def sha256_code(code: str) -> str:
    """What --hash-code sha256 sends (the same as ``importer.hash_code``)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _fragment(prefix: bytes, value: str) -> bytes:
    try:
        return prefix + orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _BAD


def _code_fragment(code: str) -> bytes:
    try:
        return _CODE + orjson.dumps(code)
    except orjson.JSONEncodeError:
        return _BAD
