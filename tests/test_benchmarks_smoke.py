"""The benchmark script keeps working: a --quick run prints every figure with its baseline and ratio.

No timing is asserted here (benchmarks are not tests); only that the numbers are produced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import make_data  # noqa: E402 - the benchmark's sibling script, importable once its folder is on the path


def test_synthetic_exports_are_deterministic_and_about_two_percent_bad(tmp_path: Path) -> None:
    first = make_data.ensure(3000, "csv", tmp_path / "a")
    second = make_data.ensure(3000, "csv", tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",") == list(make_data.HEADERS)
    rows = list(make_data.generate(3000))
    bad = sum(
        1
        for r in rows
        if not r[0]
        or r[1] in ("Atlantis", "Narnia", "Q999999", "XX")
        or r[2] in ("Gondor", "Mordor", "ZZ-99")
        or r[4] in ("31/31/31", "not a date", "3000-01-01")
    )
    assert 0.01 * len(rows) <= bad <= 0.03 * len(rows)
    assert not any(not r[0] for r in make_data.generate(3000, bad_rate=0.0))


@pytest.mark.slow
def test_quick_run_prints_every_figure_with_its_baseline_and_ratio(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--data-dir",
            str(tmp_path / "data"),
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    table = proc.stdout
    for number in (
        "1. CSV",
        "2. XLSX",
        "3. upload",
        "4. --rate",
        "5. rate learned",
        "6. second --state run",
        "7. products",
    ):
        assert number in table, table
    assert "x pandas" in table and "of ideal" in table and "x 429" in table
    data = json.loads(results.read_text())
    names = [f["name"] for f in data["figures"]]
    # 9 customer figures (CSV, XLSX, upload, --rate, rate learned), the second --state run, 3 of products
    assert len(names) == 13, names
    for figure in data["figures"]:
        assert figure["ours"] > 0 and figure["baseline"] > 0 and figure["ratio"] > 0, figure
    assert data["machine"]["cores"] and data["quick"] is True
    # Every child cleaned up after itself: no failure report left in the working directory.
    assert not list(tmp_path.glob("*.failures.*"))
