"""Faults on demand, in-process: each kind, its scripting, and its stats."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, Outcome

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(400, seed=21)
TRANSACTIONS = DATASET.transaction_ids[:2]
JSON_URL = f"http://organik.test/v2/{DEMO_API_KEY}/detailedreport/json/"
XML_URL = f"http://organik.test/v2/{DEMO_API_KEY}/detailedreport/json/xml/"
BODY = {"data": {"transaction_ids": TRANSACTIONS}}


async def post_many(fake: FakeOrganikAPI, count: int, url: str = JSON_URL) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        return [await http.post(url, json=BODY) for _ in range(count)]


async def clean_answer(url: str = JSON_URL) -> bytes:
    (response,) = await post_many(FakeOrganikAPI(DATASET), 1, url)
    return response.content


async def test_status_fault_hits_only_the_scripted_requests() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, on_requests={2, 3})])
    responses = await post_many(fake, 4)
    assert [r.status_code for r in responses] == [200, 503, 503, 200]
    assert responses[1].headers["content-type"] == "text/html"
    assert b"503 Service Unavailable" in responses[1].content
    assert fake.stats.faults == {"status:503": 2}
    assert fake.stats.outcomes == {Outcome.OK: 2, Outcome.HTTP_ERROR: 2}
    assert fake.stats.http_statuses == {200: 2, 503: 2}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_statuses(status: int) -> None:
    (response,) = await post_many(FakeOrganikAPI(DATASET, faults=[Fault.status(status)]), 1)
    assert response.status_code == status
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("retry_after", "header"), [(2, "2"), (0.5, "0.5"), ("Wed, 21 Oct 2015 07:28:00 GMT", None)]
)
async def test_rate_limited_is_429_with_retry_after(
    retry_after: float | str, header: str | None
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(retry_after, on_requests={1})])
    first, second = await post_many(fake, 2)
    assert first.status_code == 429
    assert first.headers["retry-after"] == (header or retry_after)
    assert second.status_code == 200
    assert fake.stats.faults == {"status:429": 1}


async def test_rate_limited_without_retry_after() -> None:
    (response,) = await post_many(FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(None)]), 1)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


async def test_status_fault_can_carry_the_providers_error_envelope() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(429, code=93, retry_after=1)])
    (response,) = await post_many(fake, 1)
    assert response.status_code == 429
    error = response.json()["response"]["error"]
    assert error["code"] == 93
    assert error["message"] == "Too much request."
    assert fake.stats.api_error_codes == {93: 1}


@pytest.mark.parametrize("code", [93, 94, 95])
async def test_provider_error_is_http_200_with_result_false(code: int) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(code, on_requests={1})])
    first, second = await post_many(fake, 2)
    assert first.status_code == 200
    envelope = first.json()["response"]
    assert envelope["result"] is False
    assert envelope["error"]["code"] == code
    assert second.json()["response"]["result"] is True
    assert fake.stats.outcomes == {Outcome.API_ERROR: 1, Outcome.OK: 1}
    assert fake.stats.api_error_codes == {code: 1}


async def test_provider_error_answers_in_the_requested_format() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(94)])
    (response,) = await post_many(fake, 1, XML_URL)
    root = ET.fromstring(response.content)
    assert root.findtext("result") == "0"
    assert root.findtext("error/code") == "94"


@pytest.mark.parametrize("url", [JSON_URL, XML_URL], ids=["json", "xml"])
async def test_truncated_body_is_a_prefix_with_consistent_length(url: str) -> None:
    whole = await clean_answer(url)
    fake = FakeOrganikAPI(DATASET, faults=[Fault.truncate(0.3)])
    (response,) = await post_many(fake, 1, url)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content == whole[: int(len(whole) * 0.3)]
    with pytest.raises((json.JSONDecodeError, ET.ParseError)):
        json.loads(response.content) if url == JSON_URL else ET.fromstring(response.content)
    assert fake.stats.outcomes == {Outcome.TRUNCATED: 1}


async def test_malformed_json_body_does_not_parse() -> None:
    whole = await clean_answer()
    (response,) = await post_many(FakeOrganikAPI(DATASET, faults=[Fault.malformed()]), 1)
    assert len(response.content) == len(whole) + 1
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(response.content)


async def test_malformed_xml_body_does_not_parse_even_when_wrapped() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.malformed()], xml_wrapped=True)
    (response,) = await post_many(fake, 1, XML_URL)
    with pytest.raises(ET.ParseError):
        ET.fromstring(response.content)
    assert fake.stats.outcomes == {Outcome.MALFORMED: 1}


async def test_malformed_refusal_does_not_parse_either() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.malformed()], api_keys=["f" * 32])
    (response,) = await post_many(fake, 1)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(response.content)


async def test_disconnect_in_process_raises_remote_protocol_error() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.disconnect(on_requests={1})])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(JSON_URL, json=BODY)
        after = await http.post(JSON_URL, json=BODY)
    assert after.status_code == 200
    assert fake.stats.outcomes == {Outcome.DROPPED: 1, Outcome.OK: 1}


@pytest.mark.slow
async def test_trickle_sends_the_same_body_slowly() -> None:
    whole = await clean_answer()
    chunks = -(-len(whole) // 4096)
    fake = FakeOrganikAPI(DATASET, faults=[Fault.trickle(4096, 0.01)])
    started = time.perf_counter()
    with anyio.fail_after(10):
        (response,) = await post_many(fake, 1)
    assert time.perf_counter() - started >= (chunks - 1) * 0.01 * 0.9
    assert response.content == whole
    assert fake.stats.faults == {"trickle": 1}
    assert fake.stats.outcomes == {Outcome.OK: 1}


async def test_fixed_latency_delays_every_request() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.05)])
    started = time.perf_counter()
    with anyio.fail_after(10):
        responses = await post_many(fake, 3)
    assert time.perf_counter() - started >= 0.15 * 0.9
    assert all(r.status_code == 200 for r in responses)
    assert fake.stats.latency_added == pytest.approx(0.15)
    assert fake.stats.faults == {"latency": 3}


async def test_random_latency_stays_in_its_range_and_is_seeded() -> None:
    added = []
    for seed in (1, 1, 2):
        fake = FakeOrganikAPI(DATASET, faults=[Fault.latency((0.001, 0.02))], seed=seed)
        with anyio.fail_after(10):
            await post_many(fake, 5)
        added.append(fake.stats.latency_added)
    assert 0.005 <= added[0] <= 0.1
    assert added[0] == added[1]
    assert added[0] != added[2]


async def test_latencies_add_up_and_combine_with_one_other_fault() -> None:
    fake = FakeOrganikAPI(
        DATASET,
        faults=[
            Fault.latency(0.01),
            Fault.status(502, on_requests={1}),
            Fault.provider_error(95),
            Fault.latency(0.02, on_requests={1}),
        ],
    )
    with anyio.fail_after(10):
        first, second = await post_many(fake, 2)
    assert first.status_code == 502  # the first matching fault decides
    assert second.json()["response"]["error"]["code"] == 95
    assert fake.stats.latency_added == pytest.approx(0.04)
    assert fake.stats.faults == {"latency": 3, "status:502": 1, "provider_error:95": 1}


async def test_probability_is_seeded_by_request_number() -> None:
    async def hit_pattern(seed: int) -> list[int]:
        fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, probability=0.3)], seed=seed)
        return [r.status_code for r in await post_many(fake, 40)]

    first = await hit_pattern(7)
    assert first == await hit_pattern(7)
    assert first != await hit_pattern(8)
    assert 3 <= first.count(503) <= 25


async def test_faults_can_be_changed_while_serving() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        assert (await http.post(JSON_URL, json=BODY)).status_code == 200
        fake.faults.append(Fault.status(504))
        assert (await http.post(JSON_URL, json=BODY)).status_code == 504
        fake.faults.clear()
        assert (await http.post(JSON_URL, json=BODY)).status_code == 200


async def test_stats_reset_restarts_request_numbering_for_scripts() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, on_requests={1})])
    assert [r.status_code for r in await post_many(fake, 2)] == [503, 200]
    fake.stats.reset()
    assert [r.status_code for r in await post_many(fake, 2)] == [503, 200]


async def test_open_ended_request_range() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(500, on_requests=range(3, 10**9))])
    assert [r.status_code for r in await post_many(fake, 4)] == [200, 200, 500, 500]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("latency:0.05", Fault.latency(0.05)),
        ("latency:0.05:0.2", Fault.latency((0.05, 0.2))),
        ("status:503@2,3", Fault.status(503, on_requests={2, 3})),
        ("status:502:2", Fault.status(502, retry_after=2.0)),
        ("rate-limit:1.5%0.05", Fault.rate_limited(1.5, probability=0.05)),
        ("provider:93%0.1", Fault.provider_error(93, probability=0.1)),
        ("truncate:0.3@4-6", Fault.truncate(0.3, on_requests={4, 5, 6})),
        ("malformed@5", Fault.malformed(on_requests={5})),
        ("trickle:128:0.1", Fault.trickle(128, 0.1)),
        ("disconnect%0.02", Fault.disconnect(probability=0.02)),
        ("status:500@10-", Fault.status(500, on_requests=range(10, 2**62))),
    ],
)
def test_fault_specs_parse_to_the_same_faults(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["explode", "status", "status:200", "latency:-1", "provider:93%2", "trickle:0", "status:x"],
)
def test_bad_fault_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fault"):
        Fault.parse(spec)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Fault.latency((0.2, 0.1)), "low <= high"),
        (lambda: Fault.status(503, probability=-0.1), "probability"),
        (lambda: Fault.status(503, on_requests={0}), "start at 1"),
        (lambda: Fault.truncate(1.0), "fraction"),
        (lambda: Fault.disconnect(-0.5), "fraction"),
    ],
    ids=["range backwards", "probability", "request zero", "truncate all", "negative fraction"],
)
def test_fault_constructors_validate(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_fault_names_are_what_stats_count() -> None:
    assert Fault.status(503).name == "status:503"
    assert Fault.provider_error(94).name == "provider_error:94"
    assert Fault.trickle().name == "trickle"
