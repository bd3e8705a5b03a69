"""One import run: wires read -> map -> normalize -> batch -> upload -> report, and nothing else.

``run_import(settings)`` works without Typer; the CLI builds the settings and calls it. Errors
found before anything is sent propagate as ``BiteralImportError``; once sending has started, an
abort (refused key, API down, ``--max-errors``, Ctrl-C, unreadable input) still writes every
report and returns a ``Summary`` whose ``exit_code`` says what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import itertools
import json
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console

from .batching import BatchCounter, SeenCodes, batches, chunks
from .checkpoint import Checkpoint, default_checkpoint_path
from .chunk import Chunk
from .columnar import ChunkNormalizer, Normalized, newline_joined, sha256_code
from .entities import entity_named
from .errors import (
    EXIT_ABORTED,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    AbortError,
    BiteralImportError,
    InputError,
    UsageError,
)
from .held import Held
from .mapping import Mapping, build_mapping, personal_kind
from .normalize import Normalizer
from .outcomes import BUDGET_ROWS, Outcomes, Ref, reason_key
from .progress import Progress
from .reader import Source, content_hash, open_source
from .records import Extracted, Issue, Prepared, SourceRow
from .report import (
    RowOrdered,
    RowReport,
    Summary,
    check_writable,
    create_private,
    report_format,
    retire_old_report,
    summary_line,
    summary_table,
    write_summary_json,
)
from .review import LocationReview
from .settings import ImportSettings
from .state import (
    NO_COLUMN,
    Decision,
    SyncState,
    changes_table,
    compare_decisions,
    fingerprint,
    fingerprints,
    shard_of,
)
from .upload import (
    ChunksAhead,
    Item,
    RateLearner,
    Secret,
    UploadResult,
    UploadSettings,
    check_status,
    upload,
)

#: Rows read ahead of normalization to decide per-column questions (what a bare "M" means).
SAMPLE_ROWS = 1000
#: The standard library's encoder, for the rare payload orjson refuses (an integer beyond 64 bits).
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _encode(payload: dict[str, object]) -> bytes:
    """Compact UTF-8 JSON of one payload: what ``json`` would write (floats may be spelled
    differently, e.g. 1e16 for 1e+16), about 20 times faster, which matters at a million rows."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return _json_encode(payload).encode()


#: The run's clock for its duration (a test replaces it; asyncio keeps the real one).
_clock = time.monotonic

#: Products compared with the sync state at once (one SQL query each); customers go a chunk at a time.
STATE_CHUNK = 1000


@dataclass(slots=True)
class Input:
    """One opened input with its mapping, its first chunks read ahead and its normalizers."""

    source: Source
    mapping: Mapping
    chunks: Iterator[Chunk]  # the chunks after the sample
    sample: list[Chunk]
    broken: BiteralImportError | None
    normalizer: Normalizer
    columnar: ChunkNormalizer | None
    """None for an entity whose records are built from rows, not columns (products)."""


class DecisionsChangedError(BiteralImportError):
    """This run would read the input differently from the run the state recorded (exit 2)."""


class MassChangeError(BiteralImportError):
    """This run would change more of the known records than --max-changed allows (exit 2)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to send, and with which key."""

    url: str
    key: Secret


def default_failures_path(settings: ImportSettings) -> Path:
    """``<input stem>.failures.csv`` in the current directory (``biteral-import`` for several inputs)."""
    ext = "jsonl" if settings.failures_format == "jsonl" else "csv"
    if len(settings.inputs) == 1:
        name = settings.inputs[0]
        stem = "stdin" if name == "-" else Path(name).name.split(".")[0] or "input"
    else:
        stem = "biteral-import"
    return Path(f"{stem}.failures.{ext}")


