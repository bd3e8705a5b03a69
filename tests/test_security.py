"""Security, end to end: the key never leaks, never travels elsewhere; reports cannot carry formulas.

Every run here goes through the real CLI (a subprocess where the whole output must be searched),
against a sandbox or a tiny local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_test_Zq8vN3pL0wXr7Tb2Hd5Kc1Ym"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables


def run_cli(args: list[str], *, key: str | None = SECRET, limit_s: float = 90) -> tuple[int, str, str]:
    """``python -m biteral_cli ARGS`` with the key in the environment: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITERAL_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if key is not None:
        env["BITERAL_API_KEY"] = key
    done = subprocess.run(
        [sys.executable, "-m", "biteral_cli", *args], env=env, capture_output=True, timeout=limit_s, check=False
    )
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def write_customers(path: Path, n: int, *, bad_every: int = 7) -> None:
    lines = ["code,country,city,yearBorn,metadata"]
    for i in range(n):
        if i % bad_every == bad_every - 1:
            lines.append(f"K{i:04d},Atlantis,Nowhere,0,{{}}")  # rejected, with a warning on the year
        else:
            lines.append(f'K{i:04d},ES,Vigo,1980,"{{""n"": {i}}}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def files_holding(root: Path, needle: bytes, *, skip: set[Path] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Every file under root whose bytes contain needle (as UTF-8 or UTF-16)."""
    forms = (needle, needle.decode().encode("utf-16-le"))
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and path not in skip and any(form in path.read_bytes() for form in forms)
    ]


# -- the key stays secret ------------------------------------------------------------------------


