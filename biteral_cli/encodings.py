"""Byte-level helpers for the reader: encoding detection and a byte stream that knows its offset."""

from __future__ import annotations

import codecs
import contextlib
import io
import zlib
from typing import BinaryIO

from .errors import InputError

#: Bytes that cp1252 leaves undefined; their presence means the file is latin-1, not cp1252.
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
#: C0 control bytes that never appear in a text export (tab, newlines, form feed, ^Z excluded).
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 26))
_BINARY_TABLE = bytes(range(256))


def canonical_encoding(name: str) -> str:
    """Return Python's canonical name for a text codec; raise LookupError if it is not one."""
    info = codecs.lookup(name)
    if not getattr(info, "_is_text_encoding", True):
        raise LookupError(name)
    return info.name


def has_bom(head: bytes) -> bool:
    """Tell whether the bytes start with a UTF-8 or UTF-16 byte order mark."""
    return head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def detect_encoding(head: bytes, *, at_eof: bool) -> str:
    """Pick the codec for a text file from its first block: BOM, else UTF-8, else cp1252/latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=at_eof)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    # Spanish and other European exports are Windows-1252 far more often than ISO-8859-1, and
    # cp1252 is the same except for printable characters in 0x80-0x9F; only bytes it leaves
    # undefined prove latin-1.
    if any(byte in head for byte in _CP1252_UNDEFINED):
        return "latin-1"
    return "cp1252"


def looks_binary(head: bytes, encoding: str | None) -> bool:
    """Tell whether a text file's first block is really binary data (NUL or many control bytes)."""
    if encoding is None and head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if encoding is not None and b"\x00" in "a".encode(encoding):
        return False  # UTF-16/32 text is full of NUL bytes by design
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(_BINARY_TABLE, _BINARY_BYTES))
    return controls * 20 > len(head)


def suggest_encoding(encoding: str) -> str:
    """Name the codec worth trying when a file is not valid in ``encoding``."""
    return "latin-1" if encoding in ("cp1252", "windows-1252") else "cp1252"


def decode_error_message(display: str, encoding: str, offset: int, *, given: bool) -> str:
    """Build the one-line message for bytes that are not valid in the chosen encoding."""
    label = encoding.removesuffix("-sig")
    hint = "check --encoding" if given else f"pass --encoding (e.g. {suggest_encoding(label)})"
    return f"{display}: not valid {label} at byte {offset + 1}; {hint}"


class ByteStream(io.BufferedIOBase):
    """Replays an already-read first block, then the rest of a binary stream, counting bytes.

    The count lets a decode error deep inside a multi-gigabyte file name its byte offset, and
    read errors (a truncated gzip, an I/O error) become InputError instead of tracebacks.
    """

    def __init__(self, prefix: bytes, source: BinaryIO, *, display: str, close_source: bool = True) -> None:
        super().__init__()
        self._prefix = prefix
        self._prefix_pos = 0
        self._source = source
        self._display = display
        self._close_source = close_source
        self.position = 0
        """How many bytes this stream has handed out so far."""

    def readable(self) -> bool:
        """Report that the stream can be read."""
        return True

    def _take_prefix(self, size: int) -> bytes:
        start = self._prefix_pos
        end = len(self._prefix) if size < 0 else min(len(self._prefix), start + size)
        self._prefix_pos = end
        data = self._prefix[start:end]
        if self._prefix_pos >= len(self._prefix):
            self._prefix = b""
            self._prefix_pos = 0
        return data

    def _read_source(self, size: int, *, once: bool) -> bytes:
        try:
            if once and hasattr(self._source, "read1"):
                data = self._source.read1(size if size > 0 else 1 << 16)
            else:
                data = self._source.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{self._display}: cannot read: {exc}") from exc
        return data or b""

    def read1(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` bytes with at most one read of the underlying stream."""
        size = -1 if size is None else size
        data = self._take_prefix(size) if self._prefix else self._read_source(size, once=True)
        self.position += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` bytes, or everything that is left when ``size`` is negative."""
        size = -1 if size is None else size
        parts: list[bytes] = []
        wanted = size
        if self._prefix:
            part = self._take_prefix(wanted)
            parts.append(part)
            if wanted >= 0:
                wanted -= len(part)
        if wanted != 0:
            parts.append(self._read_source(wanted, once=False))
        data = b"".join(parts)
        self.position += len(data)
        return data

    def close(self) -> None:
        """Close this stream and, unless it is standard input, the stream it reads from."""
        if not self.closed and self._close_source:
            with contextlib.suppress(OSError):  # closing a read-only handle cannot lose data
                self._source.close()
        super().close()


def read_block(stream: BinaryIO, size: int, *, display: str) -> bytes:
    """Read up to ``size`` bytes (all when negative), looping over short reads; wrap errors."""
    parts: list[bytes] = []
    remaining = size
    try:
        while remaining != 0:
            chunk = stream.read(1 << 20 if remaining < 0 else remaining)
            if not chunk:
                break
            parts.append(chunk)
            if remaining > 0:
                remaining -= len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{display}: cannot read: {exc}") from exc
    return b"".join(parts)
