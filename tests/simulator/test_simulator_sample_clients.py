"""The simulator as the provider's own sample clients see it.

Each request here is byte for byte the shape one of the provider's official
samples sends (its JavaScript SDK, PHP sample, classic ASP sample and .NET
sample), sent with a raw ``httpx`` client, in-process and over TCP; and each
answer is read the way that sample reads it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import anyio
import httpx
import pytest

from organik_async.testing import DEMO_API_KEY, FakeOrganikAPI, serve
from tests.helpers.paths import FIXTURES

pytestmark = pytest.mark.anyio

ROWS: list[dict[str, Any]] = json.loads(
    (FIXTURES / "seed000_response.json").read_text(encoding="utf-8")
)["response"]["data"]
PREFIX = f"/v2/{DEMO_API_KEY}/detailedreport"


class Shape(NamedTuple):
    """One sample client's request: where it posts, with which headers and body."""

    path: str
    headers: dict[str, str]
    body: bytes


def js_sdk(**ids: list[str]) -> Shape:
    # organikapi.js: XMLHttpRequest.send(JSON.stringify(data)) to .../detailedreport/,
    # so the browser labels the body text/plain; every ID kind is present, IDs are
    # strings, and the kinds not asked about are [""].
    data = {kind: ids.get(kind, [""]) for kind in FIELDS}
    body = json.dumps({"data": data}, separators=(",", ":")).encode()
    return Shape(f"{PREFIX}/", {"Content-Type": "text/plain;charset=UTF-8"}, body)


def php_sample(**ids: list[str]) -> Shape:
    # curl with CURLOPT_POSTFIELDS set to the json_encode()d string: curl labels a
    # string body application/x-www-form-urlencoded, and no format segment is sent.
    body = json.dumps({"data": ids}).encode()
    return Shape(f"{PREFIX}/", {"Content-Type": "application/x-www-form-urlencoded"}, body)


def asp_sample(**ids: list[str]) -> Shape:
    # organikapi.asp REPORT_POST: a hand-built JSON string, each kind one quoted
    # string (empty when unused), posted with Content-Type text/xml to .../json/.
    body = (
        '{"data": {'
        f'"transaction_ids": ["{",".join(ids.get("transaction_ids", []))}"],'
        f'"delivery_track_ids": ["{",".join(ids.get("delivery_track_ids", []))}"],'
        f'"gsm_track_ids": ["{",".join(ids.get("gsm_track_ids", []))}"]'
        "}}"
    ).encode()
    return Shape(f"{PREFIX}/json/", {"Content-Type": "text/xml"}, body)


def dotnet_sample(**ids: list[str]) -> Shape:
    # WebClient.UploadString to .../detailedreport/xml (no trailing slash), with the
    # form-urlencoded type the sample sets and .NET's Expect: 100-continue.
    elements = "".join(
        f"<{kind}>{value}</{kind}>" for kind, values in ids.items() for value in values
    )
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><document><data>{elements}</data></document>'
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Expect": "100-continue"}
    return Shape(f"{PREFIX}/xml", headers, body)


FIELDS = ("transaction_ids", "delivery_track_ids", "gsm_track_ids")
SAMPLES: dict[str, Callable[..., Shape]] = {
    "js": js_sdk,
    "php": php_sample,
    "asp": asp_sample,
    "dotnet": dotnet_sample,
}


def track_ids(response: httpx.Response) -> list[int]:
    """The gsm_track_ids of an answer, read as the sample that asked reads it."""
    assert response.status_code == 200
    if response.headers["content-type"] == "application/xml":
        root = ET.fromstring(response.content)  # .NET: XmlDocument.LoadXml
        assert [node.text for node in root.findall("./result")] == ["1"]  # /response/result
        return [int(node.text or "") for node in root.findall("./data/item/gsm_track_id")]
    envelope = response.json()["response"]  # JS: requestObject.response.response
    assert envelope["result"] is True
    return [row["gsm_track_id"] for row in envelope["data"]]


@asynccontextmanager
async def http_to(fake: FakeOrganikAPI, over_tcp: bool) -> AsyncIterator[httpx.AsyncClient]:
    if over_tcp:
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            yield http
    else:
        async with httpx.AsyncClient(
            transport=fake.transport(), base_url="http://organik.test"
        ) as http:
            yield http


