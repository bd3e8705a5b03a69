"""The command line: parse options into one settings object per command and call one function.

``biteral-import FILE...`` runs the ``import`` command (the default); ``map`` shows the column
mapping; ``sandbox`` serves a local Biteral-like API. Every import option can also come from an
environment variable ``BITERAL_<OPTION>`` or a ``biteral-import.toml``; the command line wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer._click.core import Context, HelpFormatter, ParameterSource
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from . import __version__
from .crash import EXIT_INTERNAL, internal_error_line, register_secret
from .errors import BiteralImportError, ConfigError, InputError, UsageError
from .settings import DEFAULT_API_URL, ImportSettings, MaxErrors, parse_percent
from .uploader import RateLimit, Secret, parse_duration

CONFIG_NAME = "biteral-import.toml"
COMMANDS = ("import", "map", "sandbox")


def _arg_value(args: list[str], flag: str) -> Path | None:
    """The value given to ``flag`` on the command line (``--flag V`` or ``--flag=V``), if any."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith(flag + "="):
            return Path(arg.split("=", 1)[1])
    return None


def load_config(args: list[str]) -> dict[str, Any]:
    """Read ``--config PATH`` (or ./biteral-import.toml) into click's default_map for the commands."""
    path = _arg_value(args, "--config")
    if path is None:
        if not Path(CONFIG_NAME).is_file():
            return {}
        path = Path(CONFIG_NAME)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"--config {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from exc
    options = {key.replace("-", "_"): value for key, value in data.items()}
    if {"api_key", "key"} & options.keys():
        raise ConfigError(
            f"{path}: the API key is never read from the config file; set BITERAL_API_KEY or use --api-key-file"
        )
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    allowed = {p.name for p in commands["import"].params}
    unknown = sorted(options.keys() - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown option(s): {', '.join(unknown)}")
    if "map" in options and isinstance(options["map"], dict):
        options["map"] = [f"{k}={v}" for k, v in options["map"].items()]
    _check_config_values(path, options, commands["import"])
    map_params = {p.name for p in commands["map"].params}
    return {"import": options, "map": {k: v for k, v in options.items() if k in map_params}}


def _check_config_values(path: Path, options: dict[str, Any], command: Any) -> None:
    """Raise ConfigError naming the file when a value in it has the wrong type (not the env var click would blame)."""
    ctx = Context(command)
    params = {p.name: p for p in command.params}
    for key, value in options.items():
        try:
            params[key].process_value(ctx, value)
        except ClickException as exc:
            raise ConfigError(f"{path}: {key.replace('_', '-')} = {value!r}: {exc.message}") from None


class DefaultImportGroup(TyperGroup):
    """A group whose first argument, when it is not a command name, is a file for ``import``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args.insert(0, "import")
        ctx.meta["biteral_args"] = list(args)
        try:
            config = load_config(args)
        except BiteralImportError as exc:
            if args and args[0] == "import":
                _error_summary(exc, _arg_value(args, "--summary-json"), "--json" in args)
            raise _ClickFailure(str(exc), exc.exit_code) from exc
        if config:
            ctx.default_map = {**(ctx.default_map or {}), **config}
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Context) -> Any:
        """Run the command: a refused option value of ``import`` still writes the summary JSON, and an
        exception no stage expected ends with one line and exit 70."""
        args = ctx.meta.get("biteral_args", [])
        try:
            return super().invoke(ctx)
        except ClickException as exc:
            if args[:1] == ["import"] and not isinstance(exc, _ClickFailure):
                error = UsageError(exc.format_message())
                _error_summary(error, _arg_value(args, "--summary-json"), "--json" in args)
            raise
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            crash = BiteralImportError(internal_error_line(exc))
            crash.exit_code = EXIT_INTERNAL
            if args[:1] == ["import"]:
                _error_summary(crash, _arg_value(args, "--summary-json"), "--json" in args)
            raise _ClickFailure(str(crash), EXIT_INTERNAL) from None

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] FILE... | COMMAND [ARGS]...")


class _ClickFailure(ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        typer.echo(f"biteral-import: {self.message}", err=True)


app = typer.Typer(
    cls=DefaultImportGroup,
    name="biteral-import",
    help="Load customer exports (CSV, TSV, JSONL, JSON, Excel) into the Biteral customers API.\n\n"
    "Run `biteral-import FILE...` to import; `biteral-import sandbox` serves a local test API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biteral-import {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Load customer exports into the Biteral customers API."""


def _env(name: str) -> str:
    return "BITERAL_" + name.lstrip("-").upper().replace("-", "_")


def _opt(*flags: str, **kwargs: Any) -> Any:
    """A Typer option that also reads ``BITERAL_<OPTION>`` from the environment, named in --help."""
    return typer.Option(*flags, envvar=_env(flags[0]), show_envvar=True, **kwargs)


def _fail(exc: BiteralImportError) -> typer.Exit:
    Console(stderr=True).print(f"biteral-import: {exc}", style="red", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def read_api_key(key_file: Path | None) -> Secret | None:
    """The API key from ``--api-key-file`` (first line) or ``BITERAL_API_KEY``; None when neither is set."""
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"--api-key-file {key_file}: cannot read it ({exc.strerror})") from exc
        if not text or not text[0].strip():
            raise ConfigError(f"--api-key-file {key_file}: the file is empty")
        register_secret(text[0].strip())
        return Secret(text[0].strip())
    value = os.environ.get("BITERAL_API_KEY", "").strip()
    register_secret(value)
    return Secret(value) if value else None


def _parse_map(values: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise UsageError(f"--map takes FIELD=COLUMN (for example code='Customer ID'), not {value!r}")
        overrides[field.strip()] = column.strip()
    return overrides


def _split_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


# Option declarations shared by `import` and `map`.
FormatOpt = Annotated[
    str | None,
    _opt(
        "--format",
        help="Input format: csv, tsv, jsonl, json, xlsx, xls or ods (default: detected).",
    ),
]
DelimiterOpt = Annotated[
    str | None,
    _opt(
        "--delimiter",
        help="CSV delimiter: , ; | or tab (default: sniffed).",
    ),
]
EncodingOpt = Annotated[
    str | None,
    _opt(
        "--encoding",
        help="Text encoding, e.g. utf-8, cp1252, latin-1 (default: detected).",
    ),
]
SheetOpt = Annotated[
    str | None,
    _opt(
        "--sheet",
        help="Excel sheet name or 0-based index (default: the first).",
    ),
]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map", metavar="FIELD=COLUMN", help="Take FIELD from COLUMN (repeatable); overrides the automatic mapping."
    ),
]
MappingOpt = Annotated[
    Path | None,
    _opt(
        "--mapping",
        help="A mapping file (TOML: columns, value maps, defaults).",
    ),
]
NoExtraOpt = Annotated[
    bool,
    _opt(
        "--no-extra-metadata",
        help="Drop unmapped columns instead of sending them as metadata.",
    ),
]
MetaColsOpt = Annotated[
    str | None,
    _opt(
        "--metadata-columns",
        metavar="A,B",
        help="Send only these unmapped columns as metadata.",
    ),
]
PersonalDataOpt = Annotated[
    str,
    _opt(
        "--personal-data",
        metavar="exclude|include",
        help="Columns holding personal data (names, emails, phones, addresses...) stay out of "
        "metadata (exclude, the default) or are sent like any other (include).",
    ),
]
# --entity products and its options (issue 14); see biteral_cli/entities/products.py
EntityOpt = Annotated[
    str, _opt("--entity", metavar="customers|products", help="What the file holds: customers (default) or products.")
]
CurrencyOpt = Annotated[
    str | None,
    _opt("--currency", metavar="CODE", help="Products: ISO 4217 currency of prices that name none (EUR, USD...)."),
]
PriceRuleOpt = Annotated[
    str, _opt("--price-rule", metavar="lowest|first", help="Products: which variant's price is sent (default lowest).")
]
ExtraColumnsOpt = Annotated[
    str,
    _opt(
        "--extra-columns",
        metavar="attributes|metadata",
        help="Products: unmapped descriptive columns become attributes (default) or metadata.",
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help=f"Options file (default: ./{CONFIG_NAME} if present).")
]


