"""Every fault the simulator can inject, over real TCP, in every format pair and call shape.

Each test is one fault. It serves eight simulators on one uvicorn server (the
four request/response format pairs, each called once with one request's worth
of IDs and once with four batches) and drives them at the same time:

* a fault a retry can fix, injected now and then: every row arrives, and the
  retries the client counted equal the faults the server injected;
* the same fault on every request from some point on: the retries run out, and
  the call raises the fault's typed error; a bulk call keeps the rows of its
  healthy batches and names every failed ID (``failures``,
  ``failed_id_arguments``);
* a refusal ("slow down"), now and then: every row arrives, the refusals the
  client counted equal the ones the server sent, and no retry was spent; on
  every request from some point on: the request's patience
  (``pushback_timeout``) runs out, and the call raises a ``RateLimitError``
  saying how often the provider refused;
* a fault no retry can fix: the same, at once, with one attempt;
* a refused key (code 99): the whole call stops with ``AuthenticationError``,
  whatever its size (the README's rule);
* a fault that only slows the answer: every row, no retry.

After every call, nothing is in flight: neither in the client's pools nor on
the server. Retry waits are skipped with ``instant_retries()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import msgspec
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    BulkReportError,
    DecodeError,
    DetailedReport,
    Format,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    Progress,
    RateLimitError,
    TimeoutExpiredError,
    TransportError,
    instant_retries,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(2_000, seed=23, max_transaction_rows=12)
TX = DATASET.transaction_ids
FORMATS: list[tuple[Format, Format]] = [
    ("json", "json"),
    ("xml", "xml"),
    ("json", "xml"),
    ("xml", "json"),
]
BATCH = 2
SHAPES: dict[str, list[int]] = {
    "single": TX[:BATCH],  # one request
    "bulk": TX[BATCH : BATCH + 4 * BATCH],  # four batches, three at a time
}
CONCURRENCY = 3
MAX_RETRIES = 2
EVERYWHERE = range(1, 10**9)
# Bulk, persistent: requests 1 and 2 are two batches' first attempts and succeed;
# every request after them fails, so the two other batches run out of retries.
FROM_THIRD = range(3, 10**9)
HEALTHY_BATCHES = 2
TRANSIENT: dict[str, frozenset[int]] = {"single": frozenset({1}), "bulk": frozenset({2, 3})}

Outcome = Literal["harmless", "retried", "refused", "permanent", "fatal"]
PATIENCE = 10.0
"""``pushback_timeout`` of the refusal cases: waits are skipped, but counted."""


@dataclass(frozen=True)
class Case:
    """One fault, what it must lead to, and the client settings it needs."""

    make: Callable[[Iterable[int]], Fault]
    outcome: Outcome
    error: type[OrganikError] | None = None
    retry_after: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # Faults that only make the answer late.
    "latency": Case(lambda on: Fault.latency(0.02, on_requests=on), "harmless"),
    "trickle-slow": Case(
        lambda on: Fault.trickle(chunk_size=512, delay=0.005, on_requests=on), "harmless"
    ),
    # Faults a retry can fix.
    "trickle-stalled": Case(
        # attempt_timeout leaves a healthy answer seconds, even on a loaded machine.
        lambda on: Fault.trickle(chunk_size=1, delay=30.0, on_requests=on),
        "retried",
        TimeoutExpiredError,
        settings={"attempt_timeout": 3.0},
    ),
    "disconnect": Case(lambda on: Fault.disconnect(on_requests=on), "retried", TransportError),
    "status-503-retry-after": Case(
        lambda on: Fault.status(503, retry_after=1, on_requests=on),
        "refused",
        RateLimitError,
        retry_after=1.0,
        settings={"pushback_timeout": PATIENCE},
    ),
    "status-502-code-95": Case(
        lambda on: Fault.status(502, code=95, on_requests=on), "retried", APIError
    ),
    "rate-limited": Case(
        lambda on: Fault.rate_limited(retry_after=2, on_requests=on),
        "refused",
        RateLimitError,
        retry_after=2.0,
        settings={"pushback_timeout": PATIENCE},
    ),
    "provider-93": Case(
        lambda on: Fault.provider_error(93, on_requests=on),
        "refused",
        RateLimitError,
        settings={"pushback_timeout": PATIENCE},
    ),
    # Faults no retry can fix.
    "status-400": Case(lambda on: Fault.status(400, on_requests=on), "permanent", HTTPStatusError),
    # Code 96 on a request of several IDs is a size refusal, split and retried (see
    # test_bulk.py); 97 is the provider's permanent refusal here.
    "status-500-code-97": Case(
        lambda on: Fault.status(500, code=97, on_requests=on), "permanent", APIError
    ),
    "provider-97": Case(lambda on: Fault.provider_error(97, on_requests=on), "permanent", APIError),
    "truncate": Case(lambda on: Fault.truncate(on_requests=on), "permanent", DecodeError),
    "malformed": Case(lambda on: Fault.malformed(on_requests=on), "permanent", DecodeError),
    # A refused key stops the whole call.
    "provider-99": Case(
        lambda on: Fault.provider_error(99, on_requests=on), "fatal", AuthenticationError
    ),
}


class Lanes:
    """One ASGI app in front of many simulators: ``/<lane>/v2/...`` goes to that lane's.

    Each lane keeps its own stats and request numbering, so eight scripted
    scenarios share one server (one start, one stop) and run at the same time.
    """

    def __init__(self, fakes: dict[str, FakeOrganikAPI]) -> None:
        self.fakes = fakes

    async def __call__(
        self,
        scope: Any,
        receive: Callable[[], Any],
        send: Callable[[Any], Any],
    ) -> None:
        _, lane, rest = scope["path"].split("/", 2)
        await self.fakes[lane](dict(scope, path="/" + rest), receive, send)


@dataclass
class Run:
    """What one call gave, and what the server saw while it ran."""

    lane: str
    shape: str
    ids: list[int]
    rows: list[DetailedReport] | None = None
    error: BaseException | None = None
    progress: Progress | None = None
    requests: int = 0
    faults: int = 0
    server_in_flight: int = 0
    client_in_flight: int = 0


async def settled(fake: FakeOrganikAPI) -> int:
    """The server's requests in flight once it has had a moment to finish them.

    The server thread ends a request a moment after its last byte is sent; a
    request still in flight after 5 s is a leak.
    """
    with anyio.move_on_after(5):
        while fake.stats.in_flight:  # noqa: ASYNC110 (polling another thread's counter)
            await anyio.sleep(0.005)
    return fake.stats.in_flight


async def call(client: OrganikClient, fake: FakeOrganikAPI, fault: Fault, lane: Lane) -> Run:
    fake.faults[:] = [fault]
    fake.stats.reset()
    run = Run(lane.name, lane.shape, SHAPES[lane.shape])
    seen: list[Progress] = []
    try:
        run.rows = await client.detailed_report(transaction_ids=run.ids, on_progress=seen.append)
    except OrganikError as exc:
        run.error = exc
    run.progress = seen[-1] if seen else None
    run.server_in_flight = await settled(fake)
    run.client_in_flight = client._requester.sender.in_flight
    run.requests = fake.stats.requests
    run.faults = sum(n for name, n in fake.stats.faults.items() if name != "latency")
    return run


@dataclass(frozen=True)
class Lane:
    """One simulator of the server: a format pair and a call shape."""

    request_format: Format
    response_format: Format
    shape: str

    @property
    def name(self) -> str:
        return f"{self.request_format}-{self.response_format}-{self.shape}"


LANES = [Lane(req, res, shape) for req, res in FORMATS for shape in SHAPES]


async def drive(case: Case, base_url: str, lane: Lane, fake: FakeOrganikAPI) -> list[Run]:
    """The calls of one lane: the scripted runs its fault's outcome calls for."""
    shape = lane.shape
    runs: list[Run] = []
    async with OrganikClient(
        fake.api_key,
        base_url=f"{base_url}/{lane.name}",
        request_format=lane.request_format,
        response_format=lane.response_format,
        batch_sizes=BATCH,
        max_concurrency=CONCURRENCY,
        max_retries=MAX_RETRIES,
        **case.settings,
    ) as client:
        if case.outcome == "harmless":
            runs.append(await call(client, fake, case.make(EVERYWHERE), lane))
        else:
            runs.append(await call(client, fake, case.make(TRANSIENT[shape]), lane))
        if case.outcome in ("retried", "refused"):
            persistent = EVERYWHERE if shape == "single" else FROM_THIRD
            runs.append(await call(client, fake, case.make(persistent), lane))
    return runs


