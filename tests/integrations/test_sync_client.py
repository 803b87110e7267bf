"""The blocking client, in the places sync code lives: scripts, ``with`` blocks, thread-pool
workers (as Celery's), a Django-style view, iterators dropped half-read, Ctrl-C mid-call.

It wraps the async client, so what it must prove is the wrapping: same settings,
methods, rows and errors; one event loop thread, started on first use and gone after
``close()``; many threads sharing it; and nothing left running or connected after a
stream is dropped or a call is interrupted.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import psutil  # type: ignore[import-untyped]
import pytest

from organik_async import (
    AuthenticationError,
    BatchResult,
    BulkReportError,
    ClientClosedError,
    DetailedReport,
    HttpBackend,
    OrganikClient,
    OrganikError,
    SharedLimits,
    StillPendingError,
    SyncOrganikClient,
    http_error_answer,
)
from organik_async._shared import account_digest
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, ManualClock
from tests.helpers.connections import busy_connections
from tests.helpers.redis_server import RedisServer, dump
from tests.helpers.served import served_from_thread

DATASET = Dataset.generate(2_000, seed=21, max_transaction_rows=20)
TX = DATASET.transaction_ids


def sync_client(fake: FakeOrganikAPI, **settings: Any) -> SyncOrganikClient:
    """A blocking client wired to ``fake`` in-process (no sockets)."""
    return fake.sync_client(**settings)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("organik-sync")]


@pytest.fixture
def tcp_fake() -> Iterator[tuple[FakeOrganikAPI, str]]:
    """The simulator over real TCP, served from a thread of the test's own."""
    fake = FakeOrganikAPI(DATASET)
    with served_from_thread(fake) as url:
        yield fake, url


def client_sockets(port: int) -> list[Any]:
    """This process's open TCP sockets to ``port`` (the server's own side left out)."""
    return [
        c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    ]


# --- the same client ---------------------------------------------------------------------


def test_it_takes_the_async_clients_settings_and_has_its_methods() -> None:
    sync_params = inspect.signature(SyncOrganikClient.__init__).parameters
    async_params = inspect.signature(OrganikClient.__init__).parameters
    assert [(p.name, p.kind, p.default, p.annotation) for p in sync_params.values()] == [
        (p.name, p.kind, p.default, p.annotation) for p in async_params.values()
    ]
    for name in ("detailed_report", "iter_detailed_report", "iter_batches", "follow_until_final"):
        sync_method = inspect.signature(getattr(SyncOrganikClient, name)).parameters
        async_method = inspect.signature(getattr(OrganikClient, name)).parameters
        assert list(sync_method) == list(async_method), name
        assert [p.default for p in sync_method.values()] == [
            p.default for p in async_method.values()
        ], name
    settings = [
        name
        for name, member in inspect.getmembers(OrganikClient)
        if isinstance(member, property) and not name.startswith("_")
    ]
    fake = FakeOrganikAPI(DATASET)
    client = sync_client(fake, batch_sizes=7, rate_limit=5.0, max_retries=1)
    twin = fake.client(batch_sizes=7, rate_limit=5.0, max_retries=1)
    for name in settings:
        assert getattr(client, name) == getattr(twin, name), name
    view = client.with_options(max_concurrency=2, request_format="xml")
    assert (view.max_concurrency, view.request_format, client.max_concurrency) == (2, "xml", 8)
    assert loop_threads() == []  # nothing started by building or viewing


def test_a_with_block_starts_one_thread_on_first_call_and_stops_it_on_exit() -> None:
    fake = FakeOrganikAPI(DATASET)
    before = set(threading.enumerate())
    with sync_client(fake) as client:
        assert loop_threads() == []
        rows = client.detailed_report(transaction_ids=TX[:5])
        assert rows == fake.expected(transaction_ids=TX[:5])
        assert client.with_options(max_retries=0).detailed_report(transaction_ids=TX[:1])
        assert len(loop_threads()) == 1  # the view shares the thread
    assert client.is_closed
    assert "state=closed" in repr(client)
    assert set(threading.enumerate()) == before
    with pytest.raises(ClientClosedError):
        client.detailed_report(transaction_ids=TX[:1])
    client.close()  # twice is harmless


def test_shared_limits_are_used_from_the_first_call_until_the_client_is_closed(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="organik_async")
    fake = FakeOrganikAPI(DATASET)
    leases = f"organik:{{{account_digest(fake.api_key)}}}:leases"
    limits = SharedLimits(redis_url, timeout=2.0)
    with sync_client(fake, shared_limits=limits, batch_sizes=2, max_concurrency=3) as client:
        assert client.shared_limits == limits
        rows = client.detailed_report(transaction_ids=TX[:40])
        assert dump(redis_server.client()) != []  # the account's budget is kept in Redis
    assert rows == fake.expected(transaction_ids=TX[:40])
    assert redis_server.client().zcard(leases) == 0  # every permit given back on closing
    assert [r.getMessage() for r in caplog.records] == []  # none on local limits


