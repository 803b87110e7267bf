"""What is retried, how many times, how long we wait, and what is logged.

Waits are instant: ``organik_async._retry.sleep`` (which the client awaits
between attempts) is replaced by a recorder of the delays asked for.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    DecodeError,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    RateLimitError,
    RetryPolicy,
    TimeoutExpiredError,
    TransportError,
)
from organik_async._retry import parse_retry_after
from tests.helpers.provider import KEY, SEED_ROW, error_answer, rows_answer

OK_BODY = rows_answer(SEED_ROW)

Answer = Callable[[httpx.Request], httpx.Response]


def envelope(code: int, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    body = error_answer(code)
    return lambda request: httpx.Response(status, content=body, headers=headers)


def bare(status: int, headers: dict[str, str] | None = None) -> Answer:
    return lambda request: httpx.Response(status, text="upstream says no", headers=headers)


def raises(exc: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc("flaky", request=request)

    return answer


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=OK_BODY)


class Script:
    """Answers with ``failures`` in turn, then ``then`` for ever."""

    def __init__(self, *failures: Answer, then: Answer = ok) -> None:
        self.failures = list(failures)
        self.then = then
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            return self.failures.pop(0)(request)
        return self.then(request)


@pytest.fixture
def sleeps(no_waits: list[float]) -> list[float]:
    """The retry waits the client asked for, skipped by the public test switch."""
    return no_waits


async def run(script: Script, **kwargs: Any) -> list[Any]:
    async with OrganikClient(KEY, transport=httpx.MockTransport(script), **kwargs) as client:
        with anyio.fail_after(5):
            return await client.detailed_report(transaction_ids=[14094857])


async def run_failing(script: Script, **kwargs: Any) -> OrganikError:
    with pytest.raises(OrganikError) as info:
        await run(script, **kwargs)
    return info.value


FAULTS: dict[str, Answer] = {
    "connect-error": raises(httpx.ConnectError),
    "read-error": raises(httpx.ReadError),
    "remote-protocol": raises(httpx.RemoteProtocolError),
    "connect-timeout": raises(httpx.ConnectTimeout),
    "read-timeout": raises(httpx.ReadTimeout),
    "http-408": bare(408),
    "http-500": bare(500),
    "http-502": bare(502),
    "http-503": bare(503),
    "http-504": bare(504),
    "code-84": envelope(84),
    "code-94": envelope(94),
    "code-95": envelope(95),
    "code-84-http-500": envelope(84, status=500),
    "code-94-http-503": envelope(94, status=503),
}
"""Failures a later attempt may fix: each retry spends one of ``max_retries``."""

REFUSALS: dict[str, Answer] = {
    "http-429": bare(429),
    "code-93": envelope(93),
    "code-93-http-429": envelope(93, status=429),
    "code-93-http-400": envelope(93, status=400),
    "http-503-retry-after": bare(503, {"Retry-After": "1"}),
}
"""The provider's "slow down": retried under ``pushback_timeout``, never ``max_retries``."""

RETRYABLE: dict[str, Answer] = {**FAULTS, **REFUSALS}

NOT_RETRYABLE: dict[str, tuple[Answer, type[OrganikError]]] = {
    "http-400": (bare(400), HTTPStatusError),
    "http-401": (bare(401), HTTPStatusError),
    "http-403": (bare(403), HTTPStatusError),
    "http-404": (bare(404), HTTPStatusError),
    "http-501": (bare(501), HTTPStatusError),
    "code-1": (envelope(1), APIError),
    "code-85": (envelope(85), APIError),
    "code-96": (envelope(96), APIError),
    "code-97": (envelope(97), APIError),
    "code-89": (envelope(89), AuthenticationError),
    "code-99": (envelope(99), AuthenticationError),
    "code-96-http-400": (envelope(96, status=400), APIError),
    # The envelope's code wins over the HTTP status it came with.
    "code-96-http-500": (envelope(96, status=500), APIError),
    "code-97-http-502": (envelope(97, status=502), APIError),
    "code-99-http-503": (envelope(99, status=503), AuthenticationError),
    "code-89-http-504": (envelope(89, status=504), AuthenticationError),
    "invalid-json": (lambda r: httpx.Response(200, content=b"{oops"), DecodeError),
    "wrong-shape": (lambda r: httpx.Response(200, content=b'{"response": 1}'), DecodeError),
}


