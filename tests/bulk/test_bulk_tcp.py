"""The bulk engine over real TCP: uvicorn serving the simulator on 127.0.0.1."""

from __future__ import annotations

import anyio
import httpx
import pytest

from organik_async import DetailedReport, HttpBackend, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve
from tests.helpers.connections import busy_connections, httpx_pools

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(4_000, seed=5, max_transaction_rows=150)
TX = DATASET.transaction_ids


@pytest.fixture
def fake() -> FakeOrganikAPI:
    return FakeOrganikAPI(DATASET)


def tcp_client(base_url: str, **kwargs: object) -> OrganikClient:
    return OrganikClient(DEMO_API_KEY, base_url=base_url, backoff_base=0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_batches_and_concurrency_are_bounded_over_tcp(
    fake: FakeOrganikAPI, http_backend: HttpBackend
) -> None:
    fake.faults.append(Fault.latency(0.02))
    async with serve(fake) as base_url:
        async with tcp_client(
            base_url, batch_sizes=3, max_concurrency=12, http_backend=http_backend
        ) as client:
            with anyio.fail_after(30):
                rows = await client.detailed_report(transaction_ids=TX[:60])
        assert fake.stats.max_ids_per_request == 3
        assert fake.stats.requests == 20
        assert fake.stats.peak_in_flight <= 12
    expected = [DATASET.expected(transaction_ids=TX[i : i + 3]) for i in range(0, 60, 3)]
    assert rows == [row for part in expected for row in part]


@pytest.mark.slow
async def test_small_pools_are_opened_as_concurrency_needs(fake: FakeOrganikAPI) -> None:
    fake.faults.append(Fault.latency(0.2))  # long enough for all 20 to be in flight at once
    async with serve(fake) as base_url:
        async with tcp_client(
            base_url, batch_sizes=1, max_concurrency=20, pool_size=8, http_backend="httpx"
        ) as client:
            with anyio.fail_after(30):
                await client.detailed_report(transaction_ids=TX[:60])
            pools = httpx_pools(client)
            assert len(pools) == 3  # ceil(20 / 8): all workers start at once
        assert fake.stats.peak_in_flight <= 20


@pytest.mark.slow
async def test_cancelling_mid_flight_leaks_no_connection(
    fake: FakeOrganikAPI, http_backend: HttpBackend
) -> None:
    fake.faults.append(Fault.latency(20))
    async with serve(fake, shutdown_timeout=1) as base_url:
        async with tcp_client(
            base_url, batch_sizes=1, max_concurrency=6, http_backend=http_backend
        ) as client:
            with anyio.fail_after(10):
                with anyio.move_on_after(0.5) as scope:
                    await client.detailed_report(transaction_ids=TX[:40])
                assert scope.cancelled_caught
                assert client._requester.sender.in_flight == 0
                assert busy_connections(client) == 0
                fake.faults.clear()
                rows = await client.detailed_report(transaction_ids=TX[:2])
            assert rows == DATASET.expected(transaction_ids=TX[:2])


@pytest.mark.slow
async def test_many_concurrent_callers_share_one_client(
    fake: FakeOrganikAPI, http_backend: HttpBackend
) -> None:
    fake.faults.append(Fault.latency((0.0, 0.01)))
    results: dict[int, list[DetailedReport]] = {}
    async with serve(fake) as base_url:
        async with tcp_client(base_url, max_connections=16, http_backend=http_backend) as client:

            async def one(transaction_id: int) -> None:
                results[transaction_id] = await client.detailed_report(
                    transaction_ids=[transaction_id]
                )

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for transaction_id in TX[:40]:
                        tg.start_soon(one, transaction_id)
        assert fake.stats.peak_in_flight <= 16
    for transaction_id, rows in results.items():
        assert rows == DATASET.expected(transaction_ids=[transaction_id])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_format", "response_format", "xml_wrapped"),
    [("xml", "xml", False), ("json", "xml", False), ("xml", "json", False), ("xml", "xml", True)],
)
async def test_every_format_pair_gives_the_same_rows_over_tcp(
    fake: FakeOrganikAPI,
    request_format: str,
    response_format: str,
    xml_wrapped: bool,
    http_backend: HttpBackend,
) -> None:
    fake.xml_wrapped = xml_wrapped
    fake.errorcode_in = frozenset({"json", "xml"})  # every field, in every format
    async with serve(fake) as base_url:
        async with tcp_client(
            base_url,
            request_format=request_format,
            response_format=response_format,
            batch_sizes=4,
            http_backend=http_backend,
        ) as client:
            with anyio.fail_after(30):
                rows = await client.detailed_report(transaction_ids=TX[:12])
    assert rows == DATASET.expected(transaction_ids=TX[:12])


@pytest.mark.slow
async def test_dropped_connections_are_retried_over_tcp(
    fake: FakeOrganikAPI, http_backend: HttpBackend
) -> None:
    fake.faults.append(Fault.disconnect(on_requests={1, 3}))
    async with serve(fake) as base_url:
        async with tcp_client(
            base_url, batch_sizes=5, max_concurrency=1, http_backend=http_backend
        ) as client:
            with anyio.fail_after(30):
                rows = await client.detailed_report(transaction_ids=TX[:10])
    assert rows == DATASET.expected(transaction_ids=TX[:5]) + DATASET.expected(
        transaction_ids=TX[5:10]
    )
    assert fake.stats.requests == 4


@pytest.mark.slow
async def test_a_callers_own_http_client_is_used_and_left_open(fake: FakeOrganikAPI) -> None:
    async with serve(fake) as base_url:
        async with httpx.AsyncClient() as own:
            async with tcp_client(base_url, http_client=own, batch_sizes=2) as client:
                with anyio.fail_after(30):
                    rows = await client.detailed_report(transaction_ids=TX[:6])
            assert not own.is_closed
            assert httpx_pools(client) == (own,)
    assert len(rows) == len(DATASET.expected(transaction_ids=TX[:6]))


@pytest.mark.slow
async def test_pools_share_one_ssl_context_and_hold_four_connections_each(
    fake: FakeOrganikAPI,
) -> None:
    fake.faults.append(Fault.latency(0.02))
    async with serve(fake) as base_url:
        async with tcp_client(
            base_url, batch_sizes=1, max_concurrency=12, http_backend="httpx"
        ) as client:
            with anyio.fail_after(30):
                await client.detailed_report(transaction_ids=TX[:24])
            pools = httpx_pools(client)
            assert len(pools) == 3  # the default pool_size is 4
            contexts = {id(p._transport._pool._ssl_context) for p in pools}  # type: ignore[attr-defined]
            assert len(contexts) == 1
            assert all(p._transport._pool._max_connections == 4 for p in pools)  # type: ignore[attr-defined]


async def test_idle_connections_are_dropped_before_common_server_timeouts(
    fake: FakeOrganikAPI,
) -> None:
    async with serve(fake) as base_url:
        async with tcp_client(base_url, http_backend="httpx") as client:
            with anyio.fail_after(30):
                await client.detailed_report(transaction_ids=TX[:1])
            (pool,) = httpx_pools(client)
            assert pool._transport._pool._keepalive_expiry < 5  # type: ignore[attr-defined]
