"""Our own OrganikClient against the simulator: the one-liner, formats, faults.

These check the wiring (fake.client(), fake.transport(), serve()) and that the
faults reach a real client as the errors the spec says they should; the
client's own behaviour is tested in its own test files.
"""

from __future__ import annotations

import anyio
import pytest

from organik_async import (
    AuthenticationError,
    DecodeError,
    DetailedReport,
    Format,
    OrganikClient,
    RateLimitError,
    TransportError,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, Outcome, serve

pytestmark = pytest.mark.anyio

# A share of sendsms-form gsm_track_ids, to check that form's round trip too.
DATASET = Dataset.generate(3_000, seed=51, string_track_id_share=0.1)
IDS = DATASET.transaction_ids[:4]


def by_track(rows: list[DetailedReport]) -> list[DetailedReport]:
    return sorted(rows, key=lambda row: (row.transaction_id, str(row.gsm_track_id)))


# -- the README example, verbatim --------------------------------------------------------


async def delivered_numbers(client: OrganikClient, transaction_ids: list[int]) -> set[int]:
    """The code under test: which numbers got the SMS."""
    rows = await client.detailed_report(transaction_ids=transaction_ids)
    return {row.gsm for row in rows if row.status == 2}


@pytest.mark.anyio
async def test_delivered_numbers_survives_a_flaky_provider() -> None:
    fake = FakeOrganikAPI(
        Dataset.generate(2_000, seed=1),
        faults=[Fault.status(503, on_requests={1})],  # the first request fails
    )
    ids = fake.dataset.transaction_ids[:5]
    async with fake.client(backoff_base=0) as client:  # no sockets, no waiting
        delivered = await delivered_numbers(client, ids)
    rows = fake.dataset.expected(transaction_ids=ids)  # what the provider holds
    assert delivered == {row.gsm for row in rows if row.status == 2}
    assert fake.stats.http_statuses[503] == 1


# -- wiring ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_format", "response_format", "wrapped", "errorcode_in"),
    [
        ("json", None, True, ("json",)),
        ("xml", None, True, ("json",)),
        ("json", "xml", True, ("json",)),
        ("xml", "xml", False, ("json",)),
        ("xml", "xml", True, ("json", "xml")),
    ],
    ids=["json", "xml", "json->xml", "xml bare", "xml with errorcode"],
)
async def test_one_liner_client_gets_exactly_the_expected_rows(
    request_format: Format,
    response_format: Format | None,
    wrapped: bool,
    errorcode_in: tuple[Format, ...],
) -> None:
    fake = FakeOrganikAPI(DATASET, xml_wrapped=wrapped, errorcode_in=errorcode_in)
    tracks = list(DATASET.gsm_track_ids())[-7:]
    async with fake.client(
        request_format=request_format, response_format=response_format
    ) as client:
        rows = await client.detailed_report(transaction_ids=IDS, gsm_track_ids=tracks)
    answer_format = response_format or request_format
    expected = fake.expected(
        transaction_ids=IDS, gsm_track_ids=tracks, response_format=answer_format
    )
    assert by_track(rows) == by_track(expected)
    assert any(isinstance(row.gsm_track_id, str) for row in rows)
    # Failed rows carry their errorcode only where the format writes it.
    failed = [row for row in rows if row.status in (3, 4)]
    assert failed
    assert all((row.errorcode != 0) == (answer_format in errorcode_in) for row in failed)


async def test_bulk_requests_respect_batch_size_and_concurrency() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency((0.005, 0.02))], seed=3)
    ids = DATASET.transaction_ids
    async with fake.client(batch_sizes=2, max_concurrency=3) as client:
        with anyio.fail_after(30):
            rows = await client.detailed_report(transaction_ids=ids)
    assert by_track(rows) == by_track(list(DATASET))
    assert fake.stats.max_ids_per_request <= 2
    assert fake.stats.peak_in_flight <= 3
    assert fake.stats.requests == -(-len(ids) // 2)


async def test_no_records_is_zero_rows() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        assert await client.detailed_report(transaction_ids=[1]) == []
    assert fake.stats.outcomes == {Outcome.NO_RECORDS: 1}


async def test_unknown_key_is_an_authentication_error() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client(api_key="e" * 32) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.detailed_report(transaction_ids=IDS[:1])
    assert caught.value.code == 99
    assert "e" * 32 not in str(caught.value)


async def test_over_the_id_limit_is_refused_with_96_and_the_client_splits() -> None:
    fake = FakeOrganikAPI(DATASET, max_ids_per_request=1)
    async with fake.client(batch_sizes=2) as client:
        rows = await client.detailed_report(transaction_ids=IDS[:2])
    assert rows == DATASET.expected(transaction_ids=IDS[:2])
    assert fake.stats.ids_per_request == {2: 1, 1: 2}


# -- faults as the client sees them ----------------------------------------------------


async def test_provider_rate_limit_is_retried_then_succeeds() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(93, on_requests={1, 2})])
    async with fake.client(backoff_base=0) as client:
        rows = await client.detailed_report(transaction_ids=IDS[:1])
    assert rows == DATASET.expected(transaction_ids=IDS[:1])
    assert fake.stats.requests == 3


async def test_http_429_past_its_patience_is_a_rate_limit_error_with_retry_after() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(7)])
    async with fake.client(max_retries=0, pushback_timeout=5) as client:
        with pytest.raises(RateLimitError) as caught:  # 7 s asked, 5 s of patience
            await client.detailed_report(transaction_ids=IDS[:1])
    assert caught.value.retry_after == 7
    assert caught.value.attempts == caught.value.refusals == 1


async def test_dropped_connection_in_process_is_a_transport_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.disconnect()])
    async with fake.client(max_retries=0) as client:
        with pytest.raises(TransportError):
            await client.detailed_report(transaction_ids=IDS[:1])


@pytest.mark.parametrize("fault", [Fault.truncate(), Fault.malformed()], ids=["cut", "malformed"])
async def test_broken_bodies_are_decode_errors(fault: Fault) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[fault])
    async with fake.client(max_retries=0) as client:
        with pytest.raises(DecodeError):
            await client.detailed_report(transaction_ids=IDS[:1])


@pytest.mark.slow
async def test_client_over_tcp_survives_drops_and_server_errors() -> None:
    fake = FakeOrganikAPI(
        DATASET,
        faults=[Fault.disconnect(on_requests={1}), Fault.status(502, on_requests={2})],
    )
    with anyio.fail_after(30):
        async with (
            serve(fake) as url,
            fake.client(base_url=url, transport=None, backoff_base=0) as client,
        ):
            rows = await client.detailed_report(transaction_ids=IDS[:2])
    assert rows == DATASET.expected(transaction_ids=IDS[:2])
    assert fake.stats.outcomes == {Outcome.DROPPED: 1, Outcome.HTTP_ERROR: 1, Outcome.OK: 1}


async def test_transport_can_be_given_to_a_hand_built_client() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with OrganikClient(
        fake.api_key, base_url="http://anything.test", transport=fake.transport()
    ) as client:
        rows = await client.detailed_report(gsm_track_ids=[next(DATASET.gsm_track_ids())])
    assert rows == list(DATASET)[:1]
