"""OrganikClient: settings, URLs and bodies, lifecycle, and the happy path.

The transport is an ``httpx.MockTransport`` whose handler behaves like the
provider as the spec describes it: it reads the key and the type segments from
the URL path, the IDs from the body in the request format, and answers the
matching rows (or code 87, or code 99 for a wrong key) in the response format.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest

from organik_async import (
    DEFAULT_BASE_URL,
    AuthenticationError,
    ClientClosedError,
    DetailedReport,
    OrganikClient,
    OrganikError,
    api_key_from_credentials,
)
from tests.helpers.provider import KEY, OTHER_KEY, SEED_ROW, error_answer, rows_answer

pytestmark = pytest.mark.anyio


# The seed examples' rows, in the provider's JSON wire form.
PROVIDER_ROWS: list[dict[str, Any]] = [
    {**SEED_ROW, "errorcode": 0},
    {
        "gsm": 61491570156,
        "transaction_id": 14094857,
        "gsm_track_id": 410471979,
        "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
        "create_date": "2016-11-02 11:47:38",
        "start_date": "2016-11-02 11:47:38",
        "finish_date": "2016-11-02 13:47:45",
        "status": 4,
        "sms_count": 1,
        "credit_amount": 0,
        "is_foreign_gsm": 1,
        "errorcode": 99,
    },
    {
        "gsm": 905445359675,
        "transaction_id": 16334701,
        "gsm_track_id": 474057742,
        "delivery_track_id": "6959792d54f3c7510bcbb6303a67a4",
        "create_date": "2017-02-02 11:36:09",
        "start_date": "2017-02-28 00:00:00",
        "finish_date": None,
        "status": 0,
        "sms_count": 0,
        "credit_amount": 0,
        "is_foreign_gsm": 0,
        "errorcode": 0,
    },
    {
        "gsm": 905001112233,
        "transaction_id": 20000001,
        "gsm_track_id": "16502030-4730-63032793",
        "delivery_track_id": "a<b&c</delivery_track_ids>",
        "create_date": "2024-03-01 09:00:00",
        "start_date": "2024-03-01 09:00:00",
        "finish_date": "2024-03-01 09:00:05",
        "status": 2,
        "sms_count": 2,
        "credit_amount": 2,
        "is_foreign_gsm": 0,
        "errorcode": 0,
    },
]

MEDIA = {"json": "application/json", "xml": "application/xml"}


def by_kind(kind: str, ids: object) -> dict[str, Any]:
    """IDs as keyword arguments for a kind chosen at run time."""
    return {kind: ids}


def expected(row: dict[str, Any], *, xml: bool = False) -> DetailedReport:
    """The row a client should return for a provider row (XML carries no errorcode)."""

    def date(text: str | None) -> datetime | None:
        return None if text is None else datetime.strptime(text, "%Y-%m-%d %H:%M:%S")

    create, start = date(row["create_date"]), date(row["start_date"])
    assert create is not None
    assert start is not None
    return DetailedReport(
        gsm=row["gsm"],
        transaction_id=row["transaction_id"],
        gsm_track_id=row["gsm_track_id"],
        delivery_track_id=row["delivery_track_id"],
        create_date=create,
        start_date=start,
        finish_date=date(row["finish_date"]),
        status=row["status"],
        sms_count=row["sms_count"],
        credit_amount=row["credit_amount"],
        is_foreign_gsm=bool(row["is_foreign_gsm"]),
        errorcode=0 if xml else row["errorcode"],
    )


class Provider:
    """``detailedreport`` as the spec describes it, enough for unit tests."""

    def __init__(self, rows: list[dict[str, Any]] = PROVIDER_ROWS, key: str = KEY) -> None:
        self.rows = rows
        self.key = key
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        parts = path[path.index("/v2/") :].strip("/").split("/")  # after any base path
        assert request.method == "POST"
        assert parts[2] == "detailedreport"
        request_format = parts[3] if len(parts) > 3 else "json"
        response_format = parts[4] if len(parts) > 4 else request_format
        if parts[1] != self.key:
            return self.error(response_format, 99, "Yetkilendirme hatası")
        try:
            ids = self.read_ids(request_format, request.content)
        except (ValueError, ET.ParseError):
            return self.error(response_format, 97, "Geçersiz istek gövdesi")
        matched = [
            row
            for row in self.rows
            if str(row["transaction_id"]) in ids.get("transaction_ids", ())
            or str(row["delivery_track_id"]) in ids.get("delivery_track_ids", ())
            or str(row["gsm_track_id"]) in ids.get("gsm_track_ids", ())
        ]
        if not matched:
            return self.error(response_format, 87, "Kayıt bulunamadı")
        return self.success(response_format, matched)

    @staticmethod
    def read_ids(fmt: str, body: bytes) -> dict[str, list[str]]:
        if fmt == "json":
            data = json.loads(body)["data"]
            return {kind: [str(v) for v in values] for kind, values in data.items()}
        root = ET.fromstring(body)
        assert root.tag == "document"
        ids: dict[str, list[str]] = {}
        data_node = root.find("data")
        for element in data_node if data_node is not None else []:
            ids.setdefault(element.tag, []).append(element.text or "")
        return ids

    @staticmethod
    def success(fmt: str, rows: list[dict[str, Any]]) -> httpx.Response:
        if fmt == "json":
            body = rows_answer(*rows)
            return httpx.Response(200, content=body, headers={"Content-Type": MEDIA[fmt]})
        # The provider's XML example: bare <item>s, no errorcode, <finish_date /> when null.
        out = ['<?xml version="1.0" encoding="UTF-8" ?>']
        for row in rows:
            out.append("<item>")
            for name, value in row.items():
                if name == "errorcode":
                    continue
                if value is None:
                    out.append(f"   <{name} />")
                else:
                    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
                    out.append(f"   <{name}>{text}</{name}>")
            out.append("</item>")
        body = "\n".join(out).encode()
        return httpx.Response(200, content=body, headers={"Content-Type": MEDIA[fmt]})

    @staticmethod
    def error(fmt: str, code: int, message: str) -> httpx.Response:
        body = error_answer(
            code, fmt, message=message, number=f"E{code}", time="2024-03-01 09:00:00"
        )
        return httpx.Response(200, content=body, headers={"Content-Type": MEDIA[fmt]})


@pytest.fixture
def provider() -> Provider:
    return Provider()


def client_for(provider: Provider, **kwargs: Any) -> OrganikClient:
    kwargs.setdefault("max_retries", 0)
    return OrganikClient(KEY, transport=httpx.MockTransport(provider), **kwargs)


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORGANIK_API_KEY", raising=False)


# --- formats, URLs, headers, bodies -------------------------------------------------------

FORMAT_PAIRS = [
    ("json", None, "/detailedreport/json/"),
    ("xml", None, "/detailedreport/xml/"),
    ("json", "json", "/detailedreport/json/"),
    ("xml", "xml", "/detailedreport/xml/"),
    ("json", "xml", "/detailedreport/json/xml/"),
    ("xml", "json", "/detailedreport/xml/json/"),
]


@pytest.mark.parametrize(("request_format", "response_format", "suffix"), FORMAT_PAIRS)
async def test_formats_map_to_url_segments_headers_and_bodies(
    provider: Provider, request_format: str, response_format: str | None, suffix: str
) -> None:
    received = response_format or request_format
    async with client_for(
        provider, request_format=request_format, response_format=response_format
    ) as client:
        with anyio.fail_after(5):
            rows = await client.detailed_report(transaction_ids=[14094857])
    [request] = provider.requests
    assert str(request.url) == f"https://organikapi.com/v2/{KEY}{suffix}"
    assert request.headers["Content-Type"] == MEDIA[request_format]
    assert request.headers["Accept"] == MEDIA[received]
    if request_format == "json":
        assert json.loads(request.content) == {"data": {"transaction_ids": [14094857]}}
    else:
        assert request.content.startswith(b"<?xml")
        assert ET.fromstring(request.content).tag == "document"
    xml = received == "xml"
    assert rows == [expected(PROVIDER_ROWS[0], xml=xml), expected(PROVIDER_ROWS[1], xml=xml)]
    assert client.request_format == request_format
    assert client.response_format == received


async def test_defaults_are_json_both_ways_at_the_provider(provider: Provider) -> None:
    async with OrganikClient(KEY, transport=httpx.MockTransport(provider)) as client:
        with anyio.fail_after(5):
            await client.detailed_report(gsm_track_ids=[410471976])
    [request] = provider.requests
    assert str(request.url) == f"{DEFAULT_BASE_URL}/v2/{KEY}/detailedreport/json/"
    assert DEFAULT_BASE_URL == "https://organikapi.com"


@pytest.mark.parametrize("field", ["request_format", "response_format"])
@pytest.mark.parametrize("value", ["JSON", "yaml", "form", "json "])
def test_unknown_format_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        options: dict[str, Any] = {field: value}
        OrganikClient(KEY, **options)


async def test_base_url_trailing_slash_is_ignored(provider: Provider) -> None:
    async with client_for(provider, base_url="http://proxy.local:8080/organik/") as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[16334701])
    assert str(provider.requests[0].url) == (
        f"http://proxy.local:8080/organik/v2/{KEY}/detailedreport/json/"
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("kind", "ids"),
    [
        ("transaction_ids", [14094857, 16334701]),
        ("delivery_track_ids", ["b627ffe79fc148e8ea7425222c4ed8"]),
        ("gsm_track_ids", [410471976, "16502030-4730-63032793"]),
    ],
)
async def test_body_holds_only_the_kinds_given(
    provider: Provider, fmt: str, kind: str, ids: list[int | str]
) -> None:
    async with client_for(provider, request_format=fmt) as client:
        with anyio.fail_after(5):
            rows = await client.detailed_report(**by_kind(kind, ids))
    assert rows
    [request] = provider.requests
    if fmt == "json":
        assert json.loads(request.content) == {"data": {kind: ids}}
    else:
        data = ET.fromstring(request.content).find("data")
        assert data is not None
        assert [(e.tag, e.text) for e in data] == [(kind, str(v)) for v in ids]


async def test_ids_may_be_ints_or_strs_and_keep_their_json_type(provider: Provider) -> None:
    async with client_for(provider) as client:
        with anyio.fail_after(5):
            rows = await client.detailed_report(
                gsm_track_ids=[410471976, "16502030-4730-63032793", "474057742"]
            )
    [request] = provider.requests
    assert json.loads(request.content) == {
        "data": {"gsm_track_ids": [410471976, "16502030-4730-63032793", "474057742"]}
    }
    assert {r.gsm_track_id for r in rows} == {410471976, "16502030-4730-63032793", 474057742}


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_hostile_delivery_track_id_is_sent_escaped_and_matched(
    provider: Provider, fmt: str
) -> None:
    hostile = "a<b&c</delivery_track_ids>"
    async with client_for(provider, request_format=fmt, response_format=fmt) as client:
        with anyio.fail_after(5):
            rows = await client.detailed_report(delivery_track_ids=[hostile])
    assert [r.delivery_track_id for r in rows] == [hostile]
    assert rows == [expected(PROVIDER_ROWS[3], xml=fmt == "xml")]


async def test_iterables_of_any_kind_are_accepted(provider: Provider) -> None:
    def generated() -> Iterator[int]:
        yield 14094857

    async with client_for(provider) as client:
        with anyio.fail_after(5):
            from_generator = await client.detailed_report(transaction_ids=generated())
            from_tuple = await client.detailed_report(transaction_ids=(14094857,))
            from_set = await client.detailed_report(transaction_ids={14094857})
    assert from_generator == from_tuple == from_set
    assert len(from_generator) == 2


async def test_no_records_code_87_is_zero_rows(provider: Provider) -> None:
    async with client_for(provider) as client:
        with anyio.fail_after(5):
            assert await client.detailed_report(transaction_ids=[999]) == []
    assert len(provider.requests) == 1


@pytest.mark.parametrize(
    "ids",
    [
        {"transaction_ids": []},
        {"transaction_ids": [], "delivery_track_ids": (), "gsm_track_ids": []},
        {"gsm_track_ids": iter(())},
    ],
    ids=["empty", "all-empty", "empty-iterator"],
)
async def test_no_ids_sends_nothing_and_returns_no_rows(
    provider: Provider, ids: dict[str, Any]
) -> None:
    async with client_for(provider) as client:
        with anyio.fail_after(5):
            assert await client.detailed_report(**ids) == []
    assert provider.requests == []


@pytest.mark.parametrize("kind", ["transaction_ids", "delivery_track_ids", "gsm_track_ids"])
@pytest.mark.parametrize("bad", [True, False, None, 1.5, [1, 2], (3,), b"raw", {"id": 1}], ids=repr)
async def test_bad_id_is_a_type_error_naming_the_field(
    provider: Provider, kind: str, bad: object
) -> None:
    async with client_for(provider) as client:
        with pytest.raises(TypeError, match=kind), anyio.fail_after(5):
            await client.detailed_report(**by_kind(kind, [123, bad]))
    assert provider.requests == []


@pytest.mark.parametrize("kind", ["transaction_ids", "gsm_track_ids"])
async def test_bad_id_in_a_generator_is_a_type_error_before_any_request(
    provider: Provider, kind: str
) -> None:
    def generated() -> Iterator[object]:
        yield 14094857
        yield None

    async with client_for(provider) as client:
        with pytest.raises(TypeError, match=kind), anyio.fail_after(5):
            await client.detailed_report(**by_kind(kind, generated()))
    assert provider.requests == []


@pytest.mark.parametrize("kind", ["transaction_ids", "delivery_track_ids", "gsm_track_ids"])
@pytest.mark.parametrize("bare", ["14094857", 14094857, b"14094857", None], ids=repr)
async def test_bare_id_instead_of_an_iterable_is_a_type_error(
    provider: Provider, kind: str, bare: object
) -> None:
    async with client_for(provider) as client:
        with pytest.raises(TypeError, match=kind), anyio.fail_after(5):
            await client.detailed_report(**by_kind(kind, bare))
    assert provider.requests == []


async def test_timeout_setting_reaches_the_request(provider: Provider) -> None:
    async with client_for(provider, timeout=7.5) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[16334701])
    assert provider.requests[0].extensions["timeout"] == {
        "connect": 7.5,
        "read": 7.5,
        "write": 7.5,
        "pool": 7.5,
    }


async def test_default_read_timeout_is_the_providers_180_seconds(provider: Provider) -> None:
    async with client_for(provider) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[16334701])
    assert provider.requests[0].extensions["timeout"]["read"] == 180.0


async def test_concurrent_calls_share_one_client(provider: Provider) -> None:
    results: dict[int, list[DetailedReport]] = {}

    async def one(transaction_id: int) -> None:
        results[transaction_id] = await client.detailed_report(transaction_ids=[transaction_id])

    async with client_for(provider) as client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for tid in [14094857, 16334701, 20000001, 999] * 3:
                    tg.start_soon(one, tid)
    assert len(provider.requests) == 12
    assert [r.gsm_track_id for r in results[14094857]] == [410471976, 410471979]
    assert [r.gsm_track_id for r in results[16334701]] == [474057742]
    assert [r.gsm_track_id for r in results[20000001]] == ["16502030-4730-63032793"]
    assert results[999] == []


# --- the API key -------------------------------------------------------------------------


def test_api_key_from_credentials_is_md5_of_username_plus_password() -> None:
    # Well-known MD5 test vectors, split into "username" + "password".
    assert api_key_from_credentials("", "") == "d41d8cd98f00b204e9800998ecf8427e"
    assert (
        api_key_from_credentials("The quick brown fox ", "jumps over the lazy dog")
        == "9e107d9d372bb6826bd81d3542a419d6"
    )
    assert api_key_from_credentials("ab", "c") == api_key_from_credentials("a", "bc")
    key = api_key_from_credentials("kullanıcı", "şifre")  # UTF-8, any text
    assert len(key) == 32
    assert key == key.lower()
    OrganikClient(key)  # a derived key is a valid key


async def test_api_key_falls_back_to_the_environment(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", KEY)
    async with OrganikClient(transport=httpx.MockTransport(provider), max_retries=0) as client:
        with anyio.fail_after(5):
            assert len(await client.detailed_report(transaction_ids=[14094857])) == 2
    assert f"/v2/{KEY}/" in str(provider.requests[0].url)


async def test_explicit_api_key_wins_over_the_environment(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", OTHER_KEY)
    async with client_for(provider) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[14094857])
    assert f"/v2/{KEY}/" in str(provider.requests[0].url)


async def test_a_wrong_but_well_formed_key_reaches_the_provider_and_fails_there() -> None:
    provider = Provider(key=OTHER_KEY)
    async with client_for(provider) as client:
        with pytest.raises(AuthenticationError) as info, anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[14094857])
    assert info.value.code == 99
    assert len(provider.requests) == 1


def test_missing_api_key_is_an_authentication_error_before_any_request(
    provider: Provider,
) -> None:
    with pytest.raises(AuthenticationError, match="ORGANIK_API_KEY"):
        OrganikClient(transport=httpx.MockTransport(provider))
    with pytest.raises(AuthenticationError):
        OrganikClient("", transport=httpx.MockTransport(provider))
    assert provider.requests == []


def test_empty_environment_key_is_missing(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", "")
    with pytest.raises(AuthenticationError):
        OrganikClient(transport=httpx.MockTransport(provider))


@pytest.mark.parametrize(
    "bad",
    [
        KEY[:31],
        KEY + "0",
        KEY[:31] + "g",
        " " + KEY[:31],
        KEY[:16] + "-" + KEY[17:],
        "ç" * 32,
        "٠" * 32,  # Arabic-Indic zeros: digits to str.isdigit, not hex
    ],
    ids=["31", "33", "non-hex", "space", "dash", "non-ascii", "arabic-digits"],
)
def test_malformed_api_key_is_an_authentication_error_before_any_request(
    provider: Provider, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AuthenticationError) as info:
        OrganikClient(bad, transport=httpx.MockTransport(provider))
    assert "32" in str(info.value)
    assert bad not in str(info.value)
    monkeypatch.setenv("ORGANIK_API_KEY", bad)
    with pytest.raises(AuthenticationError):
        OrganikClient(transport=httpx.MockTransport(provider))
    assert provider.requests == []


def test_upper_case_hex_key_is_accepted() -> None:
    OrganikClient(KEY.upper())


# --- lifecycle -----------------------------------------------------------------------------


class RecordingTransport(httpx.MockTransport):
    def __init__(self, handler: Provider) -> None:
        super().__init__(handler)
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_callers_http_client_is_used_as_is_and_never_closed(provider: Provider) -> None:
    transport = RecordingTransport(provider)
    async with httpx.AsyncClient(
        transport=transport, headers={"X-Trace": "abc"}, params={"tenant": "7"}
    ) as own:
        client = OrganikClient(KEY, http_client=own, max_retries=0)
        async with client:
            with anyio.fail_after(5):
                rows = await client.detailed_report(transaction_ids=[16334701])
        await client.aclose()
        assert len(rows) == 1
        [request] = provider.requests
        assert request.headers["X-Trace"] == "abc"  # the caller's settings apply
        assert request.url.params["tenant"] == "7"
        assert not own.is_closed
        assert transport.closed == 0
        # Still the caller's to use.
        response = await own.post(f"https://organikapi.com/v2/{KEY}/detailedreport/json/")
        assert response.status_code == 200


async def test_own_pools_are_closed_by_aclose(provider: Provider) -> None:
    transport = RecordingTransport(provider)
    client = OrganikClient(KEY, transport=transport)
    with anyio.fail_after(5):
        await client.detailed_report(transaction_ids=[16334701])
        await client.aclose()
    assert transport.closed >= 1
    assert client.is_closed


def test_http_client_and_transport_together_are_refused(provider: Provider) -> None:
    with pytest.raises(ValueError, match="http_client"):
        OrganikClient(
            KEY,
            http_client=httpx.AsyncClient(),
            transport=httpx.MockTransport(provider),
        )


async def test_closed_client_raises_client_closed_error(provider: Provider) -> None:
    client = client_for(provider)
    async with client:
        pass
    assert client.is_closed
    with pytest.raises(ClientClosedError), anyio.fail_after(5):
        await client.detailed_report(transaction_ids=[14094857])
    with pytest.raises(ClientClosedError), anyio.fail_after(5):
        await client.detailed_report()  # even with nothing to send
    assert provider.requests == []
    assert issubclass(ClientClosedError, OrganikError)
    assert issubclass(ClientClosedError, RuntimeError)


async def test_reentering_a_closed_client_raises(provider: Provider) -> None:
    client = client_for(provider)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        async with client:
            pass


async def test_aclose_twice_is_fine(provider: Provider) -> None:
    client = client_for(provider)
    with anyio.fail_after(5):
        await client.detailed_report(transaction_ids=[16334701])
        await client.aclose()
        await client.aclose()
    assert client.is_closed


async def test_client_works_without_a_context_manager(provider: Provider) -> None:
    client = client_for(provider)
    try:
        with anyio.fail_after(5):
            assert len(await client.detailed_report(transaction_ids=[14094857])) == 2
    finally:
        await client.aclose()


async def test_context_manager_closes_on_error(provider: Provider) -> None:
    client = client_for(provider)
    with pytest.raises(KeyError):
        async with client:
            raise KeyError("boom")
    assert client.is_closed


def test_repr_shows_base_url_and_formats_never_the_key() -> None:
    client = OrganikClient(
        KEY, base_url="https://example.test", request_format="json", response_format="xml"
    )
    text = repr(client)
    assert "https://example.test" in text
    assert "'json'" in text
    assert "'xml'" in text
    assert KEY not in text
    assert KEY not in client.url
    assert client.url == "https://example.test/v2/***/detailedreport/json/xml/"
