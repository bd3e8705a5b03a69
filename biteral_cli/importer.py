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
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import httpx
import orjson
from rich.console import Console

from .batching import BatchCounter, SeenCodes, batches, chunks
from .checkpoint import Checkpoint, default_checkpoint_path
from .chunk import Chunk
from .columnar import ChunkNormalizer, Normalized, sha256_code
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
from .mapping import Mapping, build_mapping, personal_kind
from .normalize import Normalizer
from .outcomes import BUDGET_ROWS, Outcomes, Ref, reason_key
from .progress import Progress
from .reader import Source, content_hash, open_source
from .records import Extracted, Issue, Prepared, SourceRow
from .report import (
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

#: Rows looked up in the sync state at once (one SQL query each).
STATE_CHUNK = 100


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
        """One chunk of a dry run: runs of clean rows in bulk, the rows between them one by one."""
        assert one.columnar is not None
        done = one.columnar.run(chunk, review=self.review is not None)
        slow = range(len(chunk)) if done is None else [i for i, b in enumerate(done.bodies) if b is None]
        start = 0
        for index in (*slow, len(chunk)):
            if self.stop.is_set():
                return
            if done is not None and start < index:
                self._dry_clean(chunk, done, start, index, counter)
                if self.stop.is_set():  # the 100th row may trip a --max-errors percentage
                    return
            if index < len(chunk):
                item = self._one(chunk, index, one, next(seq))
                if item is not None:
                    self._dry_items(item.ref.source, [item.code], [item.body], counter, new=False)
            start = index + 1

    def _dry_clean(self, chunk: Chunk, done: Normalized, start: int, end: int, counter: BatchCounter) -> None:
        """Rows ``start`` to ``end`` of a chunk, all clean: counted, checked for repeats, batched."""
        if self.bad and self.processed < BUDGET_ROWS < self.processed + end - start:
            # A --max-errors percentage is first checked at the 100th row: stop there if it says so.
            cut = start + BUDGET_ROWS - self.processed
            self._dry_clean(chunk, done, start, cut, counter)
            if self.stop.is_set():
                return
            start = cut
        source = chunk.source
        self.count_processed(end - start)
        if done.places is not None and self.review is not None:
            self.review.record_clean(done.places[start:end])
        indices: Sequence[int] = range(start, end)
        if self.settings.shard is not None:
            codes = done.codes
            indices = [i for i in indices if self._in_shard(codes[i])]
            if skipped := end - start - len(indices):
                self.tally.add(source, "skipped", n=skipped)
        sent = [done.sent_codes[i] or "" for i in indices]
        bodies = [done.bodies[i] or b"" for i in indices]
        seen = self.seen_codes.add
        repeats = [n for n, code in enumerate(sent) if not seen(code)]
        for n in repeats:
            self._repeated(chunk.row(indices[n]), sent[n])
        self._dry_items(source, sent, bodies, counter, new=not repeats)

    def _dry_items(
        self, source: str, codes: list[str], bodies: list[bytes], counter: BatchCounter, *, new: bool
    ) -> None:
        """Accept items of a dry run: written to --output, counted, placed in batches."""
        if not bodies:
            return
        if self.output is not None:
            self.output.write(b"\n".join(bodies) + b"\n")
        if new:
            counter.add_new(codes, [len(body) for body in bodies])
        else:
            for code, body in zip(codes, bodies, strict=True):
                counter.add(code, len(body))
        self.tally.add(source, "accepted", n=len(bodies))
        self._advance(len(bodies))

    def _chunk(self, chunk: Chunk, one: Input, seq: Iterator[int]) -> Iterator[Item]:
        """The items of one chunk: clean rows from their column-built lines, the rest row by row."""
        assert one.columnar is not None
        done = one.columnar.run(chunk, review=self.review is not None)
        if done is None:
            for index in range(len(chunk)):
                if self.stop.is_set():
                    return
                item = self._one(chunk, index, one, next(seq))
                if item is not None:
                    yield item
            return
        bodies, codes, sent, places = done.bodies, done.codes, done.sent_codes, done.places
        checkpoint, review, stop = self.checkpoint, self.review, self.stop
        shard = self.settings.shard
        fingerprints = self.state is not None
        seen = self.seen_codes.add
        source, numbers = chunk.source, chunk.rows
        for index, body in enumerate(bodies):
            if stop.is_set():
                return
            if body is None:
                item = self._one(chunk, index, one, next(seq))
                if item is not None:
                    yield item
                continue
            self.count_processed()
            if checkpoint is not None and checkpoint.is_done(source, numbers[index]):
                self.tally.add(source, "accepted")
                self.resumed += 1
                continue
            if places is not None and review is not None:
                review.record_clean((places[index],))
            if shard is not None and not self._in_shard(codes[index]):
                self.tally.add(source, "skipped")
                continue
            code = sent[index]
            assert code is not None
            if not seen(code):
                self._repeated(chunk.row(index), code)
            fp = fingerprint(body) if fingerprints else ""
            yield Item(seq=next(seq), code=code, body=body, ref=Ref(chunk, index, fp))

    def _in_shard(self, code: str | None) -> bool:
        """Whether a row with this code (as normalized) belongs to this run's --shard."""
        assert self.settings.shard is not None
        k, n = self.settings.shard
        # Rows with no usable code belong to shard 1, so exactly one shard reports them.
        return (shard_of(code, n) if code else 0) == k - 1

    def _repeated(self, row: SourceRow, code: str) -> None:
        message = f"code '{code}' appears earlier in the input; both are sent in file order, the later values win"
        self.tally.warn(row.source, reason_key("code", message))
        if self.warnings is not None:
            self.warnings.add(row, stage="validate", field="code", error=message)

    def _one(self, chunk: Chunk, index: int, one: Input, seq: int) -> Item | None:
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
        if not self.seen_codes.add(code):
            self._repeated(row, code)
        body = _encode(prepared.payload)
        # The fingerprint only matters to the sync state; hashing a million bodies for nothing costs.
        fp = fingerprint(body) if self.state is not None else ""
        return Item(seq=seq, code=code, body=body, ref=Ref(chunk, index, fp))

    def fingerprint_of(self, row: SourceRow, one: Input) -> tuple[str, str] | None:
        """(code, fingerprint) this row would be sent with, or None when it would not be sent."""
        if row.error is not None:
            return None
        prepared = one.normalizer.prepare(row, one.mapping.extract(row.cells))
        if prepared.payload is None:
            return None
        shard = self.settings.shard
        if shard is not None and shard_of(prepared.code or "", shard[1]) != shard[0] - 1:
            return None
        code = self.final_code(prepared)
        return code, fingerprint(_encode(prepared.payload))

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
        """Drop records the sync state says are unchanged (as skipped); write --output lines."""
        output = self.output
        state = None if self.settings.full else self.state
        if state is None:
            # Pass items straight on: reading ahead would hold up the requests in flight.
            for item in items:
                if output is not None:
                    output.write(item.body + b"\n")
                yield item
            return
        for chunk in chunks(items, STATE_CHUNK):
            unchanged = state.unchanged_many([(item.code, item.ref.fingerprint) for item in chunk])
            for item, same in zip(chunk, unchanged, strict=True):
                if same:
                    self.tally.add(item.ref.source, "skipped", n=item.ref.size)
                    continue
                if output is not None:
                    output.write(item.body + b"\n")
                yield item


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


#: Opens an input again, by name, for a second pass (the pre-pass of check_mass_change).
ReopenFn = Callable[[str], contextlib.AbstractContextManager[Source]]

#: Changed records named in a refused mass change.
MASS_CHANGE_EXAMPLES = 5


def _fingerprints(run: Run, one: Input, source: Source) -> Iterator[tuple[str, str]]:
    """(code, fingerprint) of what each row (or product) of ``source`` would send."""
    if run.settings.entity == "products":
        from .entities.product_import import product_fingerprints

        yield from product_fingerprints(run, one, source, _encode)
        return
    for row in source.rows():
        pair = run.fingerprint_of(row, one)
        if pair is not None:
            yield pair


def check_mass_change(run: Run, state: SyncState, inputs: Sequence[Input], reopen: ReopenFn) -> None:
    """Refuse (exit 2) a run that would change more than --max-changed of the records the state
    knows: a pre-pass over the input, streamed, comparing fingerprints a chunk at a time."""
    settings = run.settings
    known = len(state)
    if known == 0 or settings.max_changed >= 100:
        return
    changed = 0
    examples: list[str] = []
    for one in inputs:
        with reopen(one.source.name) as source:
            try:
                for pairs in chunks(_fingerprints(run, one, source), STATE_CHUNK):
                    stored = state.stored_many([code for code, _ in pairs])
                    for code, fp in pairs:
                        if stored.get(code, fp) != fp:
                            changed += 1
                            if len(examples) < MASS_CHANGE_EXAMPLES:
                                examples.append(code)
            except BiteralImportError:
                pass  # a broken input is reported by the run itself, with what it could read
    if changed * 100 > settings.max_changed * known:
        shown = ", ".join(examples) + (", ..." if changed > len(examples) else "")
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
    if endpoint is not None and run.review is None:
        inputs = [_ahead(one) for one in inputs]
    stream = batches(run.to_send(run.items(inputs)), size=settings.batch_size, max_bytes=settings.max_request_bytes)
    if endpoint is None and (settings.full or run.state is None) and settings.entity == "customers":
        run.dry_run(inputs)
        return
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
        spooled: Path | None = None
        if "-" in settings.inputs and settings.state is not None:
            # The mass-change pre-pass reads the input twice; standard input is kept on disk for it.
            spooled = stack.enter_context(_spooled(stdin if stdin is not None else sys.stdin.buffer))
            stdin = stack.enter_context(open(spooled, "rb"))
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
            check_mass_change(run, run.state, inputs, functools.partial(_reopen, settings, spooled))
        run.notes_shown = {source.name: len(source.notes) for source, _ in sources}
        endpoint = None
        if settings.sends:
            endpoint = stack.enter_context(_endpoint(settings))
            asyncio.run(_check(settings, endpoint, run.learner))
            if run.state is not None:
                run.state.record_decisions(decided)
        summary = _run(run, stack, inputs, endpoint)
        if endpoint is not None and settings.sandbox and not settings.quiet and not settings.json:
            show_stored(out, endpoint, run.shown_codes, settings.entity)
    return summary


@contextlib.contextmanager
def _spooled(stream: IO[bytes]) -> Iterator[Path]:
    """Copy ``stream`` to an owner-only temporary file, removed afterwards; yield its path."""
    fd, name = tempfile.mkstemp(prefix="biteral-import-stdin-")
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(stream, spool, 1 << 20)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


@contextlib.contextmanager
def _reopen(settings: ImportSettings, spooled: Path | None, name: str) -> Iterator[Source]:
    """Open input ``name`` again (standard input from its spooled copy) for a second pass."""
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(spooled, "rb")) if name == "-" and spooled is not None else None
        yield stack.enter_context(open_source(name, settings.read_options(), stdin=stdin))


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