def test_a_client_closed_before_any_call_starts_no_thread() -> None:
    client = sync_client(FakeOrganikAPI(DATASET))
    client.close()
    assert client.is_closed
    assert loop_threads() == []
    with pytest.raises(ClientClosedError):
        client.iter_batches(transaction_ids=TX[:1])


def test_errors_are_the_async_clients(no_waits: list[float]) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(98)])
    with sync_client(fake) as client:
        with pytest.raises(AuthenticationError) as bad_key:
            client.detailed_report(transaction_ids=TX[:3])
        assert bad_key.value.code == 98
        with pytest.raises(TypeError, match="iterable of IDs"):
            client.detailed_report(transaction_ids=12)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_concurrency"):
            client.detailed_report(transaction_ids=TX[:3], max_concurrency=0)
        fake.faults = [Fault.status(500, on_requests={2})]
        fake.stats.reset()
        with pytest.raises(BulkReportError) as partly:
            client.with_options(max_retries=0).detailed_report(
                transaction_ids=TX[:6], batch_sizes=2, max_concurrency=1
            )
        assert [f.ids for f in partly.value.failures] == [tuple(TX[2:4])]


def test_the_key_shows_nowhere_in_what_a_failing_blocking_call_shows() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503)])  # no local holds the key
    with sync_client(fake, max_retries=0) as client:
        with pytest.raises(OrganikError) as failed:
            client.detailed_report(transaction_ids=TX[:2])
    with pytest.raises(ValueError, match="must not contain the API key") as refused:
        SyncOrganikClient(fake.api_key, base_url=f"http://organik.test/{fake.api_key}")
    shown = "".join(
        line
        for error in (failed.value, refused.value)
        for line in traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    assert "detailed_report" in shown
    assert "SyncOrganikClient" in shown
    key = fake.api_key.lower()
    assert not [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in shown.lower()]


# --- sync code as it is written --------------------------------------------------------------

SCRIPT = """
import json, sys, threading
from organik_async import SyncOrganikClient
from organik_async.testing import Dataset, FakeOrganikAPI

fake = FakeOrganikAPI(Dataset.generate(2_000, seed=21, max_transaction_rows=20))
client = SyncOrganikClient(fake.api_key, base_url="http://organik.test", transport=fake.transport())
ids = fake.dataset.transaction_ids[:40]
rows = client.detailed_report(transaction_ids=ids)
streamed = sum(1 for _ in client.iter_detailed_report(transaction_ids=ids, batch_sizes=3))
print(json.dumps({"rows": len(rows), "streamed": streamed,
                  "expected": len(fake.expected(transaction_ids=ids)),
                  "threads": threading.active_count()}))
# no close(): the script ends, and so does the client's thread
"""


@pytest.mark.slow
def test_a_script_that_never_closes_its_client_gets_its_rows_and_exits() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning about anything left unclosed
    result = json.loads(done.stdout)
    assert result["rows"] == result["streamed"] == result["expected"] > 40
    assert result["threads"] == 2  # the script's and the client's


def test_a_celery_like_pool_of_worker_threads_shares_one_client() -> None:
    fake = FakeOrganikAPI(DATASET)
    chunks = [TX[i : i + 10] for i in range(0, 400, 10)]
    threads_seen: set[str] = set()

    def task(ids: list[int]) -> list[DetailedReport]:  # one task of the worker
        threads_seen.add(threading.current_thread().name)
        rows: list[DetailedReport] = []
        for batch in client.iter_batches(transaction_ids=ids, batch_sizes=5):
            rows += batch.rows
        assert len(loop_threads()) == 1
        return rows

    with sync_client(fake, max_concurrency=4) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(task, chunks))
        singles = list(pool.map(lambda i: client.detailed_report(transaction_ids=[i]), TX[:50]))
    assert len(threads_seen) > 1
    for ids, rows in zip(chunks, results, strict=True):
        assert sorted(rows, key=lambda r: r.gsm_track_id) == sorted(
            fake.expected(transaction_ids=ids), key=lambda r: r.gsm_track_id
        )
    assert singles == [fake.expected(transaction_ids=[i]) for i in TX[:50]]
    assert loop_threads() == []


class Request:
    """What a Django view reads of a request: the query string's lists."""

    def __init__(self, **query: list[str]) -> None:
        self.GET = query


class JsonResponse:
    def __init__(self, data: Any, status: int = 200, headers: dict[str, str] | None = None):
        self.content = json.dumps(data)
        self.status_code = status
        self.headers = headers or {}


