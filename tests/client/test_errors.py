"""Every way a request can fail, mapped onto the exception tree.

Handlers answer the way the spec says the provider (or a proxy in front of
it) does: ``result: false`` envelopes with HTTP 200 (or another status), bare
non-2xx answers, broken bodies, and connection failures.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from organik_async import (
    AnsweredError,
    APIError,
    AuthenticationError,
    BulkReportError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    RateLimitError,
    RequestInfo,
    ResponseTooLargeError,
    TimeoutExpiredError,
    TransportError,
)
from tests.helpers.provider import KEY, SEED_ROW, error_answer, rows_answer, seed_row

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

TIME = "2024-03-01 09:00:00"

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(fmt: str, code: int, message: str = "Hata", *, time: str | None = TIME) -> bytes:
    """A provider ``result: false`` answer, as the public docs show it."""
    return error_answer(code, fmt, message=message, number=f"N-{code}", time=time)


def success(fmt: str = "json") -> bytes:
    return rows_answer(SEED_ROW, fmt=fmt)


def fmt_of(request: httpx.Request) -> str:
    """The response format the URL asks for."""
    parts = request.url.path.strip("/").split("/")
    return parts[4] if len(parts) > 4 else parts[3]


class Recorder:
    """Counts requests and answers each with ``answer``."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client(handler: Handler, **kwargs: Any) -> OrganikClient:
    kwargs.setdefault("max_retries", 0)
    return OrganikClient(KEY, transport=httpx.MockTransport(handler), **kwargs)


async def fail(handler: Handler, ids: dict[str, Any] | None = None, **kwargs: Any) -> OrganikError:
    """Run one call that must fail; return its error."""
    async with client(handler, **kwargs) as c:
        with pytest.raises(OrganikError) as info, anyio.fail_after(5):
            await c.detailed_report(**(ids or {"transaction_ids": [14094857, 16334701]}))
    return info.value


# --- the tree ----------------------------------------------------------------------------


def test_every_error_is_an_organik_error() -> None:
    for cls in [
        ClientClosedError,
        APIError,
        AuthenticationError,
        RateLimitError,
        HTTPStatusError,
        TransportError,
        TimeoutExpiredError,
        DecodeError,
        ResponseTooLargeError,
        BulkReportError,
    ]:
        assert issubclass(cls, OrganikError)
    assert issubclass(AuthenticationError, APIError)
    assert issubclass(RateLimitError, APIError)
    assert issubclass(TimeoutExpiredError, TransportError)
    assert issubclass(TimeoutExpiredError, builtins.TimeoutError)
    assert not issubclass(HTTPStatusError, APIError)


# --- result: false -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("code", [1, 85, 86, 88, 91, 92, 97, 101, 112, 4242])
async def test_result_false_is_an_api_error_with_the_providers_fields(fmt: str, code: int) -> None:
    handler = Recorder(
        lambda r: httpx.Response(200, content=envelope(fmt, code, "Bir hata oluştu"))
    )
    error = await fail(handler, request_format=fmt)
    assert type(error) is APIError
    assert error.code == code
    assert error.number == f"N-{code}"
    assert error.error_message == "Bir hata oluştu"
    assert error.time == TIME
    assert error.status_code == 200
    assert "Bir hata oluştu" in str(error)
    assert str(code) in str(error)
    assert len(handler.requests) == 1


async def test_api_error_description_is_the_documented_meaning() -> None:
    error = await fail(lambda r: httpx.Response(200, content=envelope("json", 97)))
    assert isinstance(error, APIError)
    assert error.description == "invalid request body format"
    assert "invalid request body format" in str(error)
    unknown = await fail(lambda r: httpx.Response(200, content=envelope("json", 4242)))
    assert isinstance(unknown, APIError)
    assert unknown.description is None


async def test_result_false_without_time_has_time_none() -> None:
    error = await fail(lambda r: httpx.Response(200, content=envelope("json", 97, time=None)))
    assert isinstance(error, APIError)
    assert error.time is None


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("code", [89, 90, 98, 99])
async def test_auth_codes_are_authentication_errors(fmt: str, code: int) -> None:
    handler = Recorder(lambda r: httpx.Response(200, content=envelope(fmt, code)))
    error = await fail(handler, response_format=fmt, max_retries=3)
    assert type(error) is AuthenticationError
    assert error.code == code
    assert len(handler.requests) == 1  # never retried


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_code_93_is_a_rate_limit_error(fmt: str) -> None:
    error = await fail(lambda r: httpx.Response(200, content=envelope(fmt, 93)), request_format=fmt)
    assert type(error) is RateLimitError
    assert error.code == 93
    assert error.status_code == 200
    assert error.time == TIME


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_code_87_no_records_is_zero_rows_not_an_error(fmt: str) -> None:
    handler = Recorder(lambda r: httpx.Response(200, content=envelope(fmt, 87, "Kayıt yok")))
    async with client(handler, request_format=fmt) as c:
        with anyio.fail_after(5):
            assert await c.detailed_report(transaction_ids=[1, 2]) == []
    assert len(handler.requests) == 1