def batches(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


def expected(run: Run, ids: list[int]) -> list[DetailedReport]:
    """The rows as the run's answer format carries them (XML rows have no errorcode)."""
    rows = DATASET.expected(transaction_ids=ids)
    if run.lane.split("-")[1] == "json":  # the lane's name: request-response-shape
        return rows
    return [msgspec.structs.replace(row, errorcode=0) for row in rows]


def check_all_rows(run: Run) -> None:
    where = f"{run.lane}: "
    assert run.error is None, where + repr(run.error)
    assert run.rows == expected(run, run.ids), where + "rows"
    assert run.progress is not None
    assert run.progress.batches_done == len(batches(run.ids)), where + "batches"
    assert run.progress.failures == 0


def check_failed(run: Run, case: Case, failed_batches: int, attempts: int) -> None:
    """The typed error of a call whose failing batches each made ``attempts`` tries."""
    where = f"{run.lane}: "
    error = run.error
    assert case.error is not None
    if run.shape == "single":
        assert type(error) is case.error, where + repr(error)
        assert error.attempts == attempts, where + repr(error)
        assert error.request is not None
        assert error.request.id_count == len(run.ids)
        assert run.requests == attempts, where + "requests"
        return
    assert type(error) is BulkReportError, where + repr(error)
    failures = error.failures
    assert len(failures) == failed_batches, where + repr(failures)
    for failure in failures:
        assert failure.outcome == "failed", where + repr(failure)
        assert type(failure.error) is case.error, where + repr(failure.error)
        assert failure.attempts == attempts, where + repr(failure)
        assert list(failure.ids) in batches(run.ids), where + "a failure names a batch"
    failed = {i for f in failures for i in f.ids}
    named = error.failed_id_arguments.get("transaction_ids", [])
    assert sorted(named) == sorted(failed), where + "failed_id_arguments"
    healthy = [i for i in run.ids if i not in failed]
    assert error.rows == expected(run, healthy), where + "healthy rows kept"
    healthy_batches = len(batches(run.ids)) - failed_batches
    assert run.requests == healthy_batches + failed_batches * attempts, where + "requests"


def check_out_of_patience(run: Run, failed_batches: int) -> None:
    """A call whose failing batches were refused until their patience ran out."""
    where = f"{run.lane}: "
    error = run.error
    failures = (
        [(error.attempts, error.refusals, error)]
        if run.shape == "single" and isinstance(error, OrganikError)
        else [(f.attempts, f.refusals, f.error) for f in getattr(error, "failures", [])]
    )
    assert len(failures) == failed_batches, where + repr(error)
    for attempts, refusals, cause in failures:
        assert type(cause) is RateLimitError, where + repr(cause)
        assert attempts == refusals > 1, where + repr(cause)
        assert f"pushback_timeout={PATIENCE:g} s" in str(cause), where + repr(cause)
    healthy = len(batches(run.ids)) - failed_batches if run.shape == "bulk" else 0
    assert run.requests == healthy + sum(a for a, _, _ in failures), where + "requests"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
async def test_every_fault_gives_every_row_or_a_typed_error_naming_the_failed_ids(
    name: str,
) -> None:
    case = CASES[name]
    fakes = {lane.name: FakeOrganikAPI(DATASET) for lane in LANES}
    results: dict[str, list[Run]] = {}

    async def lane_task(base_url: str, lane: Lane) -> None:
        results[lane.name] = await drive(case, base_url, lane, fakes[lane.name])

    with instant_retries() as waits, anyio.fail_after(60):
        async with serve(Lanes(fakes), shutdown_timeout=1) as base_url:
            async with anyio.create_task_group() as tg:
                for lane in LANES:
                    tg.start_soon(lane_task, base_url, lane)

    assert sorted(results) == sorted(fakes)
    for runs in results.values():
        for run in runs:
            assert run.server_in_flight == 0, f"{run.lane}: a request still in flight"
            assert run.client_in_flight == 0, f"{run.lane}: a pool still lent"
        first = runs[0]
        bulk = first.shape == "bulk"
        if case.outcome == "harmless":
            check_all_rows(first)
            assert first.progress is not None
            assert first.progress.retries == 0
            assert first.requests == len(batches(first.ids))
        elif case.outcome == "retried":
            recovered, exhausted = runs
            check_all_rows(recovered)
            assert recovered.progress is not None
            assert recovered.faults == len(TRANSIENT[first.shape]), first.lane
            assert recovered.progress.retries == recovered.faults, first.lane
            assert recovered.requests == len(batches(first.ids)) + recovered.faults
            failing = len(batches(first.ids)) - HEALTHY_BATCHES if bulk else 1
            check_failed(exhausted, case, failing, MAX_RETRIES + 1)
            assert exhausted.faults == failing * (MAX_RETRIES + 1), first.lane
        elif case.outcome == "refused":
            recovered, exhausted = runs
            check_all_rows(recovered)
            assert recovered.progress is not None
            assert recovered.faults == len(TRANSIENT[first.shape]), first.lane
            assert recovered.progress.refusals == recovered.faults, first.lane
            assert recovered.progress.retries == 0, first.lane  # refusals spend no retries
            failing = len(batches(first.ids)) - HEALTHY_BATCHES if bulk else 1
            check_out_of_patience(exhausted, failing)
        elif case.outcome == "permanent":
            check_failed(first, case, len(TRANSIENT[first.shape]), 1)
            assert first.faults == len(TRANSIENT[first.shape])
        else:
            assert type(first.error) is AuthenticationError, f"{first.lane}: {first.error!r}"
            assert first.faults >= 1
    if case.retry_after is not None:
        assert waits
        assert set(waits) == {case.retry_after}  # the server's Retry-After, honoured
