"""The Typer app: every command's signature is derived from the options table, and every command
only parses its options into one settings object and calls one function.

``biteral-import FILE...`` runs the ``import`` command (the default); ``map`` shows the column
mapping; ``sandbox`` serves a local Biteral-like API.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rapidfuzz.distance import OSA
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..crash import EXIT_INTERNAL, internal_error_line, register_secret
from ..errors import BiteralImportError, ConfigError, InputError, UsageError
from ..settings import ImportSettings
from ..upload import Secret
from . import console
from .config import arg_value, default_map, load_config
from .options import IMPORT, MAP, NO_KEY, SANDBOX, Given, Option, check_values, option_named, options_of

EXAMPLES = """Examples:

biteral-import customers.csv --sandbox

biteral-import customers.csv --dry-run --output payloads.jsonl

biteral-import products.csv --entity products --currency EUR --sandbox

biteral-import map export.csv --write-mapping export.toml

biteral-import export.csv --mapping export.toml --state sync.sqlite --quiet

Every option also reads BITERAL_<OPTION> (BITERAL_CONCURRENCY=8) and its name as a key of ./biteral-import.toml; \
the command line wins, then the environment, then the file."""

_ARGS = "biteral_args"
#: Stands in for the key when a run that sends nothing still has its URL and limits checked.
_NO_KEY = Secret("not-used")


def read_api_key(key_file: Path | None) -> Secret | None:
    """The API key from ``--api-key-file`` (first line) or ``BITERAL_API_KEY``; None when neither is set."""
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"--api-key-file {key_file}: cannot read it ({exc.strerror})") from exc
        except UnicodeDecodeError:  # the bytes are never shown: they may be most of a key
            raise ConfigError(f"--api-key-file {key_file}: not UTF-8 text") from None
        if not text or not text[0].strip():
            raise ConfigError(f"--api-key-file {key_file}: the file is empty")
        register_secret(text[0].strip())
        return Secret(text[0].strip())
    value = os.environ.get("BITERAL_API_KEY", "").strip()
    register_secret(value)
    return Secret(value) if value else None


def given_of(command: str, ctx: typer.Context, params: dict[str, Any], inputs: tuple[str, ...] = ()) -> Given:
    """What ``command`` was given, by option name, and which options the command line itself set."""
    options = options_of(command)
    return Given(
        command,
        values={o.name: params[o.param] for o in options},
        inputs=inputs,
        explicit=frozenset(o.name for o in options if _on_command_line(ctx, o.param)),
    )


def build_settings(given: Given) -> ImportSettings:
    """The one settings object of an import or map command, built only once every check passed:
    nothing is read, opened or started before."""
    command = given.command
    fields = {k: v for k, v in check_values(given).items() if v is not None}
    key = None
    if command == IMPORT and not given.set("sandbox"):
        key = read_api_key(given.values["api-key-file"])
        if key is None and not given.set("dry-run"):
            raise UsageError(NO_KEY)
    settings = ImportSettings(inputs=given.inputs, api_key=key, interactive=console.stdin_is_terminal(), **fields)
    # The uploader's rules over the URL and --allow-insecure-http are checked now, not when first sending.
    if command == IMPORT and not settings.sandbox:
        settings.upload_settings(settings.api_url, key if key is not None and settings.sends else _NO_KEY)
    return settings


def _on_command_line(ctx: typer.Context, param: str) -> bool:
    """Whether ``param`` was typed on the command line (not taken from the environment or a file)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def near_command(word: str, commands: Sequence[str]) -> str | None:
    """The command ``word`` looks like a typo of, when it is no file (``sandbx`` -> ``sandbox``)."""
    if not word or word.startswith("-") or any(c in word for c in "./\\") or Path(word).exists():
        return None
    best = min(commands, key=lambda name: OSA.distance(word.lower(), name))
    return best if OSA.distance(word.lower(), best) <= max(1, len(best) // 3) else None


def _summary_target(args: list[str]) -> tuple[Path | None, bool]:
    """Where a refused import's summary JSON goes: --summary-json and --json, or their env vars."""
    summary, json_out = option_named("summary-json"), option_named("json")
    path = arg_value(args, summary.flag) or os.environ.get(str(summary.env_name)) or None
    on = json_out.flag in args or os.environ.get(str(json_out.env_name), "").lower() in ("1", "true", "yes", "on")
    return (Path(path) if path else None), on


def _refused(args: list[str], exc: BiteralImportError) -> typer.Exit:
    """Say why the command was refused in one line (an import still writes its summary JSON)."""
    if args[:1] == [IMPORT]:
        console.error_summary(exc, *_summary_target(args))
    return console.fail(exc)


class _FlagsShowNoType:
    """Help without ``<bool>`` next to a flag (--help, --show-completion): a flag takes no value."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class DefaultImportGroup(_FlagsShowNoType, TyperGroup):
    """A group whose first argument, when it is no command name, is a file for ``import``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Route a first argument that is no command to ``import`` (or name the command it misspells),
        and make the options file the commands' defaults."""
        own = {opt for param in self.get_params(ctx) for opt in param.opts}
        if args and args[0] not in self.commands and args[0] not in own:
            near = None if ctx.resilient_parsing else near_command(args[0], list(self.commands))
            args.insert(0, IMPORT)
            if near is not None:
                raise _refused(args, UsageError(f"no file or command {args[1]!r}: did you mean {near!r}?"))
        ctx.meta[_ARGS] = list(args)
        try:
            config = load_config(args)
        except BiteralImportError as exc:
            raise _refused(args, exc) from None
        if config:
            ctx.default_map = {**(ctx.default_map or {}), **default_map(config)}
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; Typer's own refusals (a value of the wrong type, a missing argument) are
        one line too, and an exception no stage expected ends with one line and exit 70."""
        args = ctx.meta.get(_ARGS, [])
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit, BrokenPipeError):
            raise  # a closed pipe (``--help | head``) is Typer's to end quietly
        except typer.TyperException as exc:
            error = UsageError(exc.format_message())
            error.exit_code = exc.exit_code
            raise _refused(args, error) from None
        except Exception as exc:
            crash = BiteralImportError(internal_error_line(exc))
            crash.exit_code = EXIT_INTERNAL
            raise _refused(args, crash) from None

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        """Say that the first argument may be a file as well as a command."""
        formatter.write_usage(ctx.command_path, "[OPTIONS] FILE... | COMMAND [ARGS]...")

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """Complete command names, and the import's options too: ``biteral-import --con<TAB>``
        starts an import as much as ``biteral-import file.csv --con<TAB>`` does."""
        items: list[Any] = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-"):
            items += self.commands[IMPORT].shell_complete(ctx, incomplete)
        return items


class Command(_FlagsShowNoType, TyperCommand):
    """A command whose usage line names its arguments as they are meant (``FILE...``); the
    arguments themselves are described in the command's help, not in a panel with a type column."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        """``[OPTIONS] FILE...``: the arguments by their metavars."""
        arguments = [p.metavar or p.name for p in self.get_params(ctx) if p.param_type_name == "argument"]
        formatter.write_usage(ctx.command_path, " ".join(["[OPTIONS]", *arguments]))


app = typer.Typer(
    cls=DefaultImportGroup,
    name=console.PROG,
    help="Load customer exports (CSV, TSV, JSONL, JSON, Excel) into the Biteral customers API.\n\n"
    "Run `biteral-import FILE...` to import (its options: `biteral-import import --help`); "
    "`biteral-import sandbox` serves a local test API.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biteral-import {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Load customer exports into the Biteral customers API."""


def _annotation(option: Option) -> Any:
    """``Annotated[type, typer.Option(...)]`` for one row of the table."""
    kind = option.kind if option.default is not None else option.kind | None
    decls = option.flag_decls or tuple(d for d in (option.flag, option.short) if d)
    info = typer.Option(
        *decls,
        help=option.help,
        metavar=option.metavar,
        rich_help_panel=option.panel,
        envvar=option.env_name,
        show_envvar=option.env_name is not None,
        hidden=option.hidden,
    )
    return Annotated[kind, info]


def command_function(
    command: str,
    body: Callable[[typer.Context, dict[str, Any]], None],
    arguments: Sequence[inspect.Parameter],
    doc: str,
) -> Callable[..., None]:
    """A function whose signature Typer reads: the context, ``arguments``, then every option of
    ``command`` from the table; calling it calls ``body(ctx, params)``."""

    def function(ctx: typer.Context, **params: Any) -> None:
        body(ctx, params)

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("ctx", keyword, annotation=typer.Context),
        *arguments,
        *(
            inspect.Parameter(o.param, keyword, annotation=_annotation(o), default=o.default)
            for o in options_of(command)
        ),
    ]
    function.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in parameters}
    function.__name__ = f"{command}_command"
    function.__doc__ = doc
    return function


