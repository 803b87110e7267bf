"""One request, done right: throttles, one attempt after another, and what the answer means.

A request here means: pass the throttles (the rate budget, the adaptive
concurrency limit, any shared limits), send through the client's `Sender`
(which HTTP library does is the ``_http`` package's business), decode, turn
whatever went wrong into the exception tree (`error_for()` decides the class,
from [`PROVIDER_CODES`][organik_async.PROVIDER_CODES] and the HTTP status),
and retry what the [`RetryPolicy`][organik_async.RetryPolicy] says is worth
retrying. Batching and fan-out live above, in ``_bulk``; settings and
lifecycle in the client facade.

`Requester` is the state a client and all its
[`with_options()`][organik_async.OrganikClient.with_options] views share: the
key (a `Secret`), the base URL, the sender, the throttles, the redactor,
open/closed. The URL and headers of each wire format are built once.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Final

import anyio

from . import _retry
from ._codec import BodyError, Decoded, ProviderError, decode, encode_request
from ._exceptions import (
    PROVIDER_CODES,
    AnsweredError,
    APIError,
    ClientClosedError,
    DecodeError,
    EndpointUnreachableError,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    RequestInfo,
    TimeoutExpiredError,
)
from ._http import Answer, CouldNotConnect, Route, Sender, exchange
from ._models import DetailedReport, Format, HttpBackend, Id, IdKind
from ._options import Settings
from ._ratelimit import (
    ConcurrencyBudget,
    Outcome,
    Permit,
    RateBudget,
    RateLimiter,
    SizeLimit,
    Throttle,
)
from ._redact import Redactor, Secret
from ._retry import RetryPolicy
from ._telemetry import Instrumentation, RequestTrace, off

__all__ = [
    "CallState",
    "Requester",
    "error_for",
    "is_pushback",
    "is_too_large",
]


logger = logging.getLogger("organik_async")

_BODY_CAP: Final = 2048
Keep = Callable[[Answer, int, float], object]
"""Hears the answer that brought a request's rows: the answer, its attempt, its seconds."""
_BAD_PARAMETERS_CODE: Final = 96


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Requester:
    """Sends one batch of IDs, with retries; shared by a client and its views."""

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        redactor: Redactor,
        sender: Sender,
        rate_limiter: RateBudget | None,
        concurrency: ConcurrencyBudget | None,
        http_backend: HttpBackend = "httpx",
        telemetry: Instrumentation | None = None,
    ) -> None:
        self._key = api_key
        self._base_url = base_url
        self.redactor = redactor
        self.sender = sender
        self.rate_limiter = rate_limiter
        self.concurrency = concurrency
        self.throttles: tuple[Throttle, ...] = tuple(
            throttle for throttle in (rate_limiter, concurrency) if throttle is not None
        )
        self.sizes = SizeLimit()
        self._routes: dict[tuple[Format, Format], Route] = {}
        self._state = _State.UNOPENED
        self._active: set[anyio.CancelScope] = set()
        self.http_backend: HttpBackend = http_backend
        self.telemetry = off() if telemetry is None else telemetry

    def __repr__(self) -> str:
        return f"<Requester {self.redactor.text(self._base_url)} {self._state.value}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def is_closed(self) -> bool:
        return self._state is _State.CLOSED

    def open(self) -> None:
        self.check_open()
        self._state = _State.OPEN

    def check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosedError("this OrganikClient is closed; create a new one")

    async def aclose(self) -> None:
        """End every request in flight, then close the pools we opened. Idempotent.

        Requests in flight (and retry waits) end at once with
        [`ClientClosedError`][organik_async.ClientClosedError]; a caller's own ``http_client`` is
        never closed.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        for scope in list(self._active):
            scope.cancel()
        await self.sender.aclose()

    # --- where requests go --------------------------------------------------------------

    def route(self, request: Format, answer: Format) -> Route:
        """The URL and headers for these formats (made on first use, then reused)."""
        route = self._routes.get((request, answer))
        if route is None:
            path = f"/v2/{self._key}/detailedreport/{request}/"
            if answer != request:
                path += f"{answer}/"
            url = self._base_url + path
            route = Route(url, self.redactor.text(url), request, answer)
            self._routes[(request, answer)] = route
        return route

    # --- one batch, with retries --------------------------------------------------------

    async def fetch(
        self,
        ids: Mapping[IdKind, Sequence[Id]],
        settings: Settings,
        *,
        rate_limiter: RateLimiter | None = None,
        on_attempt: Callable[[int, int], object] | None = None,
        call: CallState | None = None,
        batch: int | None = None,
        keep: Keep | None = None,
    ) -> tuple[list[DetailedReport], int]:
        """One request for ``ids`` (kind → IDs), retried as ``settings.retry`` says.

        Returns the rows and the attempts made; raises the last attempt's
        error, with ``attempts`` and ``refusals`` set, when retrying is over.
        ``on_attempt`` hears each attempt's number and the refusals heard so
        far as it is sent, so a caller that cancels this knows how many were
        sent. ``call`` counts, across a call, connection failures in a row,
        retries and refusals. `aclose()` ends a fetch at once, waits included,
        with [`ClientClosedError`][organik_async.ClientClosedError].
        ``batch`` is the call's batch index (for telemetry); ``keep`` hears
        the answer that brought the rows, as it came.
        """
        self.check_open()
        answer = settings.answer_format
        route = self.route(settings.request_format, answer)
        count = sum(len(v) for v in ids.values())
        info = RequestInfo(route.shown, settings.request_format, answer, count)
        body = encode_request(settings.request_format, ids)
        retry = settings.retry
        call = CallState() if call is None else call
        observed = self.telemetry.request(info, ids, batch)
        attempt = faults = refusals = at_floor = 0
        first_refused = waited = 0.0  # patience: real time, or the waits asked if skipped
        with anyio.CancelScope() as closing:
            self._active.add(closing)
            try:
                throttles = self.throttles
                if rate_limiter is not None:  # the call's own budget, then the client's
                    throttles = (rate_limiter, *throttles)
                while True:
                    attempt += 1
                    outcome = await self._throttled(
                        throttles,
                        route,
                        body,
                        info,
                        settings,
                        attempt,
                        refusals,
                        on_attempt,
                        observed,
                        keep,
                    )
                    if isinstance(outcome, list):
                        call.reached()
                        return outcome, attempt
                    outcome = call.record(outcome, settings.unreachable_after)
                    if isinstance(outcome, CouldNotConnect):
                        outcome = outcome.public()
                    refused = is_pushback(outcome)
                    if refused:
                        # "Not now": its own patience, never max_retries.
                        refusals += 1
                        call.refusals += 1
                        now = anyio.current_time()
                        if refusals == 1:
                            first_refused = now
                        refused_for = max(now - first_refused, waited)
                        limit = self.concurrency
                        at_floor = at_floor + 1 if limit is None or limit.limit <= 1 else 0
                        delay = retry.pushback_delay(outcome, refused_for, at_floor)
                        if delay is None and not _asks_too_long(outcome, retry.max_retry_after):
                            outcome = _out_of_patience(outcome, refusals, refused_for, retry)
                        waited += delay or 0.0
                    else:
                        faults += 1
                        delay = (
                            None
                            if isinstance(outcome, EndpointUnreachableError)
                            else retry.delay_for(outcome, faults)
                        )
                        if delay is not None:
                            call.retries += 1
                    if delay is None:
                        outcome.attempts = attempt
                        outcome.refusals = refusals
                        raise outcome
                    observed.retrying(outcome, attempt, delay)
                    logger.info(
                        "retrying %s in %.2fs after %s (attempt %d %s)",
                        info.describe(),
                        delay,
                        type(outcome).__name__,
                        attempt + 1,
                        f"after {refusals} refusals"
                        if refused
                        else f"of {retry.max_retries + 1 + refusals}",
                    )
                    await _retry.wait(delay)
            finally:
                self._active.discard(closing)
        error = ClientClosedError(
            "the client was closed during this request", request=info, attempts=attempt
        )
        error.refusals = refusals
        raise error

    async def _throttled(
        self,
        throttles: tuple[Throttle, ...],
        route: Route,
        body: bytes,
        info: RequestInfo,
        settings: Settings,
        attempt: int,
        refusals: int,
        on_attempt: Callable[[int, int], object] | None,
        observed: RequestTrace,
        keep: Keep | None,
    ) -> list[DetailedReport] | OrganikError:
        """One try, once every throttle let it through; each hears how it ended."""
        permits: list[tuple[Throttle, Permit]] = []
        outcome: list[DetailedReport] | OrganikError | None = None
        try:
            for throttle in throttles:
                permits.append((throttle, await throttle.acquire()))
            if on_attempt is not None:  # let through: the caller now counts it as sent
                on_attempt(attempt, refusals)
            outcome = await self._attempt(route, body, info, settings, attempt, observed, keep)
            return outcome
        finally:
            if permits:
                heard = _outcome(outcome)
                retry_after = _retry_after(outcome)
                for throttle, permit in reversed(permits):
                    await throttle.release(permit, heard, retry_after=retry_after)

    async def _attempt(
        self,
        route: Route,
        body: bytes,
        info: RequestInfo,
        settings: Settings,
        attempt: int,
        observed: RequestTrace,
        keep: Keep | None,
    ) -> list[DetailedReport] | OrganikError:
        """One try: the rows, or the typed error (returned, so the caller decides)."""
        started = time.perf_counter()
        limit = settings.attempt_timeout
        sender = self.sender.resolve()
        sent: Answer | OrganikError | None = None
        with observed.attempt(attempt, sender.name) as seen:  # a span, when traced
            with anyio.CancelScope(
                deadline=math.inf if limit is None else anyio.current_time() + limit
            ):
                sent = await exchange(
                    sender,
                    seen.prepared(route),
                    body,
                    timeouts=settings.timeout,
                    limit=settings.max_response_bytes,
                    info=info,
                    redactor=self.redactor,
                )
            elapsed = time.perf_counter() - started
            if sent is None:
                sent = TimeoutExpiredError(
                    f"no complete answer within attempt_timeout={limit:g} s", request=info
                )
            logger.debug(
                "POST %s ids=%d status=%s duration=%.3fs attempt=%d",
                info.url,
                info.id_count,
                sent.status if isinstance(sent, Answer) else "-",
                elapsed,
                attempt,
            )
            result = (
                sent
                if isinstance(sent, OrganikError)
                else self._interpret(
                    sent.status, sent.headers, sent.body, info, settings.answer_format
                )
            )
            if keep is not None and isinstance(result, list) and isinstance(sent, Answer):
                keep(sent, attempt, elapsed)
            seen.ended(sent, result, elapsed)
            return result

    def _interpret(
        self, status: int, headers: Mapping[str, str], raw: bytes, info: RequestInfo, fmt: Format
    ) -> list[DetailedReport] | OrganikError:
        """Turn an answer into rows or the one error that describes it best."""
        ok = 200 <= status < 300
        try:
            decoded: Decoded | None = decode(fmt, raw)
        except BodyError as exc:
            if ok:
                return DecodeError(
                    self.redactor.text(exc.message),
                    position=self.redactor.text(exc.position),
                    excerpt=self.redactor.text(exc.excerpt),
                    request=info,
                )
            decoded = None
        if ok and decoded is not None and decoded.error is None:
            return decoded.rows
        error = None if decoded is None else decoded.error
        if error is not None and _is_no_records(error):
            return []
        location = headers.get("location") if 300 <= status < 400 else None
        return error_for(
            status,
            None if error is None else self._redacted(error),
            body=self.redactor.bytes(raw)[:_BODY_CAP],
            retry_after=_retry.parse_retry_after(headers.get("retry-after")),
            request=info,
            location=None if location is None else self.redactor.text(location),
        )

    def _redacted(self, error: ProviderError) -> ProviderError:
        text = self.redactor.text
        return ProviderError(
            message=None if error.message is None else text(error.message),
            number=None if error.number is None else text(error.number),
            time=None if error.time is None else text(error.time),
            code=error.code,
        )


class CallState:
    """What one call's requests learn together: connection failures in a row,
    and the retries and refusals so far (which `Progress` shows).

    A wrong or dead endpoint fails every attempt of every batch the same way;
    after ``unreachable_after`` such failures in a row, with no answer between
    them, the call stops with
    [`EndpointUnreachableError`][organik_async.EndpointUnreachableError].
    """

    __slots__ = ("in_a_row", "refusals", "retries")

    def __init__(self) -> None:
        self.in_a_row = 0
        self.retries = 0
        """Requests sent again after a fault (refusals not counted)."""
        self.refusals = 0
        """Answers that said "slow down" (each is sent again unless patience ran out)."""

    def reached(self) -> None:
        self.in_a_row = 0

    def record(self, error: OrganikError, limit: int) -> OrganikError:
        """The error to act on: ``error``, or the call-stopping one past ``limit``."""
        if not isinstance(error, CouldNotConnect):
            self.in_a_row = 0
            return error
        self.in_a_row += 1
        if self.in_a_row < limit:
            return error
        return EndpointUnreachableError(
            f"the endpoint is unreachable: {self.in_a_row} connection attempts in a row "
            f"failed (last: {error.cause}); check base_url and the network",
            cause=error.cause,
            request=error.request,
        )


def _asks_too_long(refusal: OrganikError, max_retry_after: float) -> bool:
    retry_after = _retry_after(refusal)
    return retry_after is not None and retry_after > max_retry_after


def _out_of_patience(
    refusal: OrganikError, refusals: int, seconds: float, retry: RetryPolicy
) -> RateLimitError:
    """The error of a request the provider kept refusing for ``pushback_timeout``."""
    assert isinstance(refusal, AnsweredError)  # what is_pushback() accepts
    api = refusal if isinstance(refusal, APIError) else None
    return RateLimitError(
        f"the provider refused this request {refusals} times over {seconds:.1f} s "
        f"(pushback_timeout={retry.pushback_timeout:g} s); last answer: {refusal.message}",
        code=None if api is None else api.code,
        number=None if api is None else api.number,
        error_message=None if api is None else api.error_message,
        time=None if api is None else api.time,
        status_code=refusal.status_code,
        body=refusal.body,
        retry_after=refusal.retry_after,
        request=refusal.request,
    )


def is_pushback(error: OrganikError) -> bool:
    """Whether ``error`` is the provider saying "too many at once, slow down":
    code 93 or HTTP 429 (a [`RateLimitError`][organik_async.RateLimitError]), or a 503 with
    ``Retry-After``."""
    if isinstance(error, RateLimitError):
        return True
    return (
        isinstance(error, AnsweredError)
        and error.status_code == 503
        and error.retry_after is not None
    )


def is_too_large(error: OrganikError) -> bool:
    """Whether ``error`` refuses a request for its size: code 96, HTTP 413 or 414."""
    if isinstance(error, APIError) and error.code == _BAD_PARAMETERS_CODE:
        return True
    return isinstance(error, AnsweredError) and error.status_code in (413, 414)


def _outcome(outcome: list[DetailedReport] | OrganikError | None) -> Outcome:
    if outcome is None:
        return Outcome.CANCELLED
    if isinstance(outcome, list):
        return Outcome.ANSWERED
    return Outcome.PUSHBACK if is_pushback(outcome) else Outcome.FAILED


def _retry_after(outcome: list[DetailedReport] | OrganikError | None) -> float | None:
    if isinstance(outcome, AnsweredError):
        return outcome.retry_after
    return None


def _is_no_records(error: ProviderError) -> bool:
    entry = None if error.code is None else PROVIDER_CODES.get(error.code)
    return entry is not None and entry.no_records


def error_for(
    status: int,
    error: ProviderError | None,
    *,
    body: bytes,
    retry_after: float | None,
    request: RequestInfo,
    location: str | None = None,
) -> AnsweredError:
    """The error for an answer that is not rows: the one place that picks the class.

    A provider envelope decides (its code's class in
    [`PROVIDER_CODES`][organik_async.PROVIDER_CODES],
    [`RateLimitError`][organik_async.RateLimitError] for any refusal sent with HTTP 429); without
    one, HTTP 429 is a [`RateLimitError`][organik_async.RateLimitError] and any other status an
    [`HTTPStatusError`][organik_async.HTTPStatusError] (a redirect names its ``Location``: the
    client never follows one). Everything passed in is already redacted.
    """
    if error is None:
        excerpt = body.decode("utf-8", "replace").encode()
        if status == 429:
            return RateLimitError(
                "HTTP 429 Too Many Requests",
                status_code=429,
                body=excerpt,
                retry_after=retry_after,
                request=request,
            )
        where = "" if location is None else f" (Location: {location})"
        return HTTPStatusError(
            f"HTTP {status} {_reason(status)}{where}",
            status_code=status,
            body=excerpt,
            retry_after=retry_after,
            request=request,
        )
    entry = None if error.code is None else PROVIDER_CODES.get(error.code)
    cls = APIError if entry is None else entry.error
    if status == 429 and cls is APIError:
        cls = RateLimitError
    known = f" ({entry.english})" if entry is not None else ""
    return cls(
        f"provider error {error.code}{known}: {error.message or 'no message'}",
        code=error.code,
        number=error.number,
        error_message=error.message,
        time=error.time,
        status_code=status,
        body=body,
        retry_after=retry_after,
        request=request,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
