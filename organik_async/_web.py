"""Provider trouble as an HTTP answer, for web services that call the Organik API.

A service in front of the provider should not turn the provider's troubles into bare 500s, and must
not pass on what the provider sent: the provider's text is not the service's to show, and the API
key (which lives in the URL) is nobody's. [`http_error_answer()`][organik_async.http_error_answer]
maps whatever a client call raised to the status, headers and a short, fixed, safe message to answer
with. It knows no web framework, so FastAPI, Starlette, Litestar, aiohttp or Django use it alike:

    try:
        rows = await client.detailed_report(transaction_ids=ids)
    except (OrganikError, TimeoutError, ValueError, TypeError) as exc:
        answer = http_error_answer(exc)
        return JSONResponse(
            {"detail": answer.detail}, status_code=answer.status_code, headers=answer.headers
        )

Only exceptions and models are imported here: this module is on the bottom
floor of the package's import layers.
"""

from __future__ import annotations

import builtins
import math

import msgspec

from ._exceptions import (
    API_ERROR_CODES,
    APIError,
    AuthenticationError,
    BulkReportError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    ResponseTooLargeError,
    StillPendingError,
    TransportError,
)

__all__ = ["DEFAULT_RETRY_AFTER", "HTTPErrorAnswer", "http_error_answer"]

DEFAULT_RETRY_AFTER = 5
"""Seconds a rate-limited answer asks to wait when the provider named no time."""

_DETAIL_CAP = 300
# Among the failed batches of a bulk call, the answer that tells the caller most:
# rate limited (wait, then retry), then timed out, then the provider failing.
_PRECEDENCE = (503, 504, 502)


class HTTPErrorAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP answer a service gives for an error: status, headers, message.

    ``detail`` is one of a few fixed sentences (plus the documented meaning of
    a provider error code, or the caller's own input for a 422): it never holds
    the provider's body or message, a URL, or the API key. ``headers`` is a
    fresh dict (``Retry-After`` on a 503), ready for any framework's response.
    """

    status_code: int
    """The HTTP status to answer with: 422, 500, 502, 503 or 504."""
    detail: str
    """A short message safe to show the service's caller."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Headers to add to the answer (``Retry-After`` on a 503); a fresh dict each time."""


def http_error_answer(
    exc: Exception, *, default_retry_after: int = DEFAULT_RETRY_AFTER
) -> HTTPErrorAnswer:
    """The HTTP answer for an error a client call raised.

    * [`RateLimitError`][organik_async.RateLimitError]: **503**, retry later;
      ``Retry-After`` is the provider's (whole seconds, rounded up), else
      ``default_retry_after``.
    * [`ClientClosedError`][organik_async.ClientClosedError]: **503**, the service is
      shutting down.
    * [`TimeoutExpiredError`][organik_async.TimeoutExpiredError], or the builtin one (from
      ``anyio.fail_after``, say): **504**, the provider did not answer in time, or the
      request's time budget ran out.
    * [`StillPendingError`][organik_async.StillPendingError]: **504**, the report was not
      final in time.
    * [`AuthenticationError`][organik_async.AuthenticationError]: **502**, the provider
      refused the service's key.
    * Another [`APIError`][organik_async.APIError]: **502**, the provider refused the
      request (its code and the code's documented meaning, never its message).
    * [`HTTPStatusError`][organik_async.HTTPStatusError],
      [`TransportError`][organik_async.TransportError],
      [`DecodeError`][organik_async.DecodeError],
      [`ResponseTooLargeError`][organik_async.ResponseTooLargeError]: **502**, the provider
      answered an HTTP error, could not be reached, or its answer was unreadable or too
      large.
    * [`BulkReportError`][organik_async.BulkReportError]: the most telling of its failed
      batches: **503** if one was rate limited (with the longest ``Retry-After``), else
      **504** if one timed out, else **502**.
    * ``ValueError``, ``TypeError``: **422**, the caller's own input (the message shows it
      back).
    * Anything else: **500**, an internal error, no details.

    Call it on what a client call (and the validation of the caller's input)
    raised, not as a catch-all: a ``TypeError`` from a bug would become a 422.

    Args:
        exc: what the call raised.
        default_retry_after: the ``Retry-After`` seconds of a rate-limited answer when the
            provider named no time.

    Returns:
        The status, a short fixed ``detail`` that never holds the provider's text, a URL or
            the key, and the headers to answer with.
    """
    if isinstance(exc, BulkReportError) and not isinstance(exc, ClientClosedError):
        return _bulk_answer(exc, default_retry_after)
    if isinstance(exc, OrganikError):
        return _single_answer(exc, default_retry_after)
    if isinstance(exc, builtins.TimeoutError):
        return HTTPErrorAnswer(status_code=504, detail=_TIMED_OUT)
    if isinstance(exc, ValueError | TypeError):
        return HTTPErrorAnswer(status_code=422, detail=_shorten(str(exc)) or "invalid input")
    return HTTPErrorAnswer(status_code=500, detail="internal error")


_TIMED_OUT = "the SMS provider did not answer in time"


def _single_answer(exc: OrganikError, default_retry_after: int) -> HTTPErrorAnswer:
    # Order matters: the most specific class first (TimeoutExpiredError is a TransportError,
    # ClientClosedError is also a RuntimeError, the APIError family before APIError).
    if isinstance(exc, RateLimitError):
        return HTTPErrorAnswer(
            status_code=503,
            detail="the SMS provider is rate limiting this service; retry later",
            headers={"Retry-After": _retry_after(exc.retry_after, default_retry_after)},
        )
    if isinstance(exc, ClientClosedError):
        return HTTPErrorAnswer(status_code=503, detail="the service is shutting down")
    if isinstance(exc, StillPendingError):
        return HTTPErrorAnswer(status_code=504, detail="the report was not final in time")
    if isinstance(exc, builtins.TimeoutError):
        return HTTPErrorAnswer(status_code=504, detail=_TIMED_OUT)
    if isinstance(exc, AuthenticationError):
        return HTTPErrorAnswer(
            status_code=502, detail="the SMS provider refused this service's credentials"
        )
    if isinstance(exc, APIError):
        return HTTPErrorAnswer(status_code=502, detail=_refusal(exc.code))
    if isinstance(exc, HTTPStatusError):
        return HTTPErrorAnswer(
            status_code=502, detail=f"the SMS provider answered HTTP {exc.status_code}"
        )
    if isinstance(exc, TransportError):
        return HTTPErrorAnswer(status_code=502, detail="the SMS provider could not be reached")
    if isinstance(exc, DecodeError):
        return HTTPErrorAnswer(status_code=502, detail="the SMS provider's answer was unreadable")
    if isinstance(exc, ResponseTooLargeError):
        return HTTPErrorAnswer(status_code=502, detail="the SMS provider's answer was too large")
    return HTTPErrorAnswer(status_code=502, detail="the SMS provider request failed")


def _bulk_answer(exc: BulkReportError, default_retry_after: int) -> HTTPErrorAnswer:
    answers = [
        _single_answer(failure.error, default_retry_after)
        for failure in exc.failures
        if failure.error is not None
    ]
    count = len(exc.failures)
    failed = f"{count} request{'s' if count != 1 else ''} to the SMS provider failed"
    if not answers:
        return HTTPErrorAnswer(status_code=502, detail=failed)
    rank = {status: place for place, status in enumerate(_PRECEDENCE)}
    chosen = min(answers, key=lambda answer: rank.get(answer.status_code, len(rank)))
    headers = dict(chosen.headers)
    waits = [int(a.headers["Retry-After"]) for a in answers if "Retry-After" in a.headers]
    if waits:  # wait for the slowest of them
        headers["Retry-After"] = str(max(waits))
    return HTTPErrorAnswer(
        status_code=chosen.status_code, detail=f"{failed}: {chosen.detail}", headers=headers
    )


def _refusal(code: int | None) -> str:
    if code is None:
        return "the SMS provider refused the request"
    meaning = API_ERROR_CODES.get(code)
    known = f": {meaning}" if meaning else ""
    return f"the SMS provider refused the request (code {code}{known})"


def _retry_after(seconds: float | None, default: int) -> str:
    """Whole seconds, rounded up, at least 1 (``Retry-After`` takes no fraction)."""
    if seconds is None or not math.isfinite(seconds):
        return str(max(1, default))
    return str(max(1, math.ceil(seconds)))


def _shorten(text: str) -> str:
    return text if len(text) <= _DETAIL_CAP else text[: _DETAIL_CAP - 1] + "…"
