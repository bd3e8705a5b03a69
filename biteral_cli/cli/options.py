"""Every command-line option, written once: flags, type, default, help, panel, check, env var, config key.

The Typer signatures of ``import``, ``map`` and ``sandbox``, the ``BITERAL_<OPTION>`` names, the
config-file keys and the README test are all derived from ``OPTIONS``; ``RULES`` holds the checks
that involve several options. ``check_values`` runs every check before any file is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..entities import ENTITIES
from ..errors import UsageError
from ..settings import DEFAULT_API_URL, MaxErrors, parse_percent
from ..upload import RateLimit, parse_duration

IMPORT, MAP, SANDBOX = "import", "map", "sandbox"

# Help panels, in the order --help shows them.
INPUT, MAPPING, VALUES, SENDING, REPORTS, AUTOMATION = "Input", "Mapping", "Values", "Sending", "Reports", "Automation"
SERVER, FAULTS = "Server", "Faults"
PANELS = (INPUT, MAPPING, VALUES, SENDING, REPORTS, AUTOMATION)

#: A check gets the option's flag and its parsed value, and raises UsageError naming the flag.
Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class Option:
    """One option of one or more commands; everything else about it is derived from ``name``."""

    name: str
    """``batch-size``: the flag is ``--batch-size``, the env var ``BITERAL_BATCH_SIZE``, the config key
    ``batch-size`` (``batch_size`` is read too) and the settings field ``batch_size``."""
    kind: Any
    """The type Typer parses the text into: str, int, float, bool, Path or list[str] (``| None`` added
    when the default is None)."""
    default: Any
    help: str
    panel: str
    metavar: str | None = None
    short: str | None = None
    parse: Callable[[Any], Any] | None = None
    """From the parsed text to the settings value (raising UsageError naming the flag)."""
    check: Check | None = None
    field: str | None = ""
    """The settings field it fills; "" means the name in snake_case, None means no field."""
    commands: tuple[str, ...] = (IMPORT,)
    env: bool = True
    """False for the documented exceptions (--map, --check, --config)."""
    envvar: str | None = None
    """A name documented before the rule existed (--api-url reads BITERAL_API_BASE_URL)."""
    config: bool = True
    hidden: bool = False
    flag_decls: tuple[str, ...] = ()
    """Extra declarations Typer gets instead of ``--name`` (a ``--x/--no-x`` pair)."""
    example: str | None = None
    """A valid value other than the default, as typed (what README shows; tests set it every way)."""

    @property
    def flag(self) -> str:
        """``--name``."""
        return "--" + self.name

    @property
    def param(self) -> str:
        """The Python parameter name of the derived Typer signature."""
        return self.name.replace("-", "_")

    @property
    def env_name(self) -> str | None:
        """``BITERAL_<OPTION_NAME_UPPER_SNAKE>``, the documented exception, or None."""
        if not self.env:
            return None
        return self.envvar or "BITERAL_" + self.param.upper()

    @property
    def config_key(self) -> str | None:
        """The key of this option in biteral-import.toml (the option name; underscores also read)."""
        return self.name if self.config and (IMPORT in self.commands or MAP in self.commands) else None

    @property
    def settings_field(self) -> str | None:
        """The field of ``ImportSettings`` (or ``SandboxSettings``) this option fills, if any."""
        return self.param if self.field == "" else self.field

    def settings_value(self, value: Any) -> Any:
        """The value the settings hold for ``value`` as Typer parsed it, checked."""
        parsed = self.parse(value) if self.parse is not None and value is not None else value
        if self.check is not None and parsed is not None:
            self.check(self.flag, parsed)
        return parsed


def between(low: float, high: float | None = None, *, above: bool = False) -> Check:
    """A check that the value is at least ``low`` (more than it with ``above``) and at most ``high``."""

    def check(flag: str, value: Any) -> None:
        too_low = value <= low if above else value < low
        if high is not None and (too_low or value > high):
            raise UsageError(f"{flag} must be between {low:g} and {high:g}, not {value:g}")
        if too_low:
            raise UsageError(f"{flag} must be {'more than' if above else 'at least'} {low:g}, not {value:g}")

    return check


def one_of(*choices: str) -> Check:
    """A check that the value is one of ``choices``."""

    def check(flag: str, value: Any) -> None:
        if value not in choices:
            raise UsageError(f"{flag} must be {' or '.join(choices)}, not {value!r}")

    return check


def reader_rule(field: str) -> Check:
    """A check by the reader's own rule for ``field`` (format names, delimiters, codecs, sheets)."""

    def check(flag: str, value: Any) -> None:
        from ..reader import ReadOptions

        ReadOptions(**{field: value})

    return check


