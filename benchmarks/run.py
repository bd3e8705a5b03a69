"""Measure biteral-import against its baselines and print the four figures of BENCHMARKS.md.

Run: .venv/bin/python benchmarks/run.py            (full run: several minutes)
     .venv/bin/python benchmarks/run.py --quick    (tiny sizes, one repetition: seconds)

1. read + map + normalize + validate + serialize (``--dry-run --output /dev/null``) of a CSV,
   against ``pandas.read_csv(dtype=str, keep_default_na=False)``; peak RSS, and its growth with size;
2. the same for an XLSX, against ``pandas.read_excel(engine="calamine")``;
3. upload to a sandbox with 100 ms latency at concurrency 4 and 16, as a fraction of the ideal
   (requests x latency / concurrency: ``concurrency x 100 / latency`` records a second), and
   against a sequential one-request-per-customer loop;
4. ``--rate 20/s`` against a sandbox that answers 429 above 20 requests/s;
5. rate learning: no ``--rate``, against a sandbox that answers 429 above 5 requests/s (issue 12's
   scenario: 3,000 customers, ``--batch-size 20``): the share of the limit used, and of 429s;
6. a second ``--state`` run over an unchanged CSV (1M rows; the state filled by a first run that
   really sends every row to a zero-latency sandbox), which sends nothing, against
   ``pandas.read_csv`` of the same file.

``--only csv --only xlsx --only state --only upload`` (or ``--issue11``) measures every row of
issue 11's target table in one invocation; ``--size NAME=N`` changes one size (``--size
state_rows=20000``) to iterate quickly.

Every CLI and pandas run is its own child process (wall clock and that child's peak RSS from
``wait4``); the sandbox is another process. Prints a table and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import make_data  # noqa: E402 - the sibling script, importable once HERE is on the path
import make_product_data  # noqa: E402 - likewise

PYTHON = sys.executable
#: The checkout whose biteral_cli the children run (--code: another one, e.g. main, for "before").
CODE = ROOT
SANDBOX_KEY = "sandbox"  # the sandbox's public default key, not a secret
_SERVER_START_S = 30.0
_PANDAS_CSV = "import pandas as pd, sys; pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)"
_PANDAS_XLSX = "import pandas as pd, sys; pd.read_excel(sys.argv[1], engine='calamine')"
#: Other readers of the same CSV, printed for reference when installed (issue 11): name -> code.
_OTHER_READERS = {
    "pyarrow": "import pyarrow.csv as c, sys; c.read_csv(sys.argv[1])",
    "polars": "import polars as pl, sys; pl.read_csv(sys.argv[1], infer_schema=False)",
}
MB = 1024 * 1024


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported by the children (they share this interpreter)."""
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """How big each benchmark is and how often it is repeated."""

    csv_rows: int = 1_000_000
    csv_small_rows: int = 100_000
    xlsx_rows: int = 100_000
    upload_rows: int = 20_000
    sequential_rows: int = 500
    rate_rows: int = 3_000
    rate_batch_size: int = 10
    latency_ms: float = 100.0
    concurrency: int = 4
    upload_targets: tuple[tuple[int, float], ...] = ((4, 0.95), (16, 0.90))
    """(concurrency, least share of the ideal) of each upload figure (issue 11's targets)."""
    rate: float = 20.0
    learn_rows: int = 3_000
    learn_batch_size: int = 20
    learn_limit: float = 5.0
    state_rows: int = 1_000_000
    state_fill_concurrency: int = 16
    """Concurrency of the first ``--state`` run, which only fills the state (zero-latency sandbox)."""
    reps: int = 3
    products: int = 100_000  # Shopify-shaped, three variant rows each
    products_small: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "csv_rows",
            "csv_small_rows",
            "xlsx_rows",
            "upload_rows",
            "sequential_rows",
            "rate_rows",
            "learn_rows",
            "state_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.reps < 1 or self.concurrency < 1 or self.rate <= 0 or self.latency_ms <= 0:
            raise ValueError("reps, concurrency, rate and latency must be positive")
        if not 1 <= self.rate_batch_size <= 100:
            raise ValueError("rate_batch_size must be between 1 and 100")


