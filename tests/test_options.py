"""Every option value and combination the import refuses: exit 2, one line naming the option, nothing done.

Driven through the real command line (typer's CliRunner). Only behaviour is asserted — the exit
code, the option's name in the one line printed, no traceback, no file written, no request sent and
no sandbox started — never the wording, which the options layer is free to change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biteral_cli import sandbox as sandbox_module
from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

pytestmark = pytest.mark.usefixtures("in_tmp")

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "customers.csv"


@dataclass(frozen=True)
class Case:
    """Arguments after the input file, the option the refusal must name, and the files it needs."""

    args: list[str]
    option: str
    files: dict[str, bytes] = field(default_factory=dict)
    modes: tuple[str, ...] = ("send", "dry-run")
    """send: with a key and the shared sandbox's URL; dry-run: with --dry-run and no key."""


CASES: dict[str, Case] = {
    # values
    "batch-size 101": Case(["--batch-size", "101"], "--batch-size"),
    "batch-size 0": Case(["--batch-size", "0"], "--batch-size"),
    "concurrency 0": Case(["--concurrency", "0"], "--concurrency"),
    "concurrency 65": Case(["--concurrency", "65"], "--concurrency"),
    "max-retries -3": Case(["--max-retries", "-3"], "--max-retries"),
    "max-retries 101": Case(["--max-retries", "101"], "--max-retries"),
    "max-request-bytes 1000": Case(["--max-request-bytes", "1000"], "--max-request-bytes"),
    "timeout 0": Case(["--timeout", "0"], "--timeout"),
    "timeout -1": Case(["--timeout", "-1"], "--timeout"),
    "max-wait soon": Case(["--max-wait", "soon"], "--max-wait"),
    "max-wait -5": Case(["--max-wait", "-5"], "--max-wait"),
    "rate fast": Case(["--rate", "fast"], "--rate"),
    "rate 0/s": Case(["--rate", "0/s"], "--rate"),
    "rate -5/s": Case(["--rate", "-5/s"], "--rate"),
    "rate 20/day": Case(["--rate", "20/day"], "--rate"),
    "failures-format xml": Case(["--failures-format", "xml"], "--failures-format"),
    "personal-data some": Case(["--personal-data", "some"], "--personal-data"),
    "hash-code md5": Case(["--hash-code", "md5"], "--hash-code"),
    "code-column blank": Case(["--code-column", "  "], "--code-column"),
    "max-changed 150%": Case(["--max-changed", "150%"], "--max-changed"),
    "max-changed half": Case(["--max-changed", "half"], "--max-changed"),
    "max-errors lots": Case(["--max-errors", "lots"], "--max-errors"),
    "max-errors 150%": Case(["--max-errors", "150%"], "--max-errors"),
    "max-errors 1.5": Case(["--max-errors", "1.5"], "--max-errors"),
    "max-errors -1": Case(["--max-errors", "-1"], "--max-errors"),
    "shard 5/4": Case(["--shard", "5/4"], "--shard"),
    "shard 0/4": Case(["--shard", "0/4"], "--shard"),
    "shard 1/0": Case(["--shard", "1/0"], "--shard"),
    "shard two": Case(["--shard", "two"], "--shard"),
    "api-url ftp": Case(["--api-url", "ftp://127.0.0.1/"], "--api-url"),
    "api-url with a password": Case(["--api-url", "http://user:pw@127.0.0.1:1"], "--api-url"),
    "api-url with a query": Case(["--api-url", "http://127.0.0.1:1/?x=1"], "--api-url"),
    "api-url plain http": Case(["--api-url", "http://api.example.com"], "--api-url"),
    # --map and --mapping
    "map without =": Case(["--map", "code"], "--map"),
    "map without a column": Case(["--map", "code="], "--map"),
    "map unknown field": Case(["--map", "contry=country"], "--map"),
    "map missing column": Case(["--map", "country=Pais"], "--map"),
    "mapping missing file": Case(["--mapping", "nope.toml"], "nope.toml"),
    "mapping not TOML": Case(["--mapping", "m.toml"], "m.toml", {"m.toml": b"[columns\ncode = 1"}),
    "mapping not UTF-8": Case(["--mapping", "m.toml"], "m.toml", {"m.toml": b'[columns]\ncode = "\xff"\n'}),
    "mapping unknown field": Case(["--mapping", "m.toml"], "m.toml", {"m.toml": b'[columns]\ncontry = "country"\n'}),
    "mapping missing column": Case(["--mapping", "m.toml"], "m.toml", {"m.toml": b'[columns]\ncountry = "Pais"\n'}),
    "mapping default code": Case(["--mapping", "m.toml"], "m.toml", {"m.toml": b'[defaults]\ncode = "X"\n'}),
    # the key
    "api-key on the command line": Case(["--api-key", "abc"], "--api-key"),
    "api-key-file missing": Case(["--api-key-file", "nope"], "--api-key-file"),
    "api-key-file empty": Case(["--api-key-file", "k"], "--api-key-file", {"k": b"\n"}),
    "api-key-file not UTF-8": Case(["--api-key-file", "k"], "--api-key-file", {"k": b"\xff\xfe\x00k"}),
    # pairs
    "sandbox and api-url": Case(["--sandbox", "--api-url", "http://127.0.0.1:1"], "--sandbox", modes=("none",)),
    "sandbox and api-key-file": Case(["--sandbox", "--api-key-file", "k"], "--sandbox", {"k": b"k\n"}, ("none",)),
    "check and dry-run": Case(["--check", "--dry-run"], "--check", modes=("none",)),
    "resume and dry-run": Case(["--resume", "--dry-run"], "--resume", modes=("none",)),
    "full without state": Case(["--full"], "--full"),
    "quiet and verbose": Case(["--quiet", "--verbose"], "--verbose"),
    "json and verbose": Case(["--json", "--verbose"], "--verbose"),
    "code-column and map code": Case(["--code-column", "code", "--map", "code=country"], "--code-column"),
    "no-extra-metadata and metadata-columns": Case(
        ["--no-extra-metadata", "--metadata-columns", "plan"], "--metadata-columns"
    ),
}


