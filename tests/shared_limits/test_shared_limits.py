"""Shared limits: one account's budget kept in a real Redis server (Valkey), used by
several clients at once, on asyncio and trio.

Each client of a test is a process as far as Redis can tell (each has its own member
ID), so several clients in one test share a budget exactly as processes on several
hosts do; test_shared_limits_processes.py runs real processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from organik_async import DetailedReport, OrganikClient, SharedLimits, _shared
from organik_async._ratelimit import AdaptiveLimit, Outcome
from organik_async._shared import SharedConcurrency, account_digest, mask_url
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault
from tests.helpers.redis_server import RedisServer, dump, running

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(600, seed=18, max_transaction_rows=20)
TX = DATASET.transaction_ids
PASSWORD = "Pa55-redis-word-42"


def shared(url: str, **changes: Any) -> SharedLimits:
    return SharedLimits(url, **({"timeout": 2.0} | changes))


def client_for(fake: FakeOrganikAPI, limits: SharedLimits | str, **kwargs: Any) -> OrganikClient:
    settings = {"backoff_base": 0, "max_retries": 10, "batch_sizes": 2} | kwargs
    return fake.client(shared_limits=limits, **settings)


def concurrency_of(client: OrganikClient) -> SharedConcurrency:
    concurrency = client._requester.concurrency
    assert isinstance(concurrency, SharedConcurrency)
    return concurrency


def by_track(rows: list[DetailedReport]) -> list[str]:
    return sorted(str(row.gsm_track_id) for row in rows)


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


def key_runs(key: str) -> list[bytes]:
    """Every run of 8 characters of the key, lower-cased."""
    lower = key.lower().encode()
    return [lower[i : i + 8] for i in range(len(lower) - 7)]


def holds_no_key(values: list[bytes]) -> bool:
    runs = key_runs(DEMO_API_KEY)
    return not any(run in value.lower() for value in values for run in runs)


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"url": "http://localhost:6379"}, "url must start with redis://"),
        ({"url": "redis://"}, "url has no host"),
        ({"url": "unix://"}, "no socket path"),
        ({"url": "redis://h:99999999/0"}, "url is not a valid URL"),
        ({}, "needs a url or a client"),
        ({"url": "redis://h", "lease": 0}, "lease must be a positive number"),
        ({"url": "redis://h", "timeout": -1}, "timeout must be a positive number"),
        ({"url": "redis://h", "probe_interval": float("nan")}, "probe_interval"),
        ({"url": "redis://h", "max_in_flight": 0}, "max_in_flight must be an int >= 1"),
        ({"url": "redis://h", "prefix": "a{b}"}, "prefix must be a non-empty str"),
        ({"url": "redis://h", "prefix": ""}, "prefix must be a non-empty str"),
        ({"client": object()}, "client must be a coredis client"),
    ],
)
def test_settings_are_checked_with_an_error_naming_the_setting(
    kwargs: dict[str, Any], named: str
) -> None:
    url = kwargs.pop("url", None)
    with pytest.raises(ValueError, match=named):
        SharedLimits(url, **kwargs)


def test_a_client_given_is_used_as_is_and_a_url_and_a_client_together_are_refused() -> None:
    redis = coredis.Redis(host="127.0.0.1", port=1)
    assert SharedLimits(client=redis).client is redis
    with pytest.raises(ValueError, match="one of them, not both"):
        SharedLimits("redis://h", client=redis)


def test_the_redis_password_is_masked_in_reprs_and_errors() -> None:
    url = f"redis://user:{PASSWORD}@redis.internal:6380/2?password={PASSWORD}&db=2"
    limits = SharedLimits(url)
    assert PASSWORD not in repr(limits)
    assert "redis://user:***@redis.internal:6380/2?password=***&db=2" in repr(limits)
    with pytest.raises(ValueError, match=r"http://:\*\*\*@h") as caught:
        SharedLimits(f"http://:{PASSWORD}@h")
    assert PASSWORD not in str(caught.value)
    with fake_client(limits) as client:
        assert PASSWORD not in repr(client.shared_limits)
        assert client.shared_limits is limits
    assert mask_url("redis://onlyuser@h/0") == "redis://onlyuser@h/0"


class fake_client:
    """An unopened client over the in-process simulator (sync tests of settings)."""

    def __init__(self, limits: SharedLimits | str | None) -> None:
        self.client = FakeOrganikAPI(DATASET).client(shared_limits=limits)

    def __enter__(self) -> OrganikClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        pass


def test_the_environment_variable_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORGANIK_SHARED_LIMITS", "redis://envhost:6379/0")
    with fake_client(None) as client:
        assert client.shared_limits == SharedLimits("redis://envhost:6379/0")
    with fake_client("") as client:  # an empty setting turns sharing off
        assert client.shared_limits is None
    monkeypatch.setenv("ORGANIK_SHARED_LIMITS", "memcached://nope")
    with pytest.raises(ValueError, match="url must start with redis://"):
        FakeOrganikAPI(DATASET).client()
    monkeypatch.delenv("ORGANIK_SHARED_LIMITS")
    with fake_client(None) as client:
        assert client.shared_limits is None


def test_keys_are_named_by_a_digest_of_the_key() -> None:
    digest = account_digest(DEMO_API_KEY)
    assert len(digest) == 16
    assert holds_no_key([digest.encode()])
    assert digest != account_digest(DEMO_API_KEY.upper())


# --- the semaphore ------------------------------------------------------------------------


@pytest.mark.slow
async def test_clients_sharing_a_budget_never_exceed_it_together(redis_url: str) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency((0.005, 0.02))])
    limits = shared(redis_url, max_in_flight=3)
    parts = [TX[k::3] for k in range(3)]
    rows: list[DetailedReport] = []
    with anyio.fail_after(60):
        async with (
            client_for(fake, limits, max_concurrency=8) as a,
            client_for(fake, limits, max_concurrency=8) as b,
            client_for(fake, limits, max_concurrency=8) as c,
        ):

            async def fetch(client: OrganikClient, ids: list[int]) -> None:
                rows.extend(await client.detailed_report(transaction_ids=ids))

            async with anyio.create_task_group() as tg:
                for client, ids in zip((a, b, c), parts, strict=True):
                    tg.start_soon(fetch, client, ids)
    assert by_track(rows) == by_track(list(DATASET))
    assert fake.stats.peak_admitted == 3  # each alone would have sent 8 at once
    assert fake.stats.refused == 0


async def test_the_account_halves_once_per_round_not_once_per_client(redis_url: str) -> None:
    fake = FakeOrganikAPI(DATASET)
    limits = shared(redis_url)
    async with client_for(fake, limits) as a, client_for(fake, limits) as b:
        first, second = concurrency_of(a), concurrency_of(b)
        permits = [(first, await first.acquire()) for _ in range(3)]
        permits += [(second, await second.acquire()) for _ in range(3)]
        assert {permit.round for _, permit in permits} == {0}
        for budget, permit in permits:  # six refusals of requests sent in one round
            await budget.release(permit, Outcome.PUSHBACK)
        await first.drain()
        await second.drain()
        assert (first.limit, second.limit) == (4, 4)  # 8 -> 4 once, not 8 -> 4 -> 2 -> 1
        assert first.in_flight == second.in_flight == 0
        # A full round of answers at the new limit, then the next refusal halves again.
        for _ in range(4):
            permit = await second.acquire()
            assert permit.round == 1
            await second.release(permit, Outcome.ANSWERED)
        await second.drain()
        permit = await first.acquire()
        await first.release(permit, Outcome.PUSHBACK)
        await first.drain()
        assert first.limit == 2
    redis_state = await read_hash(redis_url, f"organik:{{{account_digest(DEMO_API_KEY)}}}:aimd")
    assert redis_state[b"limit"] == b"2"
    assert redis_state[b"round"] == b"2"


async def test_the_shared_limit_moves_step_for_step_with_a_local_one(redis_url: str) -> None:
    """The scripts mirror `AdaptiveLimit` line for line: the same outcomes, the same limit."""
    fake = FakeOrganikAPI(DATASET)
    local = AdaptiveLimit(64, start=8)
    steps: list[int | str] = [4, "refused", 8, "refused", 30, 70, "refused", "refused", 200]
    async with client_for(fake, shared(redis_url, max_in_flight=64)) as client:
        budget = concurrency_of(client)
        seen = []
        for step in steps:
            if isinstance(step, str):  # "refused"
                permit = await budget.acquire()
                await budget.release(permit, Outcome.PUSHBACK)
                local_permit = await local.acquire()
                await local.release(local_permit, Outcome.PUSHBACK)
                for _ in range(local.limit):  # a full round at the new limit: calm again
                    await budget.release(await budget.acquire(), Outcome.ANSWERED)
                    local.succeeded()
            else:
                for _ in range(step):
                    await budget.release(await budget.acquire(), Outcome.ANSWERED)
                    local.succeeded()
            await budget.drain()
            seen.append((budget.limit, local.limit))
    assert all(shared_limit == local_limit for shared_limit, local_limit in seen), seen
    assert len({local_limit for _, local_limit in seen}) > 4  # it went up and down


@pytest.mark.timeout(20)  # the defect this guards against holds the loop: only this ends it
async def test_outcomes_waiting_to_be_sent_never_hold_the_event_loop(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrganikAPI(DATASET)
    async with client_for(fake, shared(redis_url)) as client:
        budget = concurrency_of(client)
        await budget.release(await budget.acquire(), Outcome.ANSWERED)
        await budget.drain()
        # A task of this process waits for a lease while the only thing to send is an
        # outcome, which waits for its turn (_KEEP): with the clock stopped that turn never
        # comes, so the flush must sleep between looks, not spin.
        now = anyio.current_time()
        monkeypatch.setattr(anyio, "current_time", lambda: now)
        waiting = _shared._Turn("another-request")
        budget._queue.append(waiting)
        budget._heard_at = now
        budget._pending.append(("", "a", 0, 0))
        budget._flush_soon()
        for _ in range(50):  # other tasks run: the flush sleeps between its looks
            await anyio.lowlevel.checkpoint()
        assert budget._pending == [("", "a", 0, 0)]  # not sent before its turn
        budget._queue.remove(waiting)
        monkeypatch.undo()
        await budget.drain()


async def read_hash(url: str, key: str) -> dict[bytes, bytes]:
    async with coredis.Redis.from_url(url) as redis:
        return dict(await redis.hgetall(key))


async def test_answers_grow_the_shared_limit_up_to_max_in_flight(redis_url: str) -> None:
    fake = FakeOrganikAPI(DATASET)
    async with client_for(fake, shared(redis_url, max_in_flight=10)) as client:
        budget = concurrency_of(client)
        assert budget.limit == 8
        for _ in range(5):  # slow start: one more per answer, until the ceiling
            await budget.release(await budget.acquire(), Outcome.ANSWERED)
        await budget.drain()
        assert budget.limit == 10


@pytest.mark.slow
async def test_a_process_keeps_its_lease_while_no_one_waits_and_yields_it_when_one_does(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.01)])
    limits = shared(redis_url, max_in_flight=1)
    settings = {"batch_sizes": 1, "max_concurrency": 1}
    done: list[str] = []
    with anyio.fail_after(60):
        async with client_for(fake, limits, **settings) as a, client_for(fake, limits) as b:
            redis_server.client().config_resetstat()
            await a.detailed_report(transaction_ids=TX[:20])  # alone: the lease is kept
            steps = redis_server.client().info("commandstats")["cmdstat_evalsha"]["calls"]
            assert steps < 20

            async def first() -> None:
                await a.detailed_report(transaction_ids=TX[:40])
                done.append("a")

            async def second() -> None:
                await b.detailed_report(transaction_ids=TX[40:41])
                done.append("b")

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await wait_for(lambda: fake.stats.requests >= 23)
                tg.start_soon(second)
    # With one slot for the account, the waiting client got it long before the other's
    # forty requests were done: a kept lease goes back as soon as someone waits.
    assert done == ["b", "a"]
    assert fake.stats.peak_admitted == 1


@pytest.mark.slow
async def test_a_long_request_renews_its_lease(redis_url: str) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(2.5, on_requests={1})])
    limits = shared(redis_url, lease=0.6, max_in_flight=1)
    with anyio.fail_after(60):
        async with client_for(fake, limits) as a, client_for(fake, limits) as b:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: a.detailed_report(transaction_ids=TX[:1]))
                await wait_for(lambda: fake.stats.admitted == 1)
                rows = await b.detailed_report(transaction_ids=TX[1:2])
    assert rows == DATASET.expected(transaction_ids=TX[1:2])
    # Four lease lengths long, the first request kept its permit: never two at once.
    assert fake.stats.peak_admitted == 1


async def test_a_cancelled_call_gives_its_permits_back(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeOrganikAPI(DATASET)
    with anyio.fail_after(30):
        async with client_for(fake, shared(redis_url), max_concurrency=4) as client:
            await proven(client, fake)
            with anyio.move_on_after(20) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: client.detailed_report(transaction_ids=TX[:40]))
                    await wait_for(lambda: fake.stats.admitted == 4)
                    assert leases(redis_server) == 4
                    tg.cancel_scope.cancel()
            assert not scope.cancelled_caught
            await concurrency_of(client).drain()  # sent by the client, not the cancelled call
            assert leases(redis_server) == 0
            assert concurrency_of(client).in_flight == 0


async def proven(client: OrganikClient, fake: FakeOrganikAPI) -> None:
    """One request answered (its size is then known to work: the next ones go together),
    then every request is held for half a minute."""
    await client.detailed_report(transaction_ids=TX[-2:])
    fake.faults.append(Fault.latency(30.0))
    fake.stats.reset()


def leases(server: RedisServer) -> int:
    key = f"organik:{{{account_digest(DEMO_API_KEY)}}}:leases"
    count: int = server.client().zcard(key)
    return count


async def test_closing_the_client_frees_the_leases_it_holds(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeOrganikAPI(DATASET)
    client = client_for(fake, shared(redis_url), max_concurrency=3)
    with anyio.fail_after(30):
        async with client, anyio.create_task_group() as tg:
            await proven(client, fake)

            async def call() -> None:
                with pytest.raises(Exception, match="closed"):
                    await client.detailed_report(transaction_ids=TX[:30])

            tg.start_soon(call)
            await wait_for(lambda: fake.stats.admitted == 3)
            assert leases(redis_server) == 3
            await client.aclose()
    assert leases(redis_server) == 0


async def test_an_unopened_client_uses_local_limits_and_says_so_once(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="organik_async")
    fake = FakeOrganikAPI(DATASET)
    client = client_for(fake, shared(redis_url))
    try:
        with anyio.fail_after(30):
            rows = await client.detailed_report(transaction_ids=TX[:20])
            rows += await client.detailed_report(transaction_ids=TX[20:40])
    finally:
        await client.aclose()
    assert by_track(rows) == by_track(DATASET.expected(transaction_ids=TX[:40]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "async with OrganikClient" in warnings[0]
    assert dump(redis_server.client()) == []


# --- the rate and the pause ---------------------------------------------------------------


@pytest.mark.slow
async def test_the_rate_limit_is_one_for_the_account(redis_url: str) -> None:
    fake = FakeOrganikAPI(DATASET)
    limits = shared(redis_url)
    with anyio.fail_after(30):
        async with (
            client_for(fake, limits, rate_limit=10, batch_sizes=1) as a,
            client_for(fake, limits, rate_limit=10, batch_sizes=1) as b,
        ):
            assert a.rate_limit == 10
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: a.detailed_report(transaction_ids=TX[:6]))
                tg.start_soon(lambda: b.detailed_report(transaction_ids=TX[6:12]))
            elapsed = time.monotonic() - started
    assert fake.stats.requests == 12
    # Twelve requests at 10/s for the account: the slots span 1.1 s (each client
    # alone at 10/s would have finished in 0.5 s).
    assert elapsed >= 1.0


@pytest.mark.slow
async def test_a_retry_after_pauses_every_client(redis_url: str, redis_server: RedisServer) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(retry_after=2, on_requests={1})])
    limits = shared(redis_url)
    pause = f"organik:{{{account_digest(DEMO_API_KEY)}}}:pause"
    with anyio.fail_after(30):
        async with client_for(fake, limits) as a, client_for(fake, limits) as b:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: a.detailed_report(transaction_ids=TX[:1]))
                await wait_for(lambda: redis_server.client().pttl(pause) > 0)
                started = time.monotonic()
                rows = await b.detailed_report(transaction_ids=TX[1:2])
                waited = time.monotonic() - started
    assert rows == DATASET.expected(transaction_ids=TX[1:2])
    assert waited >= 1.0  # the other client's refusal paused this one too
    assert fake.stats.requests == 3


# --- what Redis holds -----------------------------------------------------------------------


@pytest.mark.slow
async def test_no_redis_key_or_value_holds_the_api_key(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.3)])
    seen: list[bytes] = []
    with anyio.fail_after(60):
        async with (
            client_for(fake, shared(redis_url), rate_limit=50, max_concurrency=4) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: client.detailed_report(transaction_ids=TX[:16]))
            await wait_for(lambda: fake.stats.admitted >= 4)
            seen += dump(redis_server.client())  # with leases held
    seen += dump(redis_server.client())  # after the call
    assert any(b":leases" in value for value in seen)
    assert any(b":aimd" in value for value in seen)
    assert any(b":tat" in value for value in seen)
    assert holds_no_key(seen)


# --- Redis unavailable ------------------------------------------------------------------------


@pytest.mark.slow
async def test_redis_stopped_and_started_mid_job_loses_nothing_and_logs_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="organik_async")
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.01)])
    tracks = list(DATASET.gsm_track_ids())  # 300 requests of 2
    with running(unix_socket=tmp_path / "redis.sock") as server:
        limits = shared(server.url, probe_interval=0.2, timeout=0.5)
        rows: list[DetailedReport] = []
        with anyio.fail_after(120):
            async with client_for(fake, limits, max_concurrency=4) as client:
                budget = concurrency_of(client).budget
                async with anyio.create_task_group() as tg:

                    async def job() -> None:
                        rows.extend(await client.detailed_report(gsm_track_ids=tracks))

                    tg.start_soon(job)
                    await wait_for(lambda: fake.stats.requests >= 20)
                    await anyio.to_thread.run_sync(server.stop)
                    await wait_for(lambda: not budget.up)
                    mark = fake.stats.requests
                    await wait_for(lambda: fake.stats.requests >= mark + 30)
                    await anyio.to_thread.run_sync(server.start)
                    await wait_for(lambda: budget.up)
    assert by_track(rows) == by_track(list(DATASET))
    ours = [r for r in caplog.records if r.name == "organik_async" and "Redis" in r.getMessage()]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.INFO]
    assert "unavailable" in ours[0].getMessage()
    assert "answers again" in ours[1].getMessage()
    assert budget.outages == 1


@pytest.mark.slow
async def test_a_wrong_password_falls_back_without_showing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOrganikAPI(DATASET)
    with running(password=PASSWORD) as server:
        port = server.url.rsplit(":", 1)[1]
        wrong = SharedLimits(f"redis://:{PASSWORD[::-1]}@127.0.0.1:{port}")
        right = SharedLimits(f"redis://:{PASSWORD}@127.0.0.1:{port}")
        with anyio.fail_after(30):
            async with client_for(fake, wrong) as client:
                rows = await client.detailed_report(transaction_ids=TX[:10])
                assert not concurrency_of(client).budget.up
            async with client_for(fake, right) as client:
                rows += await client.detailed_report(transaction_ids=TX[10:20])
                assert concurrency_of(client).budget.up
        assert any(b":aimd" in value for value in dump(server.client()))
    assert by_track(rows) == by_track(DATASET.expected(transaction_ids=TX[:20]))
    text = caplog.text
    assert "unavailable" in text
    assert "redis://:***@127.0.0.1" in text
    assert PASSWORD not in text
    assert PASSWORD[::-1] not in text
