"""README.md documents every command and option, and CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from biteral_cli.cli import app
from biteral_cli.cli.options import OPTIONS, options_of

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_is_exactly_two_commands_install_and_sandbox_then_tests() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "pip install" in commands[0]
    assert "biteral-import sample_data/customers.csv --sandbox" in commands[0]
    assert "'.[test]'" in commands[1] and commands[1].endswith("pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert quick_start_commands()[1] in ci_lines


def test_every_command_and_option_is_documented() -> None:
    group = typer.main.get_command(app)
    assert set(group.commands) == {"import", "map", "sandbox"}
    missing = [
        f"command {name}" for name in group.commands if name != "import" and f"biteral-import {name}" not in README
    ]
    missing += [f"{'/'.join(o.commands)} {o.flag}" for o in OPTIONS if not o.hidden and f"`{o.flag}" not in README]
    assert missing == []


def test_the_commands_have_exactly_the_options_of_the_table() -> None:
    """Nothing escapes the table the README test iterates: Typer's commands are derived from it."""
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        shown = {
            max(param.opts, key=len)
            for param in command.params
            if param.param_type_name == "option" and param.name != "help"
        }
        assert shown == {o.flag for o in options_of(name)}, name
