"""The products side of an import run: products instead of rows, sent to ``POST /products``.

The reader's chunks are turned back into rows (``Chunk.row``) for the product builder, which
groups them. The run (``importer.Run``) still counts rows: a product built from three rows counts
three rows accepted (or rejected, with the same reason on each: its ``Ref`` carries all its rows),
so accepted + rejected + failed + skipped still add up to the rows read, the failure report holds
every row of a rejected product (fixed and fed back in, they make the product again), and
``--resume`` skips a product only when all its rows were confirmed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..errors import BiteralImportError
from ..outcomes import Ref, reason_key
from ..records import Issue, SourceRow
from ..state import fingerprint, shard_of
from ..upload import Item
from .products import ProductBuilder, ProductMapping, ProductOptions, ProductResult

if TYPE_CHECKING:
    from ..chunk import Chunk
    from ..importer import Input, Run
    from ..reader import Source
    from ..settings import ImportSettings

#: A payload's compact JSON bytes (the importer's encoder).
Encode = Callable[[dict[str, object]], bytes]


def product_options(settings: ImportSettings) -> ProductOptions:
    """The product options of a run's settings (--currency, --price-rule, --extra-columns, --map)."""
    overrides = dict(settings.map_overrides)
    if settings.code_column is not None:
        overrides["code"] = settings.code_column
    return ProductOptions(
        currency=settings.currency,
        price_rule=settings.price_rule,
        extra_columns=settings.extra_columns,
        overrides=overrides,
    )


def _builder(one: Input, settings: ImportSettings, source: Source | None = None) -> ProductBuilder:
    mapping = one.mapping
    assert isinstance(mapping, ProductMapping)
    notes = (source or one.source).notes
    return ProductBuilder(mapping.plan, product_options(settings), notes=notes)


def _rows(sample: list[Chunk], rest: Iterator[Chunk]) -> Iterator[SourceRow]:
    """Every row of the chunks read ahead (each freed once used), then of the rest."""
    while sample:
        yield from sample.pop(0).source_rows()
    for chunk in rest:
        yield from chunk.source_rows()


def product_items(run: Run, inputs: Sequence[Input], encode: Encode) -> Iterator[Item]:
    """Group every input's rows into products; yield what should be sent, account for the rest."""
    seq = itertools.count()
    for one in inputs:
        run.tally.register(one.source.name)
        builder = _builder(one, run.settings)
        rows = _rows(one.sample, iter(()) if one.broken else one.chunks)
        products = read = 0
        try:
            for result in builder.feed(rows):
                if run.stop.is_set():
                    return
                products += result.stage != "read"  # a broken row is no product
                read += len(result.rows)
                item = _one(run, one, result, next(seq), encode)
                if item is not None:
                    yield item
            if one.broken is not None:
                raise one.broken
            # The summary counts rows; say what they made, so 26 rows for 12 products is no surprise.
            one.source.notes.append(f"products: {read:,} rows made {products:,} products")
        except BiteralImportError as exc:
            run.halt(f"stopped reading: {exc}", exc)
            return


def _one(run: Run, one: Input, result: ProductResult, seq: int, encode: Encode) -> Item | None:
    settings = run.settings
    rows = result.rows
    first = rows[0]
    run.count_processed(len(rows))
    checkpoint = run.checkpoint
    if checkpoint is not None and all(checkpoint.is_done(r.source, r.row) for r in rows):
        run.tally.add(first.source, "accepted", n=len(rows))
        run.resumed += len(rows)
        return None
    if settings.shard is not None:
        k, n = settings.shard
        owner = shard_of(result.code, n) if result.code else 0
        if owner != k - 1:
            run.tally.add(first.source, "skipped", n=len(rows))
            return None
    for warning in result.warnings:
        run.tally.warn(first.source, _reason(warning))
        if run.warnings is not None:
            for row in rows:
                run.warnings.add(row, stage="validate", field=warning.field, error=warning.message)
    if settings.strict and result.warnings and result.payload is not None:
        result.payload, result.errors = None, list(result.warnings)  # --strict: a warning rejects
    if result.payload is None:
        errors = result.errors or [Issue("", "rejected")]
        field = ",".join(dict.fromkeys(e.field for e in errors))
        message = "; ".join(e.message for e in errors)
        for row in rows:
            run.reject(row, result.stage, field, message, reason=_reason(errors[0]))
        return None
    code = run.final_code(result)
    if not run.seen_codes.add(code):
        message = f"product code '{code}' appears earlier in the input; both are sent in file order, the later wins"
        run.tally.warn(first.source, _reason(Issue("code", message)))
        if run.warnings is not None:
            run.warnings.add(first, stage="validate", field="code", error=message)
    body = encode(result.payload)
    ref = Ref.of_rows(rows, one.source.headers, fingerprint(body) if run.state is not None else "")
    return Item(seq=seq, code=code, body=body, ref=ref)


def _reason(issue: Issue) -> str:
    return reason_key(issue.field, issue.message)