def product_rule(field: str) -> Check:
    """A check by the product builder's own rule for ``field`` (``--currency``: an ISO 4217 code)."""

    def check(flag: str, value: Any) -> None:
        from ..entities.products import ProductOptions

        ProductOptions(**{field: value})

    return check


def a_column(flag: str, value: str) -> None:
    """A check that a column name is not empty."""
    if not value.strip():
        raise UsageError(f"{flag} needs a column name")


def refuse(message: str) -> Check:
    """A check that refuses any value (an option that exists only to say why it does not)."""

    def check(flag: str, value: Any) -> None:
        raise UsageError(message)

    return check


def parse_map(values: list[str]) -> dict[str, str]:
    """``FIELD=COLUMN`` pairs into a dict; UsageError naming --map otherwise."""
    overrides: dict[str, str] = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise UsageError(f"--map takes FIELD=COLUMN (for example code='Customer ID'), not {value!r}")
        overrides[field.strip()] = column.strip()
    return overrides


def split_list(value: str) -> tuple[str, ...]:
    """``A,B`` into ``("A", "B")``."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` into ``(K, N)`` (the state module's rule, imported only when used)."""
    from ..state import parse_shard as parse

    return parse(text)


def _negate(value: bool) -> bool:
    return not value


_KEY_NEVER = "set BITERAL_API_KEY or use --api-key-file PATH"

