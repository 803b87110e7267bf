"""Following a campaign until every row is final, against the simulator's clock.

Rows start pending and become final as the simulator's clock passes their
delay. ``follow_until_final`` yields each row once, when final; later rounds
ask only for the pending rows by ``gsm_track_id``; at the deadline it raises
``StillPendingError`` with what is still pending.
"""

from __future__ import annotations

import anyio
import pytest

from organik_async import DetailedReport, StillPendingError
from organik_async.testing import Dataset, FakeOrganikAPI, ManualClock

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

DATASET = Dataset.generate(
    2_000, seed=3, max_transaction_rows=50, in_progress_share=0.3, not_started_share=0.2
)
TX = DATASET.transaction_ids


def pending_share(fake: FakeOrganikAPI, ids: list[int]) -> int:
    return sum(not row.is_final for row in fake.expected(transaction_ids=ids))


async def test_rows_are_yielded_once_each_as_they_become_final() -> None:
    clock = ManualClock()
    fake = FakeOrganikAPI(DATASET, finalize_after=(60, 600), clock=clock)
    ids = TX[:20]
    assert pending_share(fake, ids) > 0  # the test follows something
    got: list[DetailedReport] = []
    async with fake.client() as client:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def drive_the_clock() -> None:
                    while True:
                        await anyio.sleep(0.005)
                        clock.advance(30)

                tg.start_soon(drive_the_clock)
                async with client.follow_until_final(
                    transaction_ids=ids, poll_interval=0.01, max_poll_interval=0.02
                ) as rows:
                    async for row in rows:
                        got.append(row)
                tg.cancel_scope.cancel()
        assert rows.rounds > 1
        assert rows.pending == []
    final = fake.expected(transaction_ids=ids)
    assert all(row.is_final for row in final)
    keys = [row.gsm_track_id for row in got]
    assert len(keys) == len(set(keys))  # each row once
    assert sorted(keys, key=str) == sorted((r.gsm_track_id for r in final), key=str)
    # Later rounds asked only for pending rows, one gsm_track_id each.
    assert fake.stats.requests > 1


async def test_later_rounds_ask_by_gsm_track_id_for_pending_rows_only() -> None:
    clock = ManualClock()
    fake = FakeOrganikAPI(DATASET, finalize_after=600, clock=clock)
    ids = TX[:10]
    pending = pending_share(fake, ids)
    assert 0 < pending <= 250
    assert pending != len(ids)
    async with fake.client() as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def after_the_first_round() -> None:
                    while fake.stats.requests < 1:  # noqa: ASYNC110 (polling the simulator)
                        await anyio.sleep(0.001)
                    clock.advance(601)  # every pending row becomes final

                tg.start_soon(after_the_first_round)
                async with client.follow_until_final(
                    transaction_ids=ids, poll_interval=0.05
                ) as rows:
                    got = [row async for row in rows]
    assert rows.rounds == 2
    # Round one: the ten transaction IDs; round two: one GSM track ID per pending row.
    assert fake.stats.ids_per_request == {len(ids): 1, pending: 1}
    assert len(got) == len(fake.expected(transaction_ids=ids))


@pytest.mark.slow
async def test_the_deadline_raises_with_the_rows_still_pending() -> None:
    fake = FakeOrganikAPI(DATASET, finalize_after=3_600, clock=ManualClock())
    ids = TX[:20]
    pending = pending_share(fake, ids)
    got: list[DetailedReport] = []
    async with fake.client() as client:
        with pytest.raises(StillPendingError) as info, anyio.fail_after(5):
            async with client.follow_until_final(
                transaction_ids=ids, poll_interval=0.05, deadline=0.3
            ) as rows:
                async for row in rows:
                    got.append(row)
        error = info.value
        assert len(error.pending) == pending
        assert all(not row.is_final for row in error.pending)
        assert len(got) + len(error.pending) == len(fake.expected(transaction_ids=ids))
        assert "still pending" in str(error)
        # Rounds backed off: 0.05, 0.1, then the deadline; a few rounds, not dozens.
        assert 2 <= rows.rounds <= 5
        again = error.pending_id_arguments
        assert set(again) == {"gsm_track_ids"}
        assert len(again["gsm_track_ids"]) == pending


async def test_bad_follow_settings_are_refused_at_the_call() -> None:
    client = FakeOrganikAPI(DATASET).client()
    for name in ("poll_interval", "max_poll_interval", "deadline"):
        with pytest.raises(ValueError, match=name):
            client.follow_until_final(transaction_ids=TX[:1], **{name: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transaction_ids"):
        client.follow_until_final(transaction_ids=["1,2"])
