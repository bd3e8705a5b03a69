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
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .chunk import Chunk
from .mapping import Mapping
from .normalize import MIN_YEAR, RULE_FIELDS, Normalizer
from .records import Issue

#: Distinct cell combinations a rule remembers across chunks before it starts over (memory bound:
#: ~100 bytes an entry, the fragments themselves shared). Birth dates are the one field with this
#: many distinct values (~175,000 in a million rows); computing one costs ~5 µs.
CACHE_LIMIT = 1 << 18
_CODE = b'{"code":'
_CLOSE = b"}"
_METADATA = b',"metadata":{'
_CODE_OPEN = pa.scalar(b'{"code":"', pa.binary())
_QUOTE = pa.scalar(b'"', pa.binary())
_EMPTY_SCALAR = pa.scalar(b"", pa.binary())
_NEWLINE_SCALAR = pa.scalar(b"\n", pa.binary())
_CLOSE_SCALAR = pa.scalar(_CLOSE, pa.binary())
_METADATA_SCALAR = pa.scalar(_METADATA, pa.binary())
#: A code that needs a closer look than "sent as written" (RE2 syntax): empty; starting with a
#: blank, an apostrophe or a non-ASCII character, ending with a blank or non-ASCII character
#: (``str.strip`` decides); or holding a character JSON escapes (a quote, a backslash, a control).
_ODD_CODE = r'^$|^[^!-&(-~]|[^!-~]$|["\\\x00-\x1f\x7f]'
#: A character orjson writes escaped: a quote, a backslash or a control character.
_ESCAPED = r'["\\\x00-\x1f]'
#: Only characters ``str.isspace`` calls whitespace (RE2 syntax; its ``\s`` is ASCII-only).
_SPACES = r"^[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+$"
#: Stands for "this row is prepared alone" among fragments: a byte valid UTF-8 (all orjson writes)
#: never holds, so one ``in`` on the joined line finds it.
_BAD = b"\xff"

#: A cell's field value from the mapping (value maps, inverted columns, defaults), or None: as is.
Convert = Callable[[Any], Any] | None
_ABSENT: Any = object()


