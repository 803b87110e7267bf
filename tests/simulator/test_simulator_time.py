"""Time passes at the simulator: pending rows become final, on a clock the test drives."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from organik_async import DetailedReport, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, ManualClock, serve
from organik_async.testing.__main__ import build, parse_args
from tests.helpers.paths import DOCS

DATASET = Dataset.generate(3_000, seed=71, max_transaction_rows=200, in_progress_share=0.3)
TX = DATASET.transaction_ids
START = datetime(2024, 1, 1, 12, 0, 0)
PATH = f"/v2/{DEMO_API_KEY}/detailedreport/"


def pending(rows: list[DetailedReport]) -> list[DetailedReport]:
    return [row for row in rows if row.status in (0, 1)]


def simulator(
    finalize_after: float | tuple[float, float] | None = (60.0, 600.0), seed: int = 0
) -> tuple[FakeOrganikAPI, ManualClock]:
    clock = ManualClock()
    return FakeOrganikAPI(DATASET, clock=clock, finalize_after=finalize_after, seed=seed), clock


# -- the clock ------------------------------------------------------------------------------


def test_manual_clock_starts_at_a_fixed_time_and_moves_only_forward() -> None:
    clock = ManualClock()
    assert clock() == clock.now() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(seconds=3_690)
    assert clock() == START + timedelta(seconds=3_690)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    assert "2024-01-01 13:01:30" in repr(clock)


def test_manual_clock_takes_an_aware_start_in_provider_time() -> None:
    assert ManualClock(datetime(2024, 6, 1, 9, 0, tzinfo=UTC))() == datetime(2024, 6, 1, 12, 0)


# -- rows becoming final ----------------------------------------------------------------------


def test_the_dataset_has_pending_rows_to_begin_with() -> None:
    assert len(pending(list(DATASET))) > 300


def test_without_finalize_after_rows_never_change() -> None:
    fake, clock = simulator(finalize_after=None)
    clock.advance(timedelta(days=365))
    assert fake.finalize_after is None
    assert fake.expected(transaction_ids=TX) == DATASET.expected(transaction_ids=TX)


def test_no_row_is_final_before_the_shortest_delay_and_all_are_after_the_longest() -> None:
    fake, clock = simulator()
    stored = DATASET.expected(transaction_ids=TX)
    assert fake.expected(transaction_ids=TX) == stored
    clock.advance(59)
    early = fake.expected(transaction_ids=TX)
    # Only handovers so far: rows not sent yet may be with the operator (0 -> 1).
    assert [row.status in (0, 1) for row in early] == [row.status in (0, 1) for row in stored]
    assert early != stored
    clock.advance(600 - 59)
    final = fake.expected(transaction_ids=TX)
    assert not pending(final)
    assert len(final) == len(stored)
    for before, after in zip(stored, final, strict=True):
        assert after.gsm_track_id == before.gsm_track_id
        if before.status in (2, 3, 4):
            assert after == before  # what was final does not move
            continue
        assert after.status in (2, 3, 4)
        assert after.finish_date is not None
        assert START + timedelta(seconds=60) <= after.finish_date <= START + timedelta(seconds=600)
        assert after.finish_date >= after.start_date
        assert after.sms_count >= 1
        assert after.credit_amount == (0 if after.is_foreign_gsm else after.sms_count)
        assert (after.errorcode != 0) == (after.status in (3, 4))
    statuses = Counter(row.status for row in final if row.status != 0)
    assert statuses[2] > statuses[3] + statuses[4] > 0  # most are delivered, some fail


def test_a_fixed_delay_finalizes_every_pending_row_at_that_moment() -> None:
    fake, clock = simulator(finalize_after=120.0)
    clock.advance(119.5)
    assert len(pending(fake.expected(transaction_ids=TX))) > 0
    clock.advance(0.5)
    assert not pending(fake.expected(transaction_ids=TX))


@pytest.mark.slow
def test_a_row_not_sent_yet_is_handed_to_the_operator_before_it_is_final() -> None:
    fake, clock = simulator()
    first = {row.gsm_track_id: row.status for row in DATASET}
    seen: dict[int | str, list[int]] = {track: [status] for track, status in first.items()}
    for _ in range(60):
        clock.advance(10)
        for row in fake.expected(transaction_ids=TX):
            if row.status != seen[row.gsm_track_id][-1]:
                seen[row.gsm_track_id].append(row.status)
    paths = Counter(
        tuple(0 if s == 0 else 1 if s == 1 else 9 for s in statuses) for statuses in seen.values()
    )
    # Never backwards, always ending final; a handover and the end can fall in one step.
    assert set(paths) <= {(9,), (1, 9), (0, 1, 9), (0, 9)}
    assert paths[0, 1, 9] > paths[0, 9] > 0


def test_the_delays_are_drawn_from_the_seed() -> None:
    def final_after(seed: int) -> list[DetailedReport]:
        fake, clock = simulator(seed=seed)
        clock.advance(300)
        return fake.expected(transaction_ids=TX)

    assert final_after(5) == final_after(5)
    assert final_after(5) != final_after(6)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    steps=st.lists(st.floats(0, 400, allow_nan=False), min_size=1, max_size=6),
)
def test_a_row_only_moves_forward_and_a_final_row_never_changes(
    seed: int, steps: list[float]
) -> None:
    fake, clock = simulator(seed=seed)
    previous = {row.gsm_track_id: row for row in DATASET.expected(transaction_ids=TX[:40])}
    for step in steps:
        clock.advance(step)
        for row in fake.expected(transaction_ids=TX[:40]):
            before = previous[row.gsm_track_id]
            if before.status in (2, 3, 4):
                assert row == before
            else:
                assert row.status >= before.status
                assert (row.finish_date is None) == (row.status in (0, 1))
            previous[row.gsm_track_id] = row


@pytest.mark.slow
def test_simulators_sharing_a_dataset_each_keep_their_own_time() -> None:
    ids = TX[:40]
    fakes = [simulator(seed=seed) for seed in range(12)]  # more than the dataset keeps
    for steps, (_, clock) in enumerate(fakes):
        clock.advance(60 * steps)
    first = [fake.expected(transaction_ids=ids) for fake, _ in fakes]
    again = [fake.expected(transaction_ids=ids) for fake, _ in reversed(fakes)]
    assert first == list(reversed(again))
    assert first[0] == DATASET.expected(transaction_ids=ids)
    assert not pending(first[-1])
    assert len({str(rows) for rows in first}) == len(fakes)


# -- what a client sees ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_every_id_kind_and_format_sees_the_same_evolved_rows() -> None:
    fake, clock = simulator()
    clock.advance(200)  # some rows final, some still pending
    ids = TX[:30]
    expected = fake.expected(transaction_ids=ids)
    assert pending(expected)
    assert [r for r in expected if r.status in (2, 3, 4)] != [
        r for r in DATASET.expected(transaction_ids=ids) if r.status in (2, 3, 4)
    ]
    tracks = [row.gsm_track_id for row in expected]
    deliveries = list(dict.fromkeys(str(row.delivery_track_id) for row in expected))
    async with fake.client(batch_sizes=50) as json_client:
        by_transaction = await json_client.detailed_report(transaction_ids=ids)
        by_delivery = await json_client.detailed_report(delivery_track_ids=deliveries)
        by_track = await json_client.detailed_report(gsm_track_ids=tracks)
    async with fake.client(batch_sizes=50, response_format="xml") as xml_client:
        as_xml = await xml_client.detailed_report(gsm_track_ids=tracks)

    def key(rows: list[DetailedReport]) -> list[DetailedReport]:
        return sorted(rows, key=lambda row: str(row.gsm_track_id))

    assert key(by_transaction) == key(by_delivery) == key(by_track) == key(expected)
    assert key(as_xml) == key(fake.expected(gsm_track_ids=tracks, response_format="xml"))


async def follow_until_final(
    client: OrganikClient, clock: ManualClock, transaction_ids: list[int]
) -> tuple[dict[int | str, DetailedReport], int]:
    """What the client's coming "follow until final" will do, by hand: ask again,
    by gsm_track_id, only for the rows still pending, as time passes."""
    rows = {
        row.gsm_track_id: row
        for row in await client.detailed_report(transaction_ids=transaction_ids)
    }
    rounds = 1
    while waiting := [track for track, row in rows.items() if row.status in (0, 1)]:
        clock.advance(45)
        rows.update(
            (row.gsm_track_id, row) for row in await client.detailed_report(gsm_track_ids=waiting)
        )
        rounds += 1
    return rows, rounds


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("over_tcp", [False, True], ids=["in-process", "tcp"])
async def test_following_a_campaign_by_gsm_track_id_until_every_row_is_final(
    over_tcp: bool,
) -> None:
    fake, clock = simulator()
    campaign = [t for t in TX if pending(DATASET.expected(transaction_ids=[t]))][:5]
    with anyio.fail_after(60):
        if over_tcp:
            async with (
                serve(fake) as url,
                fake.client(base_url=url, transport=None, batch_sizes=50) as client,
            ):
                rows, rounds = await follow_until_final(client, clock, campaign)
        else:
            async with fake.client(batch_sizes=50) as client:
                rows, rounds = await follow_until_final(client, clock, campaign)
    assert 2 <= rounds <= 600 // 45 + 2
    final = fake.expected(transaction_ids=campaign)
    assert not pending(final)
    assert sorted(rows.values(), key=lambda r: str(r.gsm_track_id)) == sorted(
        final, key=lambda r: str(r.gsm_track_id)
    )


@pytest.mark.slow
@pytest.mark.anyio
async def test_answers_follow_every_change_and_are_reused_while_nothing_changes() -> None:
    fake, clock = simulator()
    ids = TX[:25]
    body = {"data": {"transaction_ids": ids}}
    async with (
        fake.client() as client,
        httpx.AsyncClient(transport=fake.transport(), base_url="http://x") as http,
    ):
        changes = 0
        previous = b""
        for _ in range(40):
            assert await client.detailed_report(transaction_ids=ids) == fake.expected(
                transaction_ids=ids
            )
            first = (await http.post(PATH, json=body)).content
            assert (await http.post(PATH, json=body)).content == first
            changes += first != previous
            previous = first
            clock.advance(17)
    assert changes > 10
    assert b'"status":0' not in previous
    assert b'"status":1' not in previous


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [-1.0, (10.0, 5.0), (-1.0, 5.0), float("nan"), True, "60", ("1", 2), (1, 2, 3)],
    ids=["negative", "backwards", "negative low", "nan", "bool", "str", "str low", "triple"],
)
def test_finalize_after_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="finalize_after"):
        FakeOrganikAPI(DATASET, finalize_after=bad)  # type: ignore[arg-type]


def test_command_line_sets_finalize_after() -> None:
    fake = build(parse_args(["serve", "--rows", "100", "--finalize-after", "5:60"]))
    assert fake.finalize_after == (5.0, 60.0)
    assert (
        build(parse_args(["serve", "--rows", "100", "--finalize-after", "30"])).finalize_after
        == 30.0
    )
    assert build(parse_args(["serve", "--rows", "100"])).finalize_after is None
    with pytest.raises(SystemExit):
        parse_args(["serve", "--finalize-after", "9:3"])


def test_the_documented_example_of_time_passing_runs_as_written() -> None:
    page = (DOCS / "simulator.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    (example,) = [block for block in blocks if "ManualClock()" in block]
    exec(compile(example, "docs/simulator.md", "exec"), {})  # its asserts are the test