# --- HTTP statuses -------------------------------------------------------------------------


async def test_http_429_without_envelope_is_rate_limit_error() -> None:
    error = await fail(lambda r: httpx.Response(429, text="Too Many Requests"))
    assert type(error) is RateLimitError
    assert error.status_code == 429
    assert error.code is None
    assert error.number is None
    assert error.error_message is None
    assert error.time is None
    assert "429" in str(error)


async def test_http_429_with_envelope_keeps_the_envelope() -> None:
    error = await fail(lambda r: httpx.Response(429, content=envelope("json", 93, "Yavaş")))
    assert type(error) is RateLimitError
    assert (error.code, error.error_message, error.time, error.status_code) == (
        93,
        "Yavaş",
        TIME,
        429,
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, 97, APIError),
        (401, 99, AuthenticationError),
        (403, 98, AuthenticationError),
        (404, 88, APIError),
        (500, 1, APIError),
        (503, 93, RateLimitError),
    ],
)
async def test_non_2xx_carrying_an_envelope_raises_the_providers_error(
    fmt: str, status: int, code: int, cls: type[APIError]
) -> None:
    error = await fail(
        lambda r: httpx.Response(status, content=envelope(fmt, code, "Sağlayıcı hatası")),
        request_format=fmt,
    )
    assert type(error) is cls
    assert error.code == code
    assert error.error_message == "Sağlayıcı hatası"
    assert error.status_code == status


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 405, 500, 502, 503, 504, 520])
async def test_other_non_2xx_is_http_status_error(status: int) -> None:
    page = f"<html><body><h1>{status}</h1>nginx</body></html>"
    error = await fail(lambda r: httpx.Response(status, text=page))
    assert type(error) is HTTPStatusError
    assert error.status_code == status
    assert f"HTTP {status}" in str(error)
    assert b"nginx" in error.body


async def test_non_2xx_with_a_success_envelope_is_still_an_error() -> None:
    error = await fail(lambda r: httpx.Response(500, content=success()))
    assert type(error) is HTTPStatusError
    assert error.status_code == 500


async def test_http_status_error_body_is_size_capped() -> None:
    error = await fail(lambda r: httpx.Response(404, text="x" * 100_000))
    assert isinstance(error, HTTPStatusError)
    assert 0 < len(error.body) <= 4096


