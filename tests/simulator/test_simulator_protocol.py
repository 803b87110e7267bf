"""The simulator speaks the provider's protocol: URLs, bodies, answers, refusals.

Everything here talks to the app in-process with a raw ``httpx.AsyncClient``
(no organik_async client), so it checks the simulator against the spec and
the seeds, not against what our client happens to send.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from organik_async import DetailedReport, Format
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI
from tests.helpers.paths import FIXTURES

pytestmark = pytest.mark.anyio

BASE = "http://organik.test"
FIXED_TIME = datetime(2024, 5, 1, 12, 0, 0)


def seed_rows() -> list[dict[str, Any]]:
    """The three example rows of the first seed document, as the provider wrote them."""
    document = json.loads((FIXTURES / "seed000_response.json").read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = document["response"]["data"]
    return rows


def url(key: str = DEMO_API_KEY, *segments: str, name: str = "detailedreport") -> str:
    path = "/".join((key, name, *segments))
    return f"{BASE}/v2/{path}/"


def xml_body(**ids: list[str]) -> bytes:
    elements = "".join(
        f"<{field}> {value} </{field}>\n" for field, values in ids.items() for value in values
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<document>\n<data>\n{elements}</data>\n'
        "</document>\n"
    ).encode()


def bare_items(body: bytes) -> list[dict[str, str | None]]:
    """The seed page's bare top-level <item>s, read by wrapping them in a root."""
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8" ?>\n')
    root = ET.fromstring("<root>" + text.split("\n", 1)[1] + "</root>")
    assert all(child.tag == "item" for child in root)
    return [{field.tag: field.text for field in item} for item in root]


def xml_items(body: bytes) -> list[dict[str, str | None]]:
    """The rows of a (default) wrapped XML answer: /response/data/item."""
    root = ET.fromstring(body)
    assert root.tag == "response"
    assert root.findtext("result") == "1"
    assert [child.tag for child in root] == ["result", "data"]
    return [{field.tag: field.text for field in item} for item in root.findall("data/item")]


def seed_xml_items() -> list[dict[str, str | None]]:
    text = (FIXTURES / "seed000_response.xml").read_text(encoding="utf-8")
    root = ET.fromstring("<root>" + text.split("?>", 1)[1] + "</root>")
    return [{field.tag: field.text for field in item} for item in root]


@pytest.fixture
def seed_fake() -> FakeOrganikAPI:
    return FakeOrganikAPI(seed_rows(), clock=lambda: FIXED_TIME)


@pytest.fixture
async def http(seed_fake: FakeOrganikAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=seed_fake)) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    envelope = response.json()["response"]
    assert envelope["result"] is False
    assert "data" not in envelope
    error: dict[str, Any] = envelope["error"]
    assert set(error) == {"message", "number", "time", "code"}
    return error


# -- answers --------------------------------------------------------------------------


