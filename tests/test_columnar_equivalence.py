"""The columnar dry run writes exactly what the row-by-row path writes, on any export.

The columnar core (pyarrow blocks, one rule call per distinct value, payload lines joined by
column kernels, repeats found per chunk) is only a faster way to the same result: for generated
exports with odd codes, blank and whitespace-only cells, characters JSON escapes, repeated codes,
bad values and rows the reader rejects, ``--output``, the failure and warning reports and the
summary must be byte for byte those of the row-by-row path (``ChunkNormalizer.run`` answering
None sends every row through ``Normalizer.prepare``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from biteral_cli import columnar
from biteral_cli.cli import app
from biteral_cli.reader import _arrow

_CODES = st.one_of(
    st.sampled_from(["C1", "C2", "C3", " C4 ", "'C5", "", "c-ñ", "Ç6", 'C"7', "C\\8", "C\t9", "\u00a0C10"]),
    st.from_regex(r"[A-Z][0-9]{1,3}", fullmatch=True),
)
_TEXT = st.one_of(
    st.sampled_from(["", " ", "\u3000", "\x1c", "gold", 'say "hi"', "back\\slash", "tab\there", "é", '{"a": 1}']),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\x00"), max_size=6),
)
_COUNTRY = st.sampled_from(["Spain", "ES", "espana", "France", "", "Atlantis", "Q29", "US", "Koreya"])
_STATE = st.sampled_from(["", "Madrid", "CA", "ES-B", "Nowhere", "V"])
_CITY = st.sampled_from(["", "Madrid", "Springfield", "Paris", "Valencia", "Zzz"])
_YEAR = st.one_of(
    st.sampled_from(["", "1980", "17/05/1990", "1990-02-30", "3000", "May 17, 1990", "x", "90", " 1990-05-17"]),
    st.from_regex(r"(0?[0-9]|[12][0-9]|3[0-2])[-/.](0?[0-9]|1[0-3])[-/.](18|19|20|30)[0-9]{2}", fullmatch=True),
    st.from_regex(r"(18|19|20|30)[0-9]{2}-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])", fullmatch=True),
)
_ROW = st.tuples(_CODES, _COUNTRY, _STATE, _CITY, _YEAR, st.sampled_from(["", "M", "mujer", "x"]), _TEXT, _TEXT)
_HEADER = ["Customer ID", "Country", "State", "City", "Birth Date", "Gender", "Plan", "Notes"]


def _run(tmp: Path, export: Path, name: str, *extra: str) -> dict[str, object]:
    out = tmp / name
    out.mkdir()
    result = CliRunner().invoke(
        app,
        [
            str(export),
            "--dry-run",
            "--quiet",
            "--output",
            str(out / "out.jsonl"),
            "--failures",
            str(out / "failures.csv"),
            "--warnings",
            str(out / "warnings.csv"),
            "--summary-json",
            str(out / "summary.json"),
            "--locations-report",
            str(out / "locations.csv"),
            *extra,
        ],
    )
    summary = json.loads((out / "summary.json").read_text().replace(str(out), "OUT"))
    for key in ("duration_s", "records_per_second"):
        summary.pop(key, None)
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "summary.json"}
    return {"exit": result.exit_code, "summary": summary, "files": files}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(_ROW, min_size=1, max_size=40),
    broken=st.booleans(),
    extra=st.sampled_from([(), ("--hash-code", "sha256"), ("--shard", "2/3"), ("--strict",)]),
    block=st.sampled_from([1 << 20, 256]),
)
@pytest.mark.slow
def test_columnar_dry_run_equals_the_row_by_row_path(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, ...]],
    broken: bool,
    extra: tuple[str, ...],
    block: int,
) -> None:
    monkeypatch.setattr(_arrow, "BLOCK_BYTES", block)  # small blocks: many chunks, caches reused across them
    tmp = tmp_path_factory.mktemp("eq")
    export = tmp / "export.csv"
    with export.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(_HEADER)
        writer.writerows(rows)
        if broken:  # a line with more cells than the header: the reader rejects it
            fh.write("X1,ES,,,,,,,surplus\n")
    fast = _run(tmp, export, "fast", *extra)
    with monkeypatch.context() as patch:
        patch.setattr(columnar.ChunkNormalizer, "run", lambda self, chunk, review: None)
        slow = _run(tmp, export, "slow", *extra)
    assert fast == slow
