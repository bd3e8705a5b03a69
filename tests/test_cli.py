"""End-to-end: the real CLI, in-process, against a sandbox on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import contextlib
import csv
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox, SandboxSettings, running_sandbox
from biteral_cli.state import SyncState

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
EXPECTED = [json.loads(line) for line in (SAMPLES / "expected.jsonl").read_text(encoding="utf-8").splitlines()]
KEY = "sandbox"
# Data rows of each bundled export, counted by hand from the files (every one imports whole).
EXPORT_ROWS = {
    "erp_clientes.csv": 12,
    "hubspot_contacts.csv": 12,
    "salesforce_contacts.csv": 11,
    "shopify_customers.csv": 12,
    "shopify_customers_legacy.csv": 10,
    "stripe_customers.csv": 10,
    "woocommerce_customers.csv": 12,
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables


def invoke(runner: CliRunner, args: list[str], *, key: str | None = KEY, **env: str) -> Any:
    environ = {"BITERAL_API_KEY": key} if key is not None else {}
    environ.update(env)
    return runner.invoke(app, args, env=environ)


def get(sandbox: RunningSandbox, code: str, client: httpx.Client | None = None) -> dict[str, Any] | None:
    """The customer as the sandbox returns it (GET /customers?code=), or None when unknown."""
    headers = {"X-API-Key": sandbox.api_key, "X-API-Version": "1"}
    with httpx.Client() if client is None else contextlib.nullcontext(client) as http:
        response = http.get(f"{sandbox.url}/customers", params={"code": code}, headers=headers)
    return response.json()["payload"] if response.status_code == 200 else None


def summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["customers.csv", "customers.jsonl", "customers.xlsx"])
def test_sample_lands_with_the_right_values_and_bad_rows_rejected(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox], name: str
) -> None:
    sandbox = sandbox_factory()
    result = invoke(runner, [str(SAMPLES / name), "--api-url", sandbox.url, "--summary-json", "s.json"])
    assert result.exit_code == 1, result.output
    figures = summary(Path("s.json"))
    rejected = [e for e in EXPECTED if "rejected" in e]
    assert figures["rows"] == len(EXPECTED)
    assert figures["accepted"] == len(EXPECTED) - len(rejected)
    assert figures["rejected"] == len(rejected)
    assert figures["accepted"] + figures["rejected"] + figures["failed"] + figures["skipped"] == figures["rows"]
    with httpx.Client() as client:
        stored_by_code = {e["code"]: get(sandbox, e["code"], client) for e in EXPECTED}
    for expected in EXPECTED:
        stored = stored_by_code[expected["code"]]
        if "rejected" in expected:
            assert stored is None, expected
        else:
            assert stored == expected["payload"], expected["code"]
    with open(f"{name.split('.')[0]}.failures.csv", encoding="utf-8-sig", newline="") as fh:
        failures = list(csv.DictReader(fh))
    offset = 1 if name.endswith(".jsonl") else 0  # JSONL has no header line
    assert sorted(int(f["_row"]) for f in failures) == sorted(e["row"] - offset for e in rejected)
    assert {name for f in failures for name in f["_field"].split(",")} >= {"code", "country", "state", "metadata"}
    assert all(f["_error"] for f in failures)


@pytest.mark.slow
def test_quick_start_sandbox_run_shows_what_landed(runner: CliRunner) -> None:
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--sandbox"], key=None)
    assert result.exit_code == 1, result.output
    # Five customers, each exactly as the sample's expected payload (which five depends on which
    # batch the API confirmed first).
    shown = result.output.split("Stored in the sandbox, as GET /customers returns them:\n", 1)[1].splitlines()
    stored = [json.loads(line) for line in shown if line.startswith("  {")]
    expected = {e["code"]: e["payload"] for e in EXPECTED if "payload" in e}
    assert len(stored) == 5
    assert all(customer == expected[customer["code"]] for customer in stored), stored


@pytest.mark.slow
def test_fixed_failure_report_can_be_fed_back(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = sandbox_factory()
    invoke(runner, [str(SAMPLES / "customers.csv"), "--api-url", sandbox.url])
    with open("customers.failures.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):  # the fix a person would make
        row.update(code=f"FIXED{i}", country="ES", state="B", metadata="{}")
    with open("fixed.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = invoke(runner, ["fixed.csv", "--api-url", sandbox.url, "--summary-json", "s.json"])
    assert result.exit_code == 0, result.output
    assert summary(Path("s.json"))["accepted"] == len(rows)
    stored = get(sandbox, "FIXED0")
    assert stored is not None and "_error" not in stored.get("metadata", {})


@pytest.mark.slow
def test_dry_run_sends_nothing_and_writes_payloads(runner: CliRunner, sandbox: RunningSandbox) -> None:
    posts_before = sandbox.stats.posts
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--dry-run", "--output", "out.jsonl"], key=None)
    assert result.exit_code == 1, result.output  # rows rejected by validation
    assert sandbox.stats.posts == posts_before
    payloads = [json.loads(line) for line in Path("out.jsonl").read_text(encoding="utf-8").splitlines()]
    codes = [p["code"] for p in payloads]
    assert codes == sorted(codes)  # input order
    first = next(e for e in EXPECTED if "payload" in e)
    assert payloads[0]["code"] == first["code"]
    assert all(isinstance(p.get("metadata", {}), dict) for p in payloads)


@pytest.mark.parametrize(
    ("args", "key", "fragment"),
    [
        (["missing.csv", "--dry-run"], None, "missing.csv"),
        (["sample.csv"], None, "BITERAL_API_KEY"),
        (["sample.csv", "--api-key", "abc"], None, "never taken from the command line"),
        (["sample.csv", "--sandbox", "--api-url", "http://127.0.0.1:1"], None, "--sandbox and --api-url"),
        (["sample.csv", "--dry-run", "--resume"], None, "--resume and --dry-run"),
        (["sample.csv", "--dry-run", "--batch-size", "101"], None, "--batch-size"),
        (["sample.csv", "--dry-run", "--max-errors", "lots"], None, "--max-errors"),
        (["sample.csv", "--dry-run", "--shard", "5/4"], None, "--shard"),
        (["sample.csv", "--dry-run", "--rate", "fast"], None, "--rate"),
        (["sample.csv", "--full", "--dry-run"], None, "--full"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(runner: CliRunner, args: list[str], key: str | None, fragment: str) -> None:
    Path("sample.csv").write_text("code,country\nA1,ES\n", encoding="utf-8")
    result = invoke(runner, args, key=key)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_header_only_file_is_nothing_to_import(runner: CliRunner) -> None:
    Path("empty.csv").write_text("code,country\n", encoding="utf-8")
    result = invoke(runner, ["empty.csv", "--dry-run"], key=None)
    assert result.exit_code == 0
    assert "nothing to import" in result.output


def test_wrong_key_aborts_with_exit_3_and_never_shows_the_key(runner: CliRunner, sandbox: RunningSandbox) -> None:
    secret = "sk_live_do_not_print_me_1234"
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--api-url", sandbox.url, "-v"], key=secret)
    assert result.exit_code == 3, result.output
    assert "BITERAL_API_KEY" in result.output
    assert secret not in result.output
    assert not Path("customers.failures.csv").exists()  # refused before reading a row


@pytest.mark.slow
def test_json_prints_only_the_summary(runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]) -> None:
    sandbox = sandbox_factory()
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--api-url", sandbox.url, "--json"])
    data = json.loads(result.stdout)
    assert {
        "rows",
        "accepted",
        "rejected",
        "failed",
        "skipped",
        "warnings",
        "batches",
        "retries",
        "duration_s",
        "aborted",
        "exit_code",
        "files",
        "errors",
    } <= data.keys()
    assert data["exit_code"] == result.exit_code == 1


def test_quiet_prints_one_summary_line(runner: CliRunner) -> None:
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--dry-run", "--quiet"], key=None)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "300 rows" in lines[0]


@pytest.mark.slow
def test_state_skips_unchanged_customers_and_full_sends_again(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = sandbox_factory()
    args = [
        str(SAMPLES / "customers.csv"),
        "--api-url",
        sandbox.url,
        "--state",
        "sync.sqlite",
        "--summary-json",
        "s.json",
    ]
    invoke(runner, args)
    first = summary(Path("s.json"))
    posts = sandbox.stats.posts
    invoke(runner, args)
    second = summary(Path("s.json"))
    assert second["skipped"] == first["accepted"]
    assert second["accepted"] == 0
    invoke(runner, [*args, "--full"])
    assert summary(Path("s.json"))["accepted"] == first["accepted"]
    assert sandbox.stats.posts > posts


def test_second_run_on_a_locked_state_exits_2(runner: CliRunner) -> None:
    with SyncState.open(Path("sync.sqlite")):
        result = invoke(runner, [str(SAMPLES / "customers.csv"), "--dry-run", "--state", "sync.sqlite"], key=None)
    assert result.exit_code == 2
    assert "another biteral-import run" in result.output


@pytest.mark.slow
def test_shards_split_the_codes_without_overlap(runner: CliRunner) -> None:
    seen: list[str] = []
    for k in (1, 2, 3):
        invoke(
            runner,
            [str(SAMPLES / "customers.csv"), "--dry-run", "--shard", f"{k}/3", "--output", f"{k}.jsonl"],
            key=None,
        )
        seen += [json.loads(line)["code"] for line in Path(f"{k}.jsonl").read_text().splitlines()]
    invoke(runner, [str(SAMPLES / "customers.csv"), "--dry-run", "--output", "all.jsonl"], key=None)
    everything = [json.loads(line)["code"] for line in Path("all.jsonl").read_text().splitlines()]
    assert sorted(seen) == sorted(everything)
    assert len(set(seen)) == len(seen)


@pytest.mark.slow
def test_max_errors_aborts_then_resume_sends_only_the_rest(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = sandbox_factory()
    rows = ["code,country"] + [f"A{i:04d},ES" for i in range(250)]
    rows[30] = "A0029,Atlantis"  # rejected by the API
    rows[31] = ",ES"  # rejected by validation
    rows[32] = ",FR"
    Path("in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    common = [
        "in.csv",
        "--api-url",
        sandbox.url,
        "--summary-json",
        "s.json",
        "--batch-size",
        "10",
        "--concurrency",
        "1",
    ]
    result = invoke(runner, [*common, "--max-errors", "1"])
    assert result.exit_code == 3, result.output
    first = summary(Path("s.json"))
    assert first["aborted"]
    assert first["accepted"] < 247
    items_before = sandbox.stats.items_received
    result = invoke(runner, [*common, "--resume"])
    assert result.exit_code == 1, result.output  # the 3 bad rows are still bad
    second = summary(Path("s.json"))
    assert second["rows"] == 250
    assert second["accepted"] == 247
    assert second["rejected"] == 3
    # confirmed rows were not sent again: only the rest (plus the bad rows' retries) went out
    assert sandbox.stats.items_received - items_before <= 250 - first["accepted"] + 10
    assert get(sandbox, "A0249") is not None


def test_config_file_and_environment_with_command_line_winning(runner: CliRunner) -> None:
    Path("biteral-import.toml").write_text('dry-run = true\nbatch-size = 7\nfailures = "from-config.csv"\n')
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--json"], key=None)
    assert json.loads(result.stdout)["batches"] == 43  # 297 valid rows in batches of 7
    assert Path("from-config.csv").exists()
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--json"], key=None, BITERAL_BATCH_SIZE="50")
    assert json.loads(result.stdout)["batches"] == 6
    result = invoke(
        runner, [str(SAMPLES / "customers.csv"), "--json", "--batch-size", "100"], key=None, BITERAL_BATCH_SIZE="50"
    )
    assert json.loads(result.stdout)["batches"] == 3


def test_config_file_cannot_hold_the_key(runner: CliRunner) -> None:
    Path("biteral-import.toml").write_text('api-key = "abc"\n')
    result = invoke(runner, [str(SAMPLES / "customers.csv"), "--dry-run"], key=None)
    assert result.exit_code == 2
    assert "never read from the config file" in result.output


def test_map_command_shows_and_saves_the_mapping(runner: CliRunner) -> None:
    export = SAMPLES / "exports"
    shopify = export / "shopify_customers.csv"  # named: glob order differs between file systems
    result = runner.invoke(app, ["map", str(shopify), "--write-mapping", "m.toml"])
    assert result.exit_code == 0, result.output
    # The columns a Shopify export names its fields by (the README's mapping rules: a code column
    # beats a name column, the default address is the address).
    assert tomllib.loads(Path("m.toml").read_text(encoding="utf-8"))["columns"] == {
        "code": "Customer ID",
        "isActive": "",
        "country": "Default Address Country Code",
        "state": "Default Address Province Code",
        "city": "Default Address City",
        "yearBorn": "",
        "gender": "",
        "metadata": "",
    }
    result = invoke(runner, [str(shopify), "--dry-run", "--mapping", "m.toml", "--json"], key=None)
    figures = json.loads(result.stdout)
    assert (figures["rows"], figures["accepted"]) == (EXPORT_ROWS[shopify.name],) * 2


@pytest.mark.slow
def test_every_sample_export_imports_without_options(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = sandbox_factory()
    for export in sorted((SAMPLES / "exports").glob("*.csv")):
        # The legacy Shopify export has no id column: an unattended send keys it by email only
        # when told to (tests run without a terminal).
        pinned = ["--code-column", "Email"] if export.name == "shopify_customers_legacy.csv" else []
        result = invoke(runner, [str(export), "--api-url", sandbox.url, "--json", *pinned])
        data = json.loads(result.stdout)
        counts = (data["rows"], data["accepted"], data["rejected"], data["failed"], data["skipped"])
        assert counts == (EXPORT_ROWS[export.name], EXPORT_ROWS[export.name], 0, 0, 0), export.name


def test_every_sample_format_reads_to_identical_payloads(runner: CliRunner) -> None:
    outputs = {}
    for name in ("customers.csv", "customers.jsonl", "customers.xlsx"):
        invoke(runner, [str(SAMPLES / name), "--dry-run", "--output", f"{name}.out", "-q"], key=None)
        outputs[name] = Path(f"{name}.out").read_text(encoding="utf-8")
    assert outputs["customers.csv"].count("\n") == 297
    assert outputs["customers.csv"] == outputs["customers.jsonl"] == outputs["customers.xlsx"]


def test_several_inputs_are_counted_per_file(runner: CliRunner) -> None:
    result = invoke(
        runner,
        [str(SAMPLES / "customers.csv"), str(SAMPLES / "customers.xlsx"), "--dry-run", "--json"],
        key=None,
    )
    data = json.loads(result.stdout)
    assert data["rows"] == 600
    assert [counts["rows"] for counts in data["files"].values()] == [300, 300]


def test_check_validates_url_and_key_without_reading(runner: CliRunner, sandbox: RunningSandbox) -> None:
    result = invoke(runner, ["does-not-matter.csv", "--api-url", sandbox.url, "--check"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "the key ****" in result.output  # a short key is masked whole
    result = invoke(runner, ["does-not-matter.csv", "--api-url", sandbox.url, "--check"], key="wrong-key-9999")
    assert result.exit_code == 3
    assert "BITERAL_API_KEY" in result.output and "wrong-key-9999" not in result.output


@pytest.mark.slow
def test_input_breaking_mid_file_after_sending_is_an_abort(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    sandbox = sandbox_factory()
    lines = ["code,city"] + [f"B{i:04d},Madrid" for i in range(2000)] + ['B9999,"never closed']
    Path("broken.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["broken.csv", "--api-url", sandbox.url, "--batch-size", "10", "--concurrency", "1"]
    result = invoke(runner, [*args, "--summary-json", "s.json"])
    assert result.exit_code == 3, result.output  # customers were sent before the file broke
    assert "line 2002" in result.output
    figures = summary(Path("s.json"))
    # What the summary calls accepted is exactly what the API stored (each code once, fresh API);
    # at least the first batch of 10 went out before the reader reached the broken line.
    assert figures["accepted"] == sandbox.stats.stored_writes >= 10
    assert figures["accepted"] + figures["failed"] == figures["rows"] == 2000  # read-ahead rows: failed, not lost
    result = invoke(runner, ["broken.csv", "--dry-run"], key=None)
    assert result.exit_code == 2  # nothing sent: a plain input error


@pytest.mark.slow
def test_duplicate_codes_warn_and_end_as_a_top_to_bottom_application(
    runner: CliRunner, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    # Errors make batches retry and so overtake one another: file order must hold anyway.
    sandbox = sandbox_factory(latency_jitter_ms=20, error_rate=0.3, seed=5)
    lines = ["code,country,city,yearBorn"]
    for i in range(300):
        lines.append(f"D{i % 7},ES,City{i},")  # 7 codes, each rewritten many times
    lines.append("D0,FR,,1980")  # the last row for D0 keeps its earlier city (empty cells are left out)
    Path("dups.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(
        runner,
        [
            "dups.csv",
            "--api-url",
            sandbox.url,
            "--batch-size",
            "5",
            "--concurrency",
            "8",
            "--max-retries",
            "30",
            "--summary-json",
            "s.json",
            "--warnings",
            "w.csv",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = summary(Path("s.json"))
    assert figures["accepted"] == 301
    assert figures["warnings"] == 301 - 7
    assert "appears earlier in the input" in Path("w.csv").read_text(encoding="utf-8-sig")
    # Read back from a fault-free view of the same database: the faulty API's GETs may fail too.
    with running_sandbox(SandboxSettings(db=sandbox.db)) as clean:
        for i in range(1, 7):
            last = max(j for j in range(300) if j % 7 == i)
            assert get(clean, f"D{i}") == {"code": f"D{i}", "isActive": True, "country": "ESP", "city": f"City{last}"}
        expected = {"code": "D0", "isActive": True, "country": "FRA", "city": "City294", "yearBorn": 1980}
        assert get(clean, "D0") == expected


def test_every_import_option_has_its_environment_variable() -> None:
    import typer

    command = typer.main.get_command(app).commands["import"]
    missing = []
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        name = max(param.opts, key=len)
        if name in ("--map", "--check", "--config"):  # documented exceptions
            continue
        expected = "BITERAL_API_BASE_URL" if name == "--api-url" else "BITERAL_" + name[2:].upper().replace("-", "_")
        if param.envvar != expected:
            missing.append(f"{name} ({param.envvar})")
    assert missing == []