@dataclass(slots=True)
class Normalized:
    """One chunk's payload lines: ``lines[i]`` for a clean row; the rows in ``bad`` are prepared alone."""

    lines: Any
    """An arrow binary array, one line per row (empty where the row is in ``bad``)."""
    bad: list[int]
    """Indices of the rows to prepare one by one (a rule has something to say, the reader flagged it)."""
    codes: list[str | None]
    """The code of each clean row as normalized (what --shard divides by)."""
    sent_codes: list[str | None]
    """The code each clean row is sent with: ``codes``, hashed with --hash-code sha256."""
    place_index: Any = None
    """With the locations review: per row, the index into ``place_infos`` of its places (arrow int32)."""
    place_infos: list[Any] | None = None
    """(review key, fields, payload, problems) of each distinct places combination, for the locations review."""
    warned: dict[int, list[Issue]] = field(default_factory=dict)
    """Clean rows sent with warnings: row index -> the warnings, in rule order (as ``prepare`` gives them)."""

    @classmethod
    def alone(cls, n: int) -> Normalized:
        """A chunk of ``n`` rows none of which the columnar path built: every row prepared alone."""
        return cls(pa.repeat(_EMPTY_SCALAR, n), list(range(n)), [None] * n, [None] * n)


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
        canonical: Callable[[Any], Any] | None = None,
        strict: bool = False,
    ) -> None:
        self.rule = rule
        self.strict = strict
        # Cells that mean the same value mapped to one key first (column-wise), so that the rule
        # runs once per meaning rather than once per spelling (birth dates: per year, not per day).
        self.canonical = canonical if len(sources) == 1 and sources[0].convert is None else None
        self.sources = sources
        # A rule of one field read from a column: each distinct cell straight to its fragment.
        self.value_of = value_of if len(sources) == 1 and sources[0].column is not None else None
        self.fragment = fragment
        self.columns = [s.column for s in sources if s.column is not None]
        self.keep = keep
        self.table: dict[Any, bytes] = {}
        self.fragments: dict[Any, bytes] = {}
        self.info: dict[Any, tuple[Any, dict[str, Any], dict[str, Any], dict[str, str]]] = {}
        self.warned: dict[Any, list[Issue]] = {}
        """Key -> the warnings its value is sent with (the key's fragment is in ``table``)."""

    def run(self, columns: dict[str, Any], n: int) -> tuple[Any, Any, Any, list[Any], Any]:
        """(fragment per row, bad flag per row or None, distinct index per row, distinct keys, warned
        flag per row or None) for a chunk whose columns (arrow string arrays) are ``columns``."""
        arrays = [columns[c] for c in self.columns]
        if not arrays:
            keys: list[Any] = [()]
            indices = pa.repeat(pa.scalar(0, pa.int32()), n)
        elif len(arrays) == 1:
            encoded = pc.dictionary_encode(arrays[0] if self.canonical is None else self.canonical(arrays[0]))
            indices, keys = encoded.indices, encoded.dictionary.to_pylist()
        else:
            indices, keys = _combinations(arrays)
        table = self.table
        if len(table) > CACHE_LIMIT:
            table.clear()
            self.info.clear()
            self.warned.clear()
        single = len(arrays) == 1
        for key in set(keys).difference(table):
            table[key] = self._compute((key,) if single else key, key)
        fragments = [table[key] for key in keys]
        flags = [fragment is _BAD for fragment in fragments]
        values = pa.array(
            [b"" if flag else fragment for fragment, flag in zip(fragments, flags, strict=True)], pa.binary()
        )
        bad = pa.array(flags, pa.bool_()).take(indices) if any(flags) else None
        warned = None
        if self.warned:
            marks = [key in self.warned for key in keys]
            if any(marks):
                warned = pa.array(marks, pa.bool_()).take(indices)
        return values.take(indices), bad, indices, keys, warned

    def _compute(self, cells: tuple[Any, ...], key: Any) -> bytes:
        """The fragment of one distinct key (``cells`` its cells), _BAD when its row must be
        prepared alone; a key sent with warnings is remembered in ``warned``."""
        if self.value_of is not None:
            source = self.sources[0]
            value = source.convert(cells[0]) if source.convert is not None else cells[0]
            outcome, message = self.value_of(value)
            if message is not None:
                if self.strict:  # the message is an error: the row is rejected, prepare words it
                    return _BAD
                self.warned[key] = [Issue(source.field, message)]
            try:  # one bytes object per outcome, however many cells give it (True is not 1 here)
                same: tuple[type, Any] | None = (type(outcome), outcome)
                shared = self.fragments.get(same)
            except TypeError:  # an unhashable value from a mapping file
                same, shared = None, None
            if shared is None:
                fragment = self.fragment(source.field, outcome)
                shared = _BAD if fragment is None else fragment
                if same is not None:
                    self.fragments[same] = shared
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
        if errors:
            return _BAD
        try:
            out = orjson.dumps(payload)
        except orjson.JSONEncodeError:
            return _BAD
        if warnings:
            self.warned[key] = list(warnings)
        if self.keep:
            review_key = (fields.get("country"), fields.get("state"), fields.get("city"))
            problems: dict[str, str] = {}
            for issue in warnings:
                problems.setdefault(issue.field, issue.message)
            self.info[key] = (review_key, fields, payload, problems)
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
                canonical=_CANONICAL[fields[0]](normalizer) if fields[0] in _CANONICAL else None,
                strict=normalizer.strict,
            )
            for rule, value_of, fields in zip(normalizer.rules, normalizer.values, RULE_FIELDS, strict=True)
        ]
        self.max_metadata = normalizer.options.max_metadata_chars

    def run(self, chunk: Chunk, *, review: bool) -> Normalized | None:
        """The payload lines of ``chunk``'s clean rows, or None when no row of it can be done here."""
        if not self.enabled or not chunk.tabular or self.code is None:
            return None
        n = len(chunk)
        columns = dict(zip(chunk.headers, chunk.arrays(), strict=True))
        codes, code_fragments, code_bad = self._codes(columns, n)
        sent = [None if c is None else sha256_code(c) for c in codes] if self.hash_code else codes
        if self.hash_code:
            code_fragments, code_bad = _python_fragments(sent)
        parts = [code_fragments]
        bads = [code_bad]
        place_index = place_infos = None
        warned: dict[int, list[Issue]] = {}
        for rule in self.rules:
            fragments, bad, indices, keys, marks = rule.run(columns, n)
            parts.append(fragments)
            bads.append(bad)
            if marks is not None:  # the rows sent with this rule's warnings, in rule order
                where = pc.indices_nonzero(marks)
                issues = rule.warned
                for row, at in zip(where.to_pylist(), indices.take(where).to_pylist(), strict=True):
                    warned.setdefault(row, []).extend(issues[keys[at]])
            if rule.keep and review:
                info = rule.info
                place_index, place_infos = indices, [info.get(key) for key in keys]
        meta, meta_bad = self._metadata(columns, n)
        parts.append(meta)
        bads.append(meta_bad)
        lines = pc.binary_join_element_wise(*parts, _CLOSE_SCALAR, _EMPTY_SCALAR)
        flagged = [b for b in bads if b is not None]
        bad_rows: set[int] = {*chunk.errors, *chunk.warnings}
        if flagged:
            any_bad = flagged[0]
            for more in flagged[1:]:
                any_bad = pc.or_(any_bad, more)
            bad_rows.update(pc.indices_nonzero(any_bad).to_pylist())
        for row in bad_rows.intersection(warned):
            del warned[row]
        return Normalized(lines, sorted(bad_rows), codes, sent, place_index, place_infos, warned)

    def _codes(self, columns: dict[str, Any], n: int) -> tuple[list[str | None], Any, Any]:
        """(code per row or None, its ``{"code":...`` fragment per row, bad flag per row or None)."""
        source = self.code
        assert source is not None
        limit = self.normalizer.options.max_code_length
        slow = self._code_of
        if source.column is None or source.convert is not None:
            if source.column is None:
                values: Sequence[Any] = [source.constant] * n
            else:
                values = [source.convert(v) for v in columns[source.column].to_pylist()]  # type: ignore[misc]
            codes = [
                c if type(v) is str and (c := v.strip()) and c[0] != "'" and len(c) <= limit else slow(v)
                for v in values
            ]
            fragments, bad = _python_fragments(codes)
            return codes, fragments, bad
        column = columns[source.column]
        # Codes that need a closer look: empty, a blank or apostrophe or non-ASCII at an end (strip
        # decides), a character JSON escapes, or too long. All others are sent as written.
        odd = pc.or_(pc.match_substring_regex(column, _ODD_CODE), pc.greater(pc.utf8_length(column), limit))
        codes: list[str | None] = column.to_pylist()  # type: ignore[no-redef]
        fragments = pc.binary_join_element_wise(_CODE_OPEN, column.cast(pa.binary()), _QUOTE, _EMPTY_SCALAR)
        bad = None
        if pc.any(odd).as_py():
            where = pc.indices_nonzero(odd).to_pylist()
            for index in where:
                v = codes[index]
                codes[index] = c if type(v) is str and (c := v.strip()) and c[0] != "'" and len(c) <= limit else slow(v)
            fixed, fixed_bad = _python_fragments([codes[i] for i in where])
            fragments = pc.replace_with_mask(fragments, odd, fixed)
            if fixed_bad is not None:
                bad = pc.replace_with_mask(pa.repeat(pa.scalar(False), n), odd, fixed_bad)
        return codes, fragments, bad

    def _code_of(self, value: Any) -> str | None:
        """The code of an unusual cell (a leading apostrophe, say), or None when it is no code."""
        payload: dict[str, Any] = {}
        errors: list[Issue] = []
        self.normalizer.code_rule({"code": value}.get, payload, errors, [])
        code = payload.get("code")
        return code if not errors and type(code) is str else None

    def _metadata(self, columns: dict[str, Any], n: int) -> tuple[Any, Any]:
        """(``,"metadata":{...}`` of each row's non-blank extra columns or "" without any, bad flag
        per row or None): a row with JSON metadata text or possibly too long metadata is prepared alone."""
        fragments = []
        refused = None  # rows with a cell orjson refuses (a lone surrogate cannot come from arrow, but JSON can)
        for column, key in self.meta_pairs:
            cells = columns[column]
            prefix = b"," + orjson.dumps(key) + b":"
            encoded = pc.dictionary_encode(cells)
            if len(encoded.dictionary) * 4 <= n:  # few distinct values: worked out once each
                fragment, marks = _cell_fragments(encoded.dictionary, prefix)
                fragment = fragment.take(encoded.indices)
                marks = None if marks is None else marks.take(encoded.indices)
            else:
                fragment, marks = _cell_fragments(cells, prefix)
            fragments.append(fragment)
            if marks is not None:
                refused = marks if refused is None else pc.or_(refused, marks)
        bad = refused
        if not fragments:
            out = pa.repeat(_EMPTY_SCALAR, n)
        else:
            joined = pc.binary_join_element_wise(*fragments, _EMPTY_SCALAR) if len(fragments) > 1 else fragments[0]
            length = pc.binary_length(joined)
            none = pc.equal(length, 0)
            # Without the first fragment's comma (binary_slice fails on all-empty arrays in pyarrow 26).
            inner = pc.binary_replace_slice(joined, 0, 1, b"")
            wrapped = pc.binary_join_element_wise(_METADATA_SCALAR, inner, _CLOSE_SCALAR, _EMPTY_SCALAR)
            out = pc.if_else(none, _EMPTY_SCALAR, wrapped)
            # Possibly too long once escaped: measured by prepare, row by row.
            long = pc.greater(pc.add(pc.multiply(length, 6), 2), self.max_metadata)
            bad = long if bad is None else pc.or_(bad, long)
        if self.json_column is not None:
            texts = pc.invert(_blank(columns[self.json_column]))
            bad = texts if bad is None else pc.or_(bad, texts)
        return out, bad