def test_a_django_style_view_reads_its_queryset_in_its_own_thread(
    no_waits: list[float],
) -> None:
    fake = FakeOrganikAPI(DATASET)
    client = sync_client(fake, max_retries=0)  # made once, at import, as settings do
    readers: list[tuple[str, bool]] = []

    def queryset(ids: list[str]) -> Iterator[int]:
        """A lazy ORM query: it must run in the view's thread, with no event loop there."""
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        readers.append((threading.current_thread().name, in_loop))
        yield from (int(i) for i in ids)

    def report_view(request: Request) -> JsonResponse:
        try:
            rows = client.detailed_report(transaction_ids=queryset(request.GET["tx"]), timeout=10)
        except (OrganikError, ValueError, TypeError) as exc:
            answer = http_error_answer(exc)
            return JsonResponse({"detail": answer.detail}, answer.status_code, answer.headers)
        return JsonResponse({"rows": msgspec.to_builtins(rows)})

    requests = [Request(tx=[str(i) for i in TX[n : n + 3]]) for n in range(0, 60, 3)]
    with ThreadPoolExecutor(4, thread_name_prefix="wsgi") as server:
        answers = list(server.map(report_view, requests))
        fake.faults = [Fault.provider_error(98)]
        refused = report_view(Request(tx=[str(TX[0])]))
    client.close()
    for request, answer in zip(requests, answers, strict=True):
        assert answer.status_code == 200
        ids = [int(i) for i in request.GET["tx"]]
        want = msgspec.to_builtins(fake.expected(transaction_ids=ids))
        assert json.loads(answer.content)["rows"] == want
    assert refused.status_code == 502
    assert {name.startswith(("wsgi", "MainThread")) for name, _ in readers} == {True}
    assert not any(in_loop for _, in_loop in readers)


# --- streams -------------------------------------------------------------------------------


def test_streams_are_plain_iterators_and_with_blocks() -> None:
    fake = FakeOrganikAPI(DATASET)
    ids = TX[:30]
    want = sorted(fake.expected(transaction_ids=ids), key=lambda r: r.gsm_track_id)
    with sync_client(fake, batch_sizes=4) as client:
        rows = list(client.iter_detailed_report(transaction_ids=iter(ids)))
        with client.iter_batches(transaction_ids=ids) as batches:
            results: list[BatchResult] = list(batches)
        assert list(batches) == []  # a finished stream stays finished
    assert sorted(rows, key=lambda r: r.gsm_track_id) == want
    assert sum(len(b.ids) for b in results) == len(ids)
    assert sorted((r for b in results for r in b.rows), key=lambda r: r.gsm_track_id) == want


def test_a_lazy_input_of_a_stream_is_read_outside_the_event_loop() -> None:
    fake = FakeOrganikAPI(DATASET)
    seen: list[bool] = []

    def ids() -> Iterator[int]:
        for value in TX[:2_500:5]:
            try:
                asyncio.get_running_loop()
                seen.append(True)
            except RuntimeError:
                seen.append(False)
            yield value

    with sync_client(fake, batch_sizes=50) as client:
        rows = list(client.iter_detailed_report(transaction_ids=ids()))
    assert len(rows) == len(fake.expected(transaction_ids=TX[:2_500:5]))
    assert seen
    assert not any(seen)


@pytest.mark.slow
def test_a_stream_dropped_half_read_stops_its_requests() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.02)])
    with sync_client(fake, batch_sizes=1, max_concurrency=4) as client:
        for row in client.iter_detailed_report(transaction_ids=TX[:400]):
            assert isinstance(row, DetailedReport)
            break  # the iterator is dropped here: no reference is left
        sent = fake.stats.requests
        assert sent < 20
        time.sleep(0.3)  # ample time for several more rounds of requests, were any running
        assert fake.stats.requests == sent
        assert client._shared.loop.run(running_tasks) == 1  # only the call asking


async def running_tasks() -> int:
    return sum(not t.done() for t in asyncio.all_tasks()) - 1  # less the portal's own task


@pytest.mark.slow
def test_follow_until_final_is_a_plain_iterator_too(no_waits: list[float]) -> None:
    clock = ManualClock()
    dataset = Dataset.generate(500, seed=4, in_progress_share=0.4, not_started_share=0.2)
    fake = FakeOrganikAPI(dataset, finalize_after=(60, 600), clock=clock)
    ids = dataset.transaction_ids[:10]
    assert any(not row.is_final for row in fake.expected(transaction_ids=ids))
    following = threading.Event()

    def drive_the_clock() -> None:
        while not following.wait(0.005):
            clock.advance(30)

    with sync_client(fake) as client:
        driver = threading.Thread(target=drive_the_clock)
        driver.start()
        try:
            stream = client.follow_until_final(
                transaction_ids=ids, poll_interval=0.01, max_poll_interval=0.02, deadline=30
            )
            got = list(stream)
        finally:
            following.set()
            driver.join()
        assert stream.rounds > 1
        assert stream.pending == []
        assert sorted(r.gsm_track_id for r in got) == sorted(
            r.gsm_track_id for r in fake.expected(transaction_ids=ids)
        )
        stuck = FakeOrganikAPI(dataset, finalize_after=10**6, clock=ManualClock())
        with sync_client(stuck) as other:
            later = other.follow_until_final(transaction_ids=ids, poll_interval=0.01, deadline=0.05)
            with pytest.raises(StillPendingError) as still:
                list(later)
        assert still.value.pending == later.pending != []


