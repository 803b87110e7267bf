"""examples/web_service.py under uvicorn over real TCP, the simulator behind its one client.

Three event loops, as in production: the callers'; the service's, in uvicorn
on its own thread, with its lifespan; the simulator's, in uvicorn on a third.
The service and the simulator run on uvicorn's asyncio loops whatever the
test's backend, so these tests run once, with their callers on an anyio
blocking portal (concurrent requests) or a plain httpx client.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import msgspec
import pytest
import uvicorn
from anyio.from_thread import BlockingPortal
from starlette.types import ASGIApp, Receive, Scope, Send

from organik_async import DetailedReport, OrganikClient
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, Outcome, serve
from tests.helpers.paths import EXAMPLES
from tests.helpers.provider import OTHER_KEY
from tests.helpers.wire import closed_url

sys.path.insert(0, str(EXAMPLES))
import web_service

pytestmark = pytest.mark.slow


class Rows(msgspec.Struct):
    rows: list[DetailedReport]


class Detail(msgspec.Struct, forbid_unknown_fields=True):
    detail: str


class InFlight:
    """ASGI middleware: how many requests the service was handling at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = 0
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@asynccontextmanager
async def serve_with_lifespan(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn, lifespan on, in a thread, on a free 127.0.0.1 port."""
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with anyio.fail_after(10):
            while not server.started:
                assert thread.is_alive(), "the service did not start"
                await anyio.sleep(0.01)
        yield "http://{}:{}".format(*sock.getsockname())
    finally:
        server.should_exit = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join, 10)
        sock.close()
    assert not thread.is_alive()


@asynccontextmanager
async def served(
    fake: FakeOrganikAPI,
    *,
    budget: float = 10.0,
    api_key: str | None = None,
    provider_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[str, InFlight]]:
    """The example app over TCP, its client pointed at ``fake`` served over TCP."""
    async with serve(fake, shutdown_timeout=1) as served_url:

        def client() -> OrganikClient:
            return OrganikClient(
                api_key or fake.api_key,
                base_url=provider_url or served_url,
                backoff_base=0,
                **settings,
            )

        app = InFlight(web_service.create_app(client, request_budget=budget))
        async with serve_with_lifespan(app) as url:
            yield url, app


@contextmanager
def service(
    fake: FakeOrganikAPI, **options: Any
) -> Iterator[tuple[BlockingPortal, Callers, InFlight]]:
    """:func:`served`, with concurrent callers on a portal's event loop."""

    @asynccontextmanager
    async def with_callers() -> AsyncIterator[tuple[Callers, InFlight]]:
        async with served(fake, **options) as (url, app), Callers(url) as http:
            yield http, app

    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(with_callers()) as (http, app),
    ):
        yield portal, http, app


@contextmanager
def running(fake: FakeOrganikAPI, **options: Any) -> Iterator[httpx.Client]:
    """:func:`served`, for tests that ask one question at a time.

    The service and the simulator run on uvicorn's asyncio loops whatever the
    test's backend, so these tests run once, with a plain httpx client.
    """
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(served(fake, **options)) as (url, _),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


class Callers:
    """The service's callers: small httpx pools taking turns.

    One httpx pool holding 200 requests spends most of its time in the pool
    itself (encode/httpx#3215), which would make this test measure httpx.
    """

    def __init__(self, url: str, pools: int = 25) -> None:
        limits = httpx.Limits(max_connections=8)
        # verify=False: plain HTTP to 127.0.0.1, and no CA store loaded 25 times (~24 ms each).
        self._pools = [
            httpx.AsyncClient(base_url=url, timeout=30, limits=limits, verify=False)
            for _ in range(pools)
        ]
        self._turn = 0

    async def __aenter__(self) -> Callers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for pool in self._pools:
            await pool.aclose()

    def _next(self) -> httpx.AsyncClient:
        self._turn += 1
        return self._pools[self._turn % len(self._pools)]

    async def get(self, path: str) -> httpx.Response:
        return await self._next().get(path)

    async def post(self, path: str, body: bytes) -> httpx.Response:
        return await self._next().post(path, content=body)


def rows_of(response: httpx.Response) -> list[DetailedReport]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return msgspec.json.decode(response.content, type=Rows).rows


def detail_of(response: httpx.Response) -> str:
    return msgspec.json.decode(response.content, type=Detail).detail