# --- transport -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError],
)
async def test_connection_failure_is_transport_error(exc: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("connection reset by peer", request=request)

    error = await fail(handler)
    assert type(error) is TransportError
    assert not isinstance(error, builtins.TimeoutError)
    assert exc.__name__ in error.cause
    assert "connection reset by peer" in error.cause


@pytest.mark.parametrize(
    "exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
async def test_timeouts_are_our_timeout_error_and_the_builtin_one(
    exc: type[httpx.TimeoutException],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("timed out", request=request)

    error = await fail(handler)
    assert type(error) is TimeoutExpiredError
    assert isinstance(error, TransportError)
    assert isinstance(error, builtins.TimeoutError)
    assert exc.__name__ in error.cause


async def test_builtin_timeout_error_handler_catches_ours() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    caught = False
    async with client(handler) as c:
        try:
            with anyio.fail_after(5):
                await c.detailed_report(transaction_ids=[1])
        except builtins.TimeoutError:
            caught = True
    assert caught


# --- bodies that cannot be decoded ----------------------------------------------------------


async def test_invalid_json_is_decode_error_with_position_and_excerpt() -> None:
    body = b'{"response": {"result": true, "data": [{"gsm": 905445359675,, }]}}'
    handler = Recorder(lambda r: httpx.Response(200, content=body))
    error = await fail(handler, max_retries=3)
    assert type(error) is DecodeError
    assert error.position == f"byte {body.index(b',,') + 1}"
    assert ",," in error.excerpt
    assert error.position in str(error)
    assert "(json, 2 IDs)" in str(error)
    assert len(handler.requests) == 1  # not retried


async def test_json_of_the_wrong_shape_is_decode_error_naming_the_field() -> None:
    body = rows_answer(SEED_ROW, seed_row(create_date="yesterday"))
    error = await fail(lambda r: httpx.Response(200, content=body))
    assert type(error) is DecodeError
    assert error.position == "$.response.data[1].create_date"
    assert "create_date" in error.excerpt


async def test_json_without_the_envelope_is_decode_error() -> None:
    error = await fail(lambda r: httpx.Response(200, content=b'{"result": true, "data": []}'))
    assert type(error) is DecodeError
    assert "response" in str(error)


async def test_empty_json_body_is_decode_error() -> None:
    error = await fail(lambda r: httpx.Response(200, content=b""))
    assert type(error) is DecodeError


async def test_invalid_xml_is_decode_error_with_line_and_column() -> None:
    body = b'<?xml version="1.0"?>\n<item>\n  <gsm>1</gsm>\n  <status>2</sta>\n</item>\n'
    error = await fail(lambda r: httpx.Response(200, content=body), request_format="xml")
    assert type(error) is DecodeError
    assert error.position.startswith("line 4, column ")
    assert "</sta>" in error.excerpt
    assert "(xml, 2 IDs)" in str(error)


async def test_xml_html_page_with_200_is_decode_error_not_zero_rows() -> None:
    page = b"<html><head><title>Bakim</title></head><body>Bakim calismasi</body></html>"
    error = await fail(lambda r: httpx.Response(200, content=page), request_format="xml")
    assert type(error) is DecodeError
    assert "Bakim" in error.excerpt


async def test_json_request_xml_response_decodes_as_xml() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=success(fmt_of(request)))

    async with client(handler, request_format="json", response_format="xml") as c:
        with anyio.fail_after(5):
            [row] = await c.detailed_report(transaction_ids=[14094857])
    assert row.gsm == 905445359675
    # The JSON answer to an XML URL is a decode error that says what it expected.
    error = await fail(
        lambda r: httpx.Response(200, content=success("json")), response_format="xml"
    )
    assert type(error) is DecodeError
    assert "json->xml" in str(error)


async def test_response_over_max_response_bytes_is_refused() -> None:
    error = await fail(lambda r: httpx.Response(200, content=success()), max_response_bytes=64)
    assert type(error) is ResponseTooLargeError
    assert "max_response_bytes" in str(error)


# --- every error names its request and the attempts made -----------------------------------

FAILURES: dict[str, Handler] = {
    "api": lambda r: httpx.Response(200, content=envelope(fmt_of(r), 97)),
    "auth": lambda r: httpx.Response(200, content=envelope(fmt_of(r), 99)),
    "rate-limit": lambda r: httpx.Response(429, headers={"Retry-After": "30"}),
    "http": lambda r: httpx.Response(404, text="not here"),
    "decode": lambda r: httpx.Response(200, content=b"<<<not a body>>>"),
}


def _raise_connect(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def _raise_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("slow", request=request)


FAILURES["transport"] = _raise_connect
FAILURES["timeout"] = _raise_timeout


@pytest.mark.parametrize("kind", list(FAILURES))
@pytest.mark.parametrize(
    ("request_format", "response_format", "shown"),
    [("json", None, "json"), ("xml", None, "xml"), ("xml", "json", "xml->json")],
)
async def test_every_error_names_the_request_and_attempts(
    kind: str, request_format: str, response_format: str | None, shown: str
) -> None:
    error = await fail(
        FAILURES[kind],
        {"gsm_track_ids": [1, 2, 3]},
        request_format=request_format,
        response_format=response_format,
        backoff_base=0,
        max_retries=1,
        pushback_timeout=45,  # a refusal's patience: one wait of 30 s, then no more
    )
    retried = kind in {"rate-limit", "transport", "timeout"}
    assert error.attempts == (2 if retried else 1)
    assert error.refusals == (2 if kind == "rate-limit" else 0)
    assert isinstance(error.request, RequestInfo)
    assert error.request.id_count == 3
    assert error.request.request_format == request_format
    assert error.request.response_format == (response_format or request_format)
    text = str(error)
    assert f"({shown}, 3 IDs)" in text
    assert f"attempts: {error.attempts}" in text
    assert "POST https://organikapi.com/v2/***/detailedreport/" in text
    assert repr(error).startswith(type(error).__name__ + "(")


async def test_single_id_is_named_in_the_singular() -> None:
    error = await fail(FAILURES["api"], {"transaction_ids": [7]})
    assert "(json, 1 ID)" in str(error)


def test_the_old_name_of_timeout_expired_error_still_works_with_a_deprecation_warning() -> None:
    import organik_async

    with pytest.warns(DeprecationWarning, match="TimeoutExpiredError"):
        old = organik_async.TimeoutError
    assert old is organik_async.TimeoutExpiredError
    assert "TimeoutError" not in organik_async.__all__  # a star import never hides the builtin
    assert issubclass(organik_async.TimeoutExpiredError, builtins.TimeoutError)
    with pytest.raises(AttributeError, match="no attribute 'Timeout'"):
        _ = organik_async.Timeout


def test_both_kinds_of_answer_that_are_not_rows_share_one_base() -> None:
    refused = APIError("refused", code=95, status_code=200, retry_after=2.0)
    status = HTTPStatusError("HTTP 502", status_code=502, body=b"bad gateway")
    for error in (refused, status):
        assert isinstance(error, AnsweredError)
        assert isinstance(error, OrganikError)
    assert (status.status_code, status.body, status.retry_after) == (502, b"bad gateway", None)
    assert (refused.status_code, refused.retry_after) == (200, 2.0)