# --- interrupts and closing from another thread ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize("method", ["detailed_report", "iter_detailed_report"])
def test_ctrl_c_mid_call_leaves_no_thread_or_socket_behind(
    tcp_fake: tuple[FakeOrganikAPI, str], backend: HttpBackend, method: str
) -> None:
    fake, url = tcp_fake
    port = int(url.rsplit(":", 1)[1])
    fake.faults = [Fault.latency(30)]
    before = set(threading.enumerate())
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt_when_sent() -> None:
        while fake.stats.requests < 1:
            time.sleep(0.005)
        time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGINT)  # as Ctrl-C: to the main thread

    with (
        pytest.raises(KeyboardInterrupt),
        SyncOrganikClient(fake.api_key, base_url=url, http_backend=backend) as client,
    ):
        assert client_sockets(port) == []
        threading.Thread(target=interrupt_when_sent, daemon=True).start()
        started = time.monotonic()
        try:
            if method == "detailed_report":
                client.detailed_report(transaction_ids=TX[:3])
            else:
                for _ in client.iter_detailed_report(transaction_ids=TX[:40], batch_sizes=2):
                    pass
        finally:
            assert time.monotonic() - started < 20  # not the server's 30 s
            assert busy_connections(client._client) == 0  # let go before Ctrl-C went on
    assert set(threading.enumerate()) == before
    assert client_sockets(port) == []


INTERRUPTED_SCRIPT = """
import os, signal, sys, threading, time
from organik_async import SyncOrganikClient

client = SyncOrganikClient(sys.argv[2], base_url=sys.argv[1])
threading.Timer(0.5, lambda: signal.pthread_kill(threading.main_thread().ident,
                                                 signal.SIGINT)).start()
print("calling", flush=True)
client.detailed_report(transaction_ids=[1])  # the server answers in 30 s
"""


@pytest.mark.slow
def test_a_script_interrupted_mid_call_exits_at_once(
    tcp_fake: tuple[FakeOrganikAPI, str],
) -> None:
    fake, url = tcp_fake
    fake.faults = [Fault.latency(30)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_SCRIPT, url, fake.api_key],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )
    assert time.monotonic() - started < 25  # the server's 30 s latency was not waited for
    assert done.stdout == "calling\n"
    assert done.returncode != 0
    assert done.stderr.rstrip().endswith("KeyboardInterrupt")


def test_calling_the_client_from_its_own_thread_is_refused() -> None:
    fake = FakeOrganikAPI(DATASET)
    refused: list[BaseException] = []

    def on_progress(_: object) -> None:
        try:
            client.detailed_report(transaction_ids=TX[:1])
        except RuntimeError as exc:
            refused.append(exc)

    with sync_client(fake) as client:
        client.detailed_report(transaction_ids=TX[:1], on_progress=on_progress)
    assert len(refused) == 1
    assert "its own event loop's thread" in str(refused[0])


def test_closing_from_another_thread_ends_calls_in_flight() -> None:
    fake = FakeOrganikAPI(DATASET)
    client = sync_client(fake, adaptive_concurrency=False)  # all three requests at once
    client.detailed_report(transaction_ids=TX[:3])  # a request this big is known to work
    fake.faults = [Fault.latency(30)]
    fake.stats.reset()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.detailed_report(transaction_ids=TX[:3])
        except BaseException as exc:
            errors.append(exc)

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    while fake.stats.requests < 3:
        time.sleep(0.005)
    client.close()
    for caller in callers:
        caller.join(10)
    assert [type(e) for e in errors] == [ClientClosedError] * 3
    assert loop_threads() == []


def test_a_client_dropped_unclosed_stops_its_thread() -> None:
    fake = FakeOrganikAPI(DATASET)
    client = sync_client(fake)
    stream = client.iter_detailed_report(transaction_ids=TX[:20], batch_sizes=5)
    del client  # the stream keeps it open
    assert len(list(stream)) == len(fake.expected(transaction_ids=TX[:20]))
    assert len(loop_threads()) == 1
    del stream  # the last reference: the client closes, and its thread ends
    assert loop_threads() == []