def _params() -> Iterator[Any]:
    for name, case in CASES.items():
        for mode in case.modes:
            yield pytest.param(case, mode, id=f"{name} ({mode})")


@pytest.fixture
def no_sandbox_started(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records any attempt to start a sandbox (none may be: the options are refused first)."""
    started: list[object] = []

    def refuse(*args: object, **kwargs: object) -> object:
        started.append(args)
        raise AssertionError("a sandbox was started")

    monkeypatch.setattr(sandbox_module, "running_sandbox", refuse)
    return started


def _files() -> set[str]:
    return {str(p) for p in Path().rglob("*")}


@pytest.mark.parametrize(("case", "mode"), list(_params()))
def test_a_refused_option_exits_2_naming_it_with_nothing_written_or_sent(
    case: Case, mode: str, sandbox: RunningSandbox, no_sandbox_started: list[object]
) -> None:
    Path("in.csv").write_bytes(SAMPLE.read_bytes())
    for name, content in case.files.items():
        Path(name).write_bytes(content)
    args = ["in.csv", *case.args]
    env = {}
    if mode == "send":
        if "--api-url" not in case.args:
            args += ["--api-url", sandbox.url]
        env["BITERAL_API_KEY"] = sandbox.api_key
    elif mode == "dry-run":
        args.append("--dry-run")
    before, requests = _files(), sandbox.stats.requests
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    # One line on stderr says what was refused (notes on how the input was read may come before it;
    # --json puts the summary on stdout).
    refusals = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(refusals) == 1 and case.option in refusals[0], result.output
    assert "Traceback" not in result.output
    assert _files() == before  # no report, checkpoint, state or payload file
    assert sandbox.stats.requests == requests  # not even GET /status
    assert no_sandbox_started == []


def test_two_standard_inputs_are_refused() -> None:
    result = CliRunner().invoke(app, ["-", "-", "--dry-run"], input="code\nA1\n")
    assert result.exit_code == 2, result.output
    assert "(-)" in result.output and "Traceback" not in result.output
    assert _files() == set()


def test_resume_of_standard_input_is_refused(sandbox: RunningSandbox) -> None:
    result = CliRunner().invoke(
        app, ["-", "--resume", "--api-url", sandbox.url], input="code\nA1\n", env={"BITERAL_API_KEY": "k"}
    )
    assert result.exit_code == 2, result.output
    assert "--resume" in result.output and "Traceback" not in result.output
    assert _files() == set()


def test_no_key_is_refused_naming_where_a_key_comes_from(sandbox: RunningSandbox) -> None:
    Path("in.csv").write_bytes(SAMPLE.read_bytes())
    requests = sandbox.stats.requests
    result = CliRunner().invoke(app, ["in.csv", "--api-url", sandbox.url], env={"BITERAL_API_KEY": ""})
    assert result.exit_code == 2, result.output
    assert "BITERAL_API_KEY" in result.output and "--api-key-file" in result.output
    assert _files() == {"in.csv"} and sandbox.stats.requests == requests


def test_a_refused_option_still_writes_the_summary_json_with_exit_2() -> None:
    Path("in.csv").write_bytes(SAMPLE.read_bytes())
    result = CliRunner().invoke(app, ["in.csv", "--dry-run", "--shard", "5/4", "--summary-json", "s.json"])
    assert result.exit_code == 2, result.output
    figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert figures["exit_code"] == 2 and "--shard" in figures["error"]
    assert _files() == {"in.csv", "s.json"}


# -- --max-errors N%, as the README's CI example uses it ------------------------------------------


def test_max_errors_percent_stops_the_sample_with_exit_3_naming_the_budget(sandbox_factory: Any) -> None:
    """The sample's 5 bad rows of 300 are more than 1%: the run stops (exit 3) and says which budget."""
    target = sandbox_factory()
    args = [str(SAMPLE), "--api-url", target.url, "--max-errors", "1%", "--summary-json", "s.json", "--json"]
    result = CliRunner().invoke(app, args, env={"BITERAL_API_KEY": target.api_key})
    assert result.exit_code == 3, result.output
    figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert figures["exit_code"] == 3
    assert "--max-errors" in figures["aborted"] and "1%" in figures["aborted"]
    assert figures["rows"] < 300  # stopped as the rows were read, not after the last one
    assert figures["accepted"] + figures["rejected"] + figures["failed"] + figures["skipped"] == figures["rows"]


def test_max_errors_percent_counts_bad_rows_read_before_the_hundredth() -> None:
    """A percentage waits for 100 rows; errors before then count once it starts (5 of 100 > 1%)."""
    rows = ["code,country"] + [",ES" if i < 5 else f"A{i:04d},ES" for i in range(150)]
    Path("in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["in.csv", "--dry-run", "--max-errors", "1%", "--summary-json", "s.json"])
    assert result.exit_code == 3, result.output
    figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert (figures["rows"], figures["rejected"]) == (100, 5)
    assert "--max-errors" in figures["aborted"]


def test_max_errors_count_is_a_number_of_rows_not_a_share() -> None:
    rows = ["code,country"] + [",ES" if i in (10, 20, 30) else f"A{i:04d},ES" for i in range(50)]
    Path("in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["in.csv", "--dry-run", "--max-errors", "2", "--summary-json", "s.json"])
    assert result.exit_code == 3, result.output
    figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert (figures["rows"], figures["rejected"]) == (31, 3)  # the third bad row is one too many
    result = CliRunner().invoke(app, ["in.csv", "--dry-run", "--max-errors", "3", "--summary-json", "s.json"])
    assert result.exit_code == 1, result.output  # three is within a budget of three
    assert json.loads(Path("s.json").read_text(encoding="utf-8"))["rows"] == 50
