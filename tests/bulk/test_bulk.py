"""The bulk engine against the simulator: batching, fan-out, streaming, failures.

Every test runs on asyncio and trio. Waits between retries are zero
(``backoff_base=0``), so retried faults cost no time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import anyio
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    BatchResult,
    BatchSizes,
    BulkReportError,
    DecodeError,
    DetailedReport,
    HTTPStatusError,
    OrganikClient,
    Progress,
    RateLimitError,
    ResponseTooLargeError,
    instant_retries,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(3_000, seed=7, max_transaction_rows=200)
TX = DATASET.transaction_ids
GSM = list(DATASET.gsm_track_ids())


def fast(fake: FakeOrganikAPI, **kwargs: Any) -> OrganikClient:
    """A client with instant retries, wired to ``fake`` in-process."""
    kwargs.setdefault("backoff_base", 0)
    return fake.client(**kwargs)


def unique_by_track(rows: list[DetailedReport]) -> list[DetailedReport]:
    seen: set[int | str] = set()
    out = []
    for row in rows:
        if row.gsm_track_id not in seen:
            seen.add(row.gsm_track_id)
            out.append(row)
    return out


def expected_in_order(kind: str, ids: list[Any], size: int) -> list[DetailedReport]:
    """The documented order: batch by batch, each as the provider answers it."""
    rows: list[DetailedReport] = []
    for start in range(0, len(ids), size):
        rows += DATASET.expected(**{kind: ids[start : start + size]})
    return unique_by_track(rows)


def sent_ids(fake: FakeOrganikAPI) -> int:
    return sum(n * count for n, count in fake.stats.ids_per_request.items())


# --- batching -----------------------------------------------------------------------------


async def test_batch_sizes_are_never_exceeded_per_kind() -> None:
    fake = FakeOrganikAPI(DATASET)
    sizes = BatchSizes(transaction_ids=7, delivery_track_ids=5, gsm_track_ids=31)
    async with fast(fake, batch_sizes=sizes) as client:
        await client.detailed_report(transaction_ids=TX[:50])
        assert fake.stats.max_ids_per_request == 7
        fake.stats.reset()
        await client.detailed_report(delivery_track_ids=DATASET.delivery_track_ids[:23])
        assert fake.stats.max_ids_per_request == 5
        fake.stats.reset()
        await client.detailed_report(gsm_track_ids=GSM[:200])
        assert fake.stats.max_ids_per_request == 31
        assert fake.stats.requests == 7  # ceil(200 / 31)


async def test_per_call_batch_size_overrides_the_client_setting() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=100) as client:
        await client.detailed_report(gsm_track_ids=GSM[:90], batch_sizes=10)
    assert fake.stats.max_ids_per_request == 10
    assert fake.stats.requests == 9


async def test_result_matches_the_simulator_oracle_in_documented_order() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency((0.0, 0.02))], seed=3)
    async with fast(fake, batch_sizes=4, max_concurrency=8) as client:
        first = await client.detailed_report(transaction_ids=TX[:40])
        second = await client.detailed_report(transaction_ids=TX[:40])
    assert first == expected_in_order("transaction_ids", TX[:40], 4)
    assert first == second  # same order whatever the completion order


async def test_duplicate_ids_are_sent_once_and_int_and_str_forms_are_one_id() -> None:
    fake = FakeOrganikAPI(DATASET)
    ids: list[int | str] = [TX[0], TX[1], TX[0], str(TX[1]), TX[2]]
    async with fast(fake) as client:
        rows = await client.detailed_report(transaction_ids=ids)
    assert sent_ids(fake) == 3
    assert rows == DATASET.expected(transaction_ids=TX[:3])


async def test_rows_reached_through_two_id_kinds_appear_once() -> None:
    fake = FakeOrganikAPI(DATASET)
    tx_rows = DATASET.expected(transaction_ids=TX[:2])
    tracks = [row.gsm_track_id for row in tx_rows]
    async with fast(fake) as client:
        rows = await client.detailed_report(transaction_ids=TX[:2], gsm_track_ids=tracks)
    assert rows == tx_rows
    assert len({row.gsm_track_id for row in rows}) == len(rows)


async def test_a_call_with_no_ids_sends_nothing() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake) as client:
        assert await client.detailed_report(transaction_ids=[]) == []
        assert await client.detailed_report(transaction_ids=iter([])) == []
    assert fake.stats.requests == 0


async def test_async_iterable_inputs_are_accepted() -> None:
    async def ids() -> AsyncIterator[int]:
        for value in TX[:30]:
            await anyio.lowlevel.checkpoint()
            yield value

    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=7) as client:
        rows = await client.detailed_report(transaction_ids=ids())
    assert rows == expected_in_order("transaction_ids", TX[:30], 7)


async def test_a_bad_id_in_a_list_fails_before_anything_is_sent() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake) as client:
        with pytest.raises(TypeError, match="gsm_track_ids"):
            await client.detailed_report(gsm_track_ids=[*GSM[:600], 1.5])  # type: ignore[list-item]
    assert fake.stats.requests == 0


async def test_a_bad_id_in_a_lazy_input_raises_type_error_naming_the_field() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake) as client:
        with pytest.raises(TypeError, match="transaction_ids"):
            await client.detailed_report(transaction_ids=(x for x in [TX[0], None]))  # type: ignore[misc]


# --- concurrency and rate ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_peak_in_flight_never_exceeds_max_concurrency(concurrency: int) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.01)])
    async with fast(fake, batch_sizes=2, max_concurrency=concurrency) as client:
        await client.detailed_report(transaction_ids=TX[:60])
    assert fake.stats.peak_in_flight == concurrency  # reached, never exceeded


async def test_max_connections_bounds_every_call_on_the_client_together() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.01)])
    async with fast(fake, batch_sizes=2, max_concurrency=4, max_connections=6) as client:
        async with anyio.create_task_group() as tg:
            for part in range(4):
                tg.start_soon(partial(client.detailed_report, transaction_ids=TX[part::4][:20]))
    assert fake.stats.peak_in_flight == 6


@pytest.mark.slow
async def test_rate_limit_is_one_budget_shared_by_concurrent_calls() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=1, max_concurrency=8, rate_limit=50) as client:
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for part in range(3):
                tg.start_soon(partial(client.detailed_report, transaction_ids=TX[part * 10 :][:10]))
        elapsed = anyio.current_time() - started
    # 30 requests at 50/s: the first goes at once, the 30th no sooner than 29/50 s.
    assert fake.stats.requests == 30
    assert elapsed >= 29 / 50 - 0.01


async def test_rate_limit_counts_retries() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, on_requests={1, 2, 3})])
    async with fast(fake, rate_limit=20) as client:
        started = anyio.current_time()
        await client.detailed_report(transaction_ids=TX[:1])
        elapsed = anyio.current_time() - started
    assert fake.stats.requests == 4
    assert elapsed >= 3 / 20 - 0.01


# --- streaming -----------------------------------------------------------------------------


async def test_iter_detailed_report_yields_every_row_once() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency((0.0, 0.01))], seed=1)
    async with fast(fake, batch_sizes=3) as client:
        async with client.iter_detailed_report(transaction_ids=TX[:30]) as rows:
            got = [row async for row in rows]
    expected = DATASET.expected(transaction_ids=TX[:30])
    assert sorted(got, key=_key) == sorted(expected, key=_key)


def _key(row: DetailedReport) -> str:
    return str(row.gsm_track_id)


async def test_streaming_without_dedupe_yields_duplicates_as_asked() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake) as client:
        async with client.iter_detailed_report(
            transaction_ids=[TX[0], TX[0]], batch_sizes=1, dedupe=False
        ) as rows:
            got = [row async for row in rows]
    assert len(got) == 2 * DATASET.transaction_size(TX[0])
    assert fake.stats.requests == 2


async def test_a_slow_consumer_pauses_fetching_and_the_input() -> None:
    pulled = 0

    def ids() -> Iterator[int]:
        nonlocal pulled
        for value in TX:
            pulled += 1
            yield value

    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=2, max_concurrency=3) as client:
        async with client.iter_batches(transaction_ids=ids()) as batches:
            seen = 0
            async for _batch in batches:
                seen += 1
                await anyio.sleep(0.02)  # let the workers run as far ahead as they can
                # Ahead of the consumer: at most one result per worker waiting, plus
                # one batch being formed. Never the whole input.
                assert fake.stats.requests <= seen + 3 + 1
                assert pulled <= (seen + 3 + 2) * 2
                if seen == 5:
                    break
    assert pulled < len(TX)


async def test_iter_batches_reports_ids_rows_attempts_and_timing() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(502, on_requests={1})])
    async with fast(fake, batch_sizes=5, max_concurrency=1) as client:
        async with client.iter_batches(transaction_ids=TX[:10]) as batches:
            results: list[BatchResult] = [b async for b in batches]
    assert [r.ids for r in results] == [tuple(TX[:5]), tuple(TX[5:10])]
    assert [r.attempts for r in results] == [2, 1]
    assert results[0].rows == DATASET.expected(transaction_ids=TX[:5])
    assert all(r.elapsed >= 0 for r in results)
    assert results[1].id_arguments == {"transaction_ids": TX[5:10]}


async def test_stream_must_be_used_as_a_context_manager() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake) as client:
        stream = client.iter_detailed_report(transaction_ids=TX[:1])
        with pytest.raises(TypeError, match="async with"):
            stream.__aiter__()


async def test_leaving_a_stream_early_cancels_requests_and_keeps_the_client_usable() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.05)])
    async with fast(fake, batch_sizes=1, max_concurrency=4) as client:
        with anyio.fail_after(5):
            async with client.iter_detailed_report(transaction_ids=TX[:200]) as rows:
                async for _row in rows:
                    break
        assert client._requester.sender.in_flight == 0
        assert fake.stats.requests < 20
        fake.faults.clear()
        assert await client.detailed_report(transaction_ids=TX[:2]) == DATASET.expected(
            transaction_ids=TX[:2]
        )


async def test_progress_reports_batches_rows_retries_and_failures() -> None:
    seen: list[Progress] = []
    fake = FakeOrganikAPI(
        DATASET, faults=[Fault.status(503, on_requests={2}), Fault.status(400, on_requests={5})]
    )
    async with fast(fake, batch_sizes=5, max_concurrency=1) as client:
        with pytest.raises(BulkReportError):
            await client.detailed_report(transaction_ids=TX[:20], on_progress=seen.append)
    assert [p.batches_done for p in seen] == [1, 2, 3, 4]
    assert all(p.batches_total == 4 for p in seen)
    last = seen[-1]
    assert (last.retries, last.failures) == (1, 1)
    # Request 2 failed and was retried as request 3, so request 5 is the fourth batch.
    assert last.rows == len(DATASET.expected(transaction_ids=TX[:15]))
    assert last.elapsed > 0


async def test_progress_total_is_unknown_for_lazy_input_until_it_is_read() -> None:
    seen: list[Progress] = []
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=5, max_concurrency=1) as client:
        await client.detailed_report(transaction_ids=iter(TX[:12]), on_progress=seen.append)
    assert seen[0].batches_total is None
    assert seen[-1].batches_total == 3


# --- failures ------------------------------------------------------------------------------


async def test_one_request_call_raises_that_requests_error_as_is() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(502)])
    async with fast(fake, max_retries=1) as client:
        with pytest.raises(HTTPStatusError) as caught:
            await client.detailed_report(transaction_ids=TX[:3])
    assert caught.value.status_code == 502
    assert caught.value.attempts == 2


async def test_one_request_refused_past_its_patience_raises_a_rate_limit_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(None)])
    client = fake.client(max_retries=0, pushback_timeout=5, backoff_base=1.0)
    async with client:
        with instant_retries(), pytest.raises(RateLimitError) as caught:
            await client.detailed_report(transaction_ids=TX[:3])
    assert caught.value.attempts == caught.value.refusals == fake.stats.requests > 1


async def test_one_request_call_with_a_bad_body_raises_decode_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.malformed()])
    async with fast(fake) as client:
        with pytest.raises(DecodeError):
            await client.detailed_report(transaction_ids=TX[:3])
    assert fake.stats.requests == 1  # a decode error is not retried


async def test_failed_batches_do_not_lose_the_others() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(500, on_requests=range(3, 7))])
    async with fast(fake, batch_sizes=5, max_concurrency=1, max_retries=3) as client:
        with pytest.raises(BulkReportError) as caught:
            await client.detailed_report(transaction_ids=TX[:25])
        err = caught.value
        (failure,) = err.failures
        assert failure.outcome == "failed"
        assert failure.ids == tuple(TX[10:15])  # requests 3-6: the third batch, 4 attempts
        assert isinstance(failure.error, HTTPStatusError)
        assert failure.attempts == 4
        assert err.rows == expected_in_order("transaction_ids", TX[:10] + TX[15:25], 5)
        # The failures are in a form the client takes straight back.
        fake.faults.clear()
        retried = await client.detailed_report(**err.failed_id_arguments)
    assert retried == DATASET.expected(transaction_ids=TX[10:15])


async def test_authentication_error_aborts_the_whole_call_at_once() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.01)])
    client = fast(fake, api_key="f" * 32, batch_sizes=1, max_concurrency=4)
    async with client:
        with anyio.fail_after(5), pytest.raises(AuthenticationError) as caught:
            await client.detailed_report(transaction_ids=TX[:100])
    assert caught.value.code == 99
    assert fake.stats.requests <= 4 * 2


async def test_fail_fast_cancels_the_rest_and_reports_unsent_ids() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(404, on_requests={3}), Fault.latency(0.02)])
    async with fast(fake, batch_sizes=2, max_concurrency=2) as client:
        with pytest.raises(BulkReportError) as caught:
            await client.detailed_report(transaction_ids=TX[:40], fail_fast=True)
    err = caught.value
    outcomes = [f.outcome for f in err.failures]
    assert outcomes.count("failed") == 1
    assert "not_attempted" in outcomes
    assert fake.stats.requests < 20
    assert_every_id_accounted_for(TX[:40], err.rows, err.failures, "transaction_ids")


def assert_every_id_accounted_for(
    ids: list[Any], rows: list[DetailedReport], failures: list[Any], kind: str
) -> None:
    """The invariant: each input ID is in exactly one of success / failure."""
    failed = [i for f in failures for i in f.ids]
    assert len(failed) == len(set(failed)), "an ID is in two failures"
    ok_ids = set(ids) - set(failed)
    assert set(failed) <= set(ids)
    assert rows == unique_by_track(DATASET.expected(**{kind: [i for i in ids if i in ok_ids]})) or (
        sorted(rows, key=_key)
        == sorted(DATASET.expected(**{kind: [i for i in ids if i in ok_ids]}), key=_key)
    )


async def test_streaming_failure_is_raised_at_the_end_with_no_rows() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(97, on_requests={2})])
    async with fast(fake, batch_sizes=5, max_concurrency=1) as client:
        got: list[DetailedReport] = []
        with pytest.raises(BulkReportError) as caught:
            async with client.iter_detailed_report(transaction_ids=TX[:15]) as rows:
                async for row in rows:
                    got.append(row)
    assert caught.value.rows == []
    assert caught.value.failures[0].ids == tuple(TX[5:10])
    assert isinstance(caught.value.failures[0].error, APIError)
    assert len(got) == len(DATASET.expected(transaction_ids=TX[:5] + TX[10:15]))


async def test_a_request_refused_as_too_large_is_split_and_the_size_remembered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="organik_async")
    fake = FakeOrganikAPI(DATASET, max_ids_per_request=10)
    async with fast(fake, batch_sizes=20, max_concurrency=4) as client:
        rows = await client.detailed_report(transaction_ids=TX[:20])
        assert rows == DATASET.expected(transaction_ids=TX[:20])
        assert fake.stats.ids_per_request == {20: 1, 10: 2}  # one refusal, then halves
        assert await client.detailed_report(transaction_ids=TX[20:40]) == DATASET.expected(
            transaction_ids=TX[20:40]
        )
    assert fake.stats.ids_per_request == {20: 1, 10: 4}  # the next call cut at 10 at once
    assert "batch_sizes" in caplog.text  # the log names the setting that avoids refusals


async def test_a_single_id_refused_with_code_96_is_a_real_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(96)])
    async with fast(fake, batch_sizes=4, max_retries=0) as client:
        with pytest.raises(BulkReportError) as caught:
            await client.detailed_report(transaction_ids=TX[:8])
    failures = caught.value.failures
    assert sorted(i for f in failures for i in f.ids) == sorted(TX[:8])
    assert all(isinstance(f.error, APIError) for f in failures)
    assert {f.error.code for f in failures if isinstance(f.error, APIError)} == {96}
    # each batch ends at one ID, refused: a real error, split no further
    assert fake.stats.ids_per_request[1] == 2
    assert max(fake.stats.ids_per_request) == 4


async def test_response_over_max_response_bytes_is_refused() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, max_response_bytes=1_000) as client:
        with pytest.raises(ResponseTooLargeError, match="max_response_bytes"):
            await client.detailed_report(transaction_ids=TX[:20])


# --- cancellation --------------------------------------------------------------------------


@pytest.mark.slow
async def test_cancelling_the_caller_stops_every_request_promptly() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(30)])
    async with fast(fake, batch_sizes=1, max_concurrency=8) as client:
        with anyio.fail_after(5):
            with anyio.move_on_after(0.2):
                await client.detailed_report(transaction_ids=TX[:50])
            assert client._requester.sender.in_flight == 0
            fake.faults.clear()
            rows = await client.detailed_report(transaction_ids=TX[:3])
    assert rows == DATASET.expected(transaction_ids=TX[:3])
    assert fake.stats.peak_in_flight == 8


async def test_an_error_in_the_progress_callback_stops_the_call_and_is_raised_as_is() -> None:
    def broken(progress: Progress) -> None:
        raise ZeroDivisionError("the caller's bug")

    fake = FakeOrganikAPI(DATASET)
    async with fast(fake, batch_sizes=1, max_concurrency=2) as client:
        with anyio.fail_after(5), pytest.raises(ZeroDivisionError, match="caller's bug"):
            await client.detailed_report(transaction_ids=TX[:20], on_progress=broken)
        assert fake.stats.requests < 20
        assert await client.detailed_report(transaction_ids=TX[:1])  # still usable
