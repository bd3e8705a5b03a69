"""``check_status``: one GET /status before a run, to learn early that the URL or the key is wrong."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from biteral_cli.errors import ApiUnavailableError, AuthError

from ._client import ApiClient
from ._config import UploadSettings
from ._exceptions import AnswerTimeoutError, NoAnswerError, RateLimitedError
from ._pacing import RateLearner, come_back, pacer_for
from ._responses import Verdict, body_code, classify, redirect_target, retry_after

log = logging.getLogger("biteral_cli.upload")


async def check_status(settings: UploadSettings, learner: RateLearner | None = None) -> dict[str, Any]:
    """GET /status once and return its JSON; AuthError on 401/403, ApiUnavailableError otherwise.

    The AuthError message names BITERAL_API_KEY and shows only the masked key; the
    ApiUnavailableError (connection error, 5xx, timeout, redirect, non-JSON) names the URL, which
    never carries credentials. A 429 is retried after its Retry-After; RateLimitedError when that
    is longer than --max-wait (a used-up quota).
    """
    # api_url is validated to carry no user info, so it can be shown as is.
    where = settings.api_url
    pacer = pacer_for(settings)
    waited = 0.0
    async with ApiClient(settings) as client:
        for attempt in range(settings.max_retries + 1):
            if pacer is not None:
                await pacer.wait()
            started = time.perf_counter()
            sent_at = 0.0
            if learner is not None:
                sent_at = learner.clock()
                learner.on_sent(sent_at)
            try:
                response = await client.request("GET", "/status")
            except AnswerTimeoutError as exc:
                raise ApiUnavailableError(f"The API at {where} did not answer within {settings.timeout_s:g}s") from exc
            except NoAnswerError as exc:
                cause = exc.__cause__
                problem = f"{cause.__class__.__name__}: {cause}"
                raise ApiUnavailableError(f"Cannot reach the API at {where} ({problem})") from exc
            log.debug("GET /status -> %s in %.3fs", response.status_code, time.perf_counter() - started)
            status = response.status_code
            verdict = classify(status)
            if learner is not None:
                if verdict is Verdict.THROTTLED:
                    learner.on_throttled(sent_at, retry_after(response))
                else:
                    learner.on_accepted()
            if verdict is Verdict.AUTH:
                raise AuthError(
                    f"The API at {where} refused the key {settings.api_key.masked()} ({status}): check BITERAL_API_KEY"
                )
            if verdict is Verdict.THROTTLED:
                pause = retry_after(response)
                pause = max(settings.backoff_base_s, pause if pause is not None else 1.0)
                if waited + pause > settings.max_wait_s:
                    code = body_code(response)
                    problem = "GET /status: API answered 429" + (f" ({code})" if code else "")
                    raise RateLimitedError(come_back(problem, pause, settings.max_wait_s, waited, time.time()))
                if attempt < settings.max_retries:
                    waited += pause
                    await asyncio.sleep(pause)
                    continue
            if verdict is Verdict.REDIRECT:
                raise ApiUnavailableError(
                    f"The API at {where} answered a redirect to {redirect_target(response)}; refusing to send the "
                    "key there (check --api-url)"
                )
            if status != 200:
                code = body_code(response)
                raise ApiUnavailableError(
                    f"The API at {where} answered {status}"
                    + (f" ({code})" if code else "")
                    + " to GET /status; check --api-url"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise ApiUnavailableError(
                    f"{where} did not answer GET /status with JSON; is it the Biteral API?"
                ) from exc
            if not isinstance(data, dict):
                raise ApiUnavailableError(f"{where} answered GET /status with an unexpected body")
            return data
    raise ApiUnavailableError(f"The API at {where} kept answering 429 to GET /status")
