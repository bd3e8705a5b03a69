"""The one settings object an import run is built from, checked when it is created."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import UsageError
from .uploader import RateLimit, Secret

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
    """Everything one ``biteral-import FILE...`` run needs; impossible combinations are refused here."""

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
    # products (--entity products); see biteral_cli/entities/products.py
    entity: str = "customers"
    currency: str | None = None
    price_rule: str = "lowest"
    extra_columns: str = "attributes"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UsageError("give at least one input file (or - for standard input)")
        if self.inputs.count("-") > 1:
            raise UsageError("standard input (-) can be given only once")
        if not 1 <= self.batch_size <= 100:
            raise UsageError(f"--batch-size must be between 1 and 100, not {self.batch_size}")
        if self.max_request_bytes < 1024:
            raise UsageError("--max-request-bytes must be at least 1024")
        if self.failures_format not in (None, "csv", "jsonl"):
            raise UsageError(f"--failures-format must be csv or jsonl, not {self.failures_format!r}")
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be more than 0 seconds")
        if not 0 <= self.max_wait_s < float("inf"):
            raise UsageError(f"--max-wait must be 0 or more seconds, not {self.max_wait_s:g}")
        if self.resume and "-" in self.inputs:
            raise UsageError("--resume cannot be used with standard input (-): it has no content to match")
        if self.resume and self.dry_run:
            raise UsageError("--resume and --dry-run cannot be combined: a dry run sends nothing to resume")
        if self.full and self.state is None:
            raise UsageError("--full only makes sense with --state PATH")
        if self.personal_data not in ("include", "exclude"):
            raise UsageError(f"--personal-data must be include or exclude, not {self.personal_data!r}")
        if self.hash_code not in (None, "sha256"):
            raise UsageError(f"--hash-code takes sha256, not {self.hash_code!r}")
        if self.code_column is not None:
            if not self.code_column.strip():
                raise UsageError("--code-column needs a column name")
            pinned = self.map_overrides.get("code")
            if pinned is not None and pinned != self.code_column:
                raise UsageError(f"--code-column {self.code_column!r} and --map code={pinned!r} disagree; give one")
        if not 0 <= self.max_changed <= 100:
            raise UsageError(f"--max-changed must be a percentage from 0% to 100%, not {self.max_changed:g}%")
        self._check_entity()
        if self.quiet and self.verbose:
            raise UsageError("--quiet and --verbose cannot be combined")
        if self.json and self.verbose:
            raise UsageError("--json and --verbose cannot be combined: --json prints only the summary")
        if not self.sandbox and not self.dry_run and self.api_key is None:
            raise UsageError(
                "no API key: set BITERAL_API_KEY or pass --api-key-file PATH "
                "(or use --sandbox to try the tool locally, or --dry-run to send nothing)"
            )

    def _check_entity(self) -> None:
        """--entity and the options only products take (their values are checked by ProductOptions)."""
        if self.entity not in ("customers", "products"):
            raise UsageError(f"--entity must be customers or products, not {self.entity!r}")
        if self.entity == "products":
            from .entities.products import ProductOptions

            ProductOptions(currency=self.currency, price_rule=self.price_rule, extra_columns=self.extra_columns)
            if self.metadata_columns is not None or not self.extra_metadata:
                raise UsageError(
                    "--metadata-columns and --no-extra-metadata are for customers; for products use --extra-columns"
                )
            if self.mapping_file is not None:
                raise UsageError("--mapping files describe customer columns; for products use --map FIELD=COLUMN")
            return
        given = [
            flag
            for flag, value, default in (
                ("--currency", self.currency, None),
                ("--price-rule", self.price_rule, "lowest"),
                ("--extra-columns", self.extra_columns, "attributes"),
            )
            if value != default
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to --entity products")

    @property
    def unattended(self) -> bool:
        """Whether no one is watching this run: stdin is not a terminal, or it keeps a --state."""
        return self.state is not None or not self.interactive

    @property
    def sends(self) -> bool:
        """Whether this run talks to an API at all."""
        return not self.dry_run
