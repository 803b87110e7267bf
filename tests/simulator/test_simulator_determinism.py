"""A seed names a server: two servers built with one seed answer byte for byte alike."""

from __future__ import annotations

from datetime import datetime

import anyio
import httpx
import pytest

from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve

pytestmark = pytest.mark.anyio

CLOCK = datetime(2024, 1, 2, 3, 4, 5)


def build(seed: int) -> FakeOrganikAPI:
    return FakeOrganikAPI(
        Dataset.generate(2_500, seed=seed),
        faults=[
            Fault.provider_error(93, probability=0.2),
            Fault.truncate(0.4, probability=0.1),
            Fault.status(503, probability=0.1),
        ],
        seed=seed,
        clock=lambda: CLOCK,
    )


def requests_for(fake: FakeOrganikAPI) -> list[tuple[str, dict[str, object]]]:
    """A mix of formats and ID kinds, derived from the dataset itself."""
    dataset = fake.dataset
    tracks = list(dataset.gsm_track_ids())
    plan: list[tuple[str, dict[str, object]]] = []
    for i, transaction in enumerate(dataset.transaction_ids):
        path = ("json/", "json/xml/", "")[i % 3]
        plan.append((path, {"transaction_ids": [transaction]}))
        plan.append((path, {"gsm_track_ids": tracks[i * 37 : i * 37 + 20]}))
        plan.append(
            (path, {"delivery_track_ids": [dataset.delivery_track_ids[i]], "transaction_ids": [1]})
        )
    plan.append(("json/", {"transaction_ids": [1]}))  # 87, with its time from the clock
    return plan


async def answers(http: httpx.AsyncClient, fake: FakeOrganikAPI) -> list[tuple[int, bytes]]:
    result = []
    for path, data in requests_for(fake):
        response = await http.post(f"/v2/{DEMO_API_KEY}/detailedreport/{path}", json={"data": data})
        result.append((response.status_code, response.content))
    return result


async def in_process(fake: FakeOrganikAPI) -> list[tuple[int, bytes]]:
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://organik.test"
    ) as http:
        return await answers(http, fake)


async def test_two_servers_with_one_seed_give_byte_identical_answers() -> None:
    first = await in_process(build(7))
    second = await in_process(build(7))
    assert first == second
    statuses = {status for status, _ in first}
    assert statuses == {200, 503}  # the faults did fire, identically
    assert any(b'"code":93' in body for _, body in first)


@pytest.mark.slow
async def test_a_served_server_answers_like_an_in_process_one() -> None:
    expected = await in_process(build(7))
    fake = build(7)
    with anyio.fail_after(30):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            assert await answers(http, fake) == expected


@pytest.mark.slow
async def test_another_seed_gives_other_answers() -> None:
    assert await in_process(build(7)) != await in_process(build(8))
