"""Faults end to end: the real CLI against a sandbox on 127.0.0.1 that fails, stops, loses answers.

The promise checked everywhere: every valid customer ends up stored with exactly the values of its
row (read back with GET), no invalid one is stored, accepted + rejected + failed + skipped = rows,
and a resumed run never sends a customer the API had already confirmed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox, SandboxSettings, start_sandbox

ROOT = Path(__file__).resolve().parent.parent
KEY = "sandbox"
HEADER = "code,country,state,city,yearBorn,gender,isActive,metadata"


pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables


# -- inputs and what they must become --------------------------------------------------------


def write_input(path: Path, n: int, *, bad_every: int = 0) -> tuple[list[str], list[str]]:
    """A CSV of n customers; every bad_every-th row is invalid. Returns (valid codes, invalid codes)."""
    lines = [HEADER]
    valid: list[str] = []
    invalid: list[str] = []
    for i in range(n):
        code = f"R{i:05d}"
        if bad_every and i % bad_every == bad_every - 1:
            # Alternate a row the tool rejects itself and one only the API can reject.
            if i % (2 * bad_every) == bad_every - 1:
                lines.append(f"{code},Atlantis,,Nowhere,1980,1,true,{{}}")
            else:
                lines.append(f'{code},ES,B,Badalona,1980,1,true,"{{""broken"": }}"')
            invalid.append(code)
            continue
        lines.append(f'{code},ES,B,Badalona,{1950 + i % 50},{i % 4},{"true" if i % 3 else "false"},"{{""n"": {i}}}"')
        valid.append(code)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return valid, invalid


def expected(code: str) -> dict[str, Any]:
    """The customer as the API must return it for row ``code`` of write_input."""
    i = int(code[1:])
    return {
        "code": code,
        "isActive": bool(i % 3),
        "country": "ESP",
        "state": "ES-B",
        "city": "Badalona",
        "yearBorn": 1950 + i % 50,
        "gender": i % 4,
        "metadata": {"n": i},
    }


def assert_stored_exactly(url: str, valid: list[str], invalid: list[str]) -> None:
    """GET every code from a fault-free sandbox: valid ones equal their row, invalid ones absent."""
    headers = {"X-API-Key": KEY, "X-API-Version": "1"}
    wrong: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for code in valid:
            response = client.get("/customers", params={"code": code})
            if response.status_code != 200 or response.json()["payload"] != expected(code):
                wrong.append(f"{code}: {response.status_code} {response.text[:200]}")
        for code in invalid:
            if client.get("/customers", params={"code": code}).status_code != 404:
                wrong.append(f"{code}: invalid but stored")
    assert wrong == [], wrong[:5]


def assert_counts_add_up(figures: dict[str, Any], rows: int) -> None:
    total = figures["accepted"] + figures["rejected"] + figures["failed"] + figures["skipped"]
    assert figures["rows"] == total == rows, figures


def summary(path: Path = Path("s.json")) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def db_sandbox(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes on one database file (a restart keeps the data); all stop at teardown."""
    started: list[RunningSandbox] = []

    def start(**settings: Any) -> RunningSandbox:
        running = start_sandbox(SandboxSettings(db=tmp_path / "api.sqlite", **settings))
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


def clean_view(db_sandbox: Callable[..., RunningSandbox], faulty: RunningSandbox) -> RunningSandbox:
    """Stop the faulty sandbox and serve its data without faults, so reading back cannot fail."""
    faulty.stop()
    return db_sandbox()


# -- subprocess runs (signals need a real process) -----------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITERAL_")}
    # The checkout under test, whatever the virtualenv's editable install points at.
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["BITERAL_API_KEY"] = KEY
    return env


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "biteral_cli", *args],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def confirmed_rows(checkpoint: Path) -> int:
    """Rows a checkpoint records as confirmed by the API (0 while it does not exist yet)."""
    try:
        lines = checkpoint.read_bytes().split(b"\n")[1:-1]  # the header, and a line still being written
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if re.fullmatch(rb"\d+\t\d+", line))