def _argument(name: str, kind: Any, metavar: str) -> inspect.Parameter:
    """A positional argument of a derived signature, described in the command's help."""
    annotation = Annotated[kind, typer.Argument(metavar=metavar, show_default=False, hidden=True)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)


def _import(ctx: typer.Context, params: dict[str, Any]) -> None:
    from ..importer import run_import

    inputs = tuple(params["files"])
    try:
        settings = build_settings(given_of(IMPORT, ctx, params, inputs))
        console.setup_logging(settings.verbose)
        if settings.check:
            console.show_check(settings)
            return
        summary = run_import(settings, stdin=sys.stdin.buffer if "-" in inputs else None)
    except BiteralImportError as exc:
        console.error_summary(exc, params["summary_json"], params["json"])
        raise console.fail(exc) from None
    raise typer.Exit(summary.exit_code)


def _map(ctx: typer.Context, params: dict[str, Any]) -> None:
    from rich.console import Console

    from ..mapping import build_mapping, mapping_table, write_mapping_file
    from ..normalize import Normalizer
    from ..reader import open_source
    from ..report import check_writable
    from ..review import LocationReview

    file = params["file"]
    try:
        settings = build_settings(given_of(MAP, ctx, params, (file,)))
        if settings.locations_report is not None:
            check_writable(settings.locations_report)
        if settings.entity == "products":
            from ..entities.products import map_products

            map_products(file, settings.read_options(), settings.map_overrides, settings.samples)
            return
        review = LocationReview()
        with open_source(file, settings.read_options(), stdin=sys.stdin.buffer if file == "-" else None) as source:
            try:
                chosen = build_mapping(source.headers, settings.mapping_options())
            except InputError as exc:
                raise InputError(f"{exc}{source.hint()}") from exc
            # The whole file is read only when it has places to review.
            places = any(chosen.field_column(f) for f in ("country", "state", "city"))
            normalizer = Normalizer(settings.normalize_options())
            normalizer.review = review
            rows: list[dict[str, Any]] = []
            for row in source.rows():
                if row.error is None:
                    if len(rows) < settings.samples:
                        rows.append(row.cells)
                    if places:
                        normalizer.prepare(row, chosen.extract(row.cells))
                if len(rows) >= settings.samples and not places:
                    break
        out = Console()
        out.print(mapping_table(chosen, rows))
        if len(review):
            out.print(review.table())
        if settings.locations_report is not None:
            review.write_csv(settings.locations_report)
            out.print(f"Locations review written to {settings.locations_report}")
        for note in (*source.notes, *chosen.notes):
            out.print(f"[yellow]note:[/] {note}", highlight=False)
        if settings.write_mapping is not None:
            write_mapping_file(chosen, settings.write_mapping)
            out.print(f"Mapping written to {settings.write_mapping}; use it with --mapping {settings.write_mapping}")
    except BiteralImportError as exc:
        raise console.fail(exc) from None