#: A birth date in ISO or day/month/year form whose day and month are valid in any year (day up to
#: 28): its year is all ``Normalizer.year_value`` reads from it (RE2 syntax, ASCII digits).
_ISO_DATE = r"^(?P<year>[0-9]{4})-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])$"
_DMY_DATE = r"^(?:0?[1-9]|1[0-9]|2[0-8])[-/.](?:0?[1-9]|1[0-2])[-/.](?P<year>[0-9]{4})$"


def _year_keys(normalizer: Normalizer) -> Callable[[Any], Any]:
    """Birth-date cells with a plausible year in a common date form replaced by that year: the
    same yearBorn (no message is written for a plausible year), one rule call per year."""
    low, high = str(MIN_YEAR), str(normalizer.this_year)

    def keys(cells: Any) -> Any:
        years = pc.coalesce(
            pc.struct_field(pc.extract_regex(cells, _ISO_DATE), "year"),
            pc.struct_field(pc.extract_regex(cells, _DMY_DATE), "year"),
        )
        plausible = pc.fill_null(pc.and_(pc.greater_equal(years, low), pc.less_equal(years, high)), False)
        return pc.if_else(plausible, years, cells)

    return keys


#: Field -> the column-wise key function its rule reads distinct values through.
_CANONICAL: dict[str, Callable[[Normalizer], Callable[[Any], Any]]] = {"yearBorn": _year_keys}