def test_200_concurrent_requests_share_one_client_one_rate_budget_and_its_limit() -> None:
    rate, limit = 250.0, 8
    fake = FakeOrganikAPI(
        Dataset.generate(5_000, seed=12),
        faults=[Fault.latency(0.01), Fault.status(503, probability=0.05)],
        seed=12,
    )
    data = fake.dataset
    pick = random.Random(12)
    track_ids = list(data.gsm_track_ids())
    small = [tid for tid in data.transaction_ids if data.transaction_size(tid) <= 100]
    gets = [small[i % len(small)] for i in range(150)]
    small_rows = data.expected(transaction_ids=small)
    small_tracks = sorted({row.delivery_track_id for row in small_rows if row.delivery_track_id})
    posts: list[dict[str, list[int | str]]] = [
        {
            "gsm_track_ids": pick.sample(track_ids, 30),
            "delivery_track_ids": [pick.choice(small_tracks)],
        }
        for _ in range(50)
    ]
    answers: dict[int, httpx.Response] = {}

    async def get(n: int, transaction_id: int) -> None:
        answers[n] = await http.get(f"/reports/{transaction_id}")

    async def post(n: int, body: dict[str, list[int | str]]) -> None:
        answers[n] = await http.post("/reports", msgspec.json.encode(body))

    async def burst() -> None:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for n, transaction_id in enumerate(gets):
                    group.start_soon(get, n, transaction_id)
                for n, body in enumerate(posts, start=len(gets)):
                    group.start_soon(post, n, body)

    with service(fake, rate_limit=rate, max_connections=limit) as (portal, http, app):
        started = time.monotonic()
        portal.call(burst)
        elapsed = time.monotonic() - started

    assert len(answers) == 200
    expected = {tid: data.expected(transaction_ids=[tid]) for tid in set(gets)}
    for n, transaction_id in enumerate(gets):  # one batch: the provider's order
        assert rows_of(answers[n]) == expected[transaction_id]
    every_row = list(data)  # the simulator's rows, once (expected() draws them per call)
    by_track = {str(row.gsm_track_id): row for row in every_row}
    by_delivery: dict[str | None, list[DetailedReport]] = {}
    for row in every_row:
        by_delivery.setdefault(row.delivery_track_id, []).append(row)
    for n, body in enumerate(posts, start=len(gets)):  # several batches: compare as sets
        rows = rows_of(answers[n])
        wanted = {by_track[str(i)] for i in body["gsm_track_ids"]}
        wanted.update(*(by_delivery[str(i)] for i in body["delivery_track_ids"]))
        assert len(rows) == len(set(rows)) == len(wanted)
        assert set(rows) == wanted
    assert fake.stats.faults["status:503"] > 0  # retried, and still every answer is right
    assert app.peak > 2 * limit  # many requests waited on the one shared client...
    assert fake.stats.peak_in_flight <= limit  # ...whose limit the provider never saw exceeded
    # One rate budget for all of them: the provider's requests were spaced 1/rate apart.
    assert elapsed >= (fake.stats.requests - 1) / rate


def test_concurrent_requests_draw_on_one_rate_budget() -> None:
    rate = 20.0
    fake = FakeOrganikAPI(Dataset.generate(500, seed=3))
    transaction_ids = fake.dataset.transaction_ids * 2  # ten calls, five transactions
    assert len(transaction_ids) == 10

    async def burst() -> None:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for transaction_id in transaction_ids:
                    group.start_soon(http.get, f"/reports/{transaction_id}")

    with service(fake, rate_limit=rate) as (portal, http, _):
        started = time.monotonic()
        portal.call(burst)
        elapsed = time.monotonic() - started
    assert fake.stats.requests == 10
    # Ten requests at once, each of one provider request: a budget per request would
    # send them all at once; the client's one budget spaces them 1/20 s apart.
    assert elapsed >= 9 / rate


def test_a_request_over_its_time_budget_is_a_504_and_the_client_stays_usable() -> None:
    fake = FakeOrganikAPI(Dataset.generate(500, seed=3), faults=[Fault.latency(5.0)])
    transaction_id = fake.dataset.transaction_ids[0]
    with running(fake, budget=0.3) as http:
        started = time.monotonic()
        slow = http.get(f"/reports/{transaction_id}")
        waited = time.monotonic() - started
        assert slow.status_code == 504
        assert detail_of(slow) == "the SMS provider did not answer in time"
        assert waited < 3.0  # the budget (0.3 s) cut it short, not the provider's 5 s
        deadline = time.monotonic() + 5  # the abandoned request was dropped at the provider
        while fake.stats.outcomes[Outcome.CLIENT_GONE] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.stats.outcomes[Outcome.CLIENT_GONE] == 1
        fake.faults.clear()
        fine = http.get(f"/reports/{transaction_id}")
        assert rows_of(fine) == fake.dataset.expected(transaction_ids=[transaction_id])