def _sandbox(ctx: typer.Context, params: dict[str, Any]) -> None:
    from ..sandbox import SandboxSettings, serve

    try:
        fields = check_values(given_of(SANDBOX, ctx, params))
        serve(SandboxSettings(**{k: v for k, v in fields.items() if v is not None}), echo=typer.echo)
    except BiteralImportError as exc:
        raise console.fail(exc) from None


app.command(IMPORT, cls=Command, epilog=EXAMPLES)(
    command_function(
        IMPORT,
        _import,
        [_argument("files", list[str], "FILE...")],
        """Import customers (or products: --entity products) from FILE... (- reads standard input) into Biteral.

        Exit codes: 0 all rows accepted; 1 finished, some rows rejected or failed; 2 usage, input or
        configuration error (nothing sent); 3 aborted (key refused, API unreachable, quota used up,
        --max-errors); 130/143 interrupted (Ctrl-C / SIGTERM; continue with --resume).
        """,
    )
)
app.command(MAP, cls=Command)(
    command_function(
        MAP,
        _map,
        [_argument("file", str, "FILE")],
        "Show how FILE's columns map to customer fields (product fields with --entity products) and a review of its "
        "places; optionally save the mapping.",
    )
)
app.command(SANDBOX, cls=Command)(
    command_function(
        SANDBOX, _sandbox, [], "Serve a local API that behaves like Biteral's customers API (for trials and tests)."
    )
)