OPTIONS: tuple[Option, ...] = (
    # -- input -----------------------------------------------------------------------------------
    Option(
        "format",
        str,
        None,
        "Input format: csv, tsv, jsonl, json, xlsx, xls or ods (default: detected).",
        INPUT,
        "FORMAT",
        check=reader_rule("format"),
        commands=(IMPORT, MAP),
        example="tsv",
    ),
    Option(
        "delimiter",
        str,
        None,
        "CSV delimiter: , ; | or tab (default: sniffed).",
        INPUT,
        "CHAR",
        check=reader_rule("delimiter"),
        commands=(IMPORT, MAP),
        example=";",
    ),
    Option(
        "encoding",
        str,
        None,
        "Text encoding, e.g. utf-8, cp1252, latin-1 (default: detected).",
        INPUT,
        "NAME",
        check=reader_rule("encoding"),
        commands=(IMPORT, MAP),
        example="cp1252",
    ),
    Option(
        "sheet",
        str,
        None,
        "Excel sheet name or 0-based index (default: the first).",
        INPUT,
        "SHEET",
        check=reader_rule("sheet"),
        commands=(IMPORT, MAP),
        example="Customers",
    ),
    Option(
        "entity",
        str,
        "customers",
        "What the file holds: customers (default) or products.",
        INPUT,
        "customers|products",
        check=one_of(*ENTITIES),
        commands=(IMPORT, MAP),
        example="products",
    ),
    # -- mapping ---------------------------------------------------------------------------------
    Option(
        "map",
        list[str],
        None,
        "Take FIELD from COLUMN (repeatable); overrides the automatic mapping.",
        MAPPING,
        "FIELD=COLUMN",
        parse=parse_map,
        field="map_overrides",
        commands=(IMPORT, MAP),
        env=False,
        example="code=Email",
    ),
    Option(
        "mapping",
        Path,
        None,
        "A mapping file (TOML: columns, value maps, defaults).",
        MAPPING,
        "PATH",
        field="mapping_file",
        commands=(IMPORT, MAP),
        example="shop.toml",
    ),
    Option(
        "no-extra-metadata",
        bool,
        False,
        "Drop unmapped columns instead of sending them as metadata.",
        MAPPING,
        parse=_negate,
        field="extra_metadata",
        commands=(IMPORT, MAP),
    ),
    Option(
        "metadata-columns",
        str,
        None,
        "Send only these unmapped columns as metadata.",
        MAPPING,
        "A,B",
        parse=split_list,
        commands=(IMPORT, MAP),
        example="Plan,Segment",
    ),
    Option(
        "personal-data",
        str,
        "exclude",
        "Columns holding personal data (names, emails, phones, addresses...) stay out of metadata "
        "(exclude, the default) or are sent like any other (include).",
        MAPPING,
        "exclude|include",
        check=one_of("include", "exclude"),
        commands=(IMPORT, MAP),
        example="include",
    ),
    Option(
        "extra-columns",
        str,
        "attributes",
        "Products: unmapped descriptive columns become attributes (default) or metadata.",
        MAPPING,
        "attributes|metadata",
        check=one_of("attributes", "metadata"),
        example="metadata",
    ),
    Option(
        "code-column",
        str,
        None,
        "The column that is the customer code, chosen on purpose (like --map code=COLUMN).",
        MAPPING,
        "COLUMN",
        check=a_column,
        example="Email",
    ),
    Option(
        "hash-code",
        str,
        None,
        "Send the hex sha256 of the code instead of the code (events must use the same).",
        MAPPING,
        "sha256",
        check=one_of("sha256"),
        example="sha256",
    ),
    Option(
        "write-mapping",
        Path,
        None,
        "Save the mapping as TOML, to pass later with --mapping.",
        MAPPING,
        "PATH",
        commands=(MAP,),
        example="shop.toml",
    ),
    Option(
        "samples", int, 5, "Rows read for sample values.", MAPPING, "N", check=between(1), commands=(MAP,), example="3"
    ),
    # -- values ----------------------------------------------------------------------------------
    Option(
        "currency",
        str,
        None,
        "Products: ISO 4217 currency of prices that name none (EUR, USD...).",
        VALUES,
        "CODE",
        check=product_rule("currency"),
        example="EUR",
    ),
    Option(
        "price-rule",
        str,
        "lowest",
        "Products: which variant's price is sent (default lowest).",
        VALUES,
        "lowest|first",
        check=one_of("lowest", "first"),
        example="first",
    ),
    Option("strict", bool, False, "Reject rows with location or field warnings instead of sending them.", VALUES),
    Option("empty-as-null", bool, False, "Send empty cells as null (removes the field on the server).", VALUES),
    Option(
        "no-infer-state",
        bool,
        False,
        "Do not fill a missing state from a city that is unique or dominant in its country.",
        VALUES,
        parse=_negate,
        field="infer_state",
    ),
    # -- sending ---------------------------------------------------------------------------------
    Option("sandbox", bool, False, "Import into a local sandbox API started for this run.", SENDING),
    Option(
        "api-url",
        str,
        DEFAULT_API_URL,
        "The Biteral API base URL.",
        SENDING,
        "URL",
        envvar="BITERAL_API_BASE_URL",
        example="https://api.biteral.net",
    ),
    Option(
        "api-key-file",
        Path,
        None,
        "Read the API key from this file (else from env BITERAL_API_KEY).",
        SENDING,
        "PATH",
        field=None,
        example="key.txt",
    ),
    Option(
        "api-key",
        str,
        None,
        "Never accepted: the key does not belong on the command line.",
        SENDING,
        "KEY",
        check=refuse(f"the API key is never taken from the command line: {_KEY_NEVER}"),
        field=None,
        env=False,
        config=False,
        hidden=True,
    ),
    Option("check", bool, False, "Only check the API URL and key (GET /status) and exit.", SENDING, env=False),
    Option("concurrency", int, 4, "Requests in flight at once.", SENDING, "N", check=between(1, 64), example="8"),
    Option(
        "batch-size", int, 100, "Customers per request (1 to 100).", SENDING, "N", check=between(1, 100), example="50"
    ),
    Option(
        "max-request-bytes",
        int,
        5 * 1024 * 1024,
        "Byte cap of one request body.",
        SENDING,
        "BYTES",
        check=between(1024),
        example="1000000",
    ),
    Option(
        "rate",
        str,
        None,
        "Client-side limit on requests, e.g. 20/s or 600/min.",
        SENDING,
        "RATE",
        parse=RateLimit.parse,
        example="20/s",
    ),
    Option(
        "max-retries",
        int,
        5,
        "Retries of a request on 5xx, timeouts and connection errors (a 429 waits within --max-wait).",
        SENDING,
        "N",
        check=between(0, 100),
        example="8",
    ),
    Option(
        "max-wait",
        str,
        "10m",
        "Longest total wait on the API's 429 answers (600, 10m, 1h); beyond it the run stops (exit 3) to be resumed.",
        SENDING,
        "DURATION",
        parse=lambda text: parse_duration(text, "--max-wait"),
        field="max_wait_s",
        example="1h",
    ),
    Option(
        "timeout",
        float,
        30.0,
        "Seconds to wait for one response.",
        SENDING,
        "SECONDS",
        check=between(0, above=True),
        field="timeout_s",
        example="60",
    ),
    Option("allow-insecure-http", bool, False, "Allow http:// to a host other than loopback.", SENDING),
    Option("dry-run", bool, False, "Read, map, validate and report, but send nothing.", SENDING),
    # -- reports ---------------------------------------------------------------------------------
    Option(
        "output",
        Path,
        None,
        "Write the JSON payloads sent (or that would be sent) to this .jsonl file.",
        REPORTS,
        "PATH",
        example="payloads.jsonl",
    ),
    Option(
        "failures",
        Path,
        None,
        "Failure report path (default: <input>.failures.csv, written only if needed).",
        REPORTS,
        "PATH",
        example="rejected.csv",
    ),
    Option(
        "failures-format",
        str,
        None,
        "csv or jsonl (default: each report's extension, else csv).",
        REPORTS,
        "csv|jsonl",
        check=one_of("csv", "jsonl"),
        example="jsonl",
    ),
    Option(
        "warnings", Path, None, "Write rows sent with warnings to this file.", REPORTS, "PATH", example="warnings.csv"
    ),
    Option(
        "locations-report",
        Path,
        None,
        "Write the locations review (each distinct country, state and city -> result -> rows) as CSV.",
        REPORTS,
        "PATH",
        commands=(IMPORT, MAP),
        example="places.csv",
    ),
    Option(
        "summary-json", Path, None, "Write the summary as JSON to this file.", REPORTS, "PATH", example="summary.json"
    ),
    Option(
        "redact-reports", bool, False, "Mask the personal-data columns in the failure and warning reports.", REPORTS
    ),
    Option("quiet", bool, False, "Print only errors and one summary line.", REPORTS, short="-q"),
    Option("json", bool, False, "Print only the summary JSON on stdout.", REPORTS),
    Option("verbose", bool, False, "Log every request (never the key).", REPORTS, short="-v"),
    # -- automation ------------------------------------------------------------------------------
    Option(
        "max-errors",
        str,
        None,
        "Abort (exit 3) once more rows than this failed.",
        AUTOMATION,
        "N|N%",
        parse=MaxErrors.parse,
        example="5%",
    ),
    Option("resume", bool, False, "Continue an interrupted run: skip rows the API already confirmed.", AUTOMATION),
    Option(
        "state",
        Path,
        None,
        "SQLite file remembering what was sent; unchanged customers are skipped.",
        AUTOMATION,
        "PATH",
        example="sync.sqlite",
    ),
    Option("full", bool, False, "With --state: send everything this time.", AUTOMATION),
    Option(
        "accept-changes",
        bool,
        False,
        "With --state: accept (and record) a mapping or value rule that differs from the last run's.",
        AUTOMATION,
    ),
    Option(
        "max-changed",
        str,
        "50%",
        "With --state: refuse a run that would change more than this share of the known customers.",
        AUTOMATION,
        "N%",
        parse=lambda text: parse_percent("--max-changed", text),
        example="80%",
    ),
    Option(
        "shard",
        str,
        None,
        "Process only the codes of shard K of N.",
        AUTOMATION,
        "K/N",
        parse=parse_shard,
        example="2/4",
    ),
    Option(
        "config",
        Path,
        None,
        "Options file (default: ./biteral-import.toml if present).",
        AUTOMATION,
        "PATH",
        field=None,
        commands=(IMPORT, MAP),
        env=False,
        config=False,
        example="nightly.toml",
    ),
    # -- the sandbox command (SandboxSettings checks its own values when built) ------------------
    Option("host", str, "127.0.0.1", "Address to listen on.", SERVER, "HOST", commands=(SANDBOX,), env=False),
    Option(
        "port", int, 8787, "Port; 0 picks a free one and prints it.", SERVER, "PORT", commands=(SANDBOX,), env=False
    ),
    Option(
        "api-key",
        str,
        "sandbox",
        "The key clients must send.",
        SERVER,
        "KEY",
        commands=(SANDBOX,),
        envvar="BITERAL_SANDBOX_API_KEY",
    ),
    Option("db", Path, None, "SQLite file (default: a temporary one).", SERVER, "PATH", commands=(SANDBOX,), env=False),
    Option(
        "max-body-bytes",
        int,
        10 * 1024 * 1024,
        "Largest request body; larger ones get 413.",
        SERVER,
        "BYTES",
        commands=(SANDBOX,),
        env=False,
    ),
    Option(
        "per-item-errors",
        bool,
        True,
        "Name the failing item of a rejected batch ([3].country) or only the first error.",
        SERVER,
        commands=(SANDBOX,),
        env=False,
        flag_decls=("--per-item-errors/--no-per-item-errors",),
    ),
    Option(
        "latency-ms",
        float,
        0.0,
        "Response time of every request, counted from its arrival.",
        FAULTS,
        "MS",
        commands=(SANDBOX,),
        env=False,
    ),
    Option(
        "latency-jitter-ms", float, 0.0, "Random extra latency, 0..N ms.", FAULTS, "MS", commands=(SANDBOX,), env=False
    ),
    Option(
        "error-rate",
        float,
        0.0,
        "Fraction of requests answered 500/503.",
        FAULTS,
        "FRACTION",
        commands=(SANDBOX,),
        env=False,
    ),
    Option("rate-limit", float, None, "Requests per second before 429.", FAULTS, "N", commands=(SANDBOX,), env=False),
    Option(
        "daily-quota",
        int,
        None,
        "Requests a UTC day; then 429 with Retry-After until midnight UTC.",
        FAULTS,
        "N",
        commands=(SANDBOX,),
        env=False,
    ),
    Option(
        "drop-response-rate",
        float,
        0.0,
        "Fraction of POSTs stored but answered late (lost responses).",
        FAULTS,
        "FRACTION",
        commands=(SANDBOX,),
        env=False,
    ),
    Option(
        "drop-response-delay",
        float,
        5.0,
        "Seconds a 'lost' response is held back.",
        FAULTS,
        "SECONDS",
        field="drop_response_delay_s",
        commands=(SANDBOX,),
        env=False,
    ),
    Option("seed", int, None, "Seed for reproducible fault injection.", FAULTS, "N", commands=(SANDBOX,), env=False),
)