class Run(Outcomes):
    """One import: the outcomes it counts (``Outcomes``) and the stream of rows it sends."""

    def __init__(self, settings: ImportSettings, console: Console, out: Console) -> None:
        super().__init__(settings, console)
        self.out = out
        self.failures_path = settings.failures or default_failures_path(settings)
        self.output: IO[bytes] | None = None
        self.learner = RateLearner()  # GET /status and the upload count against the same API limit
        self.seen_codes = SeenCodes()
        self.processed = 0
        self.notes_shown: dict[str, int] = {}
        # Counting each row's places costs a little per row: only when someone will read it.
        self.review = LocationReview() if settings.dry_run or settings.locations_report else None
        self.changes: Changes | None = None
        """With --state: what the state says to send, and how many known records change."""
        self.decided: dict[str, Decision] | None = None
        """Decisions to record in the state once sending starts (None: nothing to record)."""
        self.repeated: set[str] = set()
        """Codes that appear more than once: sent even when the state holds them as they are, so
        that the last of them wins however the state compared the earlier ones."""

    # -- the stream -----------------------------------------------------------------------------
    def chunks(self, inputs: Sequence[Input]) -> Iterator[tuple[Chunk, Input]]:
        """Every chunk of every input with its input, until the run stops; an input that breaks
        stops the run (its rows read before the break come first: none is lost)."""
        for one in inputs:
            self.tally.register(one.source.name)
            one.normalizer.review = self.review
            try:
                for chunk in _drained(one.sample, () if one.broken else one.chunks):
                    if self.stop.is_set():
                        return
                    yield chunk, one
                    del chunk  # hold no chunk while the next is read: memory stays flat
                    if self.stop.is_set():
                        return
                if one.broken is not None:
                    raise one.broken
            except BiteralImportError as exc:
                # The input broke mid-stream (an undecodable byte, say): stop, keep what was done.
                self.halt(f"stopped reading: {exc}", exc)
                return

    def items(self, inputs: Sequence[Input]) -> Iterator[Item]:
        """Read, map and normalize every row; yield what should be sent, account for the rest."""
        if self.changes is not None:
            for group in self.groups(inputs):
                yield from group
            return
        if self.settings.entity == "products":
            from .entities.product_import import product_items

            yield from product_items(self, inputs, _encode)
            return
        seq = itertools.count()
        for chunk, one in self.chunks(inputs):
            yield from self._chunk(chunk, one, seq)

    def dry_run(self, inputs: Sequence[Input]) -> None:
        """Everything but the sending (without --state): the clean rows of a chunk are counted,
        deduplicated, batched and written at once, the others one by one, in row order."""
        settings = self.settings
        counter = BatchCounter(size=settings.batch_size, max_bytes=settings.max_request_bytes)
        seq = itertools.count()
        try:
            for chunk, one in self.chunks(inputs):
                self._dry_chunk(chunk, one, counter, seq)
                del chunk  # hold no chunk while the next is read: memory stays flat
        finally:
            self.batches_sent += counter.batches

    def _dry_chunk(self, chunk: Chunk, one: Input, counter: BatchCounter, seq: Iterator[int]) -> None:
        """One chunk of a dry run: accepted rows written to --output and counted in batches at once."""
        _, rows, codes, lines, repeats = self._take(chunk, one, seq)
        if not rows:
            return
        if self.output is not None:
            self.output.write(newline_joined(lines))
        lengths = pc.binary_length(lines).to_pylist()
        if repeats:
            for code, length in zip(codes, lengths, strict=True):
                counter.add(code, length)
        else:
            counter.add_new(codes, lengths)
        self.tally.add(chunk.source, "accepted", n=len(rows))
        self._advance(len(rows))

    def _take(
        self, chunk: Chunk, one: Input, seq: Iterator[int]
    ) -> tuple[dict[int, Item], list[int], list[str], Any, list[int]]:
        """Normalize a chunk (columnar where it can), settle its flagged rows one by one, take the
        rest at once: (row -> item of the rows prepared alone, the indices of the rows that go on,
        their codes, their payload lines as an arrow array, positions of repeated codes)."""
        assert one.columnar is not None
        done = one.columnar.run(chunk, review=self.review is not None) or Normalized.alone(len(chunk))
        with self._row_ordered_warnings():
            built, limit = self._settle(chunk, done, one, seq)
            rows, codes, lines, repeats = self._accepted(chunk, done, built, limit)
        return built, rows, codes, lines, repeats

    @contextlib.contextmanager
    def _row_ordered_warnings(self) -> Iterator[None]:
        """Within: rows added to the warning report are written in row order at the end."""
        held = self.warnings
        if held is None:
            yield
            return
        ordered = RowOrdered(held)
        self.warnings = ordered
        try:
            yield
        finally:
            ordered.flush()
            self.warnings = held

    def _settle(self, chunk: Chunk, done: Normalized, one: Input, seq: Iterator[int]) -> tuple[dict[int, Item], int]:
        """Account for the rows of a chunk a rule had something to say about, one by one in row order,
        counting the clean rows between them: (row -> item of those to send, the row the run stopped
        at or the chunk's length). Repeated codes are left to ``_accepted``."""
        n = len(chunk)
        chunk.fetch(done.bad)  # the cells of the rows prepared alone, read at once
        items: dict[int, Item] = {}
        start = 0
        for index in (*done.bad, n):
            if self.stop.is_set():
                return items, start
            if start < index:
                counted = self._count_clean(start, index)
                if self.stop.is_set():  # the 100th row may trip a --max-errors percentage
                    return items, counted
            if index < n:
                item = self._one(chunk, index, one, next(seq))
                if item is not None:
                    items[index] = item
            start = index + 1
        return items, n

    def _count_clean(self, start: int, end: int) -> int:
        """Count clean rows ``start`` to ``end`` as processed; where counting stopped (a --max-errors
        percentage is first checked at the 100th row, and may stop the run there)."""
        if self.bad and self.processed < BUDGET_ROWS < self.processed + end - start:
            cut = start + BUDGET_ROWS - self.processed
            self.count_processed(cut - start)
            if self.stop.is_set():
                return cut
            start = cut
        self.count_processed(end - start)
        return end

    def _accepted(
        self, chunk: Chunk, done: Normalized, items: dict[int, Item], limit: int
    ) -> tuple[list[int], list[str], Any, list[int]]:
        """The rows of a chunk that go on, in row order: the clean rows before ``limit`` (resumed
        ones and other shards' set aside) and the ``items`` of rows prepared alone, as (row
        indices, codes, payload lines as an arrow array, positions of repeated codes); repeats are
        warned, the locations review told."""
        n = len(chunk)
        keep = [True] * limit + [False] * (n - limit)
        for index in done.bad:
            if index < limit:
                keep[index] = False
        checkpoint = self.checkpoint
        if checkpoint is not None and checkpoint.done_count:
            numbers, source, resumed = chunk.rows, chunk.source, 0
            for index in range(limit):
                if keep[index] and checkpoint.is_done(source, numbers[index]):
                    keep[index] = False
                    resumed += 1
            if resumed:
                self.tally.add(source, "accepted", n=resumed)
                self.resumed += resumed
        if done.place_infos is not None and self.review is not None and any(keep):
            clean = done.place_index.filter(pa.array(keep, pa.bool_()))
            infos = done.place_infos
            counts = pc.value_counts(clean).to_pylist()
            self.review.record_counted((infos[entry["values"]], entry["counts"]) for entry in counts)
        if self.settings.shard is not None:
            codes, skipped = done.codes, 0
            for index in range(limit):
                if keep[index] and not self._in_shard(codes[index]):
                    keep[index] = False
                    skipped += 1
            if skipped:
                self.tally.add(chunk.source, "skipped", n=skipped)
        lines = done.lines
        sent = done.sent_codes
        if items:
            ordered = sorted(items)
            mask = [False] * n
            sent = list(sent)
            for index in ordered:
                mask[index] = keep[index] = True
                sent[index] = items[index].code
            bodies = pa.array([items[index].body for index in ordered], pa.binary())
            lines = pc.replace_with_mask(lines, pa.array(mask, pa.bool_()), bodies)
        rows = list(compress(range(n), keep))
        if not rows:
            return [], [], None, []
        lines = lines.filter(pa.array(keep, pa.bool_())) if len(rows) < n else lines
        codes_sent: list[str] = list(compress(sent, keep))  # type: ignore[arg-type]
        if done.warned:  # clean rows sent with a rule's warnings: counted (and reported) as prepare would
            self._warned(chunk, [(index, done.warned[index]) for index in rows if index in done.warned])
        repeats = self.seen_codes.add_many(codes_sent)
        if repeats:
            chunk.fetch([rows[k] for k in repeats])
            for k in repeats:
                self._repeated(chunk.row(rows[k]), codes_sent[k])
        return rows, codes_sent, lines, repeats

    def _warned(self, chunk: Chunk, rows: list[tuple[int, list[Issue]]]) -> None:
        """Count the warnings of rows taken at once, and add them to the warning report, in row order."""
        if not rows:
            return
        source = chunk.source
        if self.warnings is not None:
            chunk.fetch([index for index, _ in rows])
        for index, issues in rows:
            row = chunk.row(index) if self.warnings is not None else None
            for issue in issues:
                self.tally.warn(source, reason_key(issue.field, issue.message))
                if row is not None and self.warnings is not None:
                    self.warnings.add(row, stage="validate", field=issue.field, error=issue.message)

    def _chunk(self, chunk: Chunk, one: Input, seq: Iterator[int]) -> Iterator[Item]:
        """The items of one chunk, in row order: clean rows from their column-built lines, the rest
        row by row. Every row the chunk counted is yielded even after a stop (the sender reports
        what it no longer sends as not sent), so the counts add up."""
        built, rows, codes, lines, _ = self._take(chunk, one, seq)
        if not rows:
            return
        bodies: list[bytes] = lines.to_pylist()
        fps = fingerprints(bodies) if self.state is not None else [""] * len(bodies)
        for n, index in enumerate(rows):
            yield built.get(index) or Item(seq=next(seq), code=codes[n], body=bodies[n], ref=Ref(chunk, index, fps[n]))

    def groups(self, inputs: Sequence[Input]) -> Iterator[list[Item]]:
        """What should be sent, a list a chunk (customers) or a group of products, once the sync
        state has had its say: records it holds as they are were counted skipped (with --full
        they are sent too) and the known ones that change are counted in ``changes``."""
        changes = self.changes
        assert changes is not None
        if self.settings.entity == "products":
            from .entities.product_import import product_items

            for group in chunks(product_items(self, inputs, _encode), STATE_CHUNK):
                yield self._compared(group)
            return
        seq = itertools.count()
        for chunk, one in self.chunks(inputs):
            yield self._compared_chunk(chunk, one, seq)

    def _compared(self, items: list[Item]) -> list[Item]:
        """The ``items`` the state says to send; the others counted skipped."""
        assert self.changes is not None
        send = self.changes.sort([item.code for item in items], [item.ref.fingerprint for item in items])
        kept: list[Item] = []
        for item, wanted in zip(items, send, strict=True):
            if wanted:
                kept.append(item)
            else:
                self.tally.add(item.ref.source, "skipped", n=item.ref.size)
        self._advance(0)  # the skipped count shows
        return kept

    def _compared_chunk(self, chunk: Chunk, one: Input, seq: Iterator[int]) -> list[Item]:
        """The items of one chunk the state says to send: clean rows compared in bulk, without an
        item each, the others as built row by row; the rest counted skipped at once."""
        assert self.changes is not None
        built, rows, codes, lines, _ = self._take(chunk, one, seq)
        bodies: list[bytes] = [] if not rows else lines.to_pylist()
        fps = fingerprints(bodies)
        send = self.changes.sort(codes, fps)
        if repeated := self.repeated:
            send = [wanted or code in repeated for wanted, code in zip(send, codes, strict=True)]
        if skipped := len(send) - sum(send):
            self.tally.add(chunk.source, "skipped", n=skipped)
        self._advance(0)
        return [
            built.get(rows[n]) or Item(seq=next(seq), code=codes[n], body=bodies[n], ref=Ref(chunk, rows[n], fps[n]))
            for n in itertools.compress(range(len(send)), send)
        ]

    def _in_shard(self, code: str | None) -> bool:
        """Whether a row with this code (as normalized) belongs to this run's --shard."""
        assert self.settings.shard is not None
        k, n = self.settings.shard
        # Rows with no usable code belong to shard 1, so exactly one shard reports them.
        return (shard_of(code, n) if code else 0) == k - 1

    def _repeated(self, row: SourceRow, code: str) -> None:
        self.repeated.add(code)
        message = f"code '{code}' appears earlier in the input; both are sent in file order, the later values win"
        self.tally.warn(row.source, reason_key("code", message))
        if self.warnings is not None:
            self.warnings.add(row, stage="validate", field="code", error=message)

    def _one(self, chunk: Chunk, index: int, one: Input, seq: int) -> Item | None:
        """Row ``index`` read, normalized and accounted for alone: its item to send, or None (a
        rejected, skipped or resumed row); repeated codes are checked with the chunk (``_accepted``)."""
        row = chunk.row(index)
        self.count_processed()
        if self.checkpoint is not None and self.checkpoint.is_done(row.source, row.row):
            self.tally.add(row.source, "accepted")
            self.resumed += 1
            return None
        extracted = one.mapping.extract(row.cells) if row.error is None else _EMPTY
        prepared: Prepared = one.normalizer.prepare(row, extracted)
        if self.settings.shard is not None and not self._in_shard(prepared.code):
            self.tally.add(row.source, "skipped")
            return None
        if row.warnings:  # what the reader noticed (a number Excel cut to 15 digits) is a warning too
            prepared.warnings[:0] = [Issue(column, message) for column, message in row.warnings]
        for warning in prepared.warnings:
            self.tally.warn(row.source, reason_key(warning.field, warning.message))
            if self.warnings is not None:
                self.warnings.add(row, stage="validate", field=warning.field, error=warning.message)
        if prepared.payload is None:
            errors = prepared.errors or [Issue("", "rejected")]
            field = ",".join(dict.fromkeys(e.field for e in errors))
            message = "; ".join(e.message for e in errors)
            self.reject(row, prepared.stage, field, message, reason=reason_key(errors[0].field, errors[0].message))
            return None
        code = self.final_code(prepared)
        body = _encode(prepared.payload)
        # The fingerprint only matters to the sync state; hashing a million bodies for nothing costs.
        fp = fingerprint(body) if self.state is not None else ""
        return Item(seq=seq, code=code, body=body, ref=Ref(chunk, index, fp))

    def final_code(self, prepared: Prepared) -> str:
        """The code to send for a valid row: as normalized, or its hash with --hash-code sha256
        (the payload is updated to match)."""
        code = prepared.code or ""
        if self.settings.hash_code == "sha256":
            code = hash_code(code)
            assert prepared.payload is not None
            prepared.payload["code"] = code
        return code

    def to_send(self, items: Iterator[Item]) -> Iterator[Item]:
        """Pass items straight on (reading ahead would hold up the requests in flight), writing
        their --output lines; the sync state had its say before (``groups``)."""
        output = self.output
        for item in items:
            if output is not None:
                output.write(item.body + b"\n")
            yield item


