"""fake.stats: what the bulk engine's tests and the benchmarks assert on."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from organik_async.testing import (
    DEMO_API_KEY,
    Dataset,
    FakeOrganikAPI,
    Fault,
    Outcome,
    redact_key,
)
from tests.helpers.provider import OTHER_KEY

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(500, seed=41)


def url(key: str = DEMO_API_KEY) -> str:
    return f"http://organik.test/v2/{key}/detailedreport/"


async def test_peak_in_flight_is_the_most_requests_handled_at_once() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.05)])
    async with httpx.AsyncClient(transport=fake.transport()) as http:

        async def one() -> None:
            await http.post(url(), json={"data": {"transaction_ids": DATASET.transaction_ids[:1]}})

        with anyio.fail_after(10):
            for wave in (3, 5, 2):
                async with anyio.create_task_group() as group:
                    for _ in range(wave):
                        group.start_soon(one)
    assert fake.stats.peak_in_flight == 5
    assert fake.stats.in_flight == 0
    assert fake.stats.requests == 10


async def test_ids_per_request_histogram_and_maximum() -> None:
    fake = FakeOrganikAPI(DATASET)
    ids = list(DATASET.gsm_track_ids())
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        for count in (1, 3, 3, 7):
            await http.post(url(), json={"data": {"gsm_track_ids": ids[:count]}})
        # IDs are counted as sent, duplicates and unknown ones included.
        await http.post(url(), json={"data": {"transaction_ids": [1, 1], "gsm_track_ids": [2]}})
    assert fake.stats.ids_per_request == {1: 1, 3: 3, 7: 1}
    assert fake.stats.max_ids_per_request == 7
    assert fake.stats.rows_served == 1 + 3 + 3 + 7
    assert fake.stats.outcomes == {Outcome.OK: 4, Outcome.NO_RECORDS: 1}
    assert fake.stats.api_error_codes == {87: 1}


async def test_ids_are_counted_even_when_a_fault_replaces_the_answer() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503)])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        await http.post(url(), json={"data": {"transaction_ids": DATASET.transaction_ids[:4]}})
    assert fake.stats.max_ids_per_request == 4
    assert fake.stats.rows_served == 0


async def test_keys_seen_are_redacted_and_never_whole() -> None:
    fake = FakeOrganikAPI(DATASET, api_keys=[DEMO_API_KEY, OTHER_KEY])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        for key in (DEMO_API_KEY, DEMO_API_KEY, OTHER_KEY, "short", "f" * 32):
            await http.post(url(key), json={"data": {"transaction_ids": [1]}})
    assert fake.stats.keys_seen == {
        redact_key(DEMO_API_KEY): 2,
        "0123…": 1,
        "…(5 chars)": 1,
        "ffff…": 1,
    }
    shown = json.dumps(fake.stats.as_dict()) + repr(fake.stats) + repr(fake)
    for key in (DEMO_API_KEY, OTHER_KEY, "f" * 32):
        assert key not in shown
        assert key[:8] not in shown


def test_redact_key_keeps_at_most_four_characters() -> None:
    assert redact_key(DEMO_API_KEY) == DEMO_API_KEY[:4] + "…"
    assert redact_key("abc") == "…(3 chars)"


async def test_reset_zeroes_counters() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.001)])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        await http.post(url(), json={"data": {"transaction_ids": DATASET.transaction_ids[:2]}})
    assert fake.stats.requests == 1
    fake.stats.reset()
    assert fake.stats.as_dict() == {
        "requests": 0,
        "in_flight": 0,
        "peak_in_flight": 0,
        "max_concurrent_requests": None,
        "refused": 0,
        "admitted": None,  # no cap: nothing to count admissions against
        "peak_admitted": None,
        "outcomes": {},
        "api_error_codes": {},
        "http_statuses": {},
        "faults": {},
        "max_ids_per_request": 0,
        "ids_per_request": {},
        "keys_seen": {},
        "rows_served": 0,
        "bytes_served": 0,
        "latency_added": 0.0,
    }


async def test_bytes_served_and_statuses_follow_what_was_sent() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(502, on_requests={2})])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        first = await http.post(url(), json={"data": {"transaction_ids": [1]}})
        second = await http.post(url(), json={"data": {"transaction_ids": [1]}})
        third = await http.get(url())
    assert fake.stats.bytes_served == len(first.content) + len(second.content) + len(third.content)
    assert fake.stats.http_statuses == {200: 1, 502: 1, 405: 1}
    assert "requests=3" in repr(fake.stats)
