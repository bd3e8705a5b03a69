"""The errors the upload package raises, and the internal ones that never leave it.

    BiteralImportError                  (biteral_cli.errors) the top level prints its message
    ├── UsageError                      a bad --api-url, --concurrency, --rate, --max-wait...
    ├── ConfigError                     no API key, or one with characters a key cannot have
    └── AbortError                      exit 3: the upload started but had to stop
        ├── AuthError                   401/403: the API refused the key
        ├── ApiUnavailableError         no answer, a redirect, or failures in a row
        └── RateLimitedError            a 429 asked for a longer wait than --max-wait leaves

    NoAnswerError                       internal: a request got no HTTP answer (wraps httpx's error)
    ├── AnswerTimeoutError              no answer within --timeout
    └── ConnectionFailedError           the connection could not be made or broke

Every httpx error is wrapped where it enters our code (``raise ... from exc``): the engine turns a
NoAnswerError into a retry, ``check_status`` into an ApiUnavailableError naming the URL.
"""

from __future__ import annotations

from biteral_cli.errors import AbortError


class RateLimitedError(AbortError):
    """The API answered 429 and asked for a longer wait than the run may spend (a used-up quota)."""


class NoAnswerError(Exception):
    """A request that got no HTTP answer; ``__cause__`` is the httpx error."""


class AnswerTimeoutError(NoAnswerError):
    """No answer within the configured timeout."""


class ConnectionFailedError(NoAnswerError):
    """The connection could not be made, or broke before the answer."""