#: The most records of the state read into memory at once (``SyncState.preload``, about 120 bytes
#: each); a larger state is asked a query a chunk.
PRELOAD_MAX = 2_000_000
#: Preload once the records compared reach this share of the state (1/32 of it).
PRELOAD_SHARE = 32

#: A run of clean rows of a chunk that may be sent: (row indices, codes, bodies).


class Changes:
    """A run's records against the sync state: which to send, and how many known records change
    (what --max-changed limits)."""

    def __init__(self, state: SyncState, settings: ImportSettings) -> None:
        self.state = state
        self.known = len(state)
        self.send_all = settings.full
        self.holds = self.known > 0 and settings.max_changed < 100
        """Whether nothing may be sent before the whole input is read and the changes counted."""
        self.changed = 0
        self.examples: list[str] = []
        # Once the input looks as large as a good part of the state, reading all of the state at
        # once is cheaper than a query a chunk (a small file of changes never pays for it).
        self.preload_after = self.known // PRELOAD_SHARE if self.known <= PRELOAD_MAX else None
        self.compared = 0
        self.frozen = False

    def close(self) -> None:
        """Hand what ``sort`` froze back to the garbage collector."""
        if self.frozen:
            gc.unfreeze()
            self.frozen = False

    def sort(self, codes: Sequence[str], fps: Sequence[str]) -> list[bool]:
        """Which of these records to send: those the state does not hold as they are (with
        --full, all); known codes whose fingerprint differs are counted as changes."""
        if self.preload_after is not None and self.compared >= self.preload_after:
            self.state.preload()
            self.preload_after = None
            # The garbage collector would walk the million records at every full collection (a
            # set is one object to its accounting, however large): what lives now, the location
            # tables too, stays put until the run ends (``close``).
            gc.freeze()
            self.frozen = True
        self.compared += len(codes)
        send = [self.send_all] * len(codes)
        for index, known in self.state.differing(list(zip(codes, fps, strict=True))):
            send[index] = True
            if known:
                self.changed += 1
                if len(self.examples) < MASS_CHANGE_EXAMPLES:
                    self.examples.append(codes[index])
        return send


