"""The client tunes itself to limits the provider never documents.

Concurrency: a "slow down" answer halves the requests a client keeps in
flight, successes raise it again, and every refused request is retried.
Request size: a request refused as too large is split (see test_bulk.py for
the splitting itself). Input that means something else is refused before
anything is sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from organik_async import APIError, DeliveryStatus, Progress
from organik_async._ratelimit import AdaptiveLimit
from organik_async.testing import Dataset, FakeOrganikAPI, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

DATASET = Dataset.generate(4_000, seed=5, max_transaction_rows=40)
TX = DATASET.transaction_ids
GSM = list(DATASET.gsm_track_ids())


# --- adaptive concurrency -------------------------------------------------------------


def test_the_limit_climbs_fast_until_pushback_then_halves_and_climbs_slowly() -> None:
    limit = AdaptiveLimit(64, start=8)
    for _ in range(8):
        limit.succeeded()
    assert limit.limit == 16  # slow start: one more per success
    limit.pushed_back(sent_in_round=0)
    assert limit.limit == 8
    limit.pushed_back(sent_in_round=1)  # no full round of answers at 8 yet: no news
    assert limit.limit == 8
    for _ in range(16):
        limit.succeeded()
    assert limit.limit == 9  # one more per two rounds of successes
    limit.pushed_back(sent_in_round=0)  # sent before the fall: already counted
    assert limit.limit == 9
    for _ in range(10_000):
        limit.succeeded()
    assert limit.limit == 64  # never above the ceiling
    for round_ in range(1, 12):
        limit.pushed_back(sent_in_round=round_)
        for _ in range(limit.limit):  # a full round of answers at each new limit
            limit.succeeded()
    assert limit.limit == 1  # never below one


def answers_to_grow(limit: AdaptiveLimit) -> int:
    """How many answers it takes the limit to grow by one."""
    before = limit.limit
    for answers in range(1, 10_000):
        limit.succeeded()
        if limit.limit > before:
            return answers
    raise AssertionError(f"the limit never grew from {before}")


def test_the_step_back_up_to_the_limit_last_refused_is_four_times_slower() -> None:
    limit = AdaptiveLimit(64, start=4)
    for _ in range(4):
        limit.succeeded()
    assert limit.limit == 8
    limit.pushed_back(sent_in_round=0)  # refused at 8: back to 4
    assert limit.limit == 4
    # two rounds of answers per step, but eight for the step from 7 to the 8 refused
    assert [answers_to_grow(limit) for _ in range(5)] == [8, 10, 12, 8 * 7, 16]
    assert limit.limit == 9


@pytest.mark.slow
async def test_against_a_concurrency_cap_every_row_arrives_with_few_refusals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="organik_async")
    fake = FakeOrganikAPI(DATASET, max_concurrent_requests=6, faults=[Fault.latency(0.01)])
    seen: list[Progress] = []
    async with fake.client(batch_sizes=20, max_concurrency=64) as client:
        with anyio.fail_after(60):
            rows = await client.detailed_report(gsm_track_ids=GSM, on_progress=seen.append)
    assert rows == DATASET.expected(gsm_track_ids=GSM)
    stats = fake.stats
    assert stats.peak_admitted <= 6
    assert stats.refused < 0.1 * stats.requests
    assert min(p.concurrency for p in seen) < 64  # the limit fell, and Progress shows it
    assert "concurrency limit" in caplog.text
    assert "slow down" in caplog.text


@pytest.mark.slow
async def test_without_pushback_the_limit_reaches_the_calls_concurrency() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.02)])
    seen: list[Progress] = []
    async with fake.client(batch_sizes=5, max_concurrency=32) as client:
        with anyio.fail_after(30):
            await client.detailed_report(gsm_track_ids=GSM[:1_000], on_progress=seen.append)
    assert seen[-1].concurrency == 32
    assert fake.stats.peak_in_flight > 16  # well past the start of 8 (timing allows some slack)


async def test_one_limit_is_shared_by_every_call_and_view_of_a_client() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(retry_after=0, on_requests={1})])
    async with fake.client(batch_sizes=5) as client:
        view = client.with_options(max_retries=5)
        assert view._requester.concurrency is client._requester.concurrency
        await view.detailed_report(gsm_track_ids=GSM[:5])
        limit = client._requester.concurrency
        assert limit is not None
        assert limit.limit == 4  # halved from its start of 8 by the one refusal


async def test_adaptive_concurrency_can_be_turned_off() -> None:
    fake = FakeOrganikAPI(DATASET, max_concurrent_requests=2, faults=[Fault.latency(0.05)])
    seen: list[Progress] = []
    async with fake.client(
        batch_sizes=5,
        max_concurrency=4,
        adaptive_concurrency=False,
        max_retries=0,
        backoff_base=0.01,  # real waits, short: others finish while a refused one waits
        backoff_max=0.05,
    ) as client:
        assert client._requester.concurrency is None
        with anyio.fail_after(30):
            rows = await client.detailed_report(gsm_track_ids=GSM[:20], on_progress=seen.append)
    assert rows == DATASET.expected(gsm_track_ids=GSM[:20])  # refusals spend no max_retries
    assert fake.stats.refused >= 1  # nothing held the client back: four sent at once, cap two
    assert seen[-1].refusals == fake.stats.refused
    assert seen[-1].retries == 0


# --- input that means something else -------------------------------------------------


BAD_IDS = [
    "14094857,16334701",
    "14094857 16334701",
    " 14094857",
    "1409\n4857",
    "",
    "1\x00",
    "1\xa0",
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("kind", ["transaction_ids", "delivery_track_ids", "gsm_track_ids"])
async def test_an_id_that_is_not_one_id_is_refused_before_anything_is_sent(
    kind: str, bad: str
) -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        with pytest.raises(ValueError, match=kind) as info:
            await client.detailed_report(**{kind: [TX[0], bad]})  # type: ignore[arg-type]
        assert repr(bad) in str(info.value)

        async def lazy() -> AsyncIterator[int | str]:
            yield TX[0]
            yield bad

        with pytest.raises(ValueError, match=kind):
            await client.detailed_report(**{kind: lazy()})  # type: ignore[arg-type]
    assert fake.stats.requests == 0


async def test_ids_with_dashes_letters_and_leading_zeros_are_still_ids() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        rows = await client.detailed_report(
            gsm_track_ids=["16502030-4730-63032793", "007"],
            delivery_track_ids=["b627ffe79fc148e8ea7425222c4ed8"],
        )
    assert rows == []  # unknown IDs: no records, and nothing refused


# --- small things ---------------------------------------------------------------------


def test_a_delivery_status_prints_as_its_name() -> None:
    assert str(DeliveryStatus.DELIVERED) == "DELIVERED"
    assert f"{DeliveryStatus(3)}" == "INVALID_NUMBER"
    assert int(DeliveryStatus.DELIVERED) == 2  # still the provider's integer


# --- small calls of several kinds -------------------------------------------------------


async def test_a_small_call_of_several_kinds_is_one_request() -> None:
    fake = FakeOrganikAPI(DATASET)
    tx, gsm = TX[:2], GSM[-5:]
    async with fake.client() as client:  # 2/20 + 5/250 of a request: one request
        rows = await client.detailed_report(transaction_ids=tx, gsm_track_ids=gsm)
        assert fake.stats.requests == 1
        assert fake.stats.ids_per_request == {7: 1}
        expected = DATASET.expected(transaction_ids=tx) + DATASET.expected(gsm_track_ids=gsm)
        assert sorted(rows, key=str) == sorted(expected, key=str)
        async with client.iter_batches(transaction_ids=tx, gsm_track_ids=gsm) as batches:
            results = [result async for result in batches]
    assert [(r.kind, r.ids) for r in results] == [
        ("transaction_ids", tuple(tx)),
        ("gsm_track_ids", tuple(gsm)),
    ]
    assert {row.transaction_id for row in results[0].rows} <= set(tx)
    assert [row.gsm_track_id for row in results[1].rows] == gsm


async def test_a_mixed_call_too_big_for_one_request_goes_kind_by_kind() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:  # 15/20 + 100/250 > one request
        await client.detailed_report(transaction_ids=TX[:15], gsm_track_ids=GSM[:100])
    assert fake.stats.ids_per_request == {15: 1, 100: 1}


async def test_a_small_mixed_calls_error_is_raised_as_is() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(97)])
    async with fake.client() as client:
        with pytest.raises(APIError) as info:
            await client.detailed_report(transaction_ids=TX[:1], gsm_track_ids=GSM[:1])
    assert info.value.code == 97
    assert info.value.request is not None
    assert info.value.request.id_count == 2
