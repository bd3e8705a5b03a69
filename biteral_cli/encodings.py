"""Byte-level helpers for the reader: encoding detection and a byte stream that knows its offset."""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

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
        self.name = display  # what a TextIOWrapper over it reports as its name
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


class Readable(Protocol):
    """Anything with a binary ``read``: a file, standard input, a GzipFile."""

    def read(self, size: int = -1, /) -> bytes: ...


def read_block(stream: Readable, size: int, *, display: str) -> bytes:
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


# --------------------------------------------------------------------------------------------
# Files that mix encodings, and lines that cannot be decoded

#: The name shown for UTF-8 text some of whose lines are cp1252 (each line read as what it is).
MIXED = "utf-8+cp1252"
#: Codec error handler that reads bytes invalid in UTF-8 as cp1252 (latin-1 where cp1252 has none).
FALLBACK_ERRORS = "biteral-cp1252"
_CP1252_CHARS = "".join(
    bytes([b]).decode("latin-1") if bytes([b]) in _CP1252_UNDEFINED else bytes([b]).decode("cp1252") for b in range(256)
)
#: Characters ``surrogateescape`` puts in place of undecodable bytes; UTF-8/16 decoders never
#: produce lone surrogates themselves, so finding one means the line held bytes the codec refused.
ESCAPED = re.compile("[\udc80-\udcff]")


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_CP1252_CHARS[b] for b in bad), exc.end


codecs.register_error(FALLBACK_ERRORS, _cp1252_fallback)


def escaped_byte(text: str) -> int | None:
    """The first byte ``surrogateescape`` stood in for in ``text``, or None when there is none."""
    found = ESCAPED.search(text)
    return None if found is None else ord(found.group()) - 0xDC00


def decoding(encoding: str) -> tuple[str, str]:
    """The codec and error handler that read text detected as ``encoding`` line by line as what it is."""
    if encoding == MIXED:
        return "utf-8", FALLBACK_ERRORS
    return encoding, "strict"


@dataclass
class Scan:
    """What a pass over every byte of a file found about its encoding."""

    utf8_lines: int = 0
    """Lines holding non-ASCII text that is valid UTF-8."""
    other_lines: list[int] = field(default_factory=list)
    """Line numbers (1-based) of lines that are not valid UTF-8."""
    undefined: bool = False
    """Whether such a line holds a byte that cp1252 leaves undefined (so it is latin-1)."""
    apostrophes: bool = False
    """Whether the text holds an apostrophe anywhere (a text marker or a report's guard may need removing)."""

    def encoding(self, *, bom: bool) -> str:
        """The encoding to read the file with: UTF-8, cp1252/latin-1, or UTF-8 with cp1252 lines."""
        if not self.other_lines:
            return "utf-8-sig" if bom else "utf-8"
        if self.utf8_lines or bom:
            return MIXED
        return "latin-1" if self.undefined else "cp1252"


def scan_utf8(stream: BinaryIO, *, display: str, block: int = 1 << 16) -> Scan:
    """Read a whole stream and tell, line by line, which lines are UTF-8 and which are not.

    Works on bytes, a block at a time: an ASCII or valid UTF-8 block costs one C-level check,
    and only blocks with a bad byte are looked at line by line.
    """
    scan = Scan()
    carry = b""
    line = 0
    while True:
        data = read_block(stream, block, display=display)
        at_eof = not data
        buf = carry + data
        if not at_eof:
            cut = buf.rfind(b"\n") + 1 or _char_boundary(buf)  # a one-line JSON has no newline
            buf, carry = buf[:cut], buf[cut:]
        if not scan.apostrophes and b"'" in buf:
            scan.apostrophes = True
        if buf and not buf.isascii():
            try:
                buf.decode("utf-8")
            except UnicodeDecodeError:
                _scan_lines(buf, line, scan)
            else:
                scan.utf8_lines += 1
        line += buf.count(b"\n")
        if at_eof:
            return scan


def _char_boundary(buf: bytes) -> int:
    """The last position in ``buf`` that cannot split a UTF-8 sequence (before a trailing lead byte)."""
    end = len(buf)
    for back in range(1, min(4, end) + 1):  # a UTF-8 sequence is at most 4 bytes long
        byte = buf[end - back]
        if byte >= 0xC0:
            return end - back
        if byte < 0x80:
            break
    return end


def _scan_lines(buf: bytes, line: int, scan: Scan) -> None:
    for number, text in enumerate(buf.split(b"\n"), line + 1):
        if text.isascii():
            continue
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            scan.other_lines.append(number)
            if not scan.undefined and any(byte in text for byte in _CP1252_UNDEFINED):
                scan.undefined = True
        else:
            scan.utf8_lines += 1


def check_decodes(stream: BinaryIO, encoding: str, *, display: str, block: int = 1 << 16) -> None:
    """Decode a whole stream in ``encoding`` (bytes in, nothing kept); raise InputError at the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    lines = 0
    while True:
        data = read_block(stream, block, display=display)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = offset + exc.start - (len(exc.object) - len(data))
            before = exc.object[: exc.start].decode(encoding, errors="replace").count("\n")
            raise InputError(
                f"{display}: not valid {encoding.removesuffix('-sig')} at byte {at + 1} (line {lines + before + 1}); "
                "check --encoding"
            ) from exc
        lines += text.count("\n")
        offset += len(data)
        if not data:
            return
