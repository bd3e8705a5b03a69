"""The tool's exceptions and the exit codes they map to.

Hierarchy (every error the tool raises on purpose derives from ``BiteralImportError``):

    BiteralImportError            exit 2 unless a subclass says otherwise
    ├── UsageError                exit 2  conflicting or impossible options, bad values
    ├── ConfigError               exit 2  missing key, bad config or mapping file
    ├── InputError                exit 2  a file that cannot be read as a customer export
    ├── ReportError               exit 2  a report, checkpoint or state path that cannot be written
    ├── LockedError               exit 2  another run holds the state file's lock
    └── AbortError                exit 3  the run started but had to stop
        ├── AuthError             exit 3  401/403 from the API
        ├── ApiUnavailableError   exit 3  the API did not answer, or kept failing
        └── TooManyErrorsError    exit 3  --max-errors was exceeded

Library errors are wrapped where they enter our code (``raise InputError(...) from exc``); the
top level catches only ``BiteralImportError`` and prints its message on one line.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class BiteralImportError(Exception):
    """Base of every error the tool raises on purpose; ``exit_code`` is what the process returns."""

    exit_code: int = EXIT_USAGE


class UsageError(BiteralImportError):
    """Options that conflict or cannot be satisfied; raised before any I/O."""


class ConfigError(BiteralImportError):
    """Configuration that cannot be used: a missing API key, a bad mapping or config file."""


class InputError(BiteralImportError):
    """An input file that cannot be read as a customer export."""


class ReportError(BiteralImportError):
    """A report, checkpoint or state file that cannot be written."""


class LockedError(BiteralImportError):
    """Another run holds the lock on the same state file."""


class AbortError(BiteralImportError):
    """The import started but had to stop before the end."""

    exit_code = EXIT_ABORTED


class AuthError(AbortError):
    """The API refused the key (401 or 403)."""


class ApiUnavailableError(AbortError):
    """The API could not be reached, or failed too many times in a row."""


class TooManyErrorsError(AbortError):
    """More rows failed than ``--max-errors`` allows."""
