"""``dedupe``'s promise, whatever the provider answers.

With ``dedupe`` (the default) each input ID is sent once and each row is
yielded once, unique by ``gsm_track_id`` (``"123"`` and ``123`` are one ID)
across batches and ID kinds. The engine keeps that promise in less memory
than two sets (a GSM track ID read waits for its row, then stands for it), so
these tests feed it answers a faithful provider never gives: a row repeated
within a batch and across batches, a row no ID asked for, a row asked for in
another batch or under another kind, an ID answered by nothing, track IDs as
numbers and as strings. Every row the provider sent is yielded exactly once;
nothing else is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from organik_async import BatchResult, DetailedReport, OrganikClient
from tests.helpers.provider import KEY, SEED_ROW, rows_answer

pytestmark = pytest.mark.anyio

Id = int | str
TRACKS = range(1, 9)
"""The canonical ``gsm_track_id`` values of rows (asked for by GSM track ID or not)."""
TX = [100, 101, 102, 103]
DELIVERY = ["d0", "d1", "d2", "d3"]
SCRIPT_KEYS: list[tuple[str, Id]] = [
    *(("gsm_track_ids", k) for k in TRACKS),
    *(("transaction_ids", t) for t in TX),
    *(("delivery_track_ids", d) for d in DELIVERY),
]
Script = dict[tuple[str, Id], list[Id]]
"""What the provider answers for each ID it is asked: the ``gsm_track_id`` of each row."""
RowId = tuple[int, Id]
"""Which answer a row is (its ``gsm`` field, unique per answer slot) and its canonical track ID."""


def canonical(value: Id) -> Id:
    return int(value) if isinstance(value, str) and value.isdigit() else value


def either_form(k: int) -> st.SearchStrategy[Id]:
    return st.sampled_from([k, str(k)])


any_track: st.SearchStrategy[Id] = st.sampled_from(list(TRACKS)).flatmap(either_form)
any_answer = st.lists(any_track, max_size=3)
scripts: st.SearchStrategy[Script] = st.fixed_dictionaries(
    {
        # A GSM track ID is mostly answered by its own row, as a provider would.
        key: st.one_of(st.just([key[1]]), any_answer) if key[0] == "gsm_track_ids" else any_answer
        for key in SCRIPT_KEYS
    }
)


@dataclass
class Provider:
    """A MockTransport handler answering each asked ID with its scripted rows."""

    script: Script
    requests: list[dict[str, list[Id]]] = field(default_factory=list)
    answers: list[list[RowId]] = field(default_factory=list)

    def rows_for(self, kind: str, asked: Id) -> list[dict[str, Any]]:
        slot = SCRIPT_KEYS.index((kind, canonical(asked)))
        rows = []
        for position, track in enumerate(self.script[(kind, canonical(asked))]):
            # The gsm field tells which answer slot a row is, so that two rows of one
            # gsm_track_id differ and the test can tell which one was yielded.
            row = dict(SEED_ROW, gsm_track_id=track, gsm=905_000_000_000 + 10 * slot + position)
            if kind == "transaction_ids":
                row["transaction_id"] = asked
            if kind == "delivery_track_ids":
                row["delivery_track_id"] = asked
            rows.append(row)
        return rows

    def __call__(self, request: httpx.Request) -> httpx.Response:
        data: dict[str, list[Id]] = json.loads(request.content)["data"]
        rows = [row for kind, ids in data.items() for i in ids for row in self.rows_for(kind, i)]
        self.requests.append(data)
        self.answers.append([(row["gsm"], canonical(row["gsm_track_id"])) for row in rows])
        return httpx.Response(200, content=rows_answer(*rows))


def row_id(row: DetailedReport) -> RowId:
    return row.gsm, canonical(row.gsm_track_id)


def client_for(provider: Provider, batch_size: int, concurrency: int) -> OrganikClient:
    return OrganikClient(
        KEY,
        request_format="json",
        response_format="json",
        transport=httpx.MockTransport(provider),
        backoff_base=0,
        batch_sizes=batch_size,
        max_concurrency=concurrency,
    )


async def fetch(
    provider: Provider,
    mode: str,
    inputs: dict[str, list[Id]],
    *,
    lazy: bool,
    batch_size: int,
    concurrency: int,
) -> tuple[list[DetailedReport], list[BatchResult]]:
    arguments: Any = {kind: iter(ids) if lazy else ids for kind, ids in inputs.items()}
    arguments = arguments or {"transaction_ids": []}  # no ID argument at all is a TypeError
    rows: list[DetailedReport] = []
    results: list[BatchResult] = []
    client = client_for(provider, batch_size, concurrency)
    with anyio.fail_after(10):
        async with client:
            if mode == "detailed_report":
                rows = await client.detailed_report(**arguments)
            elif mode == "iter_detailed_report":
                async with client.iter_detailed_report(**arguments) as stream:
                    rows = [row async for row in stream]
            else:
                async with client.iter_batches(**arguments) as batches:
                    results = [result async for result in batches]
                rows = [row for result in results for row in result.rows]
    return rows, results


def distinct(ids: Iterable[Id]) -> list[Id]:
    return list(dict.fromkeys(canonical(i) for i in ids))


def first_of_each_track(rows: Iterable[RowId]) -> list[RowId]:
    seen: set[Id] = set()
    first = []
    for row in rows:
        if row[1] not in seen:
            seen.add(row[1])
            first.append(row)
    return first


def faithful(**changes: list[Id]) -> Script:
    """Each GSM track ID answered by its own row, other IDs by none, except ``changes``."""
    script: Script = {key: [key[1]] if key[0] == "gsm_track_ids" else [] for key in SCRIPT_KEYS}
    for name, tracks in changes.items():
        kind, _, value = name.rpartition("_")
        script[(f"{kind}s", int(value) if value.isdigit() else value)] = tracks
    return script


@pytest.mark.slow
@example(
    gsm=[1, 2],
    tx=[],
    delivery=[],
    script=faithful(gsm_track_id_1=[2]),
    mode="detailed_report",
    lazy=True,
    batch_size=1,
    concurrency=1,
).via("a row answered to an ID of another batch, before that batch")
@example(
    gsm=[2, 1],
    tx=[],
    delivery=[],
    script=faithful(gsm_track_id_1=[2, "2"]),
    mode="iter_batches",
    lazy=True,
    batch_size=1,
    concurrency=1,
).via("a row answered to an ID of another batch, after that batch")
@example(
    gsm=["3"],
    tx=[100],
    delivery=[],
    script=faithful(transaction_id_100=[3]),
    mode="iter_detailed_report",
    lazy=True,
    batch_size=1,
    concurrency=1,
).via("a row reached through a transaction, then read as a GSM track ID")
@example(
    gsm=[],
    tx=[100, 101],
    delivery=[],
    script=faithful(transaction_id_100=[5], transaction_id_101=["5", 6]),
    mode="iter_batches",
    lazy=False,
    batch_size=1,
    concurrency=1,
).via("a row no GSM track ID asked for, answered in two batches")
@example(
    gsm=[],
    tx=[100, 101],
    delivery=[],
    script=faithful(transaction_id_100=[5], transaction_id_101=[6, 5]),
    mode="detailed_report",
    lazy=False,
    batch_size=1,
    concurrency=1,
).via("a row no GSM track ID asked for, answered in two batches, as numbers")
@example(
    gsm=[1],
    tx=[100],
    delivery=[],
    script=faithful(transaction_id_100=[5], gsm_track_id_1=[1, 5]),
    mode="detailed_report",
    lazy=True,
    batch_size=1,
    concurrency=1,
).via("a GSM track ID's answer holding a row already yielded through a transaction")
@example(
    gsm=[5, "5", 6],
    tx=[],
    delivery=[],
    script=faithful(),
    mode="detailed_report",
    lazy=False,
    batch_size=3,
    concurrency=1,
).via("one ID as a number and as a string in one batch")
@example(
    gsm=[4],
    tx=[],
    delivery=[],
    script=faithful(gsm_track_id_4=[4, 4]),
    mode="iter_detailed_report",
    lazy=False,
    batch_size=1,
    concurrency=1,
).via("a row repeated within its batch, as numbers")
@example(
    gsm=[4],
    tx=[],
    delivery=[],
    script=faithful(gsm_track_id_4=[4, "4", 4]),
    mode="iter_detailed_report",
    lazy=False,
    batch_size=2,
    concurrency=1,
).via("a row repeated within its batch")
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    gsm=st.lists(any_track, max_size=8),
    tx=st.lists(st.sampled_from(TX), max_size=4),
    delivery=st.lists(st.sampled_from(DELIVERY), max_size=3),
    script=scripts,
    mode=st.sampled_from(["detailed_report", "iter_detailed_report", "iter_batches"]),
    lazy=st.booleans(),
    batch_size=st.integers(1, 4),
    concurrency=st.integers(1, 3),
)
async def test_every_row_the_provider_sent_is_yielded_exactly_once(
    gsm: list[Id],
    tx: list[Id],
    delivery: list[Id],
    script: Script,
    mode: str,
    lazy: bool,
    batch_size: int,
    concurrency: int,
) -> None:
    provider = Provider(script)
    given_ids = (("transaction_ids", tx), ("delivery_track_ids", delivery), ("gsm_track_ids", gsm))
    inputs = {kind: ids for kind, ids in given_ids if ids}
    rows, results = await fetch(
        provider, mode, inputs, lazy=lazy, batch_size=batch_size, concurrency=concurrency
    )

    yielded = [row_id(row) for row in rows]
    tracks = [track for _, track in yielded]
    sent = {row for answer in provider.answers for row in answer}
    assert len(tracks) == len(set(tracks)), "a gsm_track_id yielded twice"
    assert set(tracks) == {track for _, track in sent}, "a gsm_track_id the provider sent is lost"
    assert set(yielded) <= sent, "a row the provider never sent"

    for kind, ids in inputs.items():
        asked = [i for request in provider.requests for i in request.get(kind, [])]
        assert len(distinct(asked)) == len(asked), "an input ID sent twice"
        assert set(distinct(asked)) == set(distinct(ids)), "an input ID not sent"

    for result in results:  # iter_batches: a batch's rows come from its own request's answer
        answer = next(
            answer
            for request, answer in zip(provider.requests, provider.answers, strict=True)
            if distinct(request.get(result.kind, [])) == distinct(result.ids)
        )
        assert {row_id(row) for row in result.rows} <= set(answer)

    if mode == "detailed_report" and len(inputs) == 1:
        # The documented order: batches in input order, each as the provider sent it,
        # each gsm_track_id where it first appears.
        ((kind, ids),) = inputs.items()
        place = {key: n for n, key in enumerate(distinct(ids))}
        answered = sorted(
            zip(provider.requests, provider.answers, strict=True),
            key=lambda pair: place[canonical(pair[0][kind][0])],
        )
        assert yielded == first_of_each_track(row for _, answer in answered for row in answer)


async def test_an_id_read_again_after_its_row_was_yielded_is_not_sent_again() -> None:
    provider = Provider(faithful())
    first_row = anyio.Event()

    async def ids() -> AsyncIterator[Id]:
        yield 1
        await first_row.wait()  # read on only once the row of 1 has been yielded
        yield "1"
        yield 2

    tracks = []
    with anyio.fail_after(10):
        async with client_for(provider, batch_size=1, concurrency=1) as client:
            async with client.iter_detailed_report(gsm_track_ids=ids()) as rows:
                async for row in rows:
                    tracks.append(row.gsm_track_id)
                    first_row.set()
    assert tracks == [1, 2]
    assert [request["gsm_track_ids"] for request in provider.requests] == [[1], [2]]