def test_the_key_appears_in_no_output_report_checkpoint_state_or_log(
    sandbox_factory: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    api = sandbox_factory(api_key=SECRET, error_rate=0.3, seed=5)
    write_customers(Path("in.csv"), 400)
    args = ["in.csv", "--api-url", api.url, "--verbose", "--batch-size", "20", "--concurrency", "2"]
    args += ["--failures", "f.csv", "--warnings", "w.csv", "--summary-json", "s.json", "--output", "sent.jsonl"]
    args += ["--state", "sync.sqlite", "--max-retries", "10"]
    # First run aborts on --max-errors, so the checkpoint stays on disk to be searched.
    first = run_cli([*args, "--max-errors", "20"])
    assert first[0] == 3, first[2][-3000:]
    assert Path("f.csv.checkpoint").exists()
    outputs = [*first[1:]]
    assert files_holding(tmp_path, SECRET.encode()) == []
    second = run_cli([*args, "--resume"])
    assert second[0] == 1, second[2][-3000:]  # the Atlantis rows stay rejected
    third = run_cli([*args, "--check"])
    assert third[0] == 0 and "****" + SECRET[-4:] in third[1]
    outputs += [*second[1:], *third[1:]]
    assert "POST /customers" in first[2]  # --verbose really logged the requests
    assert [text for text in outputs if SECRET in text] == []
    assert Path("sync.sqlite").exists() and Path("f.csv").exists() and Path("w.csv").exists()
    assert files_holding(tmp_path, SECRET.encode()) == []


def test_a_key_from_a_file_is_not_echoed_on_refusal(
    sandbox_factory: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    api = sandbox_factory(api_key="the-right-one")
    write_customers(Path("in.csv"), 10)
    Path("key.txt").write_text(SECRET + "\n", encoding="utf-8")
    code, out, err = run_cli(["in.csv", "--api-url", api.url, "--api-key-file", "key.txt", "-v"], key=None)
    assert code == 3
    assert "refused the key ****" + SECRET[-4:] in err
    assert SECRET not in out + err
    assert files_holding(tmp_path, SECRET.encode(), skip={tmp_path / "key.txt"}) == []


# -- the key goes only to the API's origin -------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers what ``routes`` says and records the headers of every request it gets."""

    routes: ClassVar[dict[tuple[str, str], tuple[int, dict[str, str], bytes]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = self.routes.get((self.command, self.path.split("?")[0]), (404, {}, b"{}"))
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[dict[tuple[str, str], tuple[int, dict[str, str], bytes]]], Any]]:
    """Start recording HTTP servers on 127.0.0.1; each has .url and .seen; all stop at teardown."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]]) -> Any:
        seen: list[dict[str, str]] = []
        handler = type("Handler", (_Recorder,), {"routes": routes, "seen": seen})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
        server.seen = seen  # type: ignore[attr-defined]
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


STATUS_OK = (200, {}, json.dumps({"object": "status", "environment": "test", "permissions": []}).encode())


@pytest.mark.parametrize("redirected", ["GET /status", "POST /customers"])
def test_a_redirect_to_another_origin_never_carries_the_key(http_server: Callable[..., Any], redirected: str) -> None:
    elsewhere = http_server({})
    method, path = redirected.split()
    moved = (307, {"Location": f"{elsewhere.url}{path}"}, b"{}")
    api = http_server({("GET", "/status"): STATUS_OK, (method, path): moved})
    write_customers(Path("in.csv"), 30, bad_every=1000)
    code, out, err = run_cli(["in.csv", "--api-url", api.url, "--summary-json", "s.json"])
    assert code in (1, 3), err
    assert "redirect" in out + err and "refusing to send the key" in out + err
    assert api.seen and all(h.get("x-api-key") == SECRET for h in api.seen)
    assert elsewhere.seen == []  # nothing at all went to the other origin
    if method == "POST":
        figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
        assert figures["accepted"] == 0 and figures["failed"] == 30


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "http://10.0.0.8:8787", "http://[2001:db8::1]/", "http://127.0.0.1.example.com"]
)
def test_plain_http_to_a_non_loopback_host_is_refused_before_connecting(url: str) -> None:
    write_customers(Path("in.csv"), 3)
    result = CliRunner().invoke(app, ["in.csv", "--api-url", url], env={"BITERAL_API_KEY": SECRET})
    assert result.exit_code == 2, result.output
    assert "plain http://" in result.output and "--allow-insecure-http" in result.output
    assert SECRET not in result.output


# -- reports cannot carry spreadsheet formulas ---------------------------------------------------


def test_every_csv_the_tool_writes_neutralises_formulas(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    api = sandbox_factory()
    payloads = ['=HYPERLINK("http://x")', "+SUM(A1:A9)", "-2+3+cmd|' /C calc'!A0", "@SUM(1)", "\t=1", "\r=1"]
    rows = [["code", "country", "yearBorn", "=cmd|' /C calc'!A0"]]
    for i, text in enumerate(payloads):
        rows.append([f"F{i}", text, "0", text])  # rejected (country) and warned (year)
        rows.append([f"G{i}", "ES", text, text])  # sent, with a warning on the year
        rows.append([text, "Atlantis", "1980", text])  # a formula as the code, rejected by the API
    with open("in.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    result = CliRunner().invoke(
        app,
        ["in.csv", "--api-url", api.url, "--failures", "f.csv", "--warnings", "w.csv"],
        env={"BITERAL_API_KEY": api.api_key},
    )
    assert result.exit_code == 1, result.output
    cells_checked = 0
    for report in ("f.csv", "w.csv"):
        with open(report, encoding="utf-8-sig", newline="") as fh:
            table = list(csv.reader(fh))
        assert len(table) > len(payloads)
        for row in table:
            for cell in row:
                assert not cell.startswith(FORMULA_STARTS), (report, cell)
                cells_checked += 1
        written = {cell for row in table for cell in row}
        assert {"'" + text for text in payloads} <= written  # shown as text, not lost
        assert "'=cmd|' /C calc'!A0" in table[0]
    assert cells_checked > 100


# -- the sandbox: constant-time key check, capped bodies ------------------------------------------


def test_sandbox_checks_the_key_with_a_constant_time_comparison(
    sandbox_factory: Callable[..., RunningSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sandbox_factory(api_key=SECRET)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with httpx.Client(base_url=api.url, headers={"X-API-Version": "1"}) as client:
        assert client.get("/status", headers={"X-API-Key": SECRET[:-1] + "x"}).status_code == 401
        assert client.get("/status", headers={"X-API-Key": "short"}).status_code == 401
        assert client.get("/status", headers={"X-API-Key": SECRET}).status_code == 200
    assert [a for a, _ in compared] == [(SECRET[:-1] + "x").encode(), b"short", SECRET.encode()]
    assert all(b == SECRET.encode() for _, b in compared)


def test_a_customer_over_the_sandbox_body_cap_is_rejected_as_413_and_the_rest_land(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    api = sandbox_factory(max_body_bytes=4000)
    lines = ["code,country,metadata"] + [f'B{i},ES,"{{""n"": {i}}}"' for i in range(40)]
    lines[11] = 'B10,ES,"{""blob"": ""' + "z" * 5000 + '""}"'
    Path("in.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["in.csv", "--api-url", api.url, "--summary-json", "s.json"], env={"BITERAL_API_KEY": api.api_key}
    )
    assert result.exit_code == 1, result.output
    figures = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert (figures["accepted"], figures["rejected"], figures["failed"]) == (39, 1, 0)
    assert api.stats.status_counts.get(413, 0) >= 1
    with open("in.failures.csv", encoding="utf-8-sig", newline="") as fh:
        (failure,) = list(csv.DictReader(fh))
    assert failure["code"] == "B10" and "413" in failure["_error"]