def _drained(sample: list[Chunk], rest: Iterable[Chunk]) -> Iterator[Chunk]:
    """The chunks read ahead (taken out of the list as they go, so each is freed after use), then the rest."""
    while sample:
        yield sample.pop(0)
    yield from rest


def hash_code(code: str) -> str:
    """What --hash-code sha256 sends instead of a code: the hex sha256 of its UTF-8 bytes."""
    return sha256_code(code)


def _read_ahead(chunks: Iterator[Chunk], n: int) -> tuple[list[Chunk], BiteralImportError | None]:
    """The first chunks, at least ``n`` rows when the input has them, and the error that stopped
    reading them early, if any."""
    sample: list[Chunk] = []
    try:
        while sum(len(chunk) for chunk in sample) < n and (chunk := next(chunks, None)) is not None:
            sample.append(chunk)
    except BiteralImportError as exc:
        return sample, exc
    return sample, None


#: What a row broken at read time extracts to: the normalizer rejects it on ``row.error``.
_EMPTY = Extracted(fields={})


def open_inputs(settings: ImportSettings, stdin: IO[bytes] | None) -> list[tuple[Source, Mapping]]:
    """Open every input and choose its mapping; any problem is an error before anything is sent."""
    options = settings.read_options()
    choose: Callable[[list[str]], Mapping]
    if settings.entity == "products":
        from .entities.product_import import product_options
        from .entities.products import build_product_mapping

        choose = functools.partial(build_product_mapping, options=product_options(settings))
    else:  # the customer mapping options: their --map fields are customer fields
        choose = functools.partial(build_mapping, options=settings.mapping_options())
    opened: list[tuple[Source, Mapping]] = []
    try:
        for name in settings.inputs:
            source = open_source(name, options, stdin=cast("BinaryIO | None", stdin))
            try:
                mapping = choose(source.headers)
            except InputError as exc:
                source.close()  # no column is usable: say where the right ones may be
                raise InputError(f"{exc}{source.hint()}") from exc
            opened.append((source, mapping))
    except BaseException:
        for source, _ in opened:
            source.close()
        raise
    return opened


