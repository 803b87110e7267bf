"""Two small traps of the library's arguments, closed.

A report call given no ID argument at all is a mistake (an empty list is a
choice); a key in upper-case hex passes the local check, so it is sent in the
lower case the provider issues instead of failing there with code 99.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from organik_async import OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(200, seed=3)
TX = DATASET.transaction_ids


def _calls(client: OrganikClient) -> dict[str, Callable[..., Any]]:
    return {
        "detailed_report": client.detailed_report,
        "iter_detailed_report": client.iter_detailed_report,
        "iter_batches": client.iter_batches,
        "follow_until_final": client.follow_until_final,
    }


@pytest.mark.parametrize(
    "method", ["detailed_report", "iter_detailed_report", "iter_batches", "follow_until_final"]
)
async def test_a_report_call_with_no_id_argument_is_a_type_error(method: str) -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        call = _calls(client)[method]
        with pytest.raises(
            TypeError, match="transaction_ids=, delivery_track_ids= or gsm_track_ids="
        ):
            result = call()  # the coroutine functions raise when awaited
            if method == "detailed_report":
                await result
        with pytest.raises(TypeError, match="transaction_ids="):
            result = call(transaction_ids=None, gsm_track_ids=None)
            if method == "detailed_report":
                await result
    assert fake.stats.requests == 0


async def test_an_empty_list_still_asks_for_nothing_and_gets_no_rows() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        with anyio.fail_after(10):
            assert await client.detailed_report(transaction_ids=[]) == []
            assert await client.detailed_report(gsm_track_ids=iter(())) == []
            rows = await client.detailed_report(transaction_ids=TX[:2], gsm_track_ids=None)
    assert rows == DATASET.expected(transaction_ids=TX[:2])
    assert fake.stats.requests == 1


async def test_an_upper_case_key_is_sent_in_lower_case(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOrganikAPI(DATASET)  # accepts the demo key, in the provider's lower case
    assert DEMO_API_KEY == DEMO_API_KEY.lower() != DEMO_API_KEY.upper()
    async with fake.client(api_key=DEMO_API_KEY.upper()) as client:
        with anyio.fail_after(10):
            rows = await client.detailed_report(transaction_ids=TX[:2])
    assert rows == DATASET.expected(transaction_ids=TX[:2])
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY.upper())
    async with OrganikClient(transport=fake.transport(), base_url="http://organik.test") as client:
        with anyio.fail_after(10):
            assert await client.detailed_report(transaction_ids=TX[:1])
    assert fake.stats.api_error_codes[99] == 0
