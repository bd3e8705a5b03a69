"""Safe to run unattended (issue 16): decisions pinned in the state, drift and mass changes refused
before anything is sent, the code chosen on purpose, personal data kept home, reports owner-only.

Every test goes through the CLI against a sandbox on 127.0.0.1 and checks what the sandbox stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

EXPORTS = Path(__file__).resolve().parent.parent / "sample_data" / "exports"

pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A fresh sandbox per test, so that what it stored is only this test's doing."""
    return sandbox_factory()


def run(sandbox: RunningSandbox, *args: str, input: bytes | None = None) -> Any:
    """Import into ``sandbox`` through the CLI (no terminal: CliRunner's stdin is not a TTY)."""
    return CliRunner().invoke(
        app, [*args, "--api-url", sandbox.url], env={"BITERAL_API_KEY": sandbox.api_key}, input=input
    )


def get(sandbox: RunningSandbox, code: str) -> dict[str, Any] | None:
    """The customer as the sandbox returns it, or None when it does not know the code."""
    response = httpx.get(
        f"{sandbox.url}/customers",
        params={"code": code},
        headers={"X-API-Key": sandbox.api_key, "X-API-Version": "1"},
    )
    return response.json()["payload"] if response.status_code == 200 else None


def write(name: str, lines: list[str]) -> str:
    Path(name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return name


def customers(header: str, codes: list[str], city: str = "Madrid") -> list[str]:
    return [header, *(f"{code},{city},pro" for code in codes)]


# -- 1. decisions pinned ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_renamed_id_column_is_refused_with_nothing_sent(sandbox: RunningSandbox) -> None:
    first = write("monday.csv", customers("Customer ID,City,Plan", ["C1", "C2", "C3"]))
    assert run(sandbox, first, "--state", "sync.sqlite", "-q").exit_code == 0
    posts = sandbox.stats.requests
    # Tuesday's export renamed its id column: every customer would get a new code.
    renamed = write("tuesday.csv", customers("Customer Number,City,Plan", ["N1", "N2", "N3"]))
    result = run(sandbox, renamed, "--state", "sync.sqlite", "-q")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "column for code Customer ID Customer Number" in out  # the table: decision, last run, this run
    assert "nothing was sent" in out
    assert "--accept-changes" in out and "--write-mapping" in out and "--mapping" in out
    assert "Traceback" not in result.output
    assert sandbox.stats.requests == posts  # not one POST
    assert get(sandbox, "N1") is None
    # Accepting it sends, records the new decision, and the next run goes through without it.
    assert run(sandbox, renamed, "--state", "sync.sqlite", "--accept-changes", "-q").exit_code == 0
    assert get(sandbox, "N1") is not None
    again = write("wednesday.csv", customers("Customer Number,City,Plan", ["N4"]))
    assert run(sandbox, again, "--state", "sync.sqlite", "-q").exit_code == 0
    assert get(sandbox, "N4") is not None


@pytest.mark.slow
def test_a_mapped_field_that_loses_its_column_is_refused(sandbox: RunningSandbox) -> None:
    assert run(sandbox, write("a.csv", customers("code,City,Plan", ["C1"])), "--state", "s.sqlite").exit_code == 0
    result = run(sandbox, write("b.csv", customers("code,Town name,Plan", ["C2"])), "--state", "s.sqlite")
    assert result.exit_code == 2
    assert "column for city" in result.output and "(none)" in result.output
    assert get(sandbox, "C2") is None


@pytest.mark.slow
def test_a_column_gained_by_a_field_is_not_drift(sandbox: RunningSandbox) -> None:
    assert run(sandbox, write("a.csv", ["code,Plan", "C1,pro"]), "--state", "s.sqlite").exit_code == 0
    result = run(sandbox, write("b.csv", ["code,City,Plan", "C2,Madrid,pro"]), "--state", "s.sqlite")
    assert result.exit_code == 0, result.output
    assert "column for city changed since the last run: (none) -> City" in " ".join(result.output.split())


@pytest.mark.slow
def test_the_gender_m_rule_is_pinned_by_the_state(sandbox: RunningSandbox) -> None:
    # A header that does not tell the language: Monday's H among the values says M = mujer.
    monday = write("monday.csv", ["code,G", "C1,H", "C2,M"])
    assert run(sandbox, monday, "--map", "gender=G", "--state", "s.sqlite", "-q").exit_code == 0
    assert get(sandbox, "C2")["gender"] == 2  # type: ignore[index]
    # Tuesday's file holds only M: alone it cannot tell, so the recorded rule applies.
    tuesday = write("tuesday.csv", ["code,G", "C3,M"])
    assert run(sandbox, tuesday, "--map", "gender=G", "--state", "s.sqlite", "-q").exit_code == 0
    assert get(sandbox, "C3")["gender"] == 2  # type: ignore[index]
    # Wednesday's F among the values would make M male: refused, nothing sent.
    wednesday = write("wednesday.csv", ["code,G", "C4,F", "C5,M"])
    result = run(sandbox, wednesday, "--map", "gender=G", "--state", "s.sqlite", "-q")
    assert result.exit_code == 2
    assert "gender 'M' means female (2) male (1)" in " ".join(result.output.split())
    assert get(sandbox, "C5") is None


@pytest.mark.slow
def test_decisions_are_not_recorded_by_a_dry_run(sandbox: RunningSandbox) -> None:
    first = write("a.csv", customers("Customer ID,City,Plan", ["C1"]))
    assert run(sandbox, first, "--state", "s.sqlite").exit_code == 0
    renamed = write("b.csv", customers("Customer Number,City,Plan", ["N1"]))
    preview = run(sandbox, renamed, "--state", "s.sqlite", "--dry-run", "--accept-changes")
    assert preview.exit_code == 0, preview.output
    assert run(sandbox, renamed, "--state", "s.sqlite").exit_code == 2  # still the old decision


@pytest.mark.slow
def test_a_pinned_mapping_file_survives_a_renamed_id_column(sandbox: RunningSandbox) -> None:
    first = write("a.csv", customers("Customer ID,City,Plan", ["C1"]))
    written = CliRunner().invoke(app, ["map", first, "--write-mapping", "mapping.toml"])
    assert written.exit_code == 0, written.output
    assert tomllib.loads(Path("mapping.toml").read_text(encoding="utf-8"))["columns"]["code"] == "Customer ID"
    assert run(sandbox, first, "--mapping", "mapping.toml", "--state", "s.sqlite").exit_code == 0
    # With the mapping pinned, a renamed id column is an error about the file, not a silent re-key.
    renamed = write("b.csv", customers("Customer Number,City,Plan", ["N1"]))
    result = run(sandbox, renamed, "--mapping", "mapping.toml", "--state", "s.sqlite")
    assert result.exit_code == 2
    assert "no column 'Customer ID'" in result.output
    assert get(sandbox, "N1") is None


# -- 2. mass change refused ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_mass_change_is_refused_before_sending(sandbox: RunningSandbox) -> None:
    codes = [f"C{i}" for i in range(10)]
    assert run(sandbox, write("a.csv", customers("code,City,Plan", codes)), "--state", "s.sqlite", "-q").exit_code == 0
    posts = sandbox.stats.posts
    # Six of the ten known customers moved to Sevilla (a bad export, say), and two are new.
    moved = customers("code,City,Plan", [*codes[:6], "N1", "N2"], city="Sevilla")
    changed = moved + customers("code,City,Plan", codes[6:])[1:]
    path = write("b.csv", changed)
    result = run(sandbox, path, "--state", "s.sqlite", "-q")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "6 of the 10 customers known to s.sqlite would change (60%)" in out
    assert "--max-changed 50%" in out and "--max-changed 100%" in out
    assert "C0, C1, C2, C3, C4, ..." in out
    # Not one POST: the run read the whole file before sending (only GET /status checked the key).
    assert sandbox.stats.posts == posts
    assert get(sandbox, "C0")["city"] == "Madrid"  # type: ignore[index]
    assert get(sandbox, "N1") is None
    # A higher threshold lets it through; so does 100%, which turns the guard off.
    assert run(sandbox, path, "--state", "s.sqlite", "--max-changed", "60%", "-q").exit_code == 0
    assert get(sandbox, "C0")["city"] == "Sevilla"  # type: ignore[index]
    back = write("c.csv", customers("code,City,Plan", codes, city="Bilbao"))
    assert run(sandbox, back, "--state", "s.sqlite", "-q").exit_code == 2
    assert run(sandbox, back, "--state", "s.sqlite", "--max-changed", "100%", "-q").exit_code == 0
    assert get(sandbox, "C9")["city"] == "Bilbao"  # type: ignore[index]


@pytest.mark.slow
def test_a_new_file_on_a_fresh_state_or_half_changed_is_not_a_mass_change(sandbox: RunningSandbox) -> None:
    codes = [f"C{i}" for i in range(10)]
    assert run(sandbox, write("a.csv", customers("code,City,Plan", codes)), "--state", "s.sqlite").exit_code == 0
    half = customers("code,City,Plan", codes[:5], city="Sevilla") + customers("code,City,Plan", codes[5:])[1:]
    assert run(sandbox, write("b.csv", half), "--state", "s.sqlite", "-q").exit_code == 0  # 50% is not more
    assert get(sandbox, "C4")["city"] == "Sevilla"  # type: ignore[index]


@pytest.mark.slow
def test_a_mass_change_on_standard_input_is_refused_too(sandbox: RunningSandbox) -> None:
    codes = [f"C{i}" for i in range(4)]
    body = "\n".join(customers("code,City,Plan", codes)).encode()
    assert run(sandbox, "-", "--state", "s.sqlite", "-q", input=body).exit_code == 0
    moved = "\n".join(customers("code,City,Plan", codes, city="Vigo")).encode()
    result = run(sandbox, "-", "--state", "s.sqlite", "-q", input=moved)
    assert result.exit_code == 2
    assert "4 of the 4 customers" in result.output
    assert run(sandbox, "-", "--state", "s.sqlite", "--max-changed", "100%", "-q", input=moved).exit_code == 0
    assert get(sandbox, "C3")["city"] == "Vigo"  # type: ignore[index]


@pytest.mark.parametrize("value", ["50", "150%", "half"])
def test_max_changed_takes_a_percentage(sandbox: RunningSandbox, value: str) -> None:
    result = run(sandbox, write("a.csv", ["code", "C1"]), "--max-changed", value)
    assert result.exit_code == 2
    assert "--max-changed takes a percentage" in result.output
    assert sandbox.stats.requests == 0


# -- 3. the code chosen on purpose --------------------------------------------------------------


@pytest.mark.slow
def test_an_unattended_send_does_not_key_customers_by_email_on_its_own(sandbox: RunningSandbox) -> None:
    path = write("contacts.csv", ["Email,City,Plan", "ana@example.com,Madrid,pro"])
    for extra in ([], ["--state", "s.sqlite"]):
        result = run(sandbox, path, *extra)
        assert result.exit_code == 2, result.output
        out = " ".join(result.output.split())
        assert "the customer code would be the email column 'Email'" in out
        assert "--code-column 'Email'" in out and "nothing was sent" in out
    assert sandbox.stats.requests == 0
    # A dry run still shows what would happen; choosing the column on purpose sends.
    assert run(sandbox, path, "--dry-run").exit_code == 0
    assert run(sandbox, path, "--code-column", "Email").exit_code == 0
    assert get(sandbox, "ana@example.com") is not None


@pytest.mark.slow
def test_an_id_column_renamed_beyond_recognition_is_refused_not_keyed_by_email(sandbox: RunningSandbox) -> None:
    first = write("a.csv", ["Customer ID,Email,City", "C1,ana@example.com,Madrid"])
    assert run(sandbox, first, "--state", "s.sqlite", "-q").exit_code == 0
    renamed = write("b.csv", ["Kundenschlüssel,Email,City", "C1,ana@example.com,Madrid"])
    result = run(sandbox, renamed, "--state", "s.sqlite", "-q")
    assert result.exit_code == 2
    assert "email column 'Email'" in result.output
    assert get(sandbox, "ana@example.com") is None


@pytest.mark.slow
def test_hash_code_sends_the_sha256_hex_of_the_code(sandbox: RunningSandbox) -> None:
    path = write("contacts.csv", ["Email,City", " ana@example.com ,Madrid"])
    assert run(sandbox, path, "--code-column", "Email", "--hash-code", "sha256").exit_code == 0
    hashed = hashlib.sha256(b"ana@example.com").hexdigest()  # of the code as normalized (trimmed)
    assert get(sandbox, hashed) == {"code": hashed, "isActive": True, "city": "Madrid"}
    assert get(sandbox, "ana@example.com") is None


@pytest.mark.slow
def test_switching_hash_code_on_later_is_drift(sandbox: RunningSandbox) -> None:
    path = write("a.csv", customers("code,City,Plan", ["C1"]))
    assert run(sandbox, path, "--state", "s.sqlite").exit_code == 0
    result = run(sandbox, path, "--state", "s.sqlite", "--hash-code", "sha256")
    assert result.exit_code == 2
    assert "code sent as" in result.output
    assert get(sandbox, hashlib.sha256(b"C1").hexdigest()) is None


# -- 4. personal data kept home -----------------------------------------------------------------


@pytest.mark.slow
def test_a_shopify_export_is_sent_without_personal_data(sandbox: RunningSandbox) -> None:
    result = run(sandbox, str(EXPORTS / "shopify_customers.csv"))
    assert result.exit_code == 0, result.output
    assert "personal data kept home" in result.output
    stored = get(sandbox, "7283105923251")
    assert stored is not None
    assert stored["metadata"] == {
        "Accepts Email Marketing": "yes",
        "Accepts SMS Marketing": "no",
        "Total Spent": "412.80",
        "Total Orders": "5",
        "Tax Exempt": "no",
        "Tags": "vip, newsletter",
    }
    text = json.dumps(stored)
    for secret in ("Emma", "Wilson", "emma.wilson@example.com", "Queen St", "M5H 2N2", "4165550182"):
        assert secret not in text
    second = get(sandbox, "7283105956019")
    assert second is not None and "Prefers delivery" not in json.dumps(second)  # the Note column


@pytest.mark.slow
def test_personal_data_is_sent_when_asked(sandbox: RunningSandbox) -> None:
    path = str(EXPORTS / "shopify_customers.csv")
    assert run(sandbox, path, "--personal-data", "include", "-q").exit_code == 0
    assert get(sandbox, "7283105923251")["metadata"]["Email"] == "emma.wilson@example.com"  # type: ignore[index]


def test_map_lists_what_personal_data_it_leaves_out() -> None:
    result = CliRunner().invoke(app, ["map", str(EXPORTS / "shopify_customers.csv")], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    out = " ".join(result.output.split())
    assert "personal data (email): kept out of metadata" in out
    assert "personal data kept home: 'First Name' (name), 'Last Name' (name), 'Email' (email)" in out


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("umask_022")
def test_reports_and_files_with_row_data_are_owner_only(sandbox: RunningSandbox) -> None:
    Path("bad.failures.csv").write_text("old report\n", encoding="utf-8")
    os.chmod("bad.failures.csv", 0o644)  # a report from an older run, readable by all
    path = write(
        "bad.csv",
        [
            "code,Email,Phone,Country",
            f"{'X' * 300},ana@example.com,+34600000000,ES",
            "C2,bea@example.com,+34611111111,Spian",
        ],
    )
    result = run(sandbox, path, "--warnings", "warnings.csv", "--output", "sent.jsonl", "--state", "s.sqlite")
    assert result.exit_code == 1, result.output
    for written in ("bad.failures.csv", "warnings.csv", "sent.jsonl", "s.sqlite"):
        assert _mode(written) == 0o600, written
    assert "ana@example.com" in Path("bad.failures.csv").read_text(encoding="utf-8-sig")  # not redacted by default


@pytest.mark.slow
def test_redact_reports_masks_the_personal_data_columns(sandbox: RunningSandbox) -> None:
    path = write(
        "bad.csv",
        [
            "code,Email,Phone,Plan",
            f"{'X' * 300},ana@example.com,+34600000000,pro",
            "C2,bea@example.com,+34611111111,pro",
        ],
    )
    jsonl = write("rows.jsonl", [json.dumps({"code": "X" * 300, "email": "cat@example.com", "Plan": "pro"})])
    for source, fmt in ((path, "csv"), (jsonl, "jsonl")):
        result = run(sandbox, source, "--redact-reports", "--failures", f"f.{fmt}", "--failures-format", fmt)
        assert result.exit_code == 1, result.output
        report = Path(f"f.{fmt}").read_text(encoding="utf-8-sig")
        for secret in ("ana@example.com", "+34600000000", "cat@example.com"):
            assert secret not in report
        assert "[redacted]" in report and "pro" in report and "X" * 300 in report  # the rest, and the code, kept


def test_a_code_column_that_does_not_exist_is_named_as_such(sandbox: RunningSandbox) -> None:
    result = run(sandbox, write("a.csv", ["Email,City", "ana@example.com,Madrid"]), "--code-column", "Emial")
    assert result.exit_code == 2
    assert "--code-column Emial: no column 'Emial' (did you mean 'Email'?)" in " ".join(result.output.split())
    assert sandbox.stats.requests == 0


@pytest.mark.slow
def test_on_a_terminal_the_email_may_still_be_the_code_but_not_with_state(
    sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("biteral_cli.cli.console.stdin_is_terminal", lambda: True)  # a person at the keyboard
    path = write("contacts.csv", ["Email,City", "ana@example.com,Madrid"])
    result = run(sandbox, path)
    assert result.exit_code == 0, result.output
    assert "no id column, so the email column 'Email' is the customer code" in " ".join(result.output.split())
    assert get(sandbox, "ana@example.com") is not None
    more = write("more.csv", ["Email,City", "bea@example.com,Madrid"])
    assert run(sandbox, more, "--state", "s.sqlite").exit_code == 2
    assert get(sandbox, "bea@example.com") is None
