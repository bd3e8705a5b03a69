"""Sends ready batches to the Biteral API: retries, splitting, pacing, one outcome per item.

This is the package's whole public surface; the modules behind it are private, each one job:

    _exceptions   the errors raised here, drawn as a tree
    _config       Secret, RateLimit, durations, UploadSettings (checked when created)
    _models       Item, FieldError, UploadListener, UploadResult, Clock
    _client       the HTTP client: headers, the key, httpx errors wrapped
    _responses    what an answer means: its verdict by status, Retry-After, fieldErrors
    _pacing       the --rate pacer, the rate learner, the Retry-After gate and --max-wait
    _engine       upload(): batches, concurrency, order by code, retries, splitting
    _status       check_status(): one GET /status before a run

It knows nothing about files, columns or reports: it takes ``Item`` batches and tells an
``UploadListener`` what became of every item.
"""

from __future__ import annotations

from ._ahead import ChunksAhead
from ._config import RateLimit, Secret, UploadSettings, format_duration, parse_duration
from ._engine import upload
from ._exceptions import RateLimitedError
from ._models import Clock, FieldError, Item, UploadListener, UploadResult
from ._pacing import RateLearner
from ._status import check_status

__all__ = [
    "ChunksAhead",
    "Clock",
    "FieldError",
    "Item",
    "RateLearner",
    "RateLimit",
    "RateLimitedError",
    "Secret",
    "UploadListener",
    "UploadResult",
    "UploadSettings",
    "check_status",
    "format_duration",
    "parse_duration",
    "upload",
]
