"""Hub etiquette: retry on HTTP 429 and 5xx, waiting as long as the server asks.

``huggingface_hub`` backs off on its own for some calls (listing a tree, streaming a file)
but not for others (listing branches, a file's metadata). :func:`with_backoff` wraps any
Hub call: on 429 or 5xx it waits for ``Retry-After`` (seconds), else the reset of the
``RateLimit`` header, else an exponential 1, 2, 4, ... seconds (at most ``max_wait``), and
tries again, up to ``tries`` times; then it raises one clear error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from massdyn.tracker.sources.base import CheckpointError

T = TypeVar("T")
RETRY_STATUS = (429, 500, 502, 503, 504)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of the response an exception carries (None without one)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def wait_for(exc: BaseException, attempt: int, max_wait: float) -> float:
    """Seconds to wait after ``exc`` before try ``attempt + 1``."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    retry_after = headers.get("Retry-After") or headers.get("retry-after")
    if retry_after:
        try:
            return min(float(retry_after), max_wait)
        except ValueError:
            pass  # an HTTP date: fall back to the other rules
    try:
        from huggingface_hub.utils import parse_ratelimit_headers

        info = parse_ratelimit_headers(headers)
        if info is not None and info.remaining == 0:
            return min(float(info.reset_in_seconds), max_wait)
    except Exception:
        pass
    return min(2.0**attempt, max_wait)


def with_backoff(
    call: Callable[[], T], what: str, tries: int = 6, max_wait: float = 60.0, sleep=time.sleep
) -> T:
    """``call()``, tried again on HTTP 429/5xx as the server asks.

    Raises:
        CheckpointError: when the server still refuses after ``tries`` tries, naming it.
        Exception: whatever else ``call`` raises, unchanged.
    """
    waited = 0.0
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            status = http_status(exc)
            if status not in RETRY_STATUS:
                raise
            if attempt == tries - 1:
                kind = "rate limited (429)" if status == 429 else f"failing ({status})"
                raise CheckpointError(
                    f"the Hub kept {what} {kind} through {tries} tries over {waited:.0f} s; "
                    "wait and run the same command again (it resumes), or set HF_TOKEN for a "
                    "higher rate limit"
                ) from None
            delay = wait_for(exc, attempt, max_wait)
            waited += delay
            sleep(delay)
    raise AssertionError("unreachable")
