"""The optional faster transport (``organik_async[aiohttp]``): asyncio only.

httpx-aiohttp runs on asyncio alone, so this module pins anyio's backend
instead of running on trio too.
"""

from __future__ import annotations

import anyio
import pytest
from httpx_aiohttp import AiohttpTransport

from organik_async import OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(2_000, seed=4, max_transaction_rows=100)
TX = DATASET.transaction_ids


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_aiohttp_transport_fetches_every_batch_and_retries_drops() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.disconnect(on_requests={2})])
    async with serve(fake) as base_url:
        client = OrganikClient(
            DEMO_API_KEY,
            base_url=base_url,
            transport=AiohttpTransport(),
            batch_sizes=3,
            max_concurrency=4,
            backoff_base=0,
        )
        async with client:
            with anyio.fail_after(30):
                rows = await client.detailed_report(transaction_ids=TX[:30])
    expected = [r for i in range(0, 30, 3) for r in DATASET.expected(transaction_ids=TX[i : i + 3])]
    assert rows == expected
    assert fake.stats.requests == 11  # ten batches, one retried after the drop
    assert fake.stats.peak_in_flight <= 4
