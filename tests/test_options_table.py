"""The options table drives the command line: help panels and placeholders, the environment variable
and config key of every option, refusals before any file is opened, did-you-mean, completion."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.cli.options import IMPORT, MAP, OPTIONS, PANELS, RULES, SANDBOX, Option, options_of
from biteral_cli.settings import ImportSettings

pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables

KEY = {"BITERAL_API_KEY": "k-1234"}


def run(args: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return CliRunner().invoke(app, args, env={**KEY, **(env or {})}, **kwargs)


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [IMPORT, MAP, SANDBOX])
def test_help_groups_options_in_panels_with_readable_placeholders(command: str) -> None:
    result = run([command, "--help"], {"TERMINAL_WIDTH": "160"})
    assert result.exit_code == 0, result.output
    shown = result.output
    panels = list(dict.fromkeys(o.panel for o in options_of(command)))
    positions = [shown.index(f"─ {panel} ─") for panel in panels]
    assert positions == sorted(positions), "panels appear in the table's order"
    for option in options_of(command):
        if not option.hidden:
            assert option.flag in shown
            if option.metavar:
                assert option.metavar in shown, option.flag
    # Typer's own type names never stand in for a placeholder.
    assert not re.search(r"<(list|str|int|float|Path)|\bTEXT\b|\bINTEGER\b", shown), shown
    assert "<bool>" not in shown  # a flag takes no value to name


def test_import_help_has_the_six_panels_and_ends_with_examples() -> None:
    shown = run(["import", "--help"], {"TERMINAL_WIDTH": "160"}).output
    assert "Usage: biteral-import import [OPTIONS] FILE..." in shown
    last_panel = max(shown.index(f"─ {panel} ─") for panel in PANELS)
    assert shown.index("Examples:") > last_panel
    assert "biteral-import customers.csv --sandbox" in shown[shown.index("Examples:") :]


def test_the_top_help_offers_completion_and_examples() -> None:
    shown = run(["--help"], {"TERMINAL_WIDTH": "160"}).output
    assert "--install-completion" in shown and "--show-completion" in shown
    assert "Examples:" in shown and "<bool>" not in shown


def test_show_completion_prints_a_script_that_completes_options(monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer's own switch for tests (read when the command is built): the shell is named, not
    # detected from the process tree, which differs from one test runner to the next.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = run(["--show-completion", "bash"])
    assert result.exit_code == 0, result.output
    assert "_BITERAL_IMPORT_COMPLETE" in result.output
    env = {"_BITERAL_IMPORT_COMPLETE": "complete_bash", "COMP_WORDS": "biteral-import --concur", "COMP_CWORD": "1"}
    completed = CliRunner().invoke(app, [], env=env, prog_name="biteral-import")
    assert "--concurrency" in completed.output


# -- environment variables and config keys ---------------------------------------------------------

#: What else an option needs on the command line to be valid (a dependent option).
PRODUCTS = ["--entity", "products"]
NEEDS = {
    "full": ["--state", "s.sqlite"],
    "api-key-file": [],
    "currency": PRODUCTS,
    "price-rule": PRODUCTS,
    "extra-columns": PRODUCTS,
}


def settled(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str] | None = None
) -> ImportSettings | None:
    """The settings an import of ``args`` is run with (nothing is run), or None when refused."""
    seen: list[ImportSettings] = []

    def record(settings: ImportSettings, **_: Any) -> Any:
        seen.append(settings)
        return SimpleNamespace(exit_code=0)

    monkeypatch.setattr("biteral_cli.importer.run_import", record)
    monkeypatch.setattr("biteral_cli.cli.console.show_check", record)
    result = run(["in.csv", *args], env)
    assert result.exit_code == 0, result.output
    return seen[0] if seen else None


def _as_typed(option: Option) -> list[str]:
    return [option.flag] if option.kind is bool else [option.flag, str(option.example)]


def _toml(option: Option) -> str:
    if option.kind is bool:
        return "true"
    if option.kind in (int, float):
        return str(option.example)
    if option.kind == list[str]:
        return json.dumps([option.example])
    return json.dumps(option.example)


SETTABLE = [o for o in options_of(IMPORT) if not o.hidden and (o.kind is bool or o.example is not None)]


def test_every_valued_option_has_an_example() -> None:
    missing = [o.flag for o in OPTIONS if o.kind is not bool and o.example is None and SANDBOX not in o.commands]
    assert missing == [o.flag for o in OPTIONS if o.hidden]


@pytest.mark.slow
@pytest.mark.parametrize("option", [o for o in SETTABLE if o.env_name], ids=lambda o: o.env_name)
def test_the_environment_variable_of_every_option_acts_like_its_flag(
    option: Option, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("key.txt").write_text("k-5678\n", encoding="utf-8")
    assert option.env_name is not None
    value = "1" if option.kind is bool else str(option.example)
    needs = NEEDS.get(option.name, [])
    from_env = settled(monkeypatch, needs, {option.env_name: value})
    from_flag = settled(monkeypatch, [*needs, *_as_typed(option)])
    assert from_env == from_flag
    if option.name != "check":  # --check calls the API instead of importing
        assert from_env != settled(monkeypatch, needs)


@pytest.mark.parametrize("option", [o for o in SETTABLE if o.config_key], ids=lambda o: o.config_key)
def test_the_config_key_of_every_option_acts_like_its_flag(option: Option, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("key.txt").write_text("k-5678\n", encoding="utf-8")
    needs = NEEDS.get(option.name, [])
    Path("biteral-import.toml").write_text(f"{option.config_key} = {_toml(option)}\n", encoding="utf-8")
    from_config = settled(monkeypatch, needs)
    Path("biteral-import.toml").unlink()
    assert from_config == settled(monkeypatch, [*needs, *_as_typed(option)])
    if option.name != "check":
        assert from_config != settled(monkeypatch, needs)


def test_underscored_config_keys_and_a_map_table_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("biteral-import.toml").write_text('batch_size = 7\nmap = { code = "Email" }\n', encoding="utf-8")
    settings = settled(monkeypatch, [])
    assert settings is not None
    assert settings.batch_size == 7 and settings.map_overrides == {"code": "Email"}


def test_environment_and_config_reach_a_real_dry_run(sample_csv: Path) -> None:
    Path("biteral-import.toml").write_text('failures-format = "jsonl"\nfailures = "bad.jsonl"\n', encoding="utf-8")
    env = {"BITERAL_DRY_RUN": "true", "BITERAL_SUMMARY_JSON": "s.json", "BITERAL_BATCH_SIZE": "1"}
    result = CliRunner().invoke(app, [str(sample_csv)], env=env)
    assert result.exit_code == 1, result.output  # the sample has rejected rows
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["batches"] == summary["rows"] - summary["rejected"]
    first = Path("bad.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first)["_error"]


@pytest.fixture
def sample_csv() -> Path:
    return Path(__file__).resolve().parent.parent / "sample_data" / "customers.csv"


# -- refusals before any I/O ---------------------------------------------------------------------

#: A bad value for every option the table checks or parses.
BAD = {
    "format": "docx",
    "delimiter": "ab",
    "encoding": "klingon",
    "sheet": " ",
    "entity": "orders",
    "map": "code",
    "extra-columns": "tags",
    "personal-data": "some",
    "code-column": " ",
    "hash-code": "md5",
    "currency": "EURO",
    "price-rule": "cheapest",
    "samples": "0",
    "api-url": "ftp://example.com",
    "api-key": "abc",
    "concurrency": "100",
    "batch-size": "101",
    "max-request-bytes": "10",
    "rate": "fast",
    "max-retries": "-3",
    "max-wait": "soon",
    "timeout": "0",
    "failures-format": "xml",
    "max-errors": "lots",
    "max-changed": "120%",
    "shard": "5/4",
}


def test_every_checked_option_has_a_bad_value_here() -> None:
    checked = {o.name for o in OPTIONS if SANDBOX not in o.commands and (o.check or o.parse) and o.kind is not bool}
    assert checked - {"metadata-columns"} <= BAD.keys()  # a column list has no wrong form


def _refusals() -> list[tuple[str, list[str], str]]:
    cases = []
    for name, value in BAD.items():
        option = next(o for o in OPTIONS if o.name == name and SANDBOX not in o.commands)
        command = [MAP] if IMPORT not in option.commands else []
        cases.append((f"{option.flag} {value}", [*command, "in.csv", option.flag, value], option.flag))
    for rule in RULES:
        # A message worded per case names the option it refuses (``--code-column ... disagree``).
        message = rule.message if isinstance(rule.message, str) else rule.example[1]
        cases.append((" ".join(rule.example), list(rule.example), message))
    cases.append(("issue 11", ["in.csv", "--dry-run", "--concurrency", "0", "--max-retries", "-3"], "--concurrency"))
    cases.append(("before the sandbox", ["in.csv", "--sandbox", "--concurrency", "100"], "--concurrency"))
    return cases


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[ImportSettings]:
    """Every import that got as far as running (the refused ones must not)."""
    from biteral_cli import importer

    started: list[ImportSettings] = []
    real: Callable[..., Any] = importer.run_import

    def spy(settings: ImportSettings, **kwargs: Any) -> Any:
        started.append(settings)
        return real(settings, **kwargs)

    monkeypatch.setattr(importer, "run_import", spy)
    return started


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in _refusals()], ids=[c[0] for c in _refusals()])
def test_a_refused_option_stops_before_any_file_is_opened(
    args: list[str], fragment: str, imports: list[ImportSettings]
) -> None:
    Path("in.csv").write_text("code,country\nA1,ES\n", encoding="utf-8")
    Path("key.txt").write_text("k-5678\n", encoding="utf-8")
    reports = ["--failures", "f.csv", "--output", "o.jsonl", "--summary-json", "s.json"]
    extra = reports if args[0] != MAP else []
    result = run([*args, *extra], input="code\nA1\n")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # stdout: the --json summary
    assert len(lines) == 1 and lines[0].startswith("biteral-import: ") and fragment in lines[0], result.output
    assert imports == []  # refused while the settings were built: no input opened, no sandbox started
    made = {p.name for p in Path().iterdir()} - {"in.csv", "key.txt"}
    if args[0] == MAP:
        assert made == set()
    else:  # a refused run still leaves its summary JSON, and nothing else
        assert made == {"s.json"}
        summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
        assert summary["exit_code"] == 2 and fragment in summary["error"]


# -- a mistyped command ----------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "meant"), [("sandbx", "sandbox"), ("mpa", "map"), ("imprt", "import")])
def test_a_near_miss_of_a_command_name_says_which_one(typed: str, meant: str) -> None:
    result = run([typed, "--port", "0"] if meant == "sandbox" else [typed])
    assert result.exit_code == 2
    assert result.output.strip() == f"biteral-import: no file or command {typed!r}: did you mean {meant!r}?"


def test_a_file_named_like_a_command_is_still_imported() -> None:
    Path("mpa").write_text("code,country\nA1,ES\n", encoding="utf-8")
    result = run(["mpa", "--dry-run", "--format", "csv", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 1


def test_a_missing_file_far_from_any_command_is_a_missing_file() -> None:
    result = run(["custmers.csv", "--dry-run"])
    assert result.exit_code == 2
    assert "did you mean" not in result.output and "custmers.csv" in result.output


# -- the table itself ------------------------------------------------------------------------------


def test_each_name_env_var_and_config_key_is_used_once() -> None:
    for command in (IMPORT, MAP, SANDBOX):
        names = [o.name for o in options_of(command)]
        assert len(names) == len(set(names)), command
    env_names = [o.env_name for o in OPTIONS if o.env_name]
    assert len(env_names) == len(set(env_names))
    keys = [o.config_key for o in OPTIONS if o.config_key]
    assert len(keys) == len(set(keys))


def test_env_var_names_follow_one_rule_with_the_documented_exceptions() -> None:
    for option in OPTIONS:
        if option.env_name is None:
            continue
        if option.envvar is not None:  # named before the rule: both are in README
            assert (option.flag, option.env_name) in {
                ("--api-url", "BITERAL_API_BASE_URL"),
                ("--api-key", "BITERAL_SANDBOX_API_KEY"),
            }
        else:
            assert option.env_name == "BITERAL_" + option.name.upper().replace("-", "_")


@pytest.mark.parametrize(("option", "value"), [("--error-rate", "2"), ("--port", "70000"), ("--latency-ms", "-1")])
def test_a_refused_sandbox_option_stops_before_the_server_starts(
    option: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr("biteral_cli.sandbox.serve", lambda settings, **_: served.append(settings))
    result = run(["sandbox", option, value])
    assert result.exit_code == 2
    assert result.output.startswith(f"biteral-import: {option}") and len(result.output.splitlines()) == 1
    assert served == []
    assert run(["sandbox", "--seed", "3"]).exit_code == 0 and served[0].seed == 3  # the spy does see a valid one
