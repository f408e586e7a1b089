"""Hub etiquette: retry on HTTP 429 and 5xx, waiting as long as the server asks.

``huggingface_hub`` backs off on its own for some calls (listing a tree, streaming a file)
but not for others (listing branches, a file's metadata). :func:`with_backoff` wraps any
Hub call: on 429 or 5xx it waits for ``Retry-After`` (seconds), else the reset of the
``RateLimit`` header, else an exponential 1, 2, 4, ... seconds (at most ``max_wait``), and
tries again, up to ``tries`` times; then it raises one clear error.

Downloads go through :func:`hub_download`: ``hf_hub_download`` retries a refused metadata
call on its own (five times, 1-8 s apart, reading only whole-second ``Retry-After`` and
adding a second) and then reports a lasting 429 as "check your connection". Asking for the
file's metadata first, without its retries and under :func:`with_backoff`, keeps one rule
for listings and downloads and names throttling as throttling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from massdyn.tracker.sources.base import CheckpointError

T = TypeVar("T")
RETRY_STATUS = (429, 500, 502, 503, 504)


class HubRefusedError(CheckpointError):
    """The Hub kept answering 429 or 5xx through every try (a walk stops after a few)."""


def _response(exc: BaseException | None):
    """The HTTP response the exception, or one it was raised from, carries (None without).

    ``huggingface_hub`` re-raises a failed metadata call as "check your connection"
    (``LocalEntryNotFoundError``) with the HTTP error as its cause: the chain is followed.
    """
    seen = 0
    while exc is not None and seen < 8:
        response = getattr(exc, "response", None)
        if response is not None:
            return response
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of the response an exception carries (None without one)."""
    return getattr(_response(exc), "status_code", None)


def wait_for(exc: BaseException, attempt: int, max_wait: float) -> float:
    """Seconds to wait after ``exc`` before try ``attempt + 1``."""
    headers = getattr(_response(exc), "headers", None) or {}
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
        HubRefusedError: when the server still refuses after ``tries`` tries, naming it.
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
                raise HubRefusedError(
                    f"the Hub kept {what} {kind} through {tries} tries over {waited:.0f} s; "
                    "wait and run the same command again (it resumes), or set HF_TOKEN for a "
                    "higher rate limit"
                ) from None
            delay = wait_for(exc, attempt, max_wait)
            waited += delay
            sleep(delay)
    raise AssertionError("unreachable")


def hub_download(repo_id: str, filename: str, revision: str, **kwargs) -> str:
    """``hf_hub_download`` after its metadata answered under :func:`with_backoff`.

    Args:
        repo_id: The model repo.
        filename: The file's path in the repo.
        revision: A branch, tag or commit.
        **kwargs: ``cache_dir`` and ``endpoint``, passed on.

    Returns:
        The path of the file in the Hub cache.

    Raises:
        CheckpointError: when the Hub keeps refusing (429/5xx), naming it.
        Exception: whatever else the Hub calls raise, unchanged.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    what = f"answering for {revision}/{filename}"
    endpoint = kwargs.get("endpoint")
    if not constants.HF_HUB_OFFLINE:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
        with_backoff(lambda: get_hf_file_metadata(url, endpoint=endpoint), what)
    return with_backoff(
        lambda: hf_hub_download(repo_id, filename, revision=revision, **kwargs), what
    )