# --- what is retried -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(RETRYABLE))
async def test_retryable_failure_is_retried_until_success(kind: str, sleeps: list[float]) -> None:
    script = Script(RETRYABLE[kind], RETRYABLE[kind])
    rows = await run(script)
    assert [r.gsm for r in rows] == [905445359675]
    assert len(script.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(FAULTS))
async def test_a_fault_gives_up_after_max_retries(kind: str, sleeps: list[float]) -> None:
    script = Script(then=FAULTS[kind])
    error = await run_failing(script, max_retries=2)
    assert len(script.requests) == 3
    assert error.attempts == 3
    assert error.refusals == 0
    assert len(sleeps) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(REFUSALS))
async def test_refusals_never_spend_max_retries(kind: str, sleeps: list[float]) -> None:
    script = Script(*[REFUSALS[kind]] * 12, FAULTS["http-502"])
    rows = await run(script, max_retries=1)
    assert [r.gsm for r in rows] == [905445359675]
    assert len(script.requests) == 14  # twelve refusals, one fault and its one retry


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(REFUSALS))
async def test_refused_past_pushback_timeout_is_a_rate_limit_error_saying_how_long_and_how_often(
    kind: str, sleeps: list[float]
) -> None:
    script = Script(then=REFUSALS[kind])
    error = await run_failing(script, max_retries=0, pushback_timeout=60)
    assert type(error) is RateLimitError
    assert error.attempts == error.refusals == len(script.requests) > 1
    assert f"refused this request {error.refusals} times over" in str(error)
    assert "pushback_timeout=60 s" in str(error)
    assert 0 < sum(sleeps) <= 60  # the waits asked for stay within the patience


@pytest.mark.anyio
async def test_at_the_floor_refusals_back_off_with_full_jitter(sleeps: list[float]) -> None:
    script = Script(*[envelope(93)] * 40)
    await run(script, adaptive_concurrency=False, backoff_base=1.0, backoff_max=8.0)
    ceilings = [1.0, 2.0, 4.0] + [8.0] * 37  # no adaptive limit: every refusal is at the floor
    assert len(sleeps) == len(ceilings)
    for delay, ceiling in zip(sleeps, ceilings, strict=True):
        assert 0 <= delay <= ceiling
    assert min(sleeps[3:]) < 4.0  # full jitter: from zero, not from half the ceiling


@pytest.mark.anyio
async def test_above_the_floor_a_refusal_waits_only_for_the_lowered_limit(
    sleeps: list[float],
) -> None:
    transport = httpx.MockTransport(Script(*[envelope(93)] * 30))
    async with OrganikClient(KEY, transport=transport, backoff_base=1.0, backoff_max=8.0) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[14094857])
        limit = client._requester.concurrency
        assert limit is not None
        assert limit.limit == 1  # refusals went on round after round: it halved to its floor
    first_backoff = next(i for i, delay in enumerate(sleeps) if delay > 0)
    assert sleeps[:first_backoff] == [0.0] * first_backoff
    assert all(delay <= 8.0 for delay in sleeps)


@pytest.mark.anyio
async def test_default_is_three_retries_after_the_first_attempt(sleeps: list[float]) -> None:
    script = Script(then=bare(503))
    error = await run_failing(script)
    assert type(error) is HTTPStatusError
    assert len(script.requests) == 4
    assert error.attempts == 4
    assert len(sleeps) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["connect-error", "http-503", "code-94", "read-timeout"])
async def test_max_retries_0_sends_once(kind: str, sleeps: list[float]) -> None:
    script = Script(then=RETRYABLE[kind])
    error = await run_failing(script, max_retries=0)
    assert len(script.requests) == 1
    assert error.attempts == 1
    assert sleeps == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(NOT_RETRYABLE))
async def test_other_failures_are_not_retried(kind: str, sleeps: list[float]) -> None:
    answer, cls = NOT_RETRYABLE[kind]
    script = Script(answer)
    error = await run_failing(script, max_retries=5)
    assert type(error) is cls
    assert len(script.requests) == 1
    assert error.attempts == 1
    assert sleeps == []