@pytest.mark.slow
@pytest.mark.parametrize("over_tcp", [False, True], ids=["in-process", "tcp"])
@pytest.mark.parametrize("sample", list(SAMPLES))
async def test_each_sample_clients_request_shape_gets_its_rows(sample: str, over_tcp: bool) -> None:
    fake = FakeOrganikAPI(ROWS)
    shape = SAMPLES[sample](transaction_ids=["14094857"])
    with anyio.fail_after(20):
        async with http_to(fake, over_tcp) as http:
            response = await http.post(shape.path, headers=shape.headers, content=shape.body)
    assert track_ids(response) == [410471976, 410471979]
    # Empty strings for the kinds not asked about are no IDs: one ID was sent.
    assert fake.stats.ids_per_request == {1: 1}


@pytest.mark.parametrize("sample", ["js", "php", "dotnet"])
async def test_each_id_kind_in_each_sample_shape(sample: str) -> None:
    fake = FakeOrganikAPI(ROWS)
    build = SAMPLES[sample]
    async with http_to(fake, over_tcp=False) as http:
        found = []
        for ids in (
            {"delivery_track_ids": ["6959792d54f3c7510bcbb6303a67a4"]},
            {"gsm_track_ids": ["410471979"]},
            {"transaction_ids": ["16334701"], "gsm_track_ids": ["410471976"]},
        ):
            shape = build(**ids)
            response = await http.post(shape.path, headers=shape.headers, content=shape.body)
            found.append(track_ids(response))
    assert found == [[474057742], [410471979], [410471976, 474057742]]


async def test_the_asp_samples_comma_joined_ids_are_one_unknown_id_as_at_the_provider() -> None:
    # The ASP sample puts several IDs into one string: that is one ID the
    # provider does not know, so "No records were found." (code 87).
    fake = FakeOrganikAPI(ROWS)
    shape = asp_sample(transaction_ids=["14094857", "16334701"])
    assert b'"transaction_ids": ["14094857,16334701"]' in shape.body
    async with http_to(fake, over_tcp=False) as http:
        response = await http.post(shape.path, headers=shape.headers, content=shape.body)
    error = response.json()["response"]["error"]
    assert (error["code"], error["message"]) == (87, "No records were found.")


@pytest.mark.parametrize(
    ("segments", "content_type"),
    [
        ("/JSON/", "application/json"),
        ("/Json/XML/", "application/xml"),
        ("/XML", "application/xml"),
        ("/xml/JSON", "application/json"),
    ],
)
async def test_format_segments_are_matched_in_any_letter_case(
    segments: str, content_type: str
) -> None:
    fake = FakeOrganikAPI(ROWS)
    if segments.lower().startswith("/xml"):
        body = b"<document><data><gsm_track_ids>410471976</gsm_track_ids></data></document>"
    else:
        body = b'{"data": {"gsm_track_ids": [410471976]}}'
    async with http_to(fake, over_tcp=False) as http:
        response = await http.post(PREFIX + segments, content=body)
    assert response.headers["content-type"] == content_type
    assert track_ids(response) == [410471976]


@pytest.mark.slow
async def test_a_client_waiting_for_100_continue_gets_it_and_then_the_answer() -> None:
    # What .NET's HttpWebRequest really does with Expect: 100-continue: send the
    # headers, wait for "100 Continue", only then send the body.
    fake = FakeOrganikAPI(ROWS)
    shape = dotnet_sample(transaction_ids=["16334701"])
    head = (
        f"POST {shape.path} HTTP/1.1\r\nHost: organikapi.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(shape.body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with anyio.fail_after(20):
        async with serve(fake) as url:
            host, port = url.removeprefix("http://").split(":")
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(head)
                interim = await stream.receive()
                await stream.send(shape.body)
                answer = b""
                try:
                    while True:
                        answer += await stream.receive()
                except anyio.EndOfStream:
                    pass
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK"
    body = rest.partition(b"\r\n\r\n")[2]
    root = ET.fromstring(body)
    assert root.findtext("result") == "1"
    assert [node.text for node in root.findall("data/item/gsm_track_id")] == ["474057742"]


async def test_an_error_answer_is_read_by_the_samples_error_paths() -> None:
    # JS reads d.error.message/code/number; .NET reads /response/error/message.
    fake = FakeOrganikAPI(ROWS, api_keys=["f" * 32])
    js = js_sdk(transaction_ids=["14094857"])
    dotnet = dotnet_sample(transaction_ids=["14094857"])
    async with http_to(fake, over_tcp=False) as http:
        as_json = await http.post(js.path, headers=js.headers, content=js.body)
        as_xml = await http.post(dotnet.path, headers=dotnet.headers, content=dotnet.body)
    error = as_json.json()["response"]["error"]
    assert error["message"] == "Authorization error."
    assert error["code"] == 99
    assert isinstance(error["number"], str)
    root = ET.fromstring(as_xml.content)
    assert root.findtext("result") == "0"
    assert [node.text for node in root.findall("./error/message")] == ["Authorization error."]