@app.command("import")
def import_command(
    ctx: typer.Context,
    files: Annotated[
        list[str], typer.Argument(metavar="FILE", help="Exports to import (one or more); - reads standard input.")
    ],
    format: FormatOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
    map: MapOpt = None,
    mapping: MappingOpt = None,
    no_extra_metadata: NoExtraOpt = False,
    metadata_columns: MetaColsOpt = None,
    personal_data: PersonalDataOpt = "exclude",
    code_column: Annotated[
        str | None,
        _opt(
            "--code-column",
            metavar="COLUMN",
            help="The column that is the customer code, chosen on purpose (like --map code=COLUMN).",
        ),
    ] = None,
    hash_code: Annotated[
        str | None,
        _opt(
            "--hash-code",
            metavar="sha256",
            help="Send the hex sha256 of the code instead of the code (events must use the same).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        _opt(
            "--strict",
            help="Reject rows with location or field warnings instead of sending them.",
        ),
    ] = False,
    empty_as_null: Annotated[
        bool,
        _opt(
            "--empty-as-null",
            help="Send empty cells as null (removes the field on the server).",
        ),
    ] = False,
    no_infer_state: Annotated[
        bool,
        _opt(
            "--no-infer-state",
            help="Do not fill a missing state from a city that is unique or dominant in its country.",
        ),
    ] = False,
    sandbox: Annotated[
        bool,
        _opt(
            "--sandbox",
            help="Import into a local sandbox API started for this run.",
        ),
    ] = False,
    api_url: Annotated[
        str,
        typer.Option("--api-url", envvar="BITERAL_API_BASE_URL", show_envvar=True, help="The Biteral API base URL."),
    ] = DEFAULT_API_URL,
    api_key_file: Annotated[
        Path | None,
        _opt(
            "--api-key-file",
            help="Read the API key from this file (else from env BITERAL_API_KEY).",
        ),
    ] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", hidden=True)] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the API URL and key (GET /status) and exit.")
    ] = False,
    concurrency: Annotated[
        int,
        _opt("--concurrency", help="Requests in flight at once."),
    ] = 4,
    batch_size: Annotated[
        int,
        _opt("--batch-size", help="Customers per request (1 to 100)."),
    ] = 100,
    max_request_bytes: Annotated[
        int,
        _opt(
            "--max-request-bytes",
            help="Byte cap of one request body.",
        ),
    ] = 5 * 1024 * 1024,
    rate: Annotated[
        str | None,
        _opt(
            "--rate",
            metavar="N/s|N/min",
            help="Client-side limit on requests, e.g. 20/s or 600/min.",
        ),
    ] = None,
    max_retries: Annotated[
        int,
        _opt(
            "--max-retries",
            help="Retries of a request on 5xx, timeouts and connection errors (a 429 waits within --max-wait).",
        ),
    ] = 5,
    max_wait: Annotated[
        str,
        _opt(
            "--max-wait",
            metavar="DURATION",
            help="Longest total wait on the API's 429 answers (600, 10m, 1h); beyond it the run stops "
            "(exit 3) to be resumed.",
        ),
    ] = "10m",
    timeout: Annotated[
        float,
        _opt("--timeout", help="Seconds to wait for one response."),
    ] = 30.0,
    allow_insecure_http: Annotated[
        bool,
        _opt(
            "--allow-insecure-http",
            help="Allow http:// to a host other than loopback.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        _opt(
            "--dry-run",
            help="Read, map, validate and report, but send nothing.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        _opt(
            "--output",
            help="Write the JSON payloads sent (or that would be sent) to this .jsonl file.",
        ),
    ] = None,
    failures: Annotated[
        Path | None,
        _opt(
            "--failures",
            help="Failure report path (default: <input>.failures.csv, written only if needed).",
        ),
    ] = None,
    failures_format: Annotated[
        str | None, _opt("--failures-format", help="csv or jsonl (default: each report's extension, else csv).")
    ] = None,
    warnings: Annotated[
        Path | None,
        _opt("--warnings", help="Write rows sent with warnings to this file."),
    ] = None,
    locations_report: Annotated[
        Path | None,
        _opt(
            "--locations-report",
            help="Write the locations review (each distinct country, state and city -> result -> rows) as CSV.",
        ),
    ] = None,
    summary_json: Annotated[
        Path | None,
        _opt(
            "--summary-json",
            help="Write the summary as JSON to this file.",
        ),
    ] = None,
    max_errors: Annotated[
        str | None,
        _opt(
            "--max-errors",
            metavar="N|P%",
            help="Abort (exit 3) once more rows than this failed.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        _opt(
            "--resume",
            help="Continue an interrupted run: skip rows the API already confirmed.",
        ),
    ] = False,
    state: Annotated[
        Path | None,
        _opt(
            "--state",
            help="SQLite file remembering what was sent; unchanged customers are skipped.",
        ),
    ] = None,
    full: Annotated[
        bool,
        _opt("--full", help="With --state: send everything this time."),
    ] = False,
    accept_changes: Annotated[
        bool,
        _opt(
            "--accept-changes",
            help="With --state: accept (and record) a mapping or value rule that differs from the last run's.",
        ),
    ] = False,
    max_changed: Annotated[
        str,
        _opt(
            "--max-changed",
            metavar="P%",
            help="With --state: refuse a run that would change more than this share of the known customers.",
        ),
    ] = "50%",
    redact_reports: Annotated[
        bool,
        _opt(
            "--redact-reports",
            help="Mask the personal-data columns in the failure and warning reports.",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        _opt(
            "--shard",
            metavar="K/N",
            help="Process only the codes of shard K of N.",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        _opt("--quiet", "-q", help="Print only errors and one summary line."),
    ] = False,
    json_out: Annotated[
        bool,
        _opt("--json", help="Print only the summary JSON on stdout."),
    ] = False,
    verbose: Annotated[
        bool,
        _opt("--verbose", "-v", help="Log every request (never the key)."),
    ] = False,
    entity: EntityOpt = "customers",
    currency: CurrencyOpt = None,
    price_rule: PriceRuleOpt = "lowest",
    extra_columns: ExtraColumnsOpt = "attributes",
    config: ConfigOpt = None,
) -> None:
    """Import customers from FILE... into Biteral.

    Exit codes: 0 all rows accepted; 1 finished, some rows rejected or failed; 2 usage, input or
    configuration error (nothing sent); 3 aborted (key refused, API unreachable, quota used up, --max-errors);
    130/143 interrupted (Ctrl-C / SIGTERM; continue with --resume).
    """
    from .importer import run_import
    from .state import parse_shard

    try:
        if api_key is not None:
            raise UsageError(
                "the API key is never taken from the command line: set BITERAL_API_KEY or use --api-key-file PATH"
            )
        if sandbox and ctx.get_parameter_source("api_url") == ParameterSource.COMMANDLINE:
            raise UsageError("--sandbox and --api-url cannot be combined: --sandbox starts its own API")
        if sandbox and api_key_file is not None:
            raise UsageError("--sandbox and --api-key-file cannot be combined: the sandbox has its own key")
        if check and dry_run:
            raise UsageError("--check and --dry-run cannot be combined")
        key = None if sandbox else read_api_key(api_key_file)
        settings = ImportSettings(
            inputs=tuple(files),
            format=format,
            delimiter=delimiter,
            encoding=encoding,
            sheet=sheet,
            map_overrides=_parse_map(map or []),
            mapping_file=mapping,
            extra_metadata=not no_extra_metadata,
            metadata_columns=_split_list(metadata_columns),
            personal_data=personal_data,
            code_column=code_column,
            hash_code=hash_code,
            strict=strict,
            empty_as_null=empty_as_null,
            infer_state=not no_infer_state,
            sandbox=sandbox,
            api_url=api_url,
            api_key=key,
            concurrency=concurrency,
            batch_size=batch_size,
            max_request_bytes=max_request_bytes,
            rate=RateLimit.parse(rate) if rate else None,
            max_retries=max_retries,
            max_wait_s=parse_duration(max_wait, "--max-wait"),
            timeout_s=timeout,
            allow_insecure_http=allow_insecure_http,
            dry_run=dry_run,
            failures=failures,
            failures_format=failures_format,  # type: ignore[arg-type]
            warnings=warnings,
            locations_report=locations_report,
            summary_json=summary_json,
            output=output,
            max_errors=MaxErrors.parse(max_errors) if max_errors else None,
            resume=resume,
            state=state,
            full=full,
            accept_changes=accept_changes,
            max_changed=parse_percent("--max-changed", max_changed),
            redact_reports=redact_reports,
            interactive=_stdin_is_terminal(),
            shard=parse_shard(shard) if shard else None,
            quiet=quiet,
            json=json_out,
            verbose=verbose,
            entity=entity,
            currency=currency,
            price_rule=price_rule,
            extra_columns=extra_columns,
        )
        _setup_logging(verbose)
        if check:
            _check(settings)
            return
        summary = run_import(settings, stdin=sys.stdin.buffer if "-" in files else None)
    except BiteralImportError as exc:
        _error_summary(exc, summary_json, json_out)
        raise _fail(exc) from None
    raise typer.Exit(summary.exit_code)


def _stdin_is_terminal() -> bool:
    """Whether a person may be at the keyboard (the code may fall back to the email only then)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def _error_summary(exc: BiteralImportError, path: Path | None, json_out: bool) -> None:
    """Write the summary JSON of a run that ended before counting rows, so a script always has one."""
    from .report import Summary, write_summary_json

    summary = Summary.for_error(str(exc), exc.exit_code)
    if json_out:
        Console().print_json(json.dumps(summary.to_json()))
    if path is not None:
        with contextlib.suppress(BiteralImportError):  # an unwritable path is the error being shown
            write_summary_json(summary, path)


def _check(settings: ImportSettings) -> None:
    from .importer import check_api

    endpoint, status = check_api(settings)
    permissions = ", ".join(status.get("permissions", [])) or "none listed"
    Console().print(
        f"OK: {endpoint.url} accepted the key {endpoint.key.masked()} "
        f"(environment {status.get('environment', '?')}; permissions: {permissions})",
        highlight=False,
    )


def _setup_logging(verbose: bool) -> None:
    """With --verbose, log the tool's own DEBUG lines (requests, retries) to stderr; never headers."""
    import logging

    from .progress import verbose_handler

    logger = logging.getLogger("biteral_cli")
    for handler in [h for h in logger.handlers if getattr(h, "_biteral_verbose", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    if verbose:
        handler = verbose_handler()
        handler._biteral_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


@app.command("map")
def map_command(
    file: Annotated[str, typer.Argument(metavar="FILE", help="The export whose columns to map.")],
    format: FormatOpt = None,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
    map: MapOpt = None,
    mapping: MappingOpt = None,
    no_extra_metadata: NoExtraOpt = False,
    metadata_columns: MetaColsOpt = None,
    personal_data: PersonalDataOpt = "exclude",
    write_mapping: Annotated[
        Path | None,
        typer.Option(
            "--write-mapping", metavar="FILE.toml", help="Save the mapping as TOML, to pass later with --mapping."
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", help="Rows read for sample values.")] = 5,
    locations_report: Annotated[
        Path | None,
        typer.Option("--locations-report", metavar="PATH", help="Also write the locations review as CSV."),
    ] = None,
    entity: EntityOpt = "customers",
    config: ConfigOpt = None,
) -> None:
    """Show how FILE's columns map to customer fields and a review of its places; optionally save the mapping."""
    from .mapping import MappingOptions, build_mapping, mapping_table, write_mapping_file
    from .normalize import NormalizeOptions, Normalizer
    from .reader import ReadOptions, open_source
    from .report import check_writable
    from .review import LocationReview

    try:
        options = ReadOptions(format=format, delimiter=delimiter, encoding=encoding, sheet=sheet)
        mapping_options = MappingOptions(
            overrides=_parse_map(map or []),
            mapping_file=mapping,
            extra_metadata=not no_extra_metadata,
            metadata_columns=_split_list(metadata_columns),
            personal_data=personal_data,
        )
        if locations_report is not None:
            check_writable(locations_report)
        review = LocationReview()
        if entity != "customers":
            from .entities.products import map_products

            map_products(file, options, entity, _parse_map(map or []), samples, write_mapping)
            return
        with open_source(file, options, stdin=sys.stdin.buffer if file == "-" else None) as source:
            try:
                chosen = build_mapping(source.headers, mapping_options)
            except InputError as exc:
                raise InputError(f"{exc}{source.hint()}") from exc
            # The whole file is read only when it has places to review.
            places = any(chosen.field_column(f) for f in ("country", "state", "city"))
            normalizer = Normalizer(NormalizeOptions())
            normalizer.review = review
            rows: list[dict[str, Any]] = []
            for row in source.rows():
                if row.error is None:
                    if len(rows) < samples:
                        rows.append(row.cells)
                    if places:
                        normalizer.prepare(row, chosen.extract(row.cells))
                if len(rows) >= samples and not places:
                    break
        console = Console()
        console.print(mapping_table(chosen, rows))
        if len(review):
            console.print(review.table())
        if locations_report is not None:
            review.write_csv(locations_report)
            console.print(f"Locations review written to {locations_report}")
        for note in (*source.notes, *chosen.notes):
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        if write_mapping is not None:
            write_mapping_file(chosen, write_mapping)
            console.print(f"Mapping written to {write_mapping}; use it with --mapping {write_mapping}")
    except BiteralImportError as exc:
        raise _fail(exc) from None


@app.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one and prints it.")] = 8787,
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key", envvar="BITERAL_SANDBOX_API_KEY", show_envvar=True, help="The key clients must send."
        ),
    ] = "sandbox",
    db: Annotated[Path | None, typer.Option("--db", help="SQLite file (default: a temporary one).")] = None,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", help="Response time of every request, counted from its arrival.")
    ] = 0,
    error_rate: Annotated[float, typer.Option("--error-rate", help="Fraction of requests answered 500/503.")] = 0.0,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", help="Requests per second before 429.")] = None,
    daily_quota: Annotated[
        int | None,
        typer.Option("--daily-quota", help="Requests a UTC day; then 429 with Retry-After until midnight UTC."),
    ] = None,
    latency_jitter_ms: Annotated[float, typer.Option("--latency-jitter-ms", help="Random extra latency, 0..N ms.")] = 0,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body; larger ones get 413.")
    ] = 10 * 1024 * 1024,
    drop_response_rate: Annotated[
        float, typer.Option("--drop-response-rate", help="Fraction of POSTs stored but answered late (lost responses).")
    ] = 0.0,
    drop_response_delay: Annotated[
        float, typer.Option("--drop-response-delay", help="Seconds a 'lost' response is held back.")
    ] = 5.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for reproducible fault injection.")] = None,
    per_item_errors: Annotated[
        bool,
        typer.Option(
            "--per-item-errors/--no-per-item-errors",
            help="Name the failing item of a rejected batch ([3].country) or only the first error.",
        ),
    ] = True,
) -> None:
    """Serve a local API that behaves like Biteral's customers API (for trials and tests)."""
    from .sandbox import SandboxSettings, serve

    try:
        settings = SandboxSettings(
            host=host,
            port=port,
            api_key=api_key,
            db=db,
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            error_rate=error_rate,
            rate_limit=rate_limit,
            daily_quota=daily_quota,
            max_body_bytes=max_body_bytes,
            drop_response_rate=drop_response_rate,
            drop_response_delay_s=drop_response_delay,
            seed=seed,
            per_item_errors=per_item_errors,
        )
        serve(settings, echo=lambda line: typer.echo(line))
    except BiteralImportError as exc:
        raise _fail(exc) from None
