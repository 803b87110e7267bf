"""respx and pytest-httpx work with the client's own pools.

The simulator is the first way to test code that uses the client; users who
already mock httpx with respx or pytest-httpx can keep doing so: the client's
pools are plain ``httpx.AsyncClient``s, so both libraries see every request,
however many pools a call opens.
"""

from __future__ import annotations

import re

import httpx
import pytest
import respx
from pytest_httpx import HTTPXMock

from organik_async import AuthenticationError, OrganikClient
from tests.helpers.provider import KEY, SEED_ROW, error_answer, rows_answer

pytestmark = pytest.mark.anyio

REPORT_URL = re.compile(r"https://organikapi\.com/v2/[0-9a-f]{32}/detailedreport/json/")


async def test_respx_mocks_every_request_the_client_makes() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(url__regex=REPORT_URL.pattern).respond(content=rows_answer(SEED_ROW))
        async with OrganikClient(KEY, batch_sizes=1, max_concurrency=16, pool_size=2) as client:
            rows = await client.detailed_report(transaction_ids=range(1, 41))
    assert route.call_count == 40
    assert {row.gsm for row in rows} == {SEED_ROW["gsm"]}


async def test_respx_can_play_the_provider_refusing_a_key() -> None:
    error = error_answer(99, message="Authorization error.")
    with respx.mock:
        respx.post(url__regex=REPORT_URL.pattern).respond(content=error)
        async with OrganikClient(KEY) as client:
            with pytest.raises(AuthenticationError):
                await client.detailed_report(transaction_ids=[1])


async def test_pytest_httpx_mocks_the_clients_own_pools(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=REPORT_URL, content=rows_answer(SEED_ROW), is_reusable=True
    )
    async with OrganikClient(KEY, batch_sizes=2, max_concurrency=4) as client:
        rows = await client.detailed_report(transaction_ids=range(1, 11))
    requests = httpx_mock.get_requests()
    assert len(requests) == 5
    assert all(isinstance(r, httpx.Request) for r in requests)
    assert len(rows) == 1  # one row, the same gsm_track_id in every answer
