"""The core client's error mapping and retries against the simulator, not a mock.

The mock-transport tests pin exact bodies and headers; these check the same
behaviour end to end against an independent implementation of the provider.
"""

from __future__ import annotations

import builtins
import logging

import anyio
import httpx
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    HttpBackend,
    HTTPStatusError,
    OrganikClient,
    RateLimitError,
    TimeoutExpiredError,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(500, seed=2)
TX = DATASET.transaction_ids[:3]
EXPECTED = DATASET.expected(transaction_ids=TX)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried_until_success(status: int) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(status, on_requests={1, 2})])
    async with fake.client(backoff_base=0) as client:
        assert await client.detailed_report(transaction_ids=TX) == EXPECTED
    assert fake.stats.requests == 3


@pytest.mark.parametrize("code", [84, 93, 94, 95])
async def test_retryable_provider_codes_are_retried_until_success(code: int) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(code, on_requests={1})])
    async with fake.client(backoff_base=0) as client:
        assert await client.detailed_report(transaction_ids=TX) == EXPECTED
    assert fake.stats.requests == 2


@pytest.mark.parametrize(
    ("code", "error"), [(1, APIError), (97, APIError), (98, AuthenticationError)]
)
async def test_other_provider_codes_fail_at_once(code: int, error: type[APIError]) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(code)])
    async with fake.client(backoff_base=0) as client:
        with pytest.raises(error) as caught:
            await client.detailed_report(transaction_ids=TX)
    assert caught.value.code == code
    assert caught.value.attempts == 1
    assert fake.stats.requests == 1


async def test_a_proxy_error_page_is_an_http_status_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503)])
    async with fake.client(backoff_base=0, max_retries=1) as client:
        with pytest.raises(HTTPStatusError) as caught:
            await client.detailed_report(transaction_ids=TX)
    assert caught.value.status_code == 503
    assert caught.value.attempts == 2


async def test_the_envelope_in_a_non_2xx_answer_wins_over_its_status() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, code=99)])
    async with fake.client(backoff_base=0) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.detailed_report(transaction_ids=TX)
    assert (caught.value.code, caught.value.status_code) == (99, 503)
    assert fake.stats.requests == 1  # a bad key is not retried, whatever the status


async def test_http_429_with_code_93_in_xml_is_one_rate_limit_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(429, code=93, retry_after=0)])
    client = fake.client(request_format="xml", backoff_base=0, pushback_timeout=0.2)
    async with client:
        with pytest.raises(RateLimitError) as caught:  # refused until its patience ran out
            await client.detailed_report(transaction_ids=TX)
    assert (caught.value.code, caught.value.status_code) == (93, 429)
    assert caught.value.retry_after == 0
    assert caught.value.attempts == caught.value.refusals == fake.stats.requests


async def test_xml_no_records_is_zero_rows_and_xml_refusal_is_an_api_error() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client(request_format="xml") as client:
        assert await client.detailed_report(transaction_ids=[1]) == []
    async with fake.client(request_format="xml", api_key="0" * 32) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.detailed_report(transaction_ids=TX)
    assert caught.value.code == 99


@pytest.mark.slow
async def test_a_body_that_trickles_past_the_read_timeout_is_a_timeout_error(
    http_backend: HttpBackend,
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.trickle(chunk_size=16, delay=0.5)])
    async with serve(fake, shutdown_timeout=1) as base_url:
        client = OrganikClient(
            fake.api_key,
            base_url=base_url,
            timeout=httpx.Timeout(5, read=0.2),
            max_retries=1,
            backoff_base=0,
            http_backend=http_backend,
        )
        async with client:
            with anyio.fail_after(10), pytest.raises(TimeoutExpiredError) as caught:
                await client.detailed_report(transaction_ids=TX)
    assert caught.value.attempts == 2
    assert isinstance(caught.value, builtins.TimeoutError)


@pytest.mark.slow
async def test_the_key_never_reaches_a_log_line_over_real_http(
    caplog: pytest.LogCaptureFixture, http_backend: HttpBackend
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, on_requests={1})])
    caplog.set_level(logging.DEBUG)
    async with serve(fake) as base_url:
        async with OrganikClient(
            fake.api_key, base_url=base_url, backoff_base=0, http_backend=http_backend
        ) as client:
            with anyio.fail_after(10):
                await client.detailed_report(transaction_ids=TX)
    messages = [record.getMessage() for record in caplog.records]
    if http_backend == "httpx":
        assert any("HTTP Request: POST" in m for m in messages)  # httpx's own line was seen
    assert any(m.startswith("retrying") for m in messages)
    assert not [m for m in messages if fake.api_key in m]