def check_code_choice(settings: ImportSettings, sources: Sequence[tuple[Source, Mapping]]) -> None:
    """Refuse an unattended send whose code would fall back to the email column on its own."""
    if not settings.sends or not settings.unattended:
        return
    for source, mapping in sources:
        if mapping.code_from_email:
            column = mapping.field_column("code")
            why = "--state keeps it for later runs" if settings.state is not None else "no terminal"
            raise UsageError(
                f"{'standard input' if source.name == '-' else source.name}: there is no id column, so the "
                f"customer code would be the email column '{column}'; an unattended run ({why}) does not "
                f"choose that on its own: pass --code-column '{column}' (or --map code=COLUMN, or a "
                "--mapping file) to choose it on purpose, or try it first with --dry-run; nothing was sent"
            )


def prepare_inputs(
    settings: ImportSettings, sources: Sequence[tuple[Source, Mapping]], recorded: dict[str, Decision]
) -> list[Input]:
    """Read the first rows of every input ahead and decide its per-column rules (what "M" means,
    falling back to the rule the state recorded when tonight's rows do not tell)."""
    options = settings.normalize_options()
    inputs = []
    for index, (source, mapping) in enumerate(sources):
        chunks = source.chunks()
        sample, broken = _read_ahead(chunks, SAMPLE_ROWS)
        gender_column = mapping.field_column("gender")
        pinned = recorded.get(_decision_name(len(sources), index, _M_RULE))
        gender_sample: list[Any] = []
        if gender_column:
            for chunk in sample:
                gender_sample.extend(chunk.column(gender_column) or ())
        normalizer = Normalizer(
            options,
            gender_header=gender_column,
            gender_sample=gender_sample[:SAMPLE_ROWS],
            m_gender=_M_VALUES.get(pinned.value) if pinned is not None else None,
        )
        columnar = (
            ChunkNormalizer(mapping, normalizer, source.headers, hash_code=settings.hash_code == "sha256")
            if settings.entity == "customers"
            else None  # products are grouped and built from rows (entities/product_import.py)
        )
        inputs.append(Input(source, mapping, chunks, sample, broken, normalizer, columnar))
    return inputs


_M_RULE = "gender 'M' means"
_M_TEXT = {1: "male (1)", 2: "female (2)", None: "undecided (not sent)"}
_M_VALUES = {text: value for value, text in _M_TEXT.items() if value is not None}


def _decision_name(count: int, index: int, name: str) -> str:
    return f"input {index + 1}: {name}" if count > 1 else name


def decisions_of(settings: ImportSettings, inputs: Sequence[Input]) -> dict[str, Decision]:
    """What this run decided about its inputs: the column of every field, value rules (guarded),
    and how each file was read (recorded, shown when it changes, never refused)."""
    decided: dict[str, Decision] = {}
    # The fields one column feeds each (metadata and attributes come from several).
    fields = [f for f in entity_named(settings.entity).fields if f not in ("metadata", "attributes")]
    for index, one in enumerate(inputs):
        mapping, source = one.mapping, one.source

        def put(name: str, value: str, guarded: bool = True, index: int = index) -> None:
            decided[_decision_name(len(inputs), index, name)] = Decision(value, guarded)

        for fld in fields:
            put(f"column for {fld}", mapping.field_column(fld) or NO_COLUMN)
        put("code sent as", "sha256 hex" if settings.hash_code else "the value")
        if mapping.field_column("gender") is not None:
            gender_map = mapping.value_maps.get("gender", {})
            m_rule = f"{gender_map['M']!r} (mapping file)" if "M" in gender_map else None
            put(_M_RULE, m_rule or _M_TEXT[one.normalizer.m_gender])
        for fld, vmap in sorted(mapping.value_maps.items()):
            put(f"values of {fld}", json.dumps(vmap, sort_keys=True, ensure_ascii=False, default=str))
        for fld, default in sorted(mapping.defaults.items()):
            put(f"default of {fld}", json.dumps(default, ensure_ascii=False, default=str))
        put("format", source.format, guarded=False)
        put("encoding", source.encoding or "-", guarded=False)
        put("delimiter", source.delimiter or "-", guarded=False)
        put("sheet", settings.sheet or "-", guarded=False)
    return decided