@pytest.mark.anyio
async def test_last_errors_type_is_raised_after_mixed_failures(sleeps: list[float]) -> None:
    script = Script(
        raises(httpx.ConnectError), bare(503), envelope(94), then=raises(httpx.ReadTimeout)
    )
    error = await run_failing(script, max_retries=3)
    assert type(error) is TimeoutExpiredError
    assert isinstance(error, TransportError)
    assert error.attempts == 4


# --- how long we wait -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_backoff_grows_exponentially_with_jitter_and_a_cap(sleeps: list[float]) -> None:
    script = Script(then=bare(502))
    await run_failing(script, max_retries=6, backoff_base=1.0, backoff_max=10.0)
    ceilings = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert len(sleeps) == len(ceilings)
    for delay, ceiling in zip(sleeps, ceilings, strict=True):
        assert 0.5 * ceiling <= delay <= ceiling


@pytest.mark.anyio
async def test_backoff_base_0_makes_every_wait_zero(sleeps: list[float]) -> None:
    await run_failing(Script(then=bare(500)), backoff_base=0)
    assert sleeps == [0.0, 0.0, 0.0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (bare(503, {"Retry-After": "7"}), HTTPStatusError),
        (bare(429, {"Retry-After": "7"}), RateLimitError),
        (envelope(93, headers={"Retry-After": "7"}), RateLimitError),
        (envelope(94, status=503, headers={"Retry-After": "7"}), APIError),
    ],
    ids=["503", "429", "code-93", "code-94-503"],
)
async def test_retry_after_seconds_replaces_the_computed_wait(
    answer: Answer, kind: type[OrganikError], sleeps: list[float]
) -> None:
    script = Script(answer)
    rows = await run(script, backoff_base=0.001)
    assert len(rows) == 1
    assert sleeps == [7.0]
    failing = Script(then=answer)
    error = await run_failing(failing, max_retries=1, pushback_timeout=10)
    assert kind is RateLimitError or getattr(error, "status_code", None) == 503
    assert isinstance(error, RateLimitError)  # a refusal: patience ran out after one wait
    assert error.attempts == error.refusals == 2
    assert getattr(error, "retry_after", None) == 7.0


@pytest.mark.anyio
async def test_retry_after_http_date_replaces_the_computed_wait(sleeps: list[float]) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    header = email.utils.format_datetime(when, usegmt=True)
    await run(Script(bare(503, {"Retry-After": header})), backoff_base=0.001)
    [delay] = sleeps
    assert 25 <= delay <= 31


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [bare(429, {"Retry-After": "3600"}), envelope(93, headers={"Retry-After": "121"})],
    ids=["429", "code-93"],
)
async def test_retry_after_longer_than_max_retry_after_fails_fast(
    answer: Answer, sleeps: list[float]
) -> None:
    script = Script(then=answer)
    error = await run_failing(script, max_retries=5, max_retry_after=120)
    assert type(error) is RateLimitError
    assert len(script.requests) == 1
    assert error.attempts == 1
    assert sleeps == []


@pytest.mark.anyio
async def test_unparseable_retry_after_falls_back_to_backoff(sleeps: list[float]) -> None:
    await run(Script(bare(503, {"Retry-After": "soon"})), backoff_base=1.0)
    [delay] = sleeps
    assert 0.5 <= delay <= 1.0


@pytest.mark.anyio
async def test_retry_after_does_not_make_a_permanent_error_retryable(
    sleeps: list[float],
) -> None:
    script = Script(then=envelope(99, headers={"Retry-After": "1"}))
    error = await run_failing(script)
    assert type(error) is AuthenticationError
    assert len(script.requests) == 1


# --- RetryPolicy and parse_retry_after ------------------------------------------------------


