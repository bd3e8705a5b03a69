"""Every ``biteral-import`` command shown in README.md runs end to end against a sandbox.

The commands are extracted from the README itself (code blocks and inline code), so an example
is tested the day it is written. A README placeholder (a file name, a key file, a port) is made
real by the table below; a command naming something the table does not know fails with a message
that says so, rather than being skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "sample_data" / "customers.csv"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

# Lines of a README code block that are one scenario: a sandbox started by one line serves the next.
Block = tuple[str, ...]


def _command_part(line: str) -> str | None:
    """The ``biteral-import`` invocation in a README line, without shell comments or cron fields."""
    if "biteral-import" not in line or "pip install biteral-import" in line:
        return None
    line = re.sub(r"\s+#\s.*$", "", line)  # a trailing comment
    line = re.sub(r"^(\S+\s+){5}(?=cd |[A-Z_]+=|\S*biteral-import)", "", line)  # a cron schedule
    # The quick start installs first: only what follows its last `&&` is the import.
    if "pip install" in line:
        line = line.rsplit("&&", 1)[1]
    line = line.strip()
    words = line.split()
    if not words or words[0] in {"#", "pip"}:
        return None
    # `biteral-import FILE...` and `biteral-import map FILE` are synopses, not commands.
    if re.search(r"\b[A-Z]{3,}\b(?!=)", line.split("biteral-import", 1)[1]):
        return None
    # Prose naming the command (`biteral-import map` lists ...) runs nothing.
    if re.fullmatch(r"\S*biteral-import map", line):
        return None
    return line


def readme_blocks() -> list[Block]:
    """Every command of README.md, grouped by the code block (or inline span) it appears in."""
    blocks: list[Block] = []
    for body in re.findall(r"```(?:sh|cron|yaml)\n(.*?)```", README, flags=re.S):
        commands = tuple(c for c in (_command_part(line) for line in body.splitlines()) if c)
        if commands:
            blocks.append(commands)
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    # A heading names a command (## `biteral-import map`); it does not run one.
    prose = "\n".join(line for line in prose.splitlines() if not line.startswith("#"))
    for span in re.findall(r"`([^`\n]*biteral-import [^`\n]*)`", prose):
        command = _command_part(span)
        if command:
            blocks.append((command,))
    return blocks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lay_out_placeholders(tmp: Path) -> None:
    """Make every file the README's examples name, from the bundled sample."""
    for name in ("customers.csv", "shop.csv", "exports/customers.csv"):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE, tmp / name)
    text = SAMPLE.read_text(encoding="utf-8")
    (tmp / "export.csv.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    (tmp / "export.csv").write_text(text.replace("code,", "Referencia,", 1), encoding="utf-8")
    shutil.copy(ROOT / "sample_data" / "customers.xlsx", tmp / "crm.xlsx")
    (tmp / "build").mkdir()
    shutil.copy(ROOT / "sample_data" / "customers.jsonl", tmp / "build" / "customers.jsonl")
    # A copy, not a link: the quick start writes its failure report next to the sample.
    shutil.copytree(ROOT / "sample_data", tmp / "sample_data")
    # The cron recipe runs on the mapping that the README's first step wrote and the user reviewed.
    written = CliRunner().invoke(
        app,
        ["map", str(tmp / "exports/customers.csv"), "--write-mapping", str(tmp / "customers.toml")],
        env=dict.fromkeys(name for name in os.environ if name.startswith("BITERAL_")),  # None unsets: no shell leaks in
    )
    assert written.exit_code == 0, written.output


def _realize(command: str, tmp: Path, port: int, key_file: Path) -> str:
    """The README command with its placeholders made real (paths, key file, the sandbox's port)."""
    replacements = {
        "/srv/biteral": str(tmp),
        "/etc/biteral/key": str(key_file),
        ".venv/bin/biteral-import": "biteral-import",
        "8787": str(port),
    }
    for old, new in replacements.items():
        command = command.replace(old, new)
    return command


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM customers").fetchone()[0])


@contextmanager
def _background(command: str, cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Run a long-lived command (the sandbox) until the block ends; bounded wait for it to listen."""
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "http://" in line or not line:
                break
        assert "http://" in line, f"{command!r} did not say where it listens: {line!r}"
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One location-table cache for all the commands, never the user's own."""
    return os.environ.get("XDG_CACHE_HOME") or str(tmp_path_factory.mktemp("cache"))


def test_the_readme_shows_the_documented_commands() -> None:
    """The extraction itself finds the examples a reader sees (stdin, cron, CI, shards, sandbox)."""
    commands = [c for block in BLOCKS for c in block]
    for fragment in (
        "biteral-import - --format csv",
        "--state sync.sqlite",
        "--max-errors 1%",
        "--shard 1/4",
        "sandbox",
    ):
        assert any(fragment in c for c in commands), fragment


@pytest.mark.parametrize("block", BLOCKS, ids=[" ; ".join(b)[:80] for b in BLOCKS])
def test_readme_command_runs_end_to_end(
    block: Block, tmp_path: Path, sandbox_factory: Callable[..., RunningSandbox], cache_home: str
) -> None:
    _lay_out_placeholders(tmp_path)
    target = sandbox_factory()
    key_file = tmp_path / "key"
    key_file.write_text(target.api_key + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITERAL_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        BITERAL_API_KEY=target.api_key,
        BITERAL_API_BASE_URL=target.url,
        XDG_CACHE_HOME=cache_home,
    )
    port = _free_port()
    with ExitStack() as stack:
        for raw in block:
            command = _realize(raw, tmp_path, port, key_file)
            if re.search(r"biteral-import sandbox\b", command):
                if "--port" not in command:
                    command += f" --port {port}"
                stack.enter_context(_background(command, tmp_path, env))
                continue
            summary_path = tmp_path / "_readme_summary.json"
            summary_path.unlink(missing_ok=True)
            run_env = dict(env, BITERAL_SUMMARY_JSON=str(summary_path))
            result = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300
            )
            output = result.stdout + result.stderr
            log = tmp_path / "import.log"
            if log.exists():
                output += log.read_text(encoding="utf-8")
            assert "Traceback" not in output and "internal error" not in output, output
            if re.search(r"biteral-import map\b", command):
                assert result.returncode == 0, output
                # A product mapping names product fields; a customer mapping, places.
                field = "title" if "--entity products" in command else "country"
                assert "code" in output and field in output, output
                continue
            if "--check" in command.split():
                assert result.returncode == 0, output
                assert "OK:" in output, output
                continue
            written = sorted(tmp_path.glob("*summary*.json")) + sorted(tmp_path.glob("last-run.json"))
            assert written, f"{command!r} wrote no summary JSON:\n{output}"
            summary = json.loads(written[0].read_text(encoding="utf-8"))
            if "--max-errors" in command:
                # The sample's 5 bad rows in 300 are more than the README's CI budget of 1%: the
                # step must fail with exit 3, as the README says, and name the budget.
                assert result.returncode == 3, f"{command!r} exited {result.returncode}:\n{output}"
                assert "--max-errors" in summary["aborted"], summary
                continue
            # The sample holds five bad rows: a finished import exits 1 and never crashes.
            assert result.returncode == 1, f"{command!r} exited {result.returncode}:\n{output}"
            assert summary["failed"] == 0, summary
            assert summary["rows"] == summary["accepted"] + summary["rejected"] + summary["skipped"]
            if "--dry-run" not in command and "--sandbox" not in command:
                # The accepted rows reached the sandbox the command was pointed at: every placeholder
                # input is the sample, whose codes are unique, so one customer per accepted row of a file.
                db = tmp_path / "sandbox.sqlite" if f":{port}" in command else target.db
                assert _stored(db) == summary["accepted"] // len(summary["files"]) > 0, summary
            for path in written:
                path.unlink()
