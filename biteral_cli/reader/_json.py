"""JSON Lines and JSON arrays, read strictly and streamed."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import InputError
from ..records import SourceRow
from ._common import _JSON_WS, MAX_JSON_VALUE_CHARS

_JSON_CHUNK_CHARS = 1 << 20


class _StrictJson:
    """A JSON decoder that notes duplicate keys and NaN/Infinity instead of silently accepting them."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.decoder = json.JSONDecoder(object_pairs_hook=self._pairs, parse_constant=self._constant)

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    self.problems.append(f"duplicate key {key!r}")
                    break
                seen.add(key)
        return result

    def _constant(self, name: str) -> None:
        self.problems.append(f"{name} is not valid JSON")


# A decoded JSON string can hold a lone UTF-16 surrogate only if the text spelled one as an escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PROBLEM = "a lone UTF-16 surrogate escape (such as \\ud800) is not text"


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a string that no UTF-8 file or API could carry."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _looks_like_json_lines(text: str) -> bool:
    """Tell whether text starting with ``{`` has a complete object on its first line and more after."""
    first, _, rest = text.partition("\n")
    try:
        value = json.loads(first)
    except ValueError:
        return False
    return isinstance(value, dict) and bool(rest.strip())


def _jsonl_rows(
    name: str, text: io.TextIOWrapper, strict: _StrictJson, undecodable: Callable[[int, str], str | None] | None
) -> Iterator[SourceRow]:
    decode = strict.decoder.decode
    problems = strict.problems
    for number, line in enumerate(text, 1):
        if not line.strip():
            continue
        if undecodable is not None and (problem := undecodable(number, line)) is not None:
            yield SourceRow(source=name, row=number, cells={}, error=problem)
            continue
        if number == 1 and line.startswith("\ufeff"):
            line = " " + line[1:]  # keep the column numbers of errors right
        try:
            value = decode(line)
        except json.JSONDecodeError as exc:
            problems.clear()
            problem = f"{exc.msg} at column {exc.colno}"
            yield SourceRow(source=name, row=number, cells={}, error=f"line {number}: invalid JSON: {problem}")
            continue
        if problems:
            error = f"line {number}: invalid JSON: {problems[0]}"
            problems.clear()
            yield SourceRow(source=name, row=number, cells={}, error=error)
        elif "\\u" in line and _SURROGATE_ESCAPE.search(line) and _lone_surrogate(value):
            yield SourceRow(source=name, row=number, cells={}, error=f"line {number}: {_SURROGATE_PROBLEM}")
        elif isinstance(value, dict):
            yield SourceRow(source=name, row=number, cells=value)
        else:
            error = f"line {number}: not a JSON object (found {_json_type(value)})"
            yield SourceRow(source=name, row=number, cells={}, error=error)


