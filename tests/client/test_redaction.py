"""The API key is in the URL path: it must never be shown.

Not in an error's message, ``repr``, attributes or chained causes, not in a
formatted traceback, not in any log record (ours or httpx's), not in the
client's ``repr``, and not in the body excerpts errors carry, even when the
server echoes the key back.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    DecodeError,
    Format,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    RateLimitError,
    TimeoutExpiredError,
    TransportError,
)
from tests.helpers.provider import KEY, NO_ROWS, error_answer, rows_answer
from tests.helpers.secrets import chain, key_runs

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

Answer = Callable[[httpx.Request], httpx.Response]


def shown_by(error: BaseException) -> dict[str, str]:
    """Everything an error can show: texts, attributes, chain and traceback."""
    shown: dict[str, str] = {
        "str": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
    }
    for n, linked in enumerate(chain(error)):
        shown[f"chain[{n}]"] = f"{type(linked).__name__}: {linked!s} {linked!r} {linked.args!r}"
        for name, value in vars(linked).items():
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
            shown[f"chain[{n}].{name}"] = text
    return shown


def assert_key_not_shown(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    for where, text in shown_by(error).items():
        assert not key_runs(text), f"key shown in {where}: {text!r}"
    assert_logs_clean(caplog)


def assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    assert not key_runs(caplog.text), caplog.text
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.args) + repr(record.msg)
        assert not key_runs(rendered), f"key in log record {record.name}: {rendered!r}"


def json_envelope(code: int, message: str, number: str) -> bytes:
    return error_answer(code, message=message, number=number, time="t")


def xml_envelope(code: int, message: str) -> bytes:
    return error_answer(code, "xml", message=message, number=KEY)


def bad_row(field: str) -> bytes:
    """A JSON answer whose ``field`` holds the key where a number belongs."""
    return rows_answer({"gsm": 905445359675, "transaction_id": 1, "gsm_track_id": 2, field: KEY})


def raise_with_url(exc: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc(f"could not reach {request.url} ({KEY})", request=request)

    return answer


# Servers that echo the key (or the whole URL) back, in every place an error looks.
ECHOES: dict[str, tuple[Answer, type[OrganikError], Format]] = {
    "auth-envelope": (
        lambda r: httpx.Response(200, content=json_envelope(99, f"bad key {r.url}", KEY)),
        AuthenticationError,
        "json",
    ),
    "api-envelope": (
        lambda r: httpx.Response(400, content=json_envelope(96, f"key={KEY} invalid", KEY)),
        APIError,
        "json",
    ),
    "rate-limit-envelope": (
        lambda r: httpx.Response(200, content=json_envelope(93, f"slow down {KEY}", "n")),
        RateLimitError,
        "json",
    ),
    "xml-envelope": (
        lambda r: httpx.Response(200, content=xml_envelope(99, f"{r.url}")),
        AuthenticationError,
        "xml",
    ),
    "http-404-page": (
        lambda r: httpx.Response(404, text=f"<h1>Not Found</h1><p>{r.url.path}</p>"),
        HTTPStatusError,
        "json",
    ),
    "http-429-bare": (
        lambda r: httpx.Response(429, text=f"quota exceeded for {KEY}"),
        RateLimitError,
        "json",
    ),
    "invalid-json": (
        lambda r: httpx.Response(200, text=f"Error: {r.url}"),
        DecodeError,
        "json",
    ),
    "json-wrong-shape": (
        lambda r: httpx.Response(200, content=bad_row("gsm")),
        DecodeError,
        "json",
    ),
    "xml-wrong-shape": (
        lambda r: httpx.Response(200, text=f"<item><gsm>{KEY}</gsm></item>"),
        DecodeError,
        "xml",
    ),
    "upper-case-key": (
        lambda r: httpx.Response(200, content=json_envelope(99, KEY.upper(), KEY.upper())),
        AuthenticationError,
        "json",
    ),
    "half-key": (
        lambda r: httpx.Response(503, text=f"bad {KEY[:16]} / {KEY[16:]}"),
        HTTPStatusError,
        "json",
    ),
    "key-in-time": (
        lambda r: httpx.Response(
            200,
            json={"response": {"result": False, "error": {"time": KEY, "code": 96}}},
        ),
        APIError,
        "json",
    ),
    "key-as-xml-element-name": (
        lambda r: httpx.Response(200, text=f"<response><{KEY}>1</{KEY}></response>"),
        DecodeError,
        "xml",
    ),
    "key-in-xml-error-value": (
        lambda r: httpx.Response(200, text=f"<response><result>0</result><{KEY}/>"),
        DecodeError,
        "xml",
    ),
    "connect-error": (raise_with_url(httpx.ConnectError), TransportError, "json"),
    "read-timeout": (raise_with_url(httpx.ReadTimeout), TimeoutExpiredError, "json"),
}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root logger: ours, httpx's, everything
    return caplog


async def failing_call(answer: Answer, fmt: Format = "json", **kwargs: Any) -> OrganikError:
    kwargs.setdefault("max_retries", 1)
    async with OrganikClient(
        KEY, transport=httpx.MockTransport(answer), request_format=fmt, **kwargs
    ) as client:
        with pytest.raises(OrganikError) as info, anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[14094857, 16334701])
    return info.value


@pytest.mark.parametrize("scenario", list(ECHOES))
async def test_key_echoed_by_the_server_is_never_shown(
    scenario: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    answer, cls, fmt = ECHOES[scenario]
    error = await failing_call(answer, fmt)
    assert type(error) is cls
    assert_key_not_shown(error, debug_logs)


@pytest.mark.parametrize("scenario", ["auth-envelope", "http-404-page", "invalid-json"])
async def test_echoed_key_is_replaced_not_dropped(scenario: str) -> None:
    """The redaction is what keeps the key out: the echo is there, masked."""
    answer, _, fmt = ECHOES[scenario]
    error = await failing_call(answer, fmt)
    shown = " ".join(shown_by(error).values())
    assert "/v2/***/" in shown or "***" in shown


async def test_error_fields_taken_from_the_body_are_redacted() -> None:
    answer, _, _ = ECHOES["api-envelope"]
    error = await failing_call(answer)
    assert isinstance(error, APIError)
    assert error.error_message == "key=*** invalid"
    assert error.number == "***"
    assert KEY.encode() not in error.body
    assert b"***" in error.body


async def test_http_error_body_is_redacted() -> None:
    answer, _, _ = ECHOES["http-404-page"]
    error = await failing_call(answer)
    assert isinstance(error, HTTPStatusError)
    assert error.body == b"<h1>Not Found</h1><p>/v2/***/detailedreport/json/</p>"


async def test_transport_error_cause_is_redacted() -> None:
    answer, _, _ = ECHOES["connect-error"]
    error = await failing_call(answer)
    assert isinstance(error, TransportError)
    assert "ConnectError" in error.cause
    assert "***" in error.cause
    assert KEY not in error.cause


async def test_errors_are_not_chained_to_httpx_exceptions() -> None:
    for scenario in ["connect-error", "read-timeout"]:
        answer, _, _ = ECHOES[scenario]
        error = await failing_call(answer)
        linked = list(chain(error))[1:]
        assert not any(isinstance(e, httpx.HTTPError) for e in linked), linked


async def test_decode_error_excerpt_is_redacted() -> None:
    answer, _, _ = ECHOES["json-wrong-shape"]
    error = await failing_call(answer)
    assert isinstance(error, DecodeError)
    assert '"gsm"' in error.excerpt
    assert "***" in error.excerpt


async def test_successful_calls_log_nothing_secret_at_debug(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    body = NO_ROWS
    async with OrganikClient(
        KEY, transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    ) as client:
        with anyio.fail_after(5):
            await client.detailed_report(transaction_ids=[1])
    httpx_lines = [r.getMessage() for r in debug_logs.records if r.name == "httpx"]
    assert any(line.startswith("HTTP Request: POST") for line in httpx_lines), httpx_lines
    assert any("/v2/***/detailedreport/json/" in line for line in httpx_lines)
    ours = [r.getMessage() for r in debug_logs.records if r.name == "organik_async"]
    requests = [line for line in ours if line.startswith("POST ")]
    assert requests
    assert all("/v2/***/" in line for line in requests)
    assert_logs_clean(debug_logs)


async def test_retry_log_lines_are_redacted(debug_logs: pytest.LogCaptureFixture) -> None:
    answer, _, _ = ECHOES["http-429-bare"]  # a refusal: retried under pushback_timeout
    error = await failing_call(answer, pushback_timeout=5, backoff_base=1.0)
    retries = [
        r
        for r in debug_logs.records
        if r.name == "organik_async" and r.getMessage().startswith("retrying")
    ]
    assert len(retries) == error.refusals - 1 > 1  # every refusal but the last was retried
    assert_logs_clean(debug_logs)


def test_client_repr_and_url_never_show_the_key() -> None:
    client = OrganikClient(KEY, request_format="xml", response_format="json")
    assert not key_runs(repr(client))
    assert not key_runs(str(client))
    assert not key_runs(client.url)
    assert not key_runs(repr(vars(client).get("retry")))


@pytest.mark.parametrize("bad", [KEY[:31], KEY + "f", KEY[:31] + "x"])
def test_malformed_key_error_does_not_show_the_key(bad: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        OrganikClient(bad)
    for where, text in shown_by(info.value).items():
        assert not key_runs(text), f"key shown in {where}"


# --- the key cut in half at the edge of an excerpt ---------------------------------------


async def test_decode_error_excerpt_never_shows_part_of_an_echoed_key() -> None:
    """A 200 HTML page echoing the path: the excerpt window ends inside the key.

    The excerpt is the first 80 bytes around the error (byte 0 here); the key
    starts at byte 66, so cutting first and redacting after leaves 14 of its
    32 characters in the excerpt.
    """
    prefix = "<!DOCTYPE html><html><head><title>Error</title></head><body>/v2/"
    assert len(prefix) == 64

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f"{prefix}  {KEY}/detailedreport/json/</body></html>")

    error = await failing_call(answer)
    assert isinstance(error, DecodeError)
    assert not key_runs(error.excerpt), error.excerpt
    assert not key_runs(str(error))


def _long_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, text="." * 2032 + KEY + "." * 100)


def _long_envelope(request: httpx.Request) -> httpx.Response:
    head = json_envelope(96, "", "n").index(b'"message": "') + len('"message": "')
    message = "." * (2032 - head) + KEY + "." * 100
    body = json_envelope(96, message, "n")
    assert body.index(KEY.encode()) == 2032
    return httpx.Response(200, content=body)


@pytest.mark.parametrize(
    ("answer", "cls"),
    [(_long_page, HTTPStatusError), (_long_envelope, APIError)],
    ids=["http-404", "api-envelope"],
)
async def test_error_body_cap_never_cuts_an_echoed_key_in_half(
    answer: Answer, cls: type[OrganikError]
) -> None:
    """A long answer that echoes the key across the body cap (2048 bytes)."""
    error = await failing_call(answer)
    assert type(error) is cls
    body: bytes = getattr(error, "body", b"")
    assert body.count(b".") > 1000
    assert not key_runs(body.decode()), body[-40:]


# --- masking by value, and the base URL checked at construction ---------------------------


@pytest.mark.parametrize(
    "base_url",
    ["https://host/v2", "https://host/v2/", "https://host/proxy/V2/x", "http://h/v2/" + KEY],
)
def test_a_base_url_with_v2_is_refused_without_showing_the_key(base_url: str) -> None:
    """With ``…/v2`` the old position-based masking hid a path segment, not the key."""
    with pytest.raises(ValueError, match="base_url") as info:
        OrganikClient(KEY, base_url=base_url)
    assert not key_runs(str(info.value))


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("organikapi.com", "http"),
        ("ftp://organikapi.com", "http"),
        ("https://", "host"),
        ("https://host/?a=1", "query"),
        ("https://host/#frag", "fragment"),
        (f"https://host/{KEY.upper()}", "key"),
        (f"https://{KEY[:12]}.example.com", "key"),
        ("https://exa mple.com", "valid"),
    ],
)
def test_an_unusable_base_url_is_a_value_error_naming_the_setting(
    base_url: str, reason: str
) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        OrganikClient(KEY, base_url=base_url)
    assert reason in str(info.value)
    assert not key_runs(str(info.value))


async def test_a_proxy_prefix_in_the_base_url_is_kept() -> None:
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=NO_ROWS)

    async with OrganikClient(
        KEY, base_url="https://proxy.local/organik/", transport=httpx.MockTransport(answer)
    ) as client:
        await client.detailed_report(transaction_ids=[1])
    assert str(seen[0]) == f"https://proxy.local/organik/v2/{KEY}/detailedreport/json/"
    assert client.url == "https://proxy.local/organik/v2/***/detailedreport/json/"


def test_a_failed_constructor_leaves_a_safe_repr_and_a_traceback_with_locals() -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        OrganikClient(KEY, base_url="https://host/v2")
    text = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "OrganikClient" in text  # the frame and its locals were formatted
    assert not key_runs(text), text
    half_built = OrganikClient.__new__(OrganikClient)
    assert repr(half_built) == "<OrganikClient (not constructed)>"


async def test_tracebacks_with_locals_of_request_errors_never_show_the_key() -> None:
    for answer, _, fmt in ECHOES.values():
        error = await failing_call(answer, fmt)
        text = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
        assert not key_runs(text), text


@pytest.mark.slow
async def test_httpcore_debug_logs_never_show_the_key(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """httpcore logs from child loggers (``httpcore.http11``...): each is filtered."""
    from organik_async.testing import Dataset, FakeOrganikAPI, serve

    fake = FakeOrganikAPI(Dataset.generate(50, seed=1), api_keys=[KEY])
    async with (
        serve(fake) as base_url,
        OrganikClient(KEY, base_url=base_url, http_backend="httpx") as client,
    ):
        with anyio.fail_after(10):
            await client.detailed_report(transaction_ids=fake.dataset.transaction_ids[:2])
    assert any(r.name.startswith("httpcore.") for r in debug_logs.records)
    assert any(r.name == "httpx" for r in debug_logs.records)
    assert_logs_clean(debug_logs)
