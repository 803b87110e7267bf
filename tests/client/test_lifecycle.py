"""Around the life of a client: closing mid-call, deadlines, dead endpoints, early exits.

A client lives inside other people's services for years. Closing it while
calls run must end them at once with one clear error and every ID accounted
for; a slow or trickling server must not hold a request forever; a wrong or
dead endpoint must fail the call fast and say why; and leaving a stream early
must leave nothing running behind.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
import sniffio

from organik_async import (
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
    DecodeError,
    EndpointUnreachableError,
    OrganikClient,
    TimeoutExpiredError,
    TransportError,
)
from organik_async._http import HttpxSender
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve
from tests.helpers.provider import KEY
from tests.helpers.wire import closed_url

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(600, seed=11, max_transaction_rows=20)
TX = DATASET.transaction_ids
GSM = DATASET.gsm_track_ids


def accounted_ids(error: BulkReportError) -> list[int | str]:
    """Every ID a failed call reports, whether its rows came or not."""
    return [i for failure in error.failures for i in failure.ids]


# --- closing while calls run ------------------------------------------------------------


@pytest.mark.slow
async def test_closing_ends_a_single_request_at_once_with_client_closed_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(30)])
    client = fake.client()
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await client.detailed_report(transaction_ids=TX[:1])
        except ClientClosedError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.sleep(0.2)
            await client.aclose()
    [error] = outcome
    assert type(error) is ClientClosedError
    assert error.attempts == 1


async def test_closing_ends_a_bulk_call_accounting_for_every_id() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(30, on_requests=range(4, 10**6))])
    client = fake.client(batch_sizes=5, max_concurrency=2)
    caught: list[ClosedDuringCallError] = []
    ids = TX[:50]

    async def call() -> None:
        try:
            await client.detailed_report(transaction_ids=ids)
        except ClosedDuringCallError as exc:
            caught.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            while fake.stats.requests < 5:  # noqa: ASYNC110 (polling the simulator's count)
                await anyio.sleep(0.01)
            await client.aclose()
    [error] = caught
    assert isinstance(error, ClientClosedError)
    assert isinstance(error, BulkReportError)
    assert "closed" in str(error)
    done = {row.transaction_id for row in error.rows}
    assert sorted([*done, *accounted_ids(error)]) == sorted(ids)  # each ID once
    outcomes = {f.outcome for f in error.failures}
    assert outcomes == {"cancelled", "not_attempted"}
    cancelled = [f for f in error.failures if f.outcome == "cancelled"]
    assert all(isinstance(f.error, ClientClosedError) for f in cancelled)


@pytest.mark.slow
async def test_closing_interrupts_a_retry_wait() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(retry_after=60)])
    client = fake.client()
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await client.detailed_report(transaction_ids=TX[:1])
        except ClientClosedError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):  # the retry would wait 60 s
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.sleep(0.2)
            await client.aclose()
    assert len(outcome) == 1


@pytest.mark.slow
async def test_closing_over_tcp_leaves_no_busy_connection_and_a_clear_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(30)])
    async with serve(fake, shutdown_timeout=1) as base_url:
        client = OrganikClient(fake.api_key, base_url=base_url, batch_sizes=1)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    with pytest.raises(ClientClosedError):
                        await client.detailed_report(transaction_ids=TX[:8])

                tg.start_soon(call)
                await anyio.sleep(0.3)
                await client.aclose()
        assert client._requester.sender.in_flight == 0
        with pytest.raises(ClientClosedError):
            await client.detailed_report(transaction_ids=TX[:1])


# --- deadlines ------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_trickling_server_is_cut_off_by_attempt_timeout() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.trickle(chunk_size=8, delay=0.2)])
    async with serve(fake, shutdown_timeout=1) as base_url:
        async with OrganikClient(
            fake.api_key, base_url=base_url, attempt_timeout=0.5, max_retries=1
        ) as client:
            started = anyio.current_time()
            with pytest.raises(TimeoutExpiredError, match="attempt_timeout") as info:
                with anyio.fail_after(10):
                    await client.detailed_report(transaction_ids=TX[:1])
            elapsed = anyio.current_time() - started
    assert info.value.attempts == 2
    assert elapsed < 4  # two attempts of 0.5 s, not the trickle's many seconds


@pytest.mark.slow
async def test_a_call_timeout_bounds_a_single_request_retries_included() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(5)])
    client = fake.client()
    started = anyio.current_time()
    with pytest.raises(TimeoutExpiredError, match=r"timeout of 0\.3 s"), anyio.fail_after(5):
        await client.detailed_report(transaction_ids=TX[:1], timeout=0.3)
    assert anyio.current_time() - started < 2


@pytest.mark.slow
async def test_a_call_timeout_on_a_bulk_call_keeps_the_rows_that_came() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(5, on_requests=range(3, 10**6))])
    client = fake.client(batch_sizes=5, max_concurrency=1)
    ids = TX[:30]
    with pytest.raises(BulkReportError, match="timeout") as info, anyio.fail_after(5):
        await client.detailed_report(transaction_ids=ids, timeout=0.5)
    error = info.value
    assert error.rows == fake.dataset.expected(transaction_ids=ids[:10])
    assert sorted(accounted_ids(error)) == sorted(ids[10:])
    assert [f.outcome for f in error.failures] == ["cancelled"] + ["not_attempted"] * 3
    assert isinstance(error.failures[0].error, TimeoutExpiredError)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True])
async def test_a_bad_call_timeout_is_a_value_error(bad: float) -> None:
    client = FakeOrganikAPI(DATASET).client()
    with pytest.raises(ValueError, match="timeout"):
        await client.detailed_report(transaction_ids=TX[:1], timeout=bad)


# --- a dead endpoint --------------------------------------------------------------------


@pytest.mark.usefixtures("no_waits")
async def test_an_unreachable_endpoint_stops_the_call_and_says_why() -> None:
    base_url = closed_url()
    ids: list[int | str] = list(range(1, 121))  # 60 batches of 2
    async with OrganikClient(
        KEY, base_url=base_url, batch_sizes=2, max_concurrency=4, unreachable_after=5
    ) as client:
        with pytest.raises(BulkReportError) as info, anyio.fail_after(10):
            await client.detailed_report(transaction_ids=ids)
    error = info.value
    assert "unreachable" in str(error)
    assert "(last: connection refused)" in str(error)  # the same words on every backend
    assert sorted(accounted_ids(error)) == sorted(ids)
    failed = [f for f in error.failures if f.outcome == "failed"]
    assert any(isinstance(f.error, EndpointUnreachableError) for f in failed)
    not_attempted = [f for f in error.failures if f.outcome == "not_attempted"]
    assert len(not_attempted) >= 50  # of 60 batches, most never tried
    assert sum(f.attempts for f in error.failures) <= 5 + 4  # the threshold, plus in flight


@pytest.mark.usefixtures("no_waits")
async def test_a_single_request_to_a_dead_endpoint_fails_with_the_cause() -> None:
    base_url = closed_url()
    async with OrganikClient(KEY, base_url=base_url, unreachable_after=2) as client:
        with pytest.raises(EndpointUnreachableError, match="2 connection attempts") as info:
            await client.detailed_report(transaction_ids=TX[:1])
    assert info.value.attempts == 2
    assert isinstance(info.value, TransportError)


@pytest.mark.slow
@pytest.mark.usefixtures("no_waits")
async def test_connection_failures_between_answers_do_not_stop_a_call() -> None:
    """Only failures *in a row* count: a flaky network is retried as before."""
    fake = FakeOrganikAPI(DATASET, faults=[Fault.disconnect(on_requests=range(1, 40, 2))])
    async with serve(fake) as base_url:
        async with OrganikClient(
            fake.api_key, base_url=base_url, batch_sizes=5, max_concurrency=1, unreachable_after=2
        ) as client:
            with anyio.fail_after(20):
                rows = await client.detailed_report(transaction_ids=TX[:50])
    assert rows == fake.dataset.expected(transaction_ids=TX[:50])


# --- answers that lie -------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decompress_is_a_decode_error(encoding: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Encoding": encoding}, content=b"not compressed " + KEY.encode()
        )

    client = OrganikClient(KEY, transport=httpx.MockTransport(answer))
    with pytest.raises(DecodeError, match="Content-Encoding") as info:
        await client.detailed_report(transaction_ids=[1])
    assert KEY not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


# --- leaving a stream early -------------------------------------------------------------


async def test_leaving_a_stream_early_leaves_nothing_running_after_the_block() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.05)])
    finished: list[str] = []

    async def lazy_ids() -> AsyncIterator[int]:
        try:
            for value in TX:
                yield value
        finally:
            finished.append("input closed")

    async with fake.client(batch_sizes=2, max_concurrency=4) as client:
        for method in (client.iter_detailed_report, client.iter_batches):
            finished.clear()
            before = _tasks()
            with anyio.fail_after(5):
                async with method(transaction_ids=lazy_ids()) as stream:
                    async for _item in stream:
                        break
            assert finished == ["input closed"]  # closed before the block was left
            after_block = _tasks()
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert _tasks() == after_block == before  # nothing started after the block


def _tasks() -> set[object]:
    """The tasks alive now (asyncio); trio's system nursery is not observable: empty."""
    if sniffio.current_async_library() == "asyncio":
        return set(asyncio.all_tasks())
    return set()