def options_of(command: str) -> tuple[Option, ...]:
    """The options of ``command``, in table order."""
    return tuple(option for option in OPTIONS if command in option.commands)


def config_options() -> dict[str, Option]:
    """The options a config file may set, by config key (``batch-size``)."""
    return {o.config_key: o for o in OPTIONS if o.config_key is not None}


# -- checks involving several options ----------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """What one command was given: option values as Typer parsed them, and which came from the command line."""

    command: str
    values: Mapping[str, Any]
    """By option name (``dry-run``); every option of the command is present."""
    inputs: tuple[str, ...] = ()
    explicit: frozenset[str] = frozenset()
    """Option names set on the command line itself (not from the environment or a config file)."""

    def set(self, name: str) -> bool:
        """Whether option ``name`` was given a value other than its default."""
        default = option_named(name, self.command).default
        value = self.values.get(name, default)
        return value not in (None, False, []) and value != default


@dataclass(frozen=True)
class Rule:
    """A check over several options: ``broken`` says when, ``message`` what to print, ``example`` is
    a command line (after ``biteral-import``) that breaks it."""

    broken: Callable[[Given], bool]
    message: str | Callable[[Given], str]
    example: tuple[str, ...]
    commands: tuple[str, ...] = (IMPORT,)

    def check(self, given: Given) -> None:
        if given.command in self.commands and self.broken(given):
            raise UsageError(self.message if isinstance(self.message, str) else self.message(given))