def test_provider_trouble_maps_to_503_502_and_504_with_nothing_of_the_providers() -> None:
    fake = FakeOrganikAPI(Dataset.generate(500, seed=3))
    transaction_id = fake.dataset.transaction_ids[0]
    path = f"/reports/{transaction_id}"
    with running(fake, max_retries=0, timeout=0.5) as http:
        fake.faults[:] = [Fault.rate_limited(retry_after=7)]
        limited = http.get(path)
        assert (limited.status_code, limited.headers["retry-after"]) == (503, "7")
        assert detail_of(limited) == "the SMS provider is rate limiting this service; retry later"

        fake.faults[:] = [Fault.provider_error(95)]
        refused = http.get(path)
        assert refused.status_code == 502
        assert detail_of(refused) == "the SMS provider refused the request (code 95: server fault)"

        fake.faults[:] = [Fault.status(500)]
        failing = http.get(path)
        assert (failing.status_code, detail_of(failing)) == (
            502,
            "the SMS provider answered HTTP 500",
        )

        fake.faults[:] = [Fault.latency(3.0)]
        slow = http.get(path)  # the client's own read timeout, 0.5 s
        assert (slow.status_code, detail_of(slow)) == (
            504,
            "the SMS provider did not answer in time",
        )

        fake.faults.clear()
        assert rows_of(http.get(path)) == fake.dataset.expected(transaction_ids=[transaction_id])
        assert "retry-after" not in refused.headers


def test_a_bad_key_is_a_502_that_shows_neither_key_nor_provider_answer() -> None:
    fake = FakeOrganikAPI(Dataset.generate(500, seed=3))
    with running(fake, api_key=OTHER_KEY) as http:
        answer = http.post("/reports", content=msgspec.json.encode({"transaction_ids": [1, 2]}))
    assert answer.status_code == 502
    assert answer.json() == {"detail": "the SMS provider refused this service's credentials"}
    assert OTHER_KEY not in answer.text
    assert all(OTHER_KEY not in value for value in answer.headers.values())
    assert fake.stats.api_error_codes[99] == 1  # the provider did refuse it


def test_an_unreachable_provider_is_a_502() -> None:
    fake = FakeOrganikAPI(Dataset.generate(100, seed=3))
    unreachable = closed_url()  # nothing listens there: connection refused
    with running(fake, provider_url=unreachable, max_retries=0) as http:
        answer = http.get("/reports/1")
    assert (answer.status_code, detail_of(answer)) == (502, "the SMS provider could not be reached")


BAD_BODIES = [
    (b'{"transaction_ids": ["x"]}', "Expected `int`, got `str` - at `$.transaction_ids[0]`"),
    (b'{"transaction_ids": [true]}', "Expected `int`, got `bool` - at `$.transaction_ids[0]`"),
    (b'{"transaction_id": [1]}', "Object contains unknown field `transaction_id`"),
    (b"{}", "give at least one ID"),
    (b'{"gsm_track_ids": [' + b"1," * 1000 + b"1]}", "at most 1000 IDs per request, got 1001"),
    (b"ids=1", "JSON is malformed: invalid character (byte 0)"),
    (b"", "Input data was truncated"),
]


def test_the_callers_bad_input_is_a_422_naming_the_problem() -> None:
    fake = FakeOrganikAPI(Dataset.generate(100, seed=3))
    with running(fake) as http:
        for body, detail in BAD_BODIES:
            answer = http.post("/reports", content=body)
            assert (answer.status_code, detail_of(answer)) == (422, detail)
        not_an_id = http.get("/reports/abc")
    assert not_an_id.status_code == 422
    assert fake.stats.requests == 0  # nothing reached the provider


@pytest.mark.parametrize("otel", [False, True])
def test_the_demo_serves_reports_from_the_simulator_and_stops_on_sigint(otel: bool) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "web_service.py"),
            *("--port", "0", "--rows", "1000"),
            *(["--otel"] if otel else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("serving on http://127.0.0.1:"), first
        url = first.split()[2].rstrip(";")
        data = Dataset.generate(1000, seed=1)
        transaction_id = data.transaction_ids[0]
        answer = httpx.get(f"{url}/reports/{transaction_id}", timeout=10)
        assert rows_of(answer) == data.expected(transaction_ids=[transaction_id])
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    if otel:  # the call's span and its request's, then the metrics, flushed on the way out
        assert '"name": "organik.detailed_report"' in stderr
        assert '"name": "POST"' in stderr
        assert '"url.full": "http://organik.test/v2/***/detailedreport/json/"' in stderr
        assert '"name": "http.client.request.duration"' in stderr
