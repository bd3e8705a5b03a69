"""Resume checkpoints: an append-only file of rows the API confirmed, tied to the inputs' hashes.

File format (text, UTF-8)::

    {"biteral-import-checkpoint": 1, "inputs": [["customers.csv", "<hash>"], ...]}
    0\t2
    0\t3
    1\t17

The first line is a JSON header naming every input and its content hash; each further line is
``<input index>\\t<row>`` for one confirmed row. A run killed mid-write leaves at most one partial
last line: it is ignored and cut off when the checkpoint is resumed, so appends stay well-formed.

Durability: ``confirm`` flushes to the OS after every call (a killed process loses nothing) but
fsyncs only on ``close``; an fsync per batch would cost more than the upload at a million rows,
and a power cut merely re-sends a few batches, which the API's upsert makes harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from biteral_cli.errors import InputError, ReportError, UsageError

_MAGIC = "biteral-import-checkpoint"
_VERSION = 1
_CHUNK = 1 << 20


def default_checkpoint_path(failures_path: Path) -> Path:
    """The checkpoint's place next to the failure report: ``<failures file name>.checkpoint``."""
    return failures_path.with_name(failures_path.name + ".checkpoint")


def content_hash(path: Path) -> str:
    """A hex digest of the file's bytes, equal for equal content on every machine."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


class Checkpoint:
    """Append-only record of rows the API confirmed, keyed by the inputs' content hashes."""

    def __init__(self, path: Path, file: IO[bytes], sources: list[str], done: dict[str, set[int]]) -> None:
        """Use ``Checkpoint.open``; this only assembles an already opened checkpoint."""
        self.path = path
        self._file: IO[bytes] | None = file
        self._index = {source: i for i, source in enumerate(sources)}
        self._done = done
        self.done_count = sum(len(rows) for rows in done.values())
        self.note: str | None = None
        """Something the user should be told (e.g. ``--resume`` found no checkpoint), or None."""

    @classmethod
    def open(cls, path: Path, *, input_hashes: dict[str, str], resume: bool) -> Checkpoint:
        """Start a new checkpoint, or with ``resume`` continue the one at ``path`` for these inputs.

        Resuming a checkpoint written for other input content raises UsageError; resuming when
        there is no checkpoint starts afresh and says so in ``note``.
        """
        sources = list(input_hashes)
        note: str | None = None
        if resume:
            loaded = _load(path, input_hashes)
            if loaded is not None:
                # Row lines refer to inputs by their position in the stored header.
                sources, done, good_end = loaded
                try:
                    file = open(path, "r+b")  # noqa: SIM115
                    file.truncate(good_end)
                    file.seek(good_end)
                except OSError as exc:
                    raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
                return cls(path, file, sources, done)
            note = f"no checkpoint at {path}; starting from the first row"
        header = {_MAGIC: _VERSION, "inputs": [[s, h] for s, h in input_hashes.items()]}
        try:
            file = open(path, "w+b")  # noqa: SIM115
            file.write(json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n")
            file.flush()
        except OSError as exc:
            raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
        checkpoint = cls(path, file, sources, {s: set() for s in sources})
        checkpoint.note = note
        return checkpoint

    def is_done(self, source: str, row: int) -> bool:
        """True when an earlier (or this) run recorded the row as confirmed by the API."""
        rows = self._done.get(source)
        return rows is not None and row in rows

    def tracks(self, source: str) -> bool:
        """True when rows of ``source`` can be recorded: standard input has no content hash to resume."""
        return source in self._index

    def confirm(self, rows: Iterable[tuple[str, int]]) -> None:
        """Record rows the API confirmed; call only after the confirmation arrived."""
        if self._file is None:
            raise ValueError(f"checkpoint {self.path} is closed")
        lines: list[str] = []
        for source, row in rows:
            index = self._index.get(source)
            if index is None:
                raise ValueError(f"{source!r} is not one of the checkpoint's inputs")
            done = self._done[source]
            if row not in done:
                done.add(row)
                self.done_count += 1
                lines.append(f"{index}\t{row}\n")
        if not lines:
            return
        try:
            self._file.write("".join(lines).encode("ascii"))
            self._file.flush()
        except OSError as exc:
            raise ReportError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self, *, completed: bool) -> None:
        """Flush to disk; ``completed`` (no row left to retry) deletes the file rather than keep it.

        The caller passes ``completed=True`` when the run reached the end and no row failed, so a
        later ``--resume`` would have nothing to send; otherwise the file stays for ``--resume``.
        """
        file, self._file = self._file, None
        try:
            if file is not None:
                file.flush()
                os.fsync(file.fileno())
                file.close()
            if completed:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise ReportError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # An exception means the run did not finish: keep the checkpoint for --resume.
        self.close(completed=False)


def _load(path: Path, input_hashes: dict[str, str]) -> tuple[list[str], dict[str, set[int]], int] | None:
    """The checkpoint's inputs in stored order, its confirmed rows, and where its last line ends."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReportError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    first_end = data.find(b"\n")
    header: object = None
    if first_end >= 0:
        try:
            header = json.loads(data[:first_end])
        except ValueError:
            header = None
    if not isinstance(header, dict) or header.get(_MAGIC) != _VERSION:
        raise UsageError(f"{path} is not a biteral-import checkpoint (or is damaged); run without --resume")
    inputs = header.get("inputs")
    try:
        stored = {str(source): str(digest) for source, digest in inputs}  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path} is a damaged checkpoint; run without --resume") from exc
    if stored != input_hashes:
        raise UsageError(f"the input changed since the checkpoint {path} was written; run without --resume")
    sources = list(stored)
    done: dict[str, set[int]] = {s: set() for s in sources}
    lines = data[first_end + 1 :].split(b"\n")
    # The last piece is empty after a clean write, or a partial line from a run killed mid-write:
    # either way it is ignored and cut off before appending.
    good_end = len(data) - len(lines.pop())
    for line in lines:
        index_text, _, row_text = line.partition(b"\t")
        try:
            index, row = int(index_text), int(row_text)
        except ValueError:
            continue
        if 0 <= index < len(sources):
            done[sources[index]].add(row)
    return sources, done, good_end