def option_named(name: str, command: str = IMPORT) -> Option:
    """The row of option ``name`` of ``command``."""
    return next(o for o in options_of(command) if o.name == name)


def _typed(name: str) -> tuple[str, ...]:
    """Option ``name`` as typed to set it: the flag, and its example value unless it is a flag."""
    option = option_named(name)
    return (option.flag,) if option.kind is bool else (option.flag, str(option.example))


def conflict(a: str, b: str, why: str = "", commands: tuple[str, ...] = (IMPORT,)) -> Rule:
    """A rule refusing options ``a`` and ``b`` together."""
    message = f"--{a} and --{b} cannot be combined" + (f": {why}" if why else "")
    return Rule(lambda g: g.set(a) and g.set(b), message, ("in.csv", *_typed(a), *_typed(b)), commands)


def requires(a: str, b: str, message: str) -> Rule:
    """A rule refusing option ``a`` without option ``b``."""
    return Rule(lambda g: g.set(a) and not g.set(b), message, ("in.csv", *_typed(a)))


def _code_pins(given: Given) -> tuple[str | None, str | None]:
    return given.values.get("code-column"), parse_map(given.values.get("map") or []).get("code")


def _products(given: Given) -> bool:
    return given.values.get("entity") == "products"


#: Options only --entity products takes.
PRODUCT_ONLY = ("currency", "price-rule", "extra-columns")


