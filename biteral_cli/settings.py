"""The one settings object a command is built from, and the stages' options derived from it."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .errors import UsageError
from .upload import RateLimit, Secret

if TYPE_CHECKING:
    from .mapping import MappingOptions
    from .normalize import NormalizeOptions
    from .reader import ReadOptions
    from .upload import UploadSettings

DEFAULT_API_URL = "https://api.biteral.ai"
FailuresFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True, kw_only=True)
class MaxErrors:
    """An error budget: an absolute row count, or a percentage of the rows processed so far."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> MaxErrors:
        """Parse ``N`` or ``P%``; a UsageError names ``--max-errors`` when the text is neither."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
        if not match:
            raise UsageError(f"--max-errors takes a row count (50) or a percentage (5%), not {text!r}")
        number, percent = match.groups()
        if percent:
            value = float(number)
            if not 0 <= value <= 100:
                raise UsageError(f"--max-errors percentage must be between 0 and 100, not {text!r}")
            return cls(percent=value)
        if "." in number:
            raise UsageError(f"--max-errors takes a whole number of rows, not {text!r}")
        return cls(count=int(number))

    def exceeded(self, errors: int, processed: int) -> bool:
        """True once ``errors`` is more than the budget; percentages wait for 100 processed rows."""
        if self.count is not None:
            return errors > self.count
        assert self.percent is not None
        return processed >= 100 and errors * 100 > self.percent * processed

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


def parse_percent(flag: str, text: str) -> float:
    """Parse ``N%`` (0 to 100) for ``flag``; a UsageError names the flag otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    if not match or not 0 <= float(match.group(1)) <= 100:
        raise UsageError(f"{flag} takes a percentage from 0% to 100% (e.g. {flag} 50%), not {text!r}")
    return float(match.group(1))


@dataclass(frozen=True, kw_only=True)
class ImportSettings:
    """Everything one ``biteral-import`` command needs, built by the command line once every option's
    check passed (``cli.options``); the stages' own options are derived from it, never copied by hand."""

    inputs: tuple[str, ...]
    # reading
    format: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    # mapping
    map_overrides: dict[str, str] = field(default_factory=dict)
    mapping_file: Path | None = None
    extra_metadata: bool = True
    metadata_columns: tuple[str, ...] | None = None
    personal_data: str = "exclude"
    code_column: str | None = None
    hash_code: str | None = None
    # normalizing
    strict: bool = False
    empty_as_null: bool = False
    infer_state: bool = True
    # sending
    sandbox: bool = False
    api_url: str = DEFAULT_API_URL
    api_key: Secret | None = field(default=None, repr=False)
    concurrency: int = 4
    batch_size: int = 100
    max_request_bytes: int = 5 * 1024 * 1024
    rate: RateLimit | None = None
    max_retries: int = 5
    max_wait_s: float = 600.0
    timeout_s: float = 30.0
    allow_insecure_http: bool = False
    dry_run: bool = False
    # reporting and control
    failures: Path | None = None
    failures_format: FailuresFormat | None = None
    """csv or jsonl for every report; None: each report follows its path's extension (CSV by default)."""
    warnings: Path | None = None
    locations_report: Path | None = None
    summary_json: Path | None = None
    output: Path | None = None
    max_errors: MaxErrors | None = None
    resume: bool = False
    state: Path | None = None
    full: bool = False
    accept_changes: bool = False
    max_changed: float = 50.0  # percent of the customers the state knows
    redact_reports: bool = False
    #: Whether a person is at the keyboard (stdin is a terminal): only then may the code fall
    #: back to the email column while sending.
    interactive: bool = False
    shard: tuple[int, int] | None = None
    quiet: bool = False
    json: bool = False
    verbose: bool = False
    show_stored: int = 5
    # products (--entity products; biteral_cli/entities/products.py): the options table checks
    # them, and refuses the customer-only options with products (cli/options.py RULES)
    entity: str = "customers"
    currency: str | None = None
    price_rule: str = "lowest"
    extra_columns: str = "attributes"
    # --check, and the map command's own options
    check: bool = False
    write_mapping: Path | None = None
    samples: int = 5

    def read_options(self) -> ReadOptions:
        """How to read every input (the reader checks format, delimiter, encoding and sheet)."""
        from .reader import ReadOptions

        return _shared(ReadOptions, self)

    def mapping_options(self) -> MappingOptions:
        """How to map columns (the mapping module checks the --map field names)."""
        from .mapping import MappingOptions

        return _shared(MappingOptions, self, overrides=dict(self.map_overrides))

    def normalize_options(self) -> NormalizeOptions:
        """How to normalize values."""
        from .normalize import NormalizeOptions

        return _shared(NormalizeOptions, self)

    def upload_settings(self, api_url: str, api_key: Secret) -> UploadSettings:
        """How to send to ``api_url`` with ``api_key`` (the uploader checks the URL and the limits)."""
        from .entities import entity_named
        from .upload import UploadSettings

        endpoint = entity_named(self.entity).path
        return _shared(UploadSettings, self, api_url=api_url, api_key=api_key, endpoint=endpoint)

    @property
    def unattended(self) -> bool:
        """Whether no one is watching this run: stdin is not a terminal, or it keeps a --state."""
        return self.state is not None or not self.interactive

    @property
    def sends(self) -> bool:
        """Whether this run talks to an API at all."""
        return not self.dry_run


_T = TypeVar("_T")


def _shared(cls: type[_T], settings: ImportSettings, **given: Any) -> _T:
    """A ``cls`` holding every field it shares by name with ``settings``, plus ``given``."""
    names = {f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(settings)}  # type: ignore[arg-type]
    return cls(**{name: getattr(settings, name) for name in names - given.keys()}, **given)