@pytest.mark.parametrize("retry", [1, 2, 3, 5, 8, 12, 40, 2000])
def test_backoff_is_within_half_and_all_of_the_capped_exponential(retry: int) -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=30.0)
    ceiling = min(30.0, 0.5 * 2.0 ** min(retry - 1, 1000))
    samples = [policy.backoff(retry) for _ in range(300)]
    assert all(0.5 * ceiling <= s <= ceiling for s in samples)
    assert max(samples) - min(samples) > 0.2 * ceiling  # jitter is actually applied


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.5, 0.75), (0.9999999, 1.0)])
def test_backoff_jitter_extremes(
    monkeypatch: pytest.MonkeyPatch, draw: float, factor: float
) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)
    policy = RetryPolicy(backoff_base=2.0, backoff_max=100.0)
    assert policy.backoff(1) == pytest.approx(2.0 * factor)
    assert policy.backoff(3) == pytest.approx(8.0 * factor)
    assert policy.backoff(10) == pytest.approx(100.0 * factor)  # capped


def test_backoff_never_overflows_for_very_many_retries() -> None:
    policy = RetryPolicy(max_retries=10_000, backoff_base=1.0, backoff_max=60.0)
    assert 30.0 <= policy.backoff(5000) <= 60.0
    assert RetryPolicy(backoff_base=0).backoff(5000) == 0.0


def test_delay_for_respects_max_retries_and_kind() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=0)
    transient = TransportError("x")
    assert policy.delay_for(transient, 1) == 0.0
    assert policy.delay_for(transient, 2) == 0.0
    assert policy.delay_for(transient, 3) is None
    assert policy.delay_for(DecodeError("x"), 1) is None
    assert policy.delay_for(APIError("x", code=96, status_code=200), 1) is None
    assert policy.delay_for(APIError("x", code=95, status_code=200), 1) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"backoff_base": -0.1}, {"backoff_max": -1}, {"max_retry_after": -5}],
)
def test_negative_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        OrganikClient(KEY, **kwargs)  # type: ignore[arg-type]


NOW = datetime(2024, 3, 1, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        ("Fri, 01 Mar 2024 09:00:30 GMT", 30.0),
        ("Fri, 01 Mar 2024 12:00:30 +0300", 30.0),
        ("Fri, 01 Mar 2024 08:59:00 GMT", 0.0),  # in the past: no wait
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # not an ASCII digit
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


# --- logging -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_debug_line_per_request_and_one_info_line_per_retry(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG, logger="organik_async")
    script = Script(bare(503), raises(httpx.ConnectError))
    async with OrganikClient(KEY, transport=httpx.MockTransport(script)) as client:
        with anyio.fail_after(5):
            await client.detailed_report(gsm_track_ids=[410471976, 410471979])
    ours = [r for r in caplog.records if r.name.startswith("organik_async")]
    debug = [r for r in ours if r.levelno == logging.DEBUG and r.getMessage().startswith("POST")]
    info = [r for r in ours if r.levelno == logging.INFO and r.getMessage().startswith("retry")]
    assert len(debug) == 3  # one per request
    assert len(info) == 2  # one per retry
    statuses = ["status=503", "status=-", "status=200"]
    for record, status in zip(debug, statuses, strict=True):
        message = record.getMessage()
        assert "https://organikapi.com/v2/***/detailedreport/json/" in message
        assert "ids=2" in message
        assert status in message
        assert "duration=" in message
        assert KEY not in message
    assert "HTTPStatusError" in info[0].getMessage()
    assert "TransportError" in info[1].getMessage()
    assert "attempt 2 of 4" in info[0].getMessage()
    assert "attempt 3 of 4" in info[1].getMessage()


@pytest.mark.anyio
async def test_no_retry_log_when_nothing_is_retried(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG, logger="organik_async")
    await run(Script())
    ours = [r for r in caplog.records if r.name.startswith("organik_async")]
    assert [r.getMessage()[:4] for r in ours if r.getMessage().startswith("POST")] == ["POST"]
    assert not [r for r in ours if r.levelno >= logging.INFO]


@pytest.mark.anyio
async def test_debug_line_reports_the_request_duration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="organik_async")

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.05)
        return httpx.Response(200, content=OK_BODY)

    async with OrganikClient(KEY, transport=httpx.MockTransport(slow)) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[14094857])
    [record] = [
        r for r in caplog.records if r.name == "organik_async" and r.getMessage().startswith("POST")
    ]
    match = re.search(r"duration=(\d+\.\d+)s", record.getMessage())
    assert match is not None, record.getMessage()
    assert 0.04 <= float(match.group(1)) < 5