def wait_for_progress(process: subprocess.Popen[bytes], checkpoint: Path, rows: int, limit_s: float = 60) -> None:
    """Poll (bounded) until the checkpoint holds ``rows`` confirmed rows while the process runs."""
    deadline = time.monotonic() + limit_s
    while confirmed_rows(checkpoint) < rows:
        assert process.poll() is None, f"the run ended before it was interrupted: {finish(process)}"
        assert time.monotonic() < deadline, "no progress in the checkpoint"
        time.sleep(0.02)


def finish(process: subprocess.Popen[bytes], limit_s: float = 90) -> tuple[int, str]:
    """Wait (bounded) for the process; kill it on timeout; return (exit code, stdout + stderr)."""
    try:
        out, err = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the run did not end within {limit_s}s: {err.decode(errors='replace')[-2000:]}")
    return process.returncode, (out + err).decode("utf-8", errors="replace")


def run_cli(args: list[str], limit_s: float = 90) -> tuple[int, str]:
    process = spawn(args)
    try:
        return finish(process, limit_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# -- the faults ------------------------------------------------------------------------------


@pytest.mark.slow
def test_5000_rows_through_errors_rate_limits_and_jitter_land_exactly(
    db_sandbox: Callable[..., RunningSandbox],
) -> None:
    valid, invalid = write_input(Path("in.csv"), 5000, bad_every=250)
    # A limit of 8 with 8 requests in flight plus GET /status: the opening burst alone is over it, so
    # the 429s come however slow the machine is (at 40/s a busy machine never reached the limit).
    faulty = db_sandbox(error_rate=0.3, rate_limit=8, latency_jitter_ms=20, seed=8)
    result = CliRunner().invoke(
        app,
        ["in.csv", "--api-url", faulty.url, "--summary-json", "s.json", "--concurrency", "8", "--max-retries", "12"],
        env={"BITERAL_API_KEY": KEY},
    )
    assert result.exit_code == 1, result.output  # the invalid rows are rejected
    figures = summary()
    assert_counts_add_up(figures, 5000)
    assert (figures["accepted"], figures["rejected"], figures["failed"]) == (len(valid), len(invalid), 0)
    assert figures["retries"] > 0
    statuses = faulty.stats.status_counts
    assert statuses.get(500, 0) and statuses.get(503, 0) and statuses.get(429, 0), statuses
    assert_stored_exactly(clean_view(db_sandbox, faulty).url, valid, invalid)


@pytest.mark.slow
@pytest.mark.parametrize("retries", ["8", "0"], ids=["rides it out", "aborts"])
def test_server_stopped_and_restarted_mid_run_then_resume_completes(
    db_sandbox: Callable[..., RunningSandbox], retries: str
) -> None:
    valid, _ = write_input(Path("in.csv"), 1500)
    first = db_sandbox(latency_ms=15)
    args = ["in.csv", "--api-url", first.url, "--summary-json", "s.json", "--failures", "f.csv"]
    args += ["--batch-size", "10", "--concurrency", "2", "--max-retries", retries]
    checkpoint = Path("f.csv.checkpoint")
    process = spawn(args)
    try:
        wait_for_progress(process, checkpoint, 100)
        first.stop()
        time.sleep(0.8)  # the API is down for a moment: connections are refused
        second = db_sandbox(port=first.port, latency_ms=15)
        code, output = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert "Traceback" not in output
    if retries == "0":
        assert code == 3 and "failed 10 times in a row" in output, output
    else:
        # Eight retries of a batch wait at least 0.25 + 0.5 + 1 + 2 + 4 + 8 + 15 + 15 s (equal
        # jitter): far longer than the server stays down, so the run always rides it out.
        assert code == 0, output
        assert_counts_add_up(summary(), 1500)
        assert (summary()["accepted"], summary()["failed"]) == (1500, 0)
    figures = summary()
    assert figures["accepted"] + figures["rejected"] + figures["failed"] + figures["skipped"] == figures["rows"]
    if code != 0:
        assert "--resume" in output
        confirmed = confirmed_rows(checkpoint)
        before = second.stats.items_received
        code, output = run_cli([*args, "--resume"])
        assert code == 0, output
        assert_counts_add_up(summary(), 1500)
        # Exactly the rows not yet confirmed went out again; none the API had confirmed.
        assert second.stats.items_received - before == len(valid) - confirmed
    assert not checkpoint.exists()  # a completed run leaves no checkpoint behind
    assert_stored_exactly(clean_view(db_sandbox, second).url, valid, [])


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_signal_mid_run_writes_reports_and_checkpoint_then_resume_completes(
    db_sandbox: Callable[..., RunningSandbox], sig: signal.Signals, exit_code: int
) -> None:
    valid, invalid = write_input(Path("in.csv"), 1500, bad_every=100)
    slow = db_sandbox(latency_ms=15)
    args = ["in.csv", "--api-url", slow.url, "--summary-json", "s.json", "--failures", "f.csv"]
    args += ["--batch-size", "10", "--concurrency", "2"]
    checkpoint = Path("f.csv.checkpoint")
    process = spawn(args)
    try:
        wait_for_progress(process, checkpoint, 100)
        process.send_signal(sig)
        code, output = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert code == exit_code, output
    assert "Traceback" not in output and "--resume" in output
    figures = summary()
    assert figures["exit_code"] == exit_code and "interrupted" in figures["aborted"]
    assert figures["accepted"] + figures["rejected"] + figures["failed"] + figures["skipped"] == figures["rows"]
    assert figures["accepted"] < len(valid)  # it really stopped early
    confirmed = confirmed_rows(checkpoint)
    assert confirmed >= figures["accepted"] >= 100
    if figures["rejected"] + figures["failed"]:
        assert Path("f.csv").stat().st_size > 0

    clean = clean_view(db_sandbox, slow)
    code, output = run_cli([*args[:2], clean.url, *args[3:], "--resume"])
    assert code == 1, output  # only the invalid rows are left
    figures = summary()
    assert_counts_add_up(figures, 1500)
    assert (figures["accepted"], figures["rejected"], figures["failed"]) == (len(valid), len(invalid), 0)
    # Rows confirmed before the signal were not sent again (the API-rejected ones are re-sent).
    assert clean.stats.items_received == len(valid) - confirmed
    assert_stored_exactly(clean.url, valid, invalid)


@pytest.mark.slow
def test_a_rate_limited_api_is_learned_without_failing_a_row(db_sandbox: Callable[..., RunningSandbox]) -> None:
    # Issue 12: `sandbox --rate-limit 5`, 3,000 customers, --batch-size 20 and no other option.
    valid, _ = write_input(Path("in.csv"), 3000)
    limited = db_sandbox(rate_limit=5)
    code, output = run_cli(["in.csv", "--api-url", limited.url, "--batch-size", "20", "--summary-json", "s.json"], 180)
    assert code == 0, output
    figures = summary()
    assert (figures["accepted"], figures["failed"]) == (3000, 0)
    statuses = limited.stats.status_counts
    assert statuses.get(429, 0) <= 0.05 * limited.stats.requests, statuses  # counted by the API itself
    assert figures["settled_rate"] is not None and 0 < figures["settled_rate"] <= 5.5
    assert "settled rate" in output
    assert_stored_exactly(clean_view(db_sandbox, limited).url, valid, [])


@pytest.mark.slow
def test_a_used_up_daily_quota_ends_in_exit_3_and_resume_finishes_the_next_day(
    db_sandbox: Callable[..., RunningSandbox],
) -> None:
    valid, _ = write_input(Path("in.csv"), 300)
    day = [datetime(2026, 12, 2, 17, 30, tzinfo=UTC).timestamp()]  # the sandbox's clock: 6h 30m to midnight
    api = db_sandbox(daily_quota=20, clock=lambda: day[0])  # GET /status + 19 batches of 10 a day
    args = ["in.csv", "--api-url", api.url, "--batch-size", "10", "--summary-json", "s.json", "--failures", "f.csv"]
    code, output = run_cli(args)
    assert code == 3, output
    assert "quota_exceeded" in output and "come back in 6h 30m" in output and "UTC" in output
    assert "--resume" in output and "Traceback" not in output
    figures = summary()
    assert figures["exit_code"] == 3 and figures["aborted"]
    assert_counts_add_up(figures, figures["rows"])
    assert figures["accepted"] == 190 == api.stats.items_received
    # No row failed because of the quota: the ones left are reported as not sent, to resume.
    assert all(reason.startswith("not sent") for reason in figures["errors"]), figures["errors"]
    assert Path("f.csv.checkpoint").exists()

    day[0] += 7 * 3600  # the next day: a fresh quota
    code, output = run_cli([*args, "--resume"])
    assert code == 0, output
    figures = summary()
    assert_counts_add_up(figures, 300)
    assert (figures["accepted"], figures["failed"]) == (300, 0)
    assert api.stats.items_received == 300 == api.stats.stored_writes  # every row stored exactly once
    assert not Path("f.csv.checkpoint").exists()
    assert_stored_exactly(clean_view(db_sandbox, api).url, valid, [])


@pytest.mark.slow
def test_a_lost_response_is_retried_safely_and_counted_once(db_sandbox: Callable[..., RunningSandbox]) -> None:
    valid, _ = write_input(Path("in.csv"), 400)
    lossy = db_sandbox(drop_response_rate=0.25, drop_response_delay_s=2, seed=3)
    result = CliRunner().invoke(
        app,
        ["in.csv", "--api-url", lossy.url, "--summary-json", "s.json", "--batch-size", "10", "--timeout", "0.5"],
        env={"BITERAL_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    figures = summary()
    assert_counts_add_up(figures, 400)
    assert (figures["accepted"], figures["failed"]) == (400, 0)
    assert figures["settled_rate"] is None  # no 429 came, so nothing was learned
    assert lossy.stats.dropped_responses > 0 and figures["retries"] >= lossy.stats.dropped_responses
    # Stored once each: the retried batches changed nothing the first attempt had not stored.
    assert lossy.stats.stored_writes == 400
    assert lossy.stats.unchanged_writes > 0
    assert_stored_exactly(clean_view(db_sandbox, lossy).url, valid, [])


@pytest.mark.parametrize(
    ("option", "path", "fragment"),
    [
        ("--failures", "no/such/dir/f.csv", "does not exist"),
        ("--summary-json", ".", "it is a directory"),
        ("--warnings", "in.csv/w.csv", "does not exist"),
        ("--state", "no/such/state.sqlite", "does not exist"),
    ],
)
def test_an_unwritable_report_path_fails_before_anything_is_sent(
    sandbox_factory: Callable[..., RunningSandbox], option: str, path: str, fragment: str
) -> None:
    write_input(Path("in.csv"), 20)
    api = sandbox_factory()
    result = CliRunner().invoke(app, ["in.csv", "--api-url", api.url, option, path], env={"BITERAL_API_KEY": KEY})
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert api.stats.requests == 0


@pytest.mark.parametrize("value", ["soon", "-1", "10 days"])
def test_a_bad_max_wait_is_refused_before_anything_is_sent(
    sandbox_factory: Callable[..., RunningSandbox], value: str
) -> None:
    write_input(Path("in.csv"), 20)
    api = sandbox_factory()
    args = ["in.csv", "--api-url", api.url, "--max-wait", value]
    result = CliRunner().invoke(app, args, env={"BITERAL_API_KEY": KEY})
    assert result.exit_code == 2, result.output
    assert "--max-wait" in result.output and "Traceback" not in result.output
    assert api.stats.requests == 0


def test_a_full_disk_is_refused_before_anything_is_sent(
    sandbox_factory: Callable[..., RunningSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_input(Path("in.csv"), 20)
    api = sandbox_factory()
    full = shutil._ntuple_diskusage(total=1 << 30, used=1 << 30, free=0)  # type: ignore[attr-defined]
    monkeypatch.setattr("biteral_cli.report.shutil.disk_usage", lambda path: full)
    result = CliRunner().invoke(app, ["in.csv", "--api-url", api.url], env={"BITERAL_API_KEY": KEY})
    assert result.exit_code == 2, result.output
    assert "no space left" in result.output
    assert api.stats.requests == 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_disk_that_fills_up_mid_run_stops_with_a_clear_error(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    write_input(Path("in.csv"), 300, bad_every=50)
    api = sandbox_factory()
    result = CliRunner().invoke(
        app, ["in.csv", "--api-url", api.url, "--failures", "/dev/full"], env={"BITERAL_API_KEY": KEY}
    )
    assert result.exit_code in (2, 3), result.output
    assert "/dev/full" in result.output and "No space left" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
