"""The bulk engine's invariant, under random ID sets, sizes, concurrency and faults.

Every input ID ends up in exactly one place: a successful request, a reported
failure, or (after ``fail_fast``) the cancelled / not-attempted lists. No ID
is sent twice except by a retry.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from organik_async import (
    AuthenticationError,
    BatchFailure,
    BatchResult,
    BulkReportError,
    OrganikError,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(1_500, seed=11, max_transaction_rows=60)
TX = DATASET.transaction_ids

FAULTS = {
    "500": lambda on: Fault.status(500, on_requests=on),
    "503-retry-after": lambda on: Fault.status(503, retry_after=0, on_requests=on),
    "400": lambda on: Fault.status(400, on_requests=on),
    "code-94": lambda on: Fault.provider_error(94, on_requests=on),
    "code-97": lambda on: Fault.provider_error(97, on_requests=on),
    "malformed": lambda on: Fault.malformed(on_requests=on),
    "truncate": lambda on: Fault.truncate(on_requests=on),
    "disconnect": lambda on: Fault.disconnect(on_requests=on),
}

fault_scripts = st.lists(
    st.tuples(st.sampled_from(sorted(FAULTS)), st.sets(st.integers(1, 30), max_size=6)),
    max_size=3,
)


@pytest.mark.slow
@example(
    ids=TX[:2],
    batch_size=1,
    concurrency=2,
    max_retries=2,
    script=[("500", {1, 2, 3, 4, 5})],
    fail_fast=True,
).via("a batch cancelled after two attempts must report them")
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ids=st.lists(st.sampled_from(TX), max_size=40),
    batch_size=st.integers(1, 8),
    concurrency=st.integers(1, 6),
    max_retries=st.integers(0, 2),
    script=fault_scripts,
    fail_fast=st.booleans(),
)
async def test_every_id_is_accounted_for_exactly_once(
    ids: list[int],
    batch_size: int,
    concurrency: int,
    max_retries: int,
    script: list[tuple[str, set[int]]],
    fail_fast: bool,
) -> None:
    faults = [FAULTS[name](on) for name, on in script if on]
    fake = FakeOrganikAPI(DATASET, faults=faults)
    results: list[BatchResult] = []
    failures: list[BatchFailure] = []
    async with fake.client(
        batch_sizes=batch_size,
        max_concurrency=concurrency,
        max_retries=max_retries,
        backoff_base=0,
    ) as client:
        try:
            async with client.iter_batches(transaction_ids=ids, fail_fast=fail_fast) as batches:
                async for result in batches:
                    results.append(result)
        except BulkReportError as exc:
            failures = exc.failures
            assert exc.rows == []  # the streaming API already yielded them
        except AuthenticationError:  # pragma: no cover - no fault here produces one
            raise
        except OrganikError as exc:
            # The one-request rule: only a call of a single batch raises the error as is.
            unique = list(dict.fromkeys(ids))
            assert len(unique) <= batch_size
            failures = [
                BatchFailure(0, "transaction_ids", tuple(unique), "failed", exc, exc.attempts)
            ]

    unique = list(dict.fromkeys(ids))
    placed: list[Any] = [i for r in results for i in r.ids] + [i for f in failures for i in f.ids]
    assert sorted(placed) == sorted(unique), "each ID exactly once"
    if not fail_fast:
        assert all(f.outcome == "failed" for f in failures)
    for result in results:
        assert result.rows == DATASET.expected(transaction_ids=list(result.ids))
        assert len(result.ids) <= batch_size
        # Refusals (the 503 with Retry-After) spend no max_retries: they come on top.
        assert 1 <= result.attempts - result.refusals <= max_retries + 1
    # No ID is sent twice except by a retry: what the server saw is what the
    # batches say they sent. A cancelled batch's last attempt may or may not
    # have reached the server before the cancellation.
    sent = sum(n * count for n, count in fake.stats.ids_per_request.items())
    done = sum(len(r.ids) * r.attempts for r in results) + sum(
        len(f.ids) * f.attempts for f in failures if f.outcome == "failed"
    )
    cancelled = [f for f in failures if f.outcome == "cancelled"]
    assert all(f.attempts >= 1 for f in cancelled)
    at_least = done + sum(len(f.ids) * (f.attempts - 1) for f in cancelled)
    at_most = done + sum(len(f.ids) * f.attempts for f in cancelled)
    assert at_least <= sent <= at_most