def _cell_fragments(cells: Any, prefix: bytes) -> tuple[Any, Any]:
    """Per cell, ``,"key":"value"`` (``prefix`` is ``,"key":``), "" for a blank cell, and per cell
    whether orjson refused it (or None when none was refused)."""
    joined = pc.binary_join_element_wise(prefix + b'"', cells.cast(pa.binary()), _QUOTE, _EMPTY_SCALAR)
    refused = None
    escape = pc.match_substring_regex(cells, _ESCAPED)
    if pc.any(escape).as_py():
        escaped = [_fragment(prefix, v) for v in cells.filter(escape).to_pylist()]
        flags = [f is _BAD for f in escaped]
        values = pa.array([b"" if flag else f for f, flag in zip(escaped, flags, strict=True)], pa.binary())
        joined = pc.replace_with_mask(joined, escape, values)
        if any(flags):
            refused = pc.replace_with_mask(pa.repeat(pa.scalar(False), len(cells)), escape, pa.array(flags, pa.bool_()))
    return pc.if_else(_blank(cells), _EMPTY_SCALAR, joined), refused


def _blank(cells: Any) -> Any:
    """Per cell, whether it is empty or only whitespace (as ``not cell or cell.isspace()`` says)."""
    return pc.or_(pc.equal(pc.binary_length(cells), 0), pc.match_substring_regex(cells, _SPACES))


def _combinations(arrays: list[Any]) -> tuple[Any, list[tuple[Any, ...]]]:
    """(per row, the index of its distinct combination of cells; the distinct combinations)."""
    encoded = [pc.dictionary_encode(a) for a in arrays]
    dictionaries = [e.dictionary.to_pylist() for e in encoded]
    combined = encoded[0].indices.cast(pa.int64())
    for e, dictionary in zip(encoded[1:], dictionaries[1:], strict=True):
        combined = pc.add(pc.multiply(combined, len(dictionary)), e.indices.cast(pa.int64()))
    distinct = pc.dictionary_encode(combined)
    keys = []
    sizes = [len(d) for d in dictionaries]
    for number in distinct.dictionary.to_pylist():
        cells = []
        for dictionary, size in zip(reversed(dictionaries), reversed(sizes), strict=True):
            number, at = divmod(number, size)
            cells.append(dictionary[at])
        keys.append(tuple(reversed(cells)))
    return distinct.indices, keys


def _python_fragments(codes: Sequence[str | None]) -> tuple[Any, Any]:
    """(``{"code":...`` fragment per code, bad flag per code or None) computed in Python."""
    fragments = [_BAD if c is None else _code_fragment(c) for c in codes]
    flags = [f is _BAD for f in fragments]
    values = pa.array([b"" if flag else f for f, flag in zip(fragments, flags, strict=True)], pa.binary())
    return values, (pa.array(flags, pa.bool_()) if any(flags) else None)


def newline_joined(lines: Any) -> bytes:
    """The lines of an arrow binary array, each followed by a newline, as one bytes object."""
    if len(lines) == 0:
        return b""
    joined = pc.binary_join_element_wise(lines, _NEWLINE_SCALAR, _EMPTY_SCALAR)
    offsets, data = joined.buffers()[1:3]
    first, last = (
        memoryview(offsets).cast("i")[joined.offset],
        memoryview(offsets).cast("i")[joined.offset + len(joined)],
    )
    return bytes(memoryview(data)[first:last])


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
