"""``with_raw_response``: the answer to a call of one request as it came, key masked.

The status, headers and body are what the server sent (decompressed), on every backend;
``parse()`` gives the rows the plain call gives; retries and errors behave as the plain
call's; IDs that do not fit in one request are refused before anything is sent; the
key is masked wherever the wire echoed it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from organik_async import (
    AuthenticationError,
    HttpBackend,
    OrganikClient,
    RawResponse,
    SyncOrganikClient,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve
from tests.helpers.provider import KEY

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

DATASET = Dataset.generate(500, seed=8)
TX = DATASET.transaction_ids
GSM = list(DATASET.gsm_track_ids())


@pytest.mark.slow
async def test_the_answer_is_what_the_server_sent_on_every_backend(
    http_backend: HttpBackend,
) -> None:
    fake = FakeOrganikAPI(DATASET)
    async with (
        serve(fake) as url,
        OrganikClient(fake.api_key, base_url=url, http_backend=http_backend) as client,
    ):
        raw = await client.with_raw_response.detailed_report(transaction_ids=TX[:2])
        rows = await client.detailed_report(transaction_ids=TX[:2])
    assert isinstance(raw, RawResponse)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert int(raw.headers["content-length"]) == len(raw.content)
    assert raw.text.startswith("{")
    assert raw.parse() == rows == fake.expected(transaction_ids=TX[:2])
    assert raw.url == f"{url}/v2/***/detailedreport/json/"
    assert (raw.method, raw.attempts, raw.request.id_count) == ("POST", 1, 2)
    assert raw.elapsed > 0
    assert fake.api_key not in repr(raw)


async def test_it_is_the_answer_that_brought_the_rows_after_retries() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(93, on_requests={1, 2})])
    async with fake.client(response_format="xml") as client:
        raw = await client.with_raw_response.detailed_report(gsm_track_ids=GSM[:3])
    assert raw.attempts == 3
    assert raw.content.startswith(b"<?xml")
    assert raw.parse() == fake.expected(gsm_track_ids=GSM[:3], response_format="xml")


async def test_ids_that_need_more_than_one_request_are_refused_before_sending() -> None:
    fake = FakeOrganikAPI(DATASET)
    sent: list[int | str] = []

    def ids() -> Iterator[int | str]:
        for value in GSM:
            sent.append(value)
            yield value

    async with fake.client(batch_sizes=10) as client:
        with pytest.raises(ValueError, match="fit in one request"):
            await client.with_raw_response.detailed_report(gsm_track_ids=GSM[:11])
        with pytest.raises(ValueError, match="fit in one request"):
            await client.with_raw_response.detailed_report(gsm_track_ids=ids())
        assert len(sent) == 11  # a lazy input is read no further than needed to tell
        with pytest.raises(ValueError, match="fit in one request"):
            await client.with_raw_response.detailed_report(
                gsm_track_ids=GSM[:9],
                transaction_ids=TX[:2],  # 0.9 + 0.2 requests
            )
        with pytest.raises(ValueError, match="at least one ID"):
            await client.with_raw_response.detailed_report()
        mixed = await client.with_raw_response.detailed_report(
            gsm_track_ids=[*GSM[:5], *GSM[:5]], transaction_ids=TX[:1], batch_sizes=20
        )
    assert fake.stats.requests == 1  # only the last call sent anything
    assert mixed.request.id_count == 6  # each ID once
    assert mixed.parse() == expected_mixed(fake, GSM[:5], TX[:1])


def expected_mixed(fake: FakeOrganikAPI, gsm: list[int | str], tx: list[int]) -> object:
    """A call of both kinds: the transactions' rows, then the other tracks' rows."""
    return fake.expected(transaction_ids=tx) + [
        row
        for row in fake.expected(gsm_track_ids=gsm)
        if row not in fake.expected(transaction_ids=tx)
    ]


async def test_an_async_input_is_read_and_closed() -> None:
    fake = FakeOrganikAPI(DATASET)
    closed: list[bool] = []

    async def ids() -> AsyncIterator[int]:
        try:
            for value in TX[:3]:
                yield value
        finally:
            closed.append(True)

    async with fake.client() as client:
        raw = await client.with_raw_response.detailed_report(transaction_ids=ids())
    assert raw.parse() == fake.expected(transaction_ids=TX[:3])
    assert closed == [True]


async def test_errors_are_the_plain_calls() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(98)])
    async with fake.client() as client:
        with pytest.raises(AuthenticationError):
            await client.with_raw_response.detailed_report(transaction_ids=TX[:1])
        with pytest.raises(TypeError, match="unexpected keyword"):
            await client.with_raw_response.detailed_report(transaction_ids=TX[:1], nope=1)  # type: ignore[call-arg]


async def test_the_key_is_masked_where_the_answer_echoed_it() -> None:
    fake = FakeOrganikAPI(DATASET, api_keys=[KEY])

    async def echo(request: httpx.Request) -> httpx.Response:
        answer = await fake.transport().handle_async_request(request)
        body = (await answer.aread()).replace(b'"result"', f'"{KEY.upper()}":1,"result"'.encode())
        return httpx.Response(
            200,
            headers={"content-type": "application/json", "x-echo": f"/v2/{KEY}/", KEY: "x"},
            content=body,
        )

    async with OrganikClient(
        KEY, base_url="http://organik.test", transport=httpx.MockTransport(echo)
    ) as client:
        raw = await client.with_raw_response.detailed_report(transaction_ids=TX[:1])
    assert raw.headers["x-echo"] == "/v2/***/"
    assert "***" in raw.headers
    assert b'"***":1' in raw.content
    shown = (repr(raw) + str(raw.headers) + raw.text + raw.url).lower()
    key = KEY.lower()
    assert [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in shown] == []
    assert raw.parse() == fake.expected(transaction_ids=TX[:1])


def test_the_blocking_client_has_it_too() -> None:
    fake = FakeOrganikAPI(DATASET)
    read: list[int | str] = []

    def ids() -> Iterator[int | str]:
        for value in GSM:
            read.append(value)
            yield value

    with SyncOrganikClient(
        fake.api_key, base_url="http://organik.test", transport=fake.transport()
    ) as client:
        raw = client.with_raw_response.detailed_report(transaction_ids=iter(TX[:2]))
        with pytest.raises(ValueError, match="fit in one request"):
            client.with_raw_response.detailed_report(gsm_track_ids=ids(), batch_sizes=10)
    assert raw.status_code == 200
    assert raw.parse() == fake.expected(transaction_ids=TX[:2])
    assert len(read) == 11  # read no further than needed to tell