async def test_no_async_generator_of_ours_is_left_to_the_event_loop() -> None:
    fake = FakeOrganikAPI(DATASET)
    finalised: list[object] = []
    first, final = sys.get_asyncgen_hooks()

    def record(agen: object) -> None:
        finalised.append(agen)
        if final is not None:
            final(agen)  # type: ignore[arg-type]

    sys.set_asyncgen_hooks(first, record)
    try:
        async with fake.client(batch_sizes=2) as client:
            async with client.iter_detailed_report(transaction_ids=TX[:20]) as rows:
                async for _row in rows:
                    break
            async with client.iter_batches(transaction_ids=TX[:20]) as batches:
                async for _batch in batches:
                    break
    finally:
        sys.set_asyncgen_hooks(first, final)
    ours = [
        a
        for a in finalised
        if "organik_async" in str(getattr(getattr(a, "ag_code", None), "co_filename", ""))
    ]
    assert ours == []


# --- TLS ----------------------------------------------------------------------------------


def test_tls_certificates_are_verified_by_default() -> None:
    client = OrganikClient(KEY, http_backend="httpx")
    sender = client._requester.sender
    assert isinstance(sender, HttpxSender)
    factory = sender.pools._factory
    assert factory is not None
    pool = factory(4)
    context = pool._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