def _product_only(given: Given) -> list[str]:
    """The flags of the product-only options ``given`` sets."""
    return ["--" + name for name in PRODUCT_ONLY if given.set(name)]


def _map_refusal(given: Given) -> str | None:
    """Why a ``--map`` field is no field of the ``--entity`` (by that entity's own rule), or None."""
    overrides = parse_map(given.values.get("map") or [])
    try:
        if _products(given):
            from ..entities.products import ProductOptions

            ProductOptions(overrides=overrides)
        else:
            from ..mapping import MappingOptions

            MappingOptions(overrides=overrides)
    except UsageError as exc:
        return str(exc)
    return None


RULES: tuple[Rule, ...] = (
    Rule(lambda g: g.inputs.count("-") > 1, "standard input (-) can be given only once", ("-", "-")),
    Rule(
        lambda g: g.set("sandbox") and "api-url" in g.explicit,
        "--sandbox and --api-url cannot be combined: --sandbox starts its own API",
        ("in.csv", "--sandbox", *_typed("api-url")),
    ),
    conflict("sandbox", "api-key-file", "the sandbox has its own key"),
    conflict("check", "dry-run"),
    Rule(
        lambda g: g.set("resume") and "-" in g.inputs,
        "--resume cannot be used with standard input (-): it has no content to match",
        ("-", "--resume"),
    ),
    conflict("resume", "dry-run", "a dry run sends nothing to resume"),
    requires("full", "state", "--full only makes sense with --state PATH"),
    conflict(
        "no-extra-metadata",
        "metadata-columns",
        "the first drops every unmapped column, the second keeps some",
        (IMPORT, MAP),
    ),
    Rule(
        lambda g: None not in _code_pins(g) and len(set(_code_pins(g))) == 2,
        lambda g: "--code-column {!r} and --map code={!r} disagree; give one".format(*_code_pins(g)),
        ("in.csv", "--code-column", "Email", "--map", "code=Customer ID"),
    ),
    conflict("quiet", "verbose"),
    conflict("json", "verbose", "--json prints only the summary"),
    Rule(
        lambda g: _map_refusal(g) is not None,
        lambda g: _map_refusal(g) or "",
        ("in.csv", "--map", "colour=Name"),
        (IMPORT, MAP),
    ),
    # --entity products (issue 14): its own options, and the customer ones it has no use for.
    Rule(
        lambda g: not _products(g) and bool(_product_only(g)),
        lambda g: f"{', '.join(_product_only(g))} only apply to --entity products",
        ("in.csv", *_typed("currency")),
    ),
    Rule(
        lambda g: _products(g) and (g.set("metadata-columns") or g.set("no-extra-metadata")),
        "--metadata-columns and --no-extra-metadata are for customers; for products use --extra-columns",
        ("in.csv", *_typed("entity"), *_typed("metadata-columns")),
    ),
    Rule(
        lambda g: _products(g) and g.set("mapping"),
        "--mapping files describe customer columns; for products use --map FIELD=COLUMN",
        ("in.csv", *_typed("entity"), *_typed("mapping")),
    ),
    Rule(
        lambda g: _products(g) and g.set("write-mapping"),
        "--write-mapping saves customer mappings; for products pass --map FIELD=COLUMN to the import",
        ("map", "in.csv", *_typed("entity"), "--write-mapping", "shop.toml"),
        (MAP,),
    ),
)

NO_KEY = (
    "no API key: set BITERAL_API_KEY or pass --api-key-file PATH "
    "(or use --sandbox to try the tool locally, or --dry-run to send nothing)"
)


def check_values(given: Given) -> dict[str, Any]:
    """Every option's value for the settings (field -> value), once every check of the command
    passed: each option's own check in table order, then the rules over several options."""
    fields: dict[str, Any] = {}
    for option in options_of(given.command):
        value = option.settings_value(given.values.get(option.name, option.default))
        if option.settings_field is not None:
            fields[option.settings_field] = value
    for rule in RULES:
        rule.check(given)
    return fields