QUICK = Sizes(
    csv_rows=2_000,
    csv_small_rows=200,
    xlsx_rows=500,
    upload_rows=500,
    sequential_rows=20,
    rate_rows=200,
    learn_rows=400,
    state_rows=2_000,
    reps=1,
    products=1_000,
    products_small=100,
)


@dataclass(slots=True)
class Measured:
    """One child process: wall-clock seconds, peak RSS in bytes, exit code and its output."""

    wall_s: float
    rss_bytes: int
    cpu_s: float
    """User plus system CPU seconds of the child: steadier than wall clock on a shared machine."""
    returncode: int
    stdout: str
    stderr: str


@dataclass(slots=True)
class Figure:
    """One line of the results table."""

    name: str
    ours: float
    ours_unit: str
    baseline: float | None
    baseline_unit: str
    ratio: float
    ratio_text: str
    target: str
    met: bool
    detail: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Child processes


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this checkout's code first, whatever the venv has installed."""
    path = os.pathsep.join(p for p in (str(CODE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def measure(cmd: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` to completion; time it and read its own peak RSS from the kernel (wait4)."""
    env = env if env is not None else child_env()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            wall_s=wall,
            rss_bytes=usage.ru_maxrss * 1024,  # kilobytes on Linux
            cpu_s=usage.ru_utime + usage.ru_stime,
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def cli(*args: str) -> list[str]:
    """The command line of biteral-import as a user runs it."""
    return [PYTHON, "-m", "biteral_cli", *args]


def checked(m: Measured, what: str, ok: Sequence[int] = (0, 1)) -> Measured:
    """``m`` if the child exited with an accepted code, else a RuntimeError with its stderr."""
    if m.returncode not in ok:
        raise RuntimeError(f"{what} exited {m.returncode}: {m.stderr.strip()[-2000:]}")
    return m


def dry_run(path: Path, work: Path, *extra: str) -> Measured:
    """One ``--dry-run --output /dev/null -q`` of ``path`` in its own process."""
    failures = work / "dry.failures.csv"
    cmd = cli(str(path), "--dry-run", "--output", os.devnull, "-q", "--failures", str(failures), *extra)
    return checked(measure(cmd, cwd=work), f"dry run of {path.name}")


def median_of(runs: Sequence[Measured]) -> tuple[float, int]:
    """Median wall seconds and median peak RSS of several runs."""
    return statistics.median(m.wall_s for m in runs), int(statistics.median(m.rss_bytes for m in runs))


def timed_against(
    name: str, ours: Sequence[Measured], theirs: Sequence[Measured], *, baseline: str, limit: float, **detail: Any
) -> Figure:
    """Our runs' median wall clock against a baseline's (``baseline`` names it); met at ``limit`` x or less."""
    ours_s, theirs_s = median_of(ours)[0], median_of(theirs)[0]
    cpu = statistics.median(m.cpu_s for m in ours), statistics.median(m.cpu_s for m in theirs)
    ratio = ours_s / theirs_s
    return Figure(
        name=name,
        ours=ours_s,
        ours_unit="s",
        baseline=theirs_s,
        baseline_unit=f"s {baseline}",
        ratio=ratio,
        ratio_text=f"{ratio:.2f}x pandas (CPU {cpu[0] / cpu[1]:.2f}x)",
        target=f"<= {limit:g}x",
        met=ratio <= limit,
        detail={
            "runs_s": [m.wall_s for m in ours],
            "pandas_runs_s": [m.wall_s for m in theirs],
            "cpu_s": cpu[0],
            "pandas_cpu_s": cpu[1],
            "load_average": os.getloadavg(),
            **detail,
        },
    )


# ------------------------------------------------------------------------------------------------
# 1 and 2: reading


def bench_csv(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """CLI dry run of the big CSV against pandas; peak RSS at both sizes."""
    big = make_data.ensure(sizes.csv_rows, "csv", data)
    small = make_data.ensure(sizes.csv_small_rows, "csv", data)
    ours, theirs, smalls = [], [], []
    for rep in range(sizes.reps):
        log(f"csv rep {rep + 1}/{sizes.reps}: biteral-import --dry-run, {sizes.csv_rows:,} rows")
        ours.append(dry_run(big, work))
        log(f"csv rep {rep + 1}/{sizes.reps}: pandas.read_csv")
        theirs.append(checked(measure([PYTHON, "-c", _PANDAS_CSV, str(big)], cwd=work), "pandas.read_csv", (0,)))
        log(f"csv rep {rep + 1}/{sizes.reps}: biteral-import --dry-run, {sizes.csv_small_rows:,} rows")
        smalls.append(dry_run(small, work))
    others: dict[str, float] = {}
    for name, code in _OTHER_READERS.items():
        if _installed(name):
            runs = [checked(measure([PYTHON, "-c", code, str(big)], cwd=work), name, (0,)) for _ in range(sizes.reps)]
            others[name] = median_of(runs)[0]
            log(f"csv: {name} reads the file in {others[name]:.2f} s (median of {sizes.reps})")
    ratio = median_of(ours)[0] / median_of(theirs)[0]
    log(
        f"csv: CPU {statistics.median(m.cpu_s for m in ours):.2f} s, pandas "
        f"{statistics.median(m.cpu_s for m in theirs):.2f} s; "
        f"RSS at {sizes.csv_small_rows:,} {median_of(smalls)[1] / MB:.0f} MB"
    )
    return reading_figures(
        f"1. CSV {sizes.csv_rows:,} rows",
        f"1. CSV peak RSS, {sizes.csv_rows:,} vs {sizes.csv_small_rows:,} rows",
        f"{sizes.csv_small_rows:,}",
        (ours, theirs, smalls),
        speed=("<= 1x (floor 2x)", 1.0),
        detail={"floor_met": ratio <= 2, "other_readers_s": others},
    )


def reading_figures(
    name: str,
    growth_name: str,
    small_size: str,
    runs: tuple[Sequence[Measured], Sequence[Measured], Sequence[Measured]],
    speed: tuple[str, float] | None,
    detail: dict[str, object],
) -> list[Figure]:
    """The three figures of a reading benchmark: time against pandas (``speed``: the target's text
    and the ratio it allows, None for none), peak RSS against 150 MB, and peak RSS against the
    same export at a tenth of the size (flat memory)."""
    ours, theirs, smalls = runs
    ours_s, ours_rss = median_of(ours)
    pandas_s, pandas_rss = median_of(theirs)
    _, small_rss = median_of(smalls)
    mb = MB
    growth = ours_rss / small_rss
    ratio = ours_s / pandas_s
    return [
        Figure(
            name=f"{name}, dry run",
            ours=ours_s,
            ours_unit="s",
            baseline=pandas_s,
            baseline_unit="s pandas.read_csv",
            ratio=ratio,
            ratio_text=f"{ratio:.2f}x pandas",
            target=speed[0] if speed else "-",
            met=speed is None or ratio <= speed[1],
            detail={
                "runs_s": [m.wall_s for m in ours],
                "pandas_runs_s": [m.wall_s for m in theirs],
                "cpu_s": statistics.median(m.cpu_s for m in ours),
                "pandas_cpu_s": statistics.median(m.cpu_s for m in theirs),
                **detail,
                "note": "wall clock of whole processes; cpu_s is steadier when the machine is shared",
            },
        ),
        Figure(
            name=f"{name}, peak RSS",
            ours=ours_rss / mb,
            ours_unit="MB",
            baseline=pandas_rss / mb,
            baseline_unit="MB pandas",
            ratio=ours_rss / mb / 150,
            ratio_text=f"{ours_rss / mb / 150:.2f} of 150 MB",
            target="<= 150 MB",
            met=ours_rss <= 150 * mb,
        ),
        Figure(
            name=growth_name,
            ours=ours_rss / mb,
            ours_unit="MB",
            baseline=small_rss / mb,
            baseline_unit=f"MB at {small_size}",
            ratio=growth,
            ratio_text=f"{growth:.2f}x",
            target="<= 1.3x",
            met=growth <= 1.3,
        ),
    ]


def bench_xlsx(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """CLI dry run of an XLSX against pandas.read_excel with calamine."""
    path = make_data.ensure(sizes.xlsx_rows, "xlsx", data)
    ours, theirs = [], []
    for rep in range(sizes.reps):
        log(f"xlsx rep {rep + 1}/{sizes.reps}: biteral-import --dry-run, {sizes.xlsx_rows:,} rows")
        ours.append(dry_run(path, work))
        log(f"xlsx rep {rep + 1}/{sizes.reps}: pandas.read_excel")
        theirs.append(checked(measure([PYTHON, "-c", _PANDAS_XLSX, str(path)], cwd=work), "pandas.read_excel", (0,)))
    name = f"2. XLSX {sizes.xlsx_rows:,} rows, dry run"
    return [timed_against(name, ours, theirs, baseline="pandas.read_excel", limit=1.5)]


# ------------------------------------------------------------------------------------------------
# 3 and 4: uploading


@dataclass(slots=True)
class Server:
    """A sandbox process started by ``sandbox_server``: its URL and its control pipe."""

    url: str
    proc: subprocess.Popen[str]

    def cpu_s(self) -> float | None:
        """CPU seconds the sandbox process has used so far (None where /proc does not say)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def stats(self) -> dict[str, Any]:
        """The sandbox's counters right now."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process ended unexpectedly")
        return json.loads(line)


@contextlib.contextmanager
def sandbox(latency_ms: float, rate_limit: float | None = None) -> Iterator[Server]:
    """A sandbox in its own process (so client and server do not share a GIL); always stopped."""
    cmd = [PYTHON, str(HERE / "sandbox_server.py"), "--latency-ms", str(latency_ms)]
    if rate_limit is not None:
        cmd += ["--rate-limit", str(rate_limit)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + _SERVER_START_S
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("URL "):
                url = line.split(None, 1)[1].strip()
        if url is None:
            raise RuntimeError("the sandbox did not start")
        yield Server(url, proc)
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of input: the server stops
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload(path: Path, server: Server, work: Path, *extra: str) -> tuple[Measured, dict[str, Any]]:
    """Import ``path`` into ``server`` with the CLI; (the run, the sandbox's counters after it)."""
    env = child_env(BITERAL_API_KEY=SANDBOX_KEY)
    cmd = cli(str(path), "--api-url", server.url, "--json", "--failures", str(work / "up.failures.csv"), *extra)
    m = checked(measure(cmd, cwd=work, env=env), f"upload of {path.name}")
    return m, server.stats()


def sequential(payloads: Sequence[bytes], url: str) -> float:
    """Seconds for the naive loop: one POST per customer, waiting for each (records per request 1)."""
    headers = {"X-API-Key": SANDBOX_KEY, "X-API-Version": "1", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for body in payloads:
            response = client.post("/customers", content=body)
            if response.status_code != 201 and response.status_code != 200:
                raise RuntimeError(f"sequential baseline: POST answered {response.status_code}")
        return time.perf_counter() - started


def trivial_client(bodies: Sequence[bytes], url: str, concurrency: int) -> None:
    """The least a client can do: batches encoded beforehand, ``concurrency`` of them always in
    flight, no pipeline, no retries. What it reaches is what the sandbox and the machine allow."""
    headers = {"X-API-Key": SANDBOX_KEY, "X-API-Version": "1", "Content-Type": "application/json"}

    async def run() -> None:
        limits = httpx.Limits(max_connections=concurrency + 1)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
            queue = list(reversed(bodies))

            async def worker() -> None:
                while queue:
                    response = await client.post("/customers", content=queue.pop())
                    if response.status_code != 200:
                        raise RuntimeError(f"trivial client: POST answered {response.status_code}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())


def server_rate(stats: dict[str, Any]) -> float:
    """Customers stored a second, from the first POST's arrival to the last POST's answer."""
    return float(stats["items_received"]) / (stats["last_post_done_s"] - stats["first_post_s"])


def bench_upload(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """Upload throughput against the ideal at each concurrency, and against the sequential loop."""
    # Clean rows: the figure is about throughput; rejected rows would add split requests.
    path = make_data.ensure(sizes.upload_rows, "csv", data, bad_rate=0.0)
    payloads_path = work / "payloads.jsonl"
    checked(
        measure(cli(str(path), "--dry-run", "--output", str(payloads_path), "-q"), cwd=work),
        "dry run for the payloads",
        (0,),
    )
    lines = payloads_path.read_bytes().splitlines()
    payloads = lines[: sizes.sequential_rows]
    bodies = [b"[" + b",".join(lines[i : i + 100]) + b"]" for i in range(0, len(lines), 100)]
    targets = [concurrency for concurrency, _ in sizes.upload_targets]
    rates: dict[int, list[float]] = {concurrency: [] for concurrency in targets}
    walls: dict[int, list[float]] = {concurrency: [] for concurrency in targets}
    trivial: dict[int, list[float]] = {concurrency: [] for concurrency in targets}
    client_cpu: dict[int, list[float]] = {concurrency: [] for concurrency in targets}
    server_cpu: dict[int, list[float]] = {concurrency: [] for concurrency in targets}
    seq_rates = []
    for rep in range(sizes.reps):
        for concurrency in targets:
            with sandbox(sizes.latency_ms) as server:
                log(f"upload rep {rep + 1}/{sizes.reps}: {sizes.upload_rows:,} customers, concurrency {concurrency}")
                cpu_before = server.cpu_s()
                m, stats = upload(path, server, work, "--concurrency", str(concurrency))
                cpu_after = server.cpu_s()
                summary = json.loads(m.stdout)
                if summary["accepted"] != sizes.upload_rows:
                    raise RuntimeError(f"upload: {summary['accepted']} of {sizes.upload_rows} accepted")
                rates[concurrency].append(server_rate(stats))
                walls[concurrency].append(m.wall_s)
                client_cpu[concurrency].append(m.cpu_s)
                if cpu_before is not None and cpu_after is not None:
                    server_cpu[concurrency].append((cpu_after - cpu_before) / stats["posts"] * 1000)
            with sandbox(sizes.latency_ms) as server:
                log(f"upload rep {rep + 1}/{sizes.reps}: a trivial client, concurrency {concurrency}")
                trivial_client(bodies, server.url, concurrency)
                trivial[concurrency].append(server_rate(server.stats()))
        with sandbox(sizes.latency_ms) as server:
            log(f"upload rep {rep + 1}/{sizes.reps}: sequential loop, {len(payloads)} customers")
            seq_rates.append(len(payloads) / sequential(payloads, server.url))
    seq = statistics.median(seq_rates)
    figures = []
    for concurrency, target in sizes.upload_targets:
        # Ideal: every request takes exactly the latency and `concurrency` are always in flight.
        ideal = concurrency * 100 * 1000 / sizes.latency_ms
        rate = statistics.median(rates[concurrency])
        wall = statistics.median(walls[concurrency])
        bare = statistics.median(trivial[concurrency])
        figures.append(
            Figure(
                name=f"3. upload {sizes.upload_rows:,}, {sizes.latency_ms:g} ms, concurrency {concurrency}",
                ours=rate,
                ours_unit="rec/s",
                baseline=ideal,
                baseline_unit="rec/s ideal",
                ratio=rate / ideal,
                ratio_text=f"{rate / ideal:.1%} of ideal (a trivial client: {bare / ideal:.0%})",
                target=f">= {target:.0%}",
                met=rate / ideal >= target,
                detail={
                    "runs_rec_per_s": rates[concurrency],
                    "trivial_client_runs_rec_per_s": trivial[concurrency],
                    "cli_wall_s": walls[concurrency],
                    "cli_cpu_s": client_cpu[concurrency],
                    "sandbox_cpu_ms_per_post": server_cpu[concurrency],
                    "end_to_end_rec_per_s": sizes.upload_rows / wall,
                    "load_average": os.getloadavg(),
                },
            )
        )
    rate = statistics.median(rates[sizes.upload_targets[0][0]])
    figures.append(
        Figure(
            name=f"3. upload vs sequential loop ({len(payloads)} customers)",
            ours=rate,
            ours_unit="rec/s",
            baseline=seq,
            baseline_unit="rec/s sequential",
            ratio=rate / seq,
            ratio_text=f"{rate / seq:.0f}x",
            target=">= 100x",
            met=rate / seq >= 100,
            detail={"sequential_runs_rec_per_s": seq_rates},
        )
    )
    return figures


def bench_rate(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """Requests per second achieved with --rate against a sandbox that enforces that rate."""
    path = make_data.ensure(sizes.rate_rows, "csv", data, bad_rate=0.0)
    achieved, too_many = [], []
    for rep in range(sizes.reps):
        with sandbox(sizes.latency_ms, rate_limit=sizes.rate) as server:
            log(f"rate rep {rep + 1}/{sizes.reps}: --rate {sizes.rate:g}/s, batches of {sizes.rate_batch_size}")
            _, stats = upload(
                path,
                server,
                work,
                "--concurrency",
                str(sizes.concurrency),
                "--rate",
                f"{sizes.rate:g}/s",
                "--batch-size",
                str(sizes.rate_batch_size),
            )
            posts = stats["posts"]
            span = stats["last_post_s"] - stats["first_post_s"]
            achieved.append((posts - 1) / span if posts > 1 and span > 0 else 0.0)
            too_many.append(int(stats["status_counts"].get("429", 0)))
    rps = statistics.median(achieved)
    off = abs(rps - sizes.rate) / sizes.rate
    return [
        Figure(
            name=f"4. --rate {sizes.rate:g}/s ({sizes.rate_rows:,} customers, batches of {sizes.rate_batch_size})",
            ours=rps,
            ours_unit="req/s",
            baseline=sizes.rate,
            baseline_unit="req/s asked",
            ratio=rps / sizes.rate,
            ratio_text=f"{rps / sizes.rate - 1:+.1%}, {max(too_many)} x 429",
            target="within 5%, no 429",
            met=off <= 0.05 and max(too_many) == 0,
            detail={"runs_req_per_s": achieved, "answers_429": too_many},
        )
    ]


def bench_learn(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """Share of an unannounced rate limit the upload uses once it has learned it, and its 429s."""
    path = make_data.ensure(sizes.learn_rows, "csv", data, bad_rate=0.0)
    used, share_429, settled, failed = [], [], [], []
    for rep in range(sizes.reps):
        with sandbox(0.0, rate_limit=sizes.learn_limit) as server:
            log(f"learn rep {rep + 1}/{sizes.reps}: limit {sizes.learn_limit:g}/s, no --rate")
            m, stats = upload(path, server, work, "--batch-size", str(sizes.learn_batch_size))
            summary = json.loads(m.stdout)
            accepted = int(stats["status_counts"].get("200", 0))
            span = stats["last_post_s"] - stats["first_post_s"]
            used.append((accepted - 1) / span / sizes.learn_limit if accepted > 1 and span > 0 else 0.0)
            share_429.append(int(stats["status_counts"].get("429", 0)) / max(1, stats["requests"]))
            settled.append(summary["settled_rate"])
            failed.append(summary["failed"])
    share = statistics.median(used)
    worst_429 = max(share_429)
    return [
        Figure(
            name=f"5. rate learned, limit {sizes.learn_limit:g}/s ({sizes.learn_rows:,} customers, "
            f"batches of {sizes.learn_batch_size})",
            ours=share * sizes.learn_limit,
            ours_unit="req/s",
            baseline=sizes.learn_limit,
            baseline_unit="req/s limit",
            ratio=share,
            ratio_text=f"{share:.1%} of the limit, {worst_429:.1%} x 429",
            target=">= 90%, <= 5% 429, 0 failed",
            met=share >= 0.9 and worst_429 <= 0.05 and not any(failed),
            detail={"runs_share_used": used, "runs_share_429": share_429, "settled_rate": settled, "failed": failed},
        )
    ]


# ------------------------------------------------------------------------------------------------
# 6: a second --state run


def bench_state(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """A second ``--state`` run over an unchanged CSV (it sends nothing) against pandas.read_csv."""
    # Clean rows: rows the API rejects are not recorded and would be sent again by the second run.
    path = make_data.ensure(sizes.state_rows, "csv", data, bad_rate=0.0)
    state = work / "sync.sqlite"
    with sandbox(0.0) as server:
        # The state is filled the only way a user can: a first run that sends every row and records
        # what the API accepted. Zero latency and high concurrency only make it quicker.
        log(f"state: first --state run, {sizes.state_rows:,} rows sent to fill {state.name}")
        concurrency = str(sizes.state_fill_concurrency)
        fill, stats = upload(path, server, work, "--state", str(state), "--concurrency", concurrency)
        if json.loads(fill.stdout)["accepted"] != sizes.state_rows:
            raise RuntimeError(f"state: the first run stored fewer than all {sizes.state_rows:,}: {fill.stdout[-300:]}")
        log(f"state: first run {fill.wall_s:.1f} s wall, {fill.cpu_s:.1f} s CPU, {stats['posts']:,} POSTs")
        ours, theirs = [], []
        for rep in range(sizes.reps):
            log(f"state rep {rep + 1}/{sizes.reps}: second --state run over the unchanged file")
            before = stats["requests"]
            m, stats = upload(path, server, work, "--state", str(state))
            summary = json.loads(m.stdout)
            if summary["skipped"] != sizes.state_rows or stats["items_received"] != sizes.state_rows:
                raise RuntimeError(f"state: the second run sent rows again: {m.stdout[-500:]}")
            ours.append(m)
            log(f"state rep {rep + 1}/{sizes.reps}: pandas.read_csv ({stats['requests'] - before} requests made)")
            theirs.append(checked(measure([PYTHON, "-c", _PANDAS_CSV, str(path)], cwd=work), "pandas.read_csv", (0,)))
    return [
        timed_against(
            f"6. second --state run, {sizes.state_rows:,} unchanged rows",
            ours,
            theirs,
            baseline="pandas.read_csv",
            limit=2,
            rss_mb=median_of(ours)[1] / MB,
            first_run_wall_s=fill.wall_s,
            first_run_cpu_s=fill.cpu_s,
            first_run_concurrency=sizes.state_fill_concurrency,
        )
    ]


# ------------------------------------------------------------------------------------------------
# Reporting


def machine() -> dict[str, Any]:
    """What the figures were taken on: CPU, cores, memory, Python, and the code's git state."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": commit,
        "uncommitted_changes": dirty,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def table(figures: Sequence[Figure]) -> str:
    """The figures as a plain-text table."""
    rows = [("benchmark", "ours", "baseline", "ratio", "target", "met")]
    for f in figures:
        baseline = f"{f.baseline:,.2f} {f.baseline_unit}" if f.baseline is not None else "-"
        ours = f"{f.ours:,.2f} {f.ours_unit}"
        rows.append((f.name, ours, baseline, f.ratio_text, f.target, "yes" if f.met else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bench_products(sizes: Sizes, data: Path, work: Path, log: Any) -> list[Figure]:
    """Products (issue 14): a Shopify export of N products x 3 variants, dry run against
    pandas.read_csv of the same file; peak RSS flat between N and N/10 products (the customers' rule)."""
    big = make_product_data.ensure(sizes.products, data)
    small = make_product_data.ensure(sizes.products_small, data)
    options = ("--entity", "products", "--currency", "EUR")
    ours, theirs, smalls = [], [], []
    for rep in range(sizes.reps):
        log(f"products rep {rep + 1}/{sizes.reps}: --entity products --dry-run, {sizes.products:,} products")
        ours.append(dry_run(big, work, *options))
        log(f"products rep {rep + 1}/{sizes.reps}: pandas.read_csv")
        theirs.append(checked(measure([PYTHON, "-c", _PANDAS_CSV, str(big)], cwd=work), "pandas.read_csv", (0,)))
        smalls.append(dry_run(small, work, *options))
    return reading_figures(
        f"7. products {sizes.products:,} ({sizes.products * 3:,} rows)",
        f"7. products peak RSS, {sizes.products:,} vs {sizes.products_small:,}",
        f"{sizes.products_small:,}",
        (ours, theirs, smalls),
        speed=None,
        detail={},
    )


BENCHES = {
    "csv": bench_csv,
    "xlsx": bench_xlsx,
    "state": bench_state,
    "upload": bench_upload,
    "rate": bench_rate,
    "learn": bench_learn,
    "products": bench_products,
}
#: The benchmarks behind issue 11's target table, in the order ``--issue11`` runs them.
ISSUE_11 = ("csv", "xlsx", "state", "upload")


def _size(text: str) -> tuple[str, int]:
    """``NAME=N`` as (a whole-number field of Sizes, its value); ValueError naming what is wrong."""
    name, _, value = text.partition("=")
    kinds = {f.name: f.type for f in fields(Sizes)}
    if kinds.get(name) not in (int, "int"):
        whole = ", ".join(n for n, kind in kinds.items() if kind in (int, "int"))
        raise ValueError(f"{name!r} is not one of {whole}")
    return name, int(value)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the benchmarks, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repetition (a smoke run)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only this benchmark")
    parser.add_argument(
        "--issue11", action="store_true", help=f"run the benchmarks of issue 11's targets ({', '.join(ISSUE_11)})"
    )
    parser.add_argument(
        "--size", action="append", default=[], metavar="NAME=N", help="change one size, e.g. state_rows=20000"
    )
    parser.add_argument("--data-dir", type=Path, default=make_data.DATA_DIR, help="where generated exports go")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "latest.json", help="JSON output")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose biteral_cli to measure (before/after)")
    args = parser.parse_args(argv)
    global CODE
    CODE = args.code.resolve()
    sizes = QUICK if args.quick else Sizes()
    if args.reps is not None:
        if args.reps < 1:
            parser.error("--reps must be at least 1")
        sizes = replace(sizes, reps=args.reps)
    try:
        changed: dict[str, Any] = dict(_size(text) for text in args.size)
        sizes = replace(sizes, **changed)
    except (TypeError, ValueError) as error:
        parser.error(f"--size: {error}")

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    figures: list[Figure] = []
    names = [*(args.only or ()), *(ISSUE_11 if args.issue11 else ())] or list(BENCHES)
    load_start, started = os.getloadavg(), datetime.now(UTC)
    log(f"load average at start: {' '.join(f'{x:.2f}' for x in load_start)}")
    with tempfile.TemporaryDirectory(prefix="biteral-bench-") as tmp:
        work = Path(tmp)
        for name in dict.fromkeys(names):
            figures += BENCHES[name](sizes, args.data_dir, work, log)
    load_end = os.getloadavg()
    log(f"load average at end: {' '.join(f'{x:.2f}' for x in load_end)}")
    print(table(figures))
    results = {
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "code": str(CODE),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "figures": [asdict(f) for f in figures],
        "all_met": all(f.met for f in figures),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