class _JsonScanner:
    """Walks a JSON document held in a text stream, one value at a time, with a bounded buffer."""

    def __init__(self, text: io.TextIOWrapper, display: str, strict: _StrictJson) -> None:
        self.display = display
        self.strict = strict
        self._text = text
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in the text already dropped from the buffer
        self._column_base = 0  # characters since the last dropped newline
        self._started = False

    def _fill(self, at_least: int = 0) -> bool:
        if self._eof:
            return False
        if self._pos:
            dropped = self._buf[: self._pos]
            newlines = dropped.count("\n")
            if newlines:
                self._lines_before += newlines
                self._column_base = len(dropped) - dropped.rfind("\n") - 1
            else:
                self._column_base += len(dropped)
            self._buf = self._buf[self._pos :]
            self._pos = 0
        chunk = self._text.read(max(at_least, _JSON_CHUNK_CHARS))
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def peek(self) -> str:
        """Skip whitespace and return the next character, or ``""`` at the end of the text."""
        while True:
            self._pos = _JSON_WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                if not self._started:
                    self._started = True
                    if self._buf[self._pos] == "\ufeff":  # a BOM left by an explicit --encoding utf-8
                        self._pos += 1
                        continue
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, char: str, what: str) -> None:
        """Consume ``char`` after optional whitespace, or raise InputError saying ``what`` was expected."""
        if self.peek() != char:
            raise self.error_here(f"expected {what}")
        self._pos += 1

    def value(self) -> Any:
        """Decode the next complete JSON value, reading more text as needed."""
        self.peek()
        while True:
            self.strict.problems.clear()
            try:
                value, end = self.strict.decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                truncated = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._buf) - 16
                if truncated and not self._eof:
                    self._grow()
                    continue
                raise self.error(exc.pos, exc.msg) from exc
            if end >= len(self._buf) and not self._eof and not isinstance(value, (dict, list, str)):
                self._grow()  # a number at the end of the buffer may go on in the next chunk
                continue
            self._pos = end
            return value

    def _grow(self) -> None:
        pending = len(self._buf) - self._pos
        if pending > MAX_JSON_VALUE_CHARS:
            raise InputError(
                f"{self.display}: a JSON value near line {self._line_col(self._pos)[0]} is larger "
                f"than {MAX_JSON_VALUE_CHARS >> 20} MB or never ends"
            )
        self._fill(pending)  # doubling keeps re-parsing a big value linear overall

    def _line_col(self, pos: int) -> tuple[int, int]:
        newlines = self._buf.count("\n", 0, pos)
        line = self._lines_before + newlines + 1
        column = pos - self._buf.rfind("\n", 0, pos) if newlines else self._column_base + pos + 1
        return line, column

    def error_here(self, message: str) -> InputError:
        """Build the InputError for broken JSON at the current position."""
        return self.error(self._pos, message)

    def error(self, pos: int, message: str) -> InputError:
        """Build the InputError for broken JSON at buffer position ``pos``."""
        line, column = self._line_col(pos)
        return InputError(f"{self.display}: invalid JSON at line {line}, column {column}: {message}")

    def skip_array_rest(self) -> None:
        """Consume the rest of an array whose ``[`` and first value were already consumed."""
        while True:
            char = self.peek()
            if char == "]":
                self._pos += 1
                return
            self.take(",", "',' or ']'")
            self.value()


def _json_rows(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    first = scanner.peek()
    if first == "[":
        scanner.take("[", "'['")
        yield from _json_elements(name, scanner)
    else:
        yield from _json_wrapped(name, scanner)
    if scanner.peek():
        raise scanner.error_here("unexpected text after the end of the JSON document")


def _json_elements(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    """Yield the records of an array whose ``[`` was consumed, through its ``]``."""
    if scanner.peek() == "]":
        scanner.take("]", "']'")
        return
    index = 0
    while True:
        index += 1
        value = scanner.value()
        problems = scanner.strict.problems
        if problems:
            error = f"element {index}: invalid JSON: {problems[0]}"
            yield SourceRow(source=name, row=index, cells={}, error=error)
        elif _lone_surrogate(value):
            yield SourceRow(source=name, row=index, cells={}, error=f"element {index}: {_SURROGATE_PROBLEM}")
        elif isinstance(value, dict):
            yield SourceRow(source=name, row=index, cells=value)
        else:
            error = f"element {index}: not a JSON object (found {_json_type(value)})"
            yield SourceRow(source=name, row=index, cells={}, error=error)
        char = scanner.peek()
        if char == "]":
            scanner.take("]", "']'")
            return
        scanner.take(",", f"',' or ']' after element {index}")


def _json_wrapped(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    """Yield the records of the first member of a top-level object that is an array of objects."""
    scanner.take("{", "'{'")
    found = False
    if scanner.peek() != "}":
        while True:
            key = scanner.value()
            if not isinstance(key, str):
                raise scanner.error_here("expected a member name")
            scanner.take(":", "':'")
            if not found and scanner.peek() == "[":
                scanner.take("[", "'['")
                if scanner.peek() in ("{", "]"):
                    found = True
                    yield from _json_elements(name, scanner)
                else:
                    scanner.value()
                    scanner.skip_array_rest()
            else:
                scanner.value()
            if scanner.peek() == "}":
                break
            scanner.take(",", "',' or '}'")
    scanner.take("}", "'}'")
    if not found:
        raise InputError(
            f"{scanner.display}: is a single JSON object, not a list of records; expected "
            '[{...}, ...], JSON Lines, or an object holding one list such as {"customers": [...]}'
        )