def check_decisions(run: Run, state: SyncState, decided: dict[str, Decision]) -> None:
    """Refuse (exit 2) when a guarded decision differs from the recorded one, unless
    --accept-changes; mention the unguarded ones that changed."""
    settings = run.settings
    changes = compare_decisions(state.decisions(), decided)
    refused = [c for c in changes if c.refused]
    if refused and not settings.accept_changes:
        raise DecisionsChangedError(
            f"this run would read the input differently from the last run recorded in {settings.state}; "
            "nothing was sent:\n"
            f"{changes_table(refused)}\n"
            "If the change is intended, run again with --accept-changes (the new decisions are recorded "
            "for later runs). To pin the mapping for good: biteral-import map FILE --write-mapping "
            "mapping.toml, then import with --mapping mapping.toml."
        )
    if changes and not (settings.quiet or settings.json):
        for change in changes:
            verb = "accepted" if change.refused else "changed"
            run.console.print(
                f"note: {change.name} {verb} since the last run: {change.before} -> {change.after}",
                style="yellow",
                highlight=False,
                soft_wrap=True,
            )


#: Changed records named in a refused mass change.
MASS_CHANGE_EXAMPLES = 5


def check_mass_change(run: Run, changes: Changes) -> None:
    """Refuse (exit 2) a run that would change more than --max-changed of the records the state
    knows, counted while reading (nothing is sent before: see ``_hold``)."""
    settings = run.settings
    changed, known = changes.changed, changes.known
    if changed * 100 > settings.max_changed * known:
        shown = ", ".join(changes.examples) + (", ..." if changed > len(changes.examples) else "")
        raise MassChangeError(
            f"{changed} of the {known} {settings.entity} known to {settings.state} would change "
            f"({changed * 100 / known:.0f}%), more than --max-changed {settings.max_changed:g}% allows; "
            f"nothing was sent. For example: {shown}. If that is intended (a new column, a fixed "
            "export), run again with --max-changed 100%."
        )


def _check_report_paths(settings: ImportSettings, failures_path: Path) -> None:
    for path in (
        failures_path,
        settings.warnings,
        settings.summary_json,
        settings.output,
        settings.state,
        settings.locations_report,
    ):
        if path is not None:
            check_writable(path)


async def _hold(run: Run, inputs: Sequence[Input], held: Held) -> None:
    """Read the whole input before sending anything: records the state holds as they are are
    counted skipped at once, the others wait in ``held``; then refuse a mass change (nothing sent)."""
    assert run.changes is not None
    for group in run.groups(inputs):
        held.add(group)
        del group
        await asyncio.sleep(0)  # a chunk at a time, a signal can stop the reading
    check_mass_change(run, run.changes)


class _AheadColumnar(ChunkNormalizer):
    """The columnar normalizer of an input whose chunks ``ahead`` reads and normalizes one ahead."""

    def __init__(self, inner: ChunkNormalizer, ahead: ChunksAhead[Chunk, Normalized | None]) -> None:
        self.inner, self.ahead = inner, ahead  # everything else is the inner one's business

    def run(self, chunk: Chunk, *, review: bool) -> Normalized | None:
        return self.inner.run(chunk, review=True) if review else self.ahead.result(chunk)


def _ahead(one: Input) -> Input:
    """``one`` with its next chunk read and normalized in a thread while the requests go
    (``ChunksAhead``): the event loop never stops a few hundred ms for a chunk."""
    if one.columnar is None:
        return one
    ahead = ChunksAhead(one.chunks, functools.partial(one.columnar.run, review=False))
    return dataclasses.replace(one, chunks=ahead, columnar=_AheadColumnar(one.columnar, ahead))


async def _send(run: Run, inputs: Sequence[Input], endpoint: Endpoint | None) -> None:
    settings = run.settings
    if endpoint is None and run.changes is None and settings.entity == "customers":
        run.dry_run(inputs)  # nothing to compare with a sync state (none, or --full without a limit)
        return
    if endpoint is not None and run.review is None:
        inputs = [_ahead(one) for one in inputs]
    with Held() as held, contextlib.ExitStack() as stack:
        if run.changes is not None:
            stack.callback(run.changes.close)
        items = run.items(inputs)
        if run.changes is not None and run.changes.holds:
            try:
                await _hold(run, inputs, held)
            except MassChangeError:
                if run.checkpoint is not None:  # nothing was sent: this run leaves no checkpoint
                    run.checkpoint.close(completed=run.checkpoint.done_count == 0)
                raise
            items = iter(held)
        if run.decided is not None and run.state is not None:
            run.state.record_decisions(run.decided)  # sending starts: later runs compare with these
        await _stream(run, items, endpoint)


async def _stream(run: Run, items: Iterator[Item], endpoint: Endpoint | None) -> None:
    """Batch ``items`` and send them (with --dry-run, count them); what is left unsent fails."""
    settings = run.settings
    stream = batches(run.to_send(items), size=settings.batch_size, max_bytes=settings.max_request_bytes)
    if endpoint is None:  # --dry-run with --state (or of products): everything but the sending
        for batch in stream:
            run.batches_sent += 1
            rows = 0
            for item in batch:
                run.tally.add(item.ref.source, "accepted", n=item.ref.size)
                rows += item.ref.size
            run._advance(rows)
        return
    result = UploadResult()
    try:
        await upload(
            stream,
            upload_settings(settings, endpoint),
            run,
            stop=run.stop,
            result=result,
            learner=run.learner,
            probe=False,  # _check had GET /status accepted with this key and URL just before
        )
    except AbortError as exc:
        run.halt(str(exc), exc)
    run.batches_sent += result.batches
    run.settled_rate = result.settled_rate
    # Rows already read but not handed to the uploader (a partial batch) were never sent.
    reason = f"not sent: {run.stop_reason}" if run.stop_reason else "not sent"
    for batch in stream:
        for item in batch:
            for row in item.ref.rows:
                run.fail(row, reason)


