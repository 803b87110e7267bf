"""max_concurrent_requests: the provider's code 93 when too many requests are handled at once.

Requests are held in the simulator with a long scripted latency, so that
which requests are admitted and which are refused does not depend on timing:
the test waits until the held ones are admitted, then sends the others.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest

from organik_async import DetailedReport
from organik_async.testing import (
    DEMO_API_KEY,
    Dataset,
    FakeOrganikAPI,
    Fault,
    ManualClock,
    Outcome,
    serve,
)
from organik_async.testing.__main__ import build, parse_args

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(1_500, seed=61, max_transaction_rows=80)
TX = DATASET.transaction_ids
PATH = f"/v2/{DEMO_API_KEY}/detailedreport/json/"
BODY = {"data": {"transaction_ids": TX[:2]}}


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll: over TCP the counters move in the server's thread, not in a task here."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def post(http: httpx.AsyncClient) -> None:
    await http.post(PATH, json=BODY)


async def held_then(
    fake: FakeOrganikAPI,
    http: httpx.AsyncClient,
    held: int,
    then: Callable[[], Awaitable[None]],
) -> None:
    """Keep ``held`` requests inside the simulator while ``then`` runs, then drop them."""
    async with anyio.create_task_group() as group:
        for _ in range(held):
            group.start_soon(post, http)
        await wait_for(lambda: fake.stats.admitted == held)
        await then()
        group.cancel_scope.cancel()


def by_track(rows: list[DetailedReport]) -> list[DetailedReport]:
    return sorted(rows, key=lambda row: (row.transaction_id, str(row.gsm_track_id)))


@pytest.mark.slow
@pytest.mark.parametrize("over_tcp", [False, True], ids=["in-process", "tcp"])
async def test_a_request_over_the_cap_is_answered_at_once_with_code_93(over_tcp: bool) -> None:
    clock = ManualClock()
    fake = FakeOrganikAPI(
        DATASET,
        max_concurrent_requests=2,
        faults=[Fault.latency(60.0, on_requests={1, 2})],  # the first two stay a minute
        clock=clock,
    )
    refused: list[httpx.Response] = []

    async def three_more() -> None:
        for _ in range(3):
            refused.append(await http.post(PATH, json=BODY))

    with anyio.fail_after(20):  # far less than the held requests' minute: "at once"
        if over_tcp:
            async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
                await held_then(fake, http, 2, three_more)
            await wait_for(lambda: fake.stats.in_flight == 0)
        else:
            async with httpx.AsyncClient(
                transport=fake.transport(), base_url="http://organik.test"
            ) as http:
                await held_then(fake, http, 2, three_more)
    for response in refused:
        assert response.status_code == 200  # as the provider sends every refusal
        error = response.json()["response"]["error"]
        assert error == {
            "message": "Too much request.",
            "number": error["number"],
            "time": "2024-01-01 12:00:00",
            "code": 93,
        }
        assert "max_concurrent_requests=2" in response.headers["x-simulator-detail"]
    assert [r.json()["response"]["error"]["number"] for r in refused] == ["3", "4", "5"]
    assert fake.stats.refused == 3
    assert fake.stats.outcomes[Outcome.REFUSED] == 3
    assert fake.stats.api_error_codes == {93: 3}
    assert fake.stats.peak_admitted == 2
    assert fake.stats.peak_in_flight == 3  # each refused one arrived while two were held
    assert fake.stats.faults == {"latency": 2}  # no fault reaches a refused request


async def test_refused_requests_are_not_read_and_a_freed_slot_admits_again() -> None:
    fake = FakeOrganikAPI(
        DATASET, max_concurrent_requests=1, faults=[Fault.latency(60.0, on_requests={1})]
    )
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://organik.test"
    ) as http:

        async def refused_then_nothing() -> None:
            refusal = await http.post(PATH, json={"data": {"transaction_ids": TX[:5]}})
            assert refusal.json()["response"]["error"]["code"] == 93

        with anyio.fail_after(20):
            await held_then(fake, http, 1, refused_then_nothing)
            after = await http.post(PATH, json=BODY)
    assert after.json()["response"]["result"] is True
    # The held and the admitted request carried 2 IDs; the refused one was not parsed.
    assert fake.stats.ids_per_request == {2: 2}
    assert fake.stats.outcomes == {Outcome.CLIENT_GONE: 1, Outcome.REFUSED: 1, Outcome.OK: 1}


async def test_the_refusal_is_in_the_requested_format() -> None:
    fake = FakeOrganikAPI(
        DATASET, max_concurrent_requests=1, faults=[Fault.latency(60.0, on_requests={1})]
    )
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://organik.test"
    ) as http:

        async def one_in_xml() -> None:
            answers.append(await http.post(PATH + "xml/", json=BODY))

        with anyio.fail_after(20):
            await held_then(fake, http, 1, one_in_xml)
    root = ET.fromstring(answers[0].content)
    assert answers[0].headers["content-type"] == "application/xml"
    assert root.findtext("result") == "0"
    assert root.findtext("error/code") == "93"
    assert root.findtext("error/message") == "Too much request."


async def test_without_a_cap_nothing_is_refused() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.05)])
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://organik.test"
    ) as http:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(12):
                    group.start_soon(post, http)
    assert fake.stats.refused == 0
    assert fake.stats.peak_admitted == 12
    assert fake.stats.outcomes == {Outcome.OK: 12}


@pytest.mark.slow
@pytest.mark.parametrize("over_tcp", [False, True], ids=["in-process", "tcp"])
async def test_our_client_retries_refusals_and_gets_every_row(over_tcp: bool) -> None:
    fake = FakeOrganikAPI(
        DATASET, max_concurrent_requests=2, faults=[Fault.latency((0.005, 0.02))], seed=4
    )
    settings = {"batch_sizes": 3, "max_concurrency": 6, "backoff_base": 0, "max_retries": 50}
    with anyio.fail_after(60):
        if over_tcp:
            async with (
                serve(fake) as url,
                fake.client(base_url=url, transport=None, **settings) as client,
            ):
                rows = await client.detailed_report(transaction_ids=TX)
        else:
            async with fake.client(**settings) as client:
                rows = await client.detailed_report(transaction_ids=TX)
    assert by_track(rows) == by_track(list(DATASET))
    assert fake.stats.refused > 0
    assert fake.stats.peak_admitted <= 2
    assert fake.stats.outcomes[Outcome.OK] == -(-len(TX) // 3)
    assert fake.stats.outcomes[Outcome.REFUSED] == fake.stats.refused


def test_max_concurrent_requests_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        FakeOrganikAPI(DATASET, max_concurrent_requests=0)


def test_command_line_sets_the_cap() -> None:
    fake = build(parse_args(["serve", "--rows", "10", "--max-concurrent", "6"]))
    assert fake.max_concurrent_requests == 6
    assert build(parse_args(["serve", "--rows", "10"])).max_concurrent_requests is None
    with pytest.raises(SystemExit):
        parse_args(["serve", "--max-concurrent", "0"])