async def test_json_answer_is_the_seed_documents_answer(http: httpx.AsyncClient) -> None:
    response = await http.post(
        url(DEMO_API_KEY, "json"), json={"data": {"transaction_ids": [14094857, 16334701]}}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    expected = json.loads((FIXTURES / "seed000_response.json").read_text(encoding="utf-8"))
    assert response.json() == expected


async def test_xml_answer_is_wrapped_in_response_result_data_by_default(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        url(DEMO_API_KEY, "xml"), content=xml_body(transaction_ids=["14094857", "16334701"])
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.content.startswith(
        b'<?xml version="1.0" encoding="UTF-8" ?>\n<response><result>1</result><data>'
    )
    # The rows are the seed's, field for field: no errorcode in XML rows.
    assert xml_items(response.content) == seed_xml_items()
    assert b"<finish_date />" in response.content


async def test_the_dotnet_samples_xpath_reads_result_1_and_the_rows() -> None:
    # The official .NET sample: doc.SelectNodes("/response/result")[0].InnerText.
    fake = FakeOrganikAPI(seed_rows())
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        response = await http.post(
            url(DEMO_API_KEY, "xml"), content=xml_body(transaction_ids=["16334701"])
        )
    root = ET.fromstring(response.content)
    assert [node.text for node in root.findall("./result")] == ["1"]
    assert [node.text for node in root.findall("./data/item/gsm_track_id")] == ["474057742"]


async def test_bare_xml_option_answers_top_level_items_exactly_like_the_seed() -> None:
    fake = FakeOrganikAPI(seed_rows(), xml_wrapped=False)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        response = await http.post(
            url(DEMO_API_KEY, "xml"), content=xml_body(transaction_ids=["14094857", "16334701"])
        )
    items = bare_items(response.content)
    assert items == seed_xml_items()
    assert items[2]["finish_date"] is None  # <finish_date />


async def test_errorcode_is_in_json_rows_and_not_in_xml_rows_by_default(
    http: httpx.AsyncClient,
) -> None:
    body = {"data": {"transaction_ids": [14094857]}}
    as_json = await http.post(url(DEMO_API_KEY, "json"), json=body)
    as_xml = await http.post(url(DEMO_API_KEY, "json", "xml"), json=body)
    assert [row["errorcode"] for row in as_json.json()["response"]["data"]] == [0, 99]
    assert all("errorcode" not in item for item in xml_items(as_xml.content))
    assert b"errorcode" not in as_xml.content


@pytest.mark.parametrize(
    ("errorcode_in", "in_json", "in_xml"),
    [(("json", "xml"), True, True), (("xml",), False, True), ((), False, False)],
    ids=["both", "xml only", "neither"],
)
async def test_errorcode_in_switches_errorcode_per_format(
    errorcode_in: tuple[Format, ...], in_json: bool, in_xml: bool
) -> None:
    fake = FakeOrganikAPI(seed_rows(), errorcode_in=errorcode_in)
    body = {"data": {"transaction_ids": [14094857]}}
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        as_json = await http.post(url(DEMO_API_KEY, "json"), json=body)
        as_xml = await http.post(url(DEMO_API_KEY, "json", "xml"), json=body)
    json_rows = as_json.json()["response"]["data"]
    xml_rows = xml_items(as_xml.content)
    assert [row.get("errorcode") for row in json_rows] == ([0, 99] if in_json else [None, None])
    assert [row.get("errorcode") for row in xml_rows] == (["0", "99"] if in_xml else [None, None])
    # Nothing else moves: the other fields are the same either way.
    assert [{k: v for k, v in row.items() if k != "errorcode"} for row in json_rows] == [
        {k: v for k, v in row.items() if k != "errorcode"} for row in seed_rows()[:2]
    ]


def test_errorcode_in_takes_only_json_and_xml() -> None:
    with pytest.raises(ValueError, match="errorcode_in"):
        FakeOrganikAPI(seed_rows(), errorcode_in=("yaml",))  # type: ignore[arg-type]


async def test_report_gsm_track_ids_are_integers_by_default() -> None:
    fake = FakeOrganikAPI(Dataset.generate(2_000, seed=3))
    ids = fake.dataset.transaction_ids
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        response = await http.post(url(), json={"data": {"transaction_ids": ids}})
    rows = response.json()["response"]["data"]
    assert len(rows) == 2_000
    assert all(type(row["gsm_track_id"]) is int for row in rows)


async def test_both_type_segments_are_optional_and_default_to_json(http: httpx.AsyncClient) -> None:
    body = {"data": {"gsm_track_ids": [410471976]}}
    for path in (
        url(),
        url().rstrip("/"),
        url(DEMO_API_KEY, "json"),
        url(DEMO_API_KEY, "json", "json"),
    ):
        response = await http.post(path, json=body)
        assert response.headers["content-type"] == "application/json", path
        assert [row["gsm_track_id"] for row in response.json()["response"]["data"]] == [410471976]


async def test_response_type_segment_picks_the_answer_format(http: httpx.AsyncClient) -> None:
    as_xml = await http.post(
        url(DEMO_API_KEY, "json", "xml"), json={"data": {"gsm_track_ids": [410471976]}}
    )
    assert as_xml.headers["content-type"] == "application/xml"
    assert [item["gsm_track_id"] for item in xml_items(as_xml.content)] == ["410471976"]
    as_json = await http.post(
        url(DEMO_API_KEY, "xml", "json"), content=xml_body(gsm_track_ids=["410471976"])
    )
    assert as_json.json()["response"]["data"][0]["gsm_track_id"] == 410471976


async def test_dates_flags_and_nulls_are_in_the_providers_form(http: httpx.AsyncClient) -> None:
    response = await http.post(url(), json={"data": {"transaction_ids": [16334701]}})
    assert b'"create_date":"2017-02-02 11:36:09"' in response.content
    assert b'"finish_date":null' in response.content
    assert b'"is_foreign_gsm":0' in response.content
    assert b'"errorcode":0' in response.content


# -- request bodies -----------------------------------------------------------------------


async def test_ids_may_be_numbers_or_strings(http: httpx.AsyncClient) -> None:
    as_numbers = await http.post(
        url(), json={"data": {"transaction_ids": [14094857], "gsm_track_ids": [474057742]}}
    )
    as_strings = await http.post(
        url(), json={"data": {"transaction_ids": ["14094857"], "gsm_track_ids": [" 474057742 "]}}
    )
    assert as_numbers.content == as_strings.content
    assert len(as_numbers.json()["response"]["data"]) == 3


async def test_the_seeds_padded_xml_request_body_is_accepted(http: httpx.AsyncClient) -> None:
    template = (FIXTURES / "seed000_request.xml").read_text(encoding="utf-8")
    values = iter(
        ["14094857", "1", "2", "6959792d54f3c7510bcbb6303a67a4", "x", "y", "410471979", "3", "4"]
    )
    body = "".join(
        next(values) if part == "id" else part
        for part in template.replace(" id ", " \0id\0 ").split("\0")
    )
    response = await http.post(url(DEMO_API_KEY, "xml"), content=body.encode())
    assert [item["gsm_track_id"] for item in xml_items(response.content)] == [
        "410471976",
        "410471979",
        "474057742",
    ]


async def test_every_id_kind_finds_its_rows(http: httpx.AsyncClient) -> None:
    async def tracks(data: dict[str, Any]) -> list[int]:
        response = await http.post(url(), json={"data": data})
        return [row["gsm_track_id"] for row in response.json()["response"]["data"]]

    assert await tracks({"transaction_ids": [14094857]}) == [410471976, 410471979]
    assert await tracks({"delivery_track_ids": ["6959792d54f3c7510bcbb6303a67a4"]}) == [474057742]
    assert await tracks({"gsm_track_ids": [410471979]}) == [410471979]


async def test_overlapping_ids_give_each_row_once_in_dataset_order(http: httpx.AsyncClient) -> None:
    data = {
        "gsm_track_ids": [474057742, 410471979, 410471979],
        "transaction_ids": [14094857, 14094857],
        "delivery_track_ids": ["b627ffe79fc148e8ea7425222c4ed8"],
    }
    response = await http.post(url(), json={"data": data})
    rows = response.json()["response"]["data"]
    assert [row["gsm_track_id"] for row in rows] == [410471976, 410471979, 474057742]


async def test_a_lone_xml_element_and_empty_elements_are_read_liberally(
    http: httpx.AsyncClient,
) -> None:
    body = (
        b"<document><data><gsm_track_ids>410471976</gsm_track_ids>"
        b"<transaction_ids/></data></document>"
    )
    response = await http.post(url(DEMO_API_KEY, "xml"), content=body)
    assert [item["gsm_track_id"] for item in xml_items(response.content)] == ["410471976"]


async def test_string_form_gsm_track_ids_are_found(seed_fake: FakeOrganikAPI) -> None:
    row = dict(seed_rows()[0], gsm_track_id="16502030-4730-63032793")
    fake = FakeOrganikAPI([row])
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        response = await http.post(
            url(), json={"data": {"gsm_track_ids": ["16502030-4730-63032793"]}}
        )
    assert response.json()["response"]["data"][0]["gsm_track_id"] == "16502030-4730-63032793"


# -- refusals -------------------------------------------------------------------------------


async def test_refusal_envelope_has_message_number_time_and_code(http: httpx.AsyncClient) -> None:
    error = error_of(await http.post(url(), json={"data": {"transaction_ids": [1]}}))
    assert error["code"] == 87
    assert error["message"] == "No records were found."
    assert error["time"] == "2024-05-01 12:00:00"
    assert isinstance(error["number"], str)


@pytest.mark.parametrize(
    ("key", "segments", "data", "code", "message"),
    [
        ("0" * 32, (), {"transaction_ids": [14094857]}, 99, "Authorization error."),
        ("0" * 31, (), {"transaction_ids": [14094857]}, 90, "API KEY must be 32 characters."),
        (DEMO_API_KEY, (), {"transaction_ids": [1]}, 87, "No records were found."),
        (DEMO_API_KEY, (), {"transaction_ids": [True]}, 96, "Invalid request parameters."),
        (DEMO_API_KEY, ("yaml",), {}, 92, "Unsupported request type."),
        (DEMO_API_KEY, ("json", "csv"), {}, 91, "Unsupported response type."),
    ],
    ids=["99", "90", "87", "96", "92", "91"],
)
async def test_refusals_are_worded_as_the_providers_error_list(
    http: httpx.AsyncClient,
    key: str,
    segments: tuple[str, ...],
    data: dict[str, Any],
    code: int,
    message: str,
) -> None:
    error = error_of(await http.post(url(key, *segments), json={"data": data}))
    assert (error["code"], error["message"]) == (code, message)


async def test_unknown_request_name_and_bad_body_are_worded_as_the_provider_does(
    http: httpx.AsyncClient,
) -> None:
    name = error_of(await http.post(url(name="basicreport"), json={}))
    assert (name["code"], name["message"]) == (88, "Unsupported request_name")
    body = error_of(await http.post(url(), content=b"{"))
    assert (body["code"], body["message"]) == (97, "Invalid request body format.")


async def test_error_time_is_the_clocks_provider_local_time_to_the_second() -> None:
    aware = datetime(2024, 7, 1, 9, 30, 15, 999_999, tzinfo=UTC)
    fake = FakeOrganikAPI(seed_rows(), clock=lambda: aware)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        error = error_of(await http.post(url(), json={"data": {"transaction_ids": [1]}}))
    assert error["time"] == "2024-07-01 12:30:15"  # Europe/Istanbul is UTC+03:00


async def test_error_time_defaults_to_now_in_istanbul() -> None:
    fake = FakeOrganikAPI(seed_rows())
    before = datetime.now(ZoneInfo("Europe/Istanbul")).replace(tzinfo=None, microsecond=0)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        error = error_of(await http.post(url(), json={"data": {"transaction_ids": [1]}}))
    after = datetime.now(ZoneInfo("Europe/Istanbul")).replace(tzinfo=None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", error["time"])
    assert before <= datetime.fromisoformat(error["time"]) <= after


async def test_refusal_in_xml_is_response_result_0_error(http: httpx.AsyncClient) -> None:
    response = await http.post(url("0" * 32, "xml"), content=xml_body(transaction_ids=["14094857"]))
    root = ET.fromstring(response.content)
    assert response.status_code == 200
    assert root.tag == "response"
    assert root.findtext("result") == "0"
    error = root.find("error")
    assert error is not None
    assert [child.tag for child in error] == ["message", "number", "time", "code"]
    assert root.findtext("error/code") == "99"
    assert root.find("data") is None


@pytest.mark.parametrize(
    ("key", "expected"),
    [("0" * 32, 99), (DEMO_API_KEY[:-1], 90), (DEMO_API_KEY + "0", 90), ("x", 90)],
    ids=["unknown key", "31 chars", "33 chars", "1 char"],
)
async def test_bad_keys_are_refused_with_99_or_90(
    http: httpx.AsyncClient, key: str, expected: int
) -> None:
    error = error_of(await http.post(url(key), json={"data": {"transaction_ids": [14094857]}}))
    assert error["code"] == expected
    assert key not in json.dumps(error)


async def test_key_is_checked_before_the_request_name(http: httpx.AsyncClient) -> None:
    error = error_of(await http.post(url("0" * 32, name="basicreport"), json={}))
    assert error["code"] == 99


@pytest.mark.parametrize(
    ("segments", "name", "expected"),
    [
        ((), "basicreport", 88),
        ((), "sendsms", 88),
        (("yaml",), "detailedreport", 92),
        (("json", "csv"), "detailedreport", 91),
    ],
    ids=["basicreport", "sendsms", "request type", "response type"],
)
async def test_unknown_request_name_or_type_is_refused(
    http: httpx.AsyncClient, segments: tuple[str, ...], name: str, expected: int
) -> None:
    error = error_of(
        await http.post(
            url(DEMO_API_KEY, *segments, name=name), json={"data": {"transaction_ids": [14094857]}}
        )
    )
    assert error["code"] == expected


@pytest.mark.parametrize(
    ("segment", "body"),
    [
        ("json", b'{"data": {"transaction_ids": [14094857'),
        ("json", b""),
        ("json", b"<document/>"),
        ("xml", b"<document><data><transaction_ids>1</data></document>"),
        ("xml", b'{"data": {}}'),
        (
            "xml",
            b'<!DOCTYPE d [<!ENTITY a "x">]>'
            b"<document><data><transaction_ids>&a;</transaction_ids></data></document>",
        ),
    ],
    ids=[
        "json cut",
        "json empty",
        "xml sent as json",
        "xml mismatched",
        "json sent as xml",
        "xml entity",
    ],
)
async def test_body_that_is_not_json_or_xml_is_refused_with_97(
    http: httpx.AsyncClient, segment: str, body: bytes
) -> None:
    error = error_of(await http.post(url(DEMO_API_KEY, segment, "json"), content=body))
    assert error["code"] == 97


@pytest.mark.parametrize(
    "data",
    [
        {"transaction_ids": [True]},
        {"transaction_ids": [14094857.0]},
        {"gsm_track_ids": [{"id": 1}]},
        {"delivery_track_ids": [["b627ffe79fc148e8ea7425222c4ed8"]]},
        {"gsm_track_ids": [None]},
        {"transaction_ids": False},
    ],
    ids=["bool", "float", "object", "list", "null", "bare bool"],
)
async def test_ids_of_the_wrong_type_are_refused_with_96(
    http: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    response = await http.post(url(), json={"data": data})
    error = error_of(response)
    assert error["code"] == 96
    assert error["message"] == "Invalid request parameters."
    # The simulator's own explanation is for humans, outside the provider's body.
    assert "must be a number or a string" in response.headers["x-simulator-detail"]


@pytest.mark.parametrize(
    "body",
    [[1, 2], {"transaction_ids": [1]}, {"data": [1]}],
    ids=["array", "no data", "data not object"],
)
async def test_a_body_without_a_data_object_is_refused_with_96(
    http: httpx.AsyncClient, body: Any
) -> None:
    assert error_of(await http.post(url(), json=body))["code"] == 96


async def test_xml_id_element_with_children_is_refused_with_96(http: httpx.AsyncClient) -> None:
    body = b"<document><data><transaction_ids><id>1</id></transaction_ids></data></document>"
    assert error_of(await http.post(url(DEMO_API_KEY, "xml", "json"), content=body))["code"] == 96


async def test_no_matching_rows_or_no_ids_is_87(http: httpx.AsyncClient) -> None:
    data: dict[str, Any]
    for data in (
        {"transaction_ids": [999]},
        {"gsm_track_ids": ["nope"]},
        {},
        {"transaction_ids": []},
        {"transaction_ids": [""], "delivery_track_ids": [""], "gsm_track_ids": [" "]},
    ):
        assert error_of(await http.post(url(), json={"data": data}))["code"] == 87


async def test_max_ids_per_request_refuses_larger_requests_with_96_naming_the_limit() -> None:
    fake = FakeOrganikAPI(seed_rows(), max_ids_per_request=2)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        ok = await http.post(
            url(), json={"data": {"transaction_ids": [14094857], "gsm_track_ids": [474057742]}}
        )
        refused = await http.post(
            url(), json={"data": {"transaction_ids": [14094857, 16334701], "gsm_track_ids": [1]}}
        )
    assert ok.json()["response"]["result"] is True
    error = error_of(refused)
    assert error["code"] == 96
    assert error["message"] == "Invalid request parameters."
    assert "3 > max_ids_per_request=2" in refused.headers["x-simulator-detail"]
    assert fake.stats.max_ids_per_request == 3
    assert fake.stats.api_error_codes[96] == 1


async def test_other_paths_and_methods_are_plain_http_errors(http: httpx.AsyncClient) -> None:
    assert (await http.post(f"{BASE}/v1/{DEMO_API_KEY}/detailedreport/")).status_code == 404
    assert (await http.post(f"{BASE}/")).status_code == 404
    not_allowed = await http.get(url())
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "POST"


async def test_configured_keys_replace_the_demo_key() -> None:
    key = "ab" * 16
    fake = FakeOrganikAPI(seed_rows(), api_keys=[key, "cd" * 16])
    assert fake.api_key == key
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        assert (await http.post(url(key), json={"data": {"transaction_ids": [14094857]}})).json()[
            "response"
        ]["result"]
        assert (
            await http.post(url("cd" * 16), json={"data": {"transaction_ids": [14094857]}})
        ).json()["response"]["result"]
        assert (
            error_of(await http.post(url(), json={"data": {"transaction_ids": [14094857]}}))["code"]
            == 99
        )


def test_demo_key_is_md5_of_demo_and_demo() -> None:
    import hashlib

    assert hashlib.md5(b"demodemo").hexdigest() == DEMO_API_KEY
    assert len(DEMO_API_KEY) == 32


def test_accepted_keys_must_be_32_characters() -> None:
    with pytest.raises(ValueError, match="32 characters"):
        FakeOrganikAPI(seed_rows(), api_keys=["short"])
    with pytest.raises(ValueError, match="at least one"):
        FakeOrganikAPI(seed_rows(), api_keys=[])


async def test_rows_loaded_as_models_answer_like_rows_loaded_as_dicts() -> None:
    as_models = [
        DetailedReport(
            gsm=row["gsm"],
            transaction_id=row["transaction_id"],
            gsm_track_id=row["gsm_track_id"],
            delivery_track_id=row["delivery_track_id"],
            create_date=datetime.fromisoformat(row["create_date"]),
            start_date=datetime.fromisoformat(row["start_date"]),
            finish_date=None
            if row["finish_date"] is None
            else datetime.fromisoformat(row["finish_date"]),
            status=row["status"],
            sms_count=row["sms_count"],
            credit_amount=row["credit_amount"],
            is_foreign_gsm=bool(row["is_foreign_gsm"]),
            errorcode=row["errorcode"],
        )
        for row in seed_rows()
    ]
    answers = []
    for rows in (as_models, seed_rows()):
        fake = FakeOrganikAPI(Dataset.from_rows(rows))
        async with httpx.AsyncClient(transport=fake.transport()) as http:
            response = await http.post(
                url(), json={"data": {"transaction_ids": [14094857, 16334701]}}
            )
        answers.append(response.content)
    assert answers[0] == answers[1]


async def test_lifespan_events_are_acknowledged(seed_fake: FakeOrganikAPI) -> None:
    sent: list[str] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await seed_fake({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
