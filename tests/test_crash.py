"""Standard input imports for real, and an unexpected exception is one line and exit 70."""

from __future__ import annotations

import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biteral_cli.checkpoint import Checkpoint
from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

pytestmark = pytest.mark.usefixtures("in_tmp")

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "customers.csv"


def _stored_codes(sandbox: RunningSandbox) -> set[str]:
    with sqlite3.connect(sandbox.db) as conn:
        return {row[0] for row in conn.execute("SELECT code FROM customers")}


@pytest.mark.slow
def test_standard_input_is_sent_whole_and_summarized(sandbox_factory: Any) -> None:
    """The README's `zcat export.csv.gz | biteral-import - --format csv`, sending for real (it crashed)."""
    target = sandbox_factory()
    env = {"BITERAL_API_KEY": target.api_key, "BITERAL_API_BASE_URL": target.url}
    result = CliRunner().invoke(
        app,
        ["-", "--format", "csv", "--batch-size", "50", "--summary-json", "s.json"],
        input=SAMPLE.read_bytes(),
        env=env,
    )
    assert result.exit_code == 1, result.output  # the sample's five bad rows
    assert "Traceback" not in result.output and "internal error" not in result.output
    codes = [line.split(",", 1)[0] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[1:]]
    stored = _stored_codes(target)
    assert len(stored) == 295 and stored <= set(codes)


def test_unexpected_exception_is_one_line_exit_70_and_a_private_details_file(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = sandbox_factory()
    key = target.api_key

    def broken(self: Checkpoint, rows: Any) -> None:
        raise ValueError(f"simulated defect while holding {key}")

    monkeypatch.setattr(Checkpoint, "confirm", broken)
    env = {"BITERAL_API_KEY": key, "BITERAL_API_BASE_URL": target.url}
    result = CliRunner().invoke(app, [str(SAMPLE)], env=env)
    assert result.exit_code == 70, result.output
    lines = [line for line in result.output.splitlines() if "internal error" in line]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output and key not in result.output
    match = re.search(
        r"internal error: ValueError: simulated defect while holding \*\*\*\*; details in (\S+)", lines[0]
    )
    assert match, lines[0]
    details = Path(match.group(1))
    try:
        text = details.read_text(encoding="utf-8")
        assert "Traceback" in text and "simulated defect" in text
        assert key not in text
        assert stat.S_IMODE(details.stat().st_mode) == 0o600
    finally:
        details.unlink()