def _install_signal_handlers(run: Run) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig, code in ((signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, EXIT_SIGTERM)):

        def handler(sig: signal.Signals = sig, code: int = code) -> None:
            run.halt(f"interrupted by {sig.name}; in-flight requests were allowed to finish", exit_code=code)
            loop.remove_signal_handler(sig)  # a second signal ends the process the default way

        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests run us in-process): no handlers
    return installed


def _exit_code(run: Run) -> int:
    if run.exit_override is not None:
        return run.exit_override
    totals = run.tally.totals
    if run.error is not None:
        # Input that breaks mid-file after customers were sent is an aborted run, not "nothing sent".
        if run.error.exit_code == EXIT_USAGE and totals.accepted and not run.settings.dry_run:
            return EXIT_ABORTED
        return run.error.exit_code
    if run.stop_reason is not None:
        return EXIT_ABORTED
    return EXIT_SOME_FAILED if totals.rejected or totals.failed else EXIT_OK


def show_stored(console: Console, endpoint: Endpoint, codes: Sequence[str], entity: str = "customers") -> None:
    """Print a few records (customers, products) as the API returns them, so the user sees what landed."""
    if not codes:
        return
    path, key = entity_named(entity).path, entity_named(entity).key
    console.print(f"Stored in the sandbox, as GET {path} returns them:", style="bold")
    headers = {"X-API-Key": endpoint.key.reveal(), "X-API-Version": "1", "Accept": "application/json"}
    with httpx.Client(base_url=endpoint.url, headers=headers, timeout=10) as client:
        for code in codes:
            response = client.get(path, params={key: code})
            if response.status_code == 200:
                payload = response.json().get("payload", {})
                console.print("  " + json.dumps(payload, ensure_ascii=False), highlight=False, soft_wrap=True)


def run_import(
    settings: ImportSettings,
    *,
    console: Console | None = None,
    out: Console | None = None,
    stdin: IO[bytes] | None = None,
) -> Summary:
    """Run one import as ``settings`` say and return its summary (reports written, nothing lost)."""
    console = console or Console(stderr=True)
    out = out or Console()
    run = Run(settings, console, out)
    _check_report_paths(settings, run.failures_path)
    with contextlib.ExitStack() as stack:
        sources = open_inputs(settings, stdin)
        for source, _ in sources:
            stack.callback(source.close)
        check_code_choice(settings, sources)
        if not (settings.quiet or settings.json):
            # What detection and mapping decided on the user's behalf (a misnamed file, a column
            # that lost to another) is worth a line before anything is sent.
            for note in [n for source, mapping in sources for n in (*source.notes, *mapping.notes)]:
                console.print(f"note: {note}", style="yellow", highlight=False, soft_wrap=True)
        if settings.state is not None:
            run.state = SyncState.open(settings.state)
            stack.callback(run.state.close)
        inputs = prepare_inputs(settings, sources, run.state.decisions() if run.state is not None else {})
        if run.state is not None:
            decided = decisions_of(settings, inputs)
            check_decisions(run, run.state, decided)
            changes = Changes(run.state, settings)
            if changes.holds or not settings.full:  # else: everything is sent, nothing to compare
                run.changes = changes
            if settings.sends:
                run.decided = decided
        run.notes_shown = {source.name: len(source.notes) for source, _ in sources}
        endpoint = None
        if settings.sends:
            endpoint = stack.enter_context(_endpoint(settings))
            asyncio.run(_check(settings, endpoint, run.learner))
        summary = _run(run, stack, inputs, endpoint)
        if endpoint is not None and settings.sandbox and not settings.quiet and not settings.json:
            show_stored(out, endpoint, run.shown_codes, settings.entity)
    return summary


def upload_settings(settings: ImportSettings, endpoint: Endpoint) -> UploadSettings:
    """The uploader's settings for this run: where to send, with which key, how fast."""
    return settings.upload_settings(endpoint.url, endpoint.key)


async def _check(settings: ImportSettings, endpoint: Endpoint, learner: RateLearner | None = None) -> dict[str, Any]:
    # A wrong key or URL must fail in seconds, whatever --timeout allows a big batch.
    quick = dataclasses.replace(upload_settings(settings, endpoint), timeout_s=min(settings.timeout_s, 10.0))
    return await check_status(quick, learner)


def check_api(settings: ImportSettings) -> tuple[Endpoint, dict[str, Any]]:
    """Call GET /status with the run's URL and key (``--check``); raise AbortError when refused."""
    with _endpoint(settings) as endpoint:
        return endpoint, asyncio.run(_check(settings, endpoint))


@contextlib.contextmanager
def _endpoint(settings: ImportSettings) -> Iterator[Endpoint]:
    if settings.sandbox:
        from .sandbox import SandboxSettings, running_sandbox

        with running_sandbox(SandboxSettings()) as sandbox:
            yield Endpoint(sandbox.url, Secret(sandbox.api_key))
    else:
        assert settings.api_key is not None
        yield Endpoint(settings.api_url, settings.api_key)


def _redaction(settings: ImportSettings, inputs: Sequence[Input]) -> Callable[[str], bool] | None:
    """With --redact-reports: which report columns to mask (personal data, except the code column,
    which a fixed report fed back in needs)."""
    if not settings.redact_reports:
        return None
    codes = {one.mapping.field_column("code") for one in inputs}
    return lambda column: column not in codes and personal_kind(column) is not None


def _run(run: Run, stack: contextlib.ExitStack, inputs: Sequence[Input], endpoint: Endpoint | None) -> Summary:
    settings = run.settings
    sources = [one.source for one in inputs]
    columns = list(dict.fromkeys(h for source in sources for h in source.headers))
    redact = _redaction(settings, inputs)
    old_reports: dict[str, str] = {}
    for path in (run.failures_path, settings.warnings):
        if path is not None and (old := retire_old_report(path)) is not None:
            old_reports[str(path)] = str(old)
    fmt = settings.failures_format
    run.failures = RowReport(
        run.failures_path, fmt=report_format(run.failures_path, fmt), columns=columns, redact=redact
    )
    stack.callback(run.failures.close)
    if settings.warnings is not None:
        run.warnings = RowReport(
            settings.warnings, fmt=report_format(settings.warnings, fmt), columns=columns, redact=redact
        )
        stack.callback(run.warnings.close)
    if settings.output is not None:
        # Owner-only, like the reports: the payloads are customer data.
        run.output = stack.enter_context(open(create_private(settings.output), "wb"))  # noqa: SIM115
    if endpoint is not None:
        hashes = {s.name: content_hash(s.name) for s in sources if s.name != "-"}
        run.checkpoint = Checkpoint.open(
            default_checkpoint_path(run.failures_path), input_hashes=hashes, resume=settings.resume
        )
        if run.checkpoint.note and not settings.quiet:
            run.console.print(f"[yellow]{run.checkpoint.note}[/]")
    run.progress = Progress.start(
        run.console,
        enabled=not (settings.quiet or settings.json),
        total=Progress.estimate_rows(sources),
    )
    started = _clock()

    async def main() -> None:
        installed = _install_signal_handlers(run)
        try:
            await _send(run, inputs, endpoint)
        finally:
            for sig in installed:
                asyncio.get_running_loop().remove_signal_handler(sig)

    try:
        asyncio.run(main())
    finally:
        run.progress.finish()
    duration = _clock() - started
    exit_code = _exit_code(run)
    if run.checkpoint is not None:
        # Kept while any row failed, so that --resume retries exactly those.
        run.checkpoint.close(completed=run.stop_reason is None and run.tally.totals.failed == 0)
    run.failures.close()
    if run.warnings is not None:
        run.warnings.close()
    summary = Summary.from_tally(
        run.tally,
        batches=run.batches_sent,
        retries=run.retries,
        settled_rate=run.settled_rate,
        duration_s=duration,
        aborted=run.stop_reason,
        exit_code=exit_code,
        dry_run=settings.dry_run,
        failures_path=str(run.failures.path) if run.failures.rows_written else None,
        warnings_path=str(run.warnings.path) if run.warnings is not None and run.warnings.rows_written else None,
        error=str(run.error or run.stop_reason) if exit_code not in (EXIT_OK, EXIT_SOME_FAILED) else None,
        resumed=run.resumed,
        file_info={source.name: _file_info(source) for source in sources},
        old_reports=old_reports,
    )
    summary.check()
    if not (settings.quiet or settings.json):
        # Notes found while reading (a column of spreadsheet text markers) come after the rows.
        for source in sources:
            for note in source.notes[run.notes_shown.get(source.name, 0) :]:
                run.console.print(f"note: {note}", style="yellow", highlight=False, soft_wrap=True)
    if settings.summary_json is not None:
        write_summary_json(summary, settings.summary_json)
    if settings.locations_report is not None and run.review is not None:
        run.review.write_csv(settings.locations_report)
    _print_summary(run, summary)
    return summary


def _file_info(source: Source) -> dict[str, Any]:
    """How one input was read, for the summary JSON's ``files.<name>``."""
    return {
        "format": source.format,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "sheet": source.sheet,
        "notes": list(source.notes),
    }


def _print_summary(run: Run, summary: Summary) -> None:
    settings = run.settings
    if settings.json:
        run.out.print_json(json.dumps(summary.to_json()))
        return
    if run.error is not None or (run.stop_reason and run.exit_override is None):
        run.console.print(
            f"biteral-import: {run.error or run.stop_reason}", style="red", highlight=False, soft_wrap=True
        )
    elif run.stop_reason:
        run.console.print(f"biteral-import: {run.stop_reason}", style="yellow", highlight=False, soft_wrap=True)
    if settings.quiet:
        run.out.print(summary_line(summary), highlight=False, soft_wrap=True)
        return
    if summary.rows == 0 and not summary.aborted:
        run.out.print("nothing to import: the input has a header but no rows")
        return
    run.out.print(summary_table(summary))
    if settings.dry_run and run.review is not None and len(run.review):
        run.out.print(run.review.table())
    if summary.failures_path:
        run.out.print(f"Failure report: {summary.failures_path} (fix the rows and feed the file back in)")
    if summary.warnings_path:
        run.out.print(f"Warnings: {summary.warnings_path}")
    if summary.aborted and run.checkpoint is not None:
        run.out.print("Continue where it stopped with the same command plus --resume.")
