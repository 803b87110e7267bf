"""Both HTTP backends meet the wire the same way.

Every wire test here takes the ``http_backend`` fixture, so it runs on each
pair the client supports (httpx and aiohttp on asyncio, httpx on trio): the
same hostile bytes, the same typed error, the same masking. The
answers come from a raw socket server on 127.0.0.1, because the lies under
test (a body that does not decompress, a length that is not kept, a closed
connection) are what a well-behaved server such as uvicorn refuses to send.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap

import aiohttp
import anyio
import anyio.abc
import httpx
import pytest

from organik_async import (
    DecodeError,
    EndpointUnreachableError,
    HttpBackend,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    RateLimitError,
    ResponseTooLargeError,
    TimeoutExpiredError,
    TransportError,
)
from tests.helpers.provider import KEY, SEED_ROW, rows_answer, seed_row
from tests.helpers.wire import (
    CAP,
    CLOSE,
    GOOD_JSON,
    HANG,
    answer,
    assert_safe,
    chunked,
    client,
    closed_url,
    one_call,
    wire_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def expected_agent(anyio_backend: str) -> str:
    return "aiohttp/" if anyio_backend == "asyncio" else "httpx/"


def wire_agent(http_backend: str) -> str:
    """The User-Agent a request sent through ``http_backend`` carries."""
    from organik_async import __version__

    library = aiohttp.__version__ if http_backend == "aiohttp" else httpx.__version__
    return f"organik_async/{__version__} {http_backend}/{library}"


# --- which backend sends -----------------------------------------------------------------


async def test_auto_sends_through_aiohttp_on_asyncio_and_httpx_on_trio(anyio_backend: str) -> None:
    rows, wire = await one_call(lambda _: answer())
    assert isinstance(rows, list)
    assert [row.gsm_track_id for row in rows] == [410471976]
    [agent] = wire.user_agents()
    assert agent.startswith("organik_async/")
    assert expected_agent(anyio_backend) in agent


async def test_httpx_backend_sends_through_httpx_on_both_loops() -> None:
    rows, wire = await one_call(lambda _: answer(), http_backend="httpx")
    assert isinstance(rows, list)
    [agent] = wire.user_agents()
    assert "httpx/" in agent


async def test_aiohttp_backend_runs_on_asyncio_and_is_refused_on_trio(anyio_backend: str) -> None:
    async with wire_server(lambda _: answer()) as wire:
        async with client(wire.url, "aiohttp") as c:
            if anyio_backend == "trio":
                with pytest.raises(ValueError, match="asyncio only"):
                    await c.detailed_report(transaction_ids=[1])
                assert wire.heads == []
            else:
                assert len(await c.detailed_report(transaction_ids=[1])) == 1
                assert "aiohttp/" in wire.user_agents().pop()


async def test_a_multi_batch_call_keeps_every_row_on_either_backend(
    http_backend: HttpBackend,
) -> None:
    def reply(n: int) -> bytes:
        return answer(200, rows_answer(seed_row(gsm_track_id=1000 + n)))

    async with wire_server(reply) as wire, client(wire.url, http_backend, batch_sizes=1) as c:
        with anyio.fail_after(10):
            rows = await c.detailed_report(transaction_ids=range(1, 41))
    assert sorted(row.gsm_track_id for row in rows) == list(range(1001, 1041))
    assert wire.user_agents() == {wire_agent(http_backend)}


def test_the_backend_is_a_read_only_setting_checked_at_construction() -> None:
    assert OrganikClient(KEY).http_backend == "auto"
    assert OrganikClient(KEY, http_backend="httpx").http_backend == "httpx"
    assert OrganikClient(KEY).with_options(max_retries=1).http_backend == "auto"
    with pytest.raises(AttributeError):
        OrganikClient(KEY).http_backend = "httpx"  # type: ignore[misc]
    with pytest.raises(ValueError, match="'auto', 'httpx' or 'aiohttp'"):
        OrganikClient(KEY, http_backend="requests")  # type: ignore[arg-type]
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(ValueError, match="no http_client or transport"):
        OrganikClient(KEY, http_backend="aiohttp", transport=transport)


@pytest.mark.slow
def test_without_aiohttp_auto_is_httpx_and_asking_for_aiohttp_says_how_to_install_it() -> None:
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["aiohttp"] = None  # as if it were not installed
        from organik_async import OrganikClient
        assert OrganikClient({KEY!r}).http_backend == "auto"
        try:
            OrganikClient({KEY!r}, http_backend="aiohttp")
        except ValueError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert "the aiohttp extra, organik_async[aiohttp]" in done.stdout


@pytest.mark.slow
async def test_without_aiohttp_auto_sends_through_httpx() -> None:
    async with wire_server(lambda _: answer()) as wire:
        program = textwrap.dedent(
            f"""
            import sys, anyio
            sys.modules["aiohttp"] = None
            from organik_async import OrganikClient
            async def main():
                async with OrganikClient({KEY!r}, base_url={wire.url!r}) as c:
                    print(len(await c.detailed_report(transaction_ids=[1])))
            anyio.run(main)
            """
        )
        done = await anyio.run_process([sys.executable, "-c", program], check=True)
    assert done.stdout.decode().strip() == "1"
    assert "httpx/" in wire.user_agents().pop()


# --- hostile bytes, the same typed error on both -----------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_200_that_does_not_decompress_is_a_decode_error(
    encoding: str, http_backend: HttpBackend
) -> None:
    body = GOOD_JSON + KEY.encode()
    error, wire = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, body, ("Content-Encoding", encoding))
    )
    assert isinstance(error, DecodeError)
    assert error.position == "Content-Encoding header"
    assert_safe(error)
    assert len(wire.heads) == 1  # not retried: it would fail the same way


async def test_a_503_that_does_not_decompress_is_its_status_error_and_retried(
    http_backend: HttpBackend,
) -> None:
    error, wire = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(503, b"Service Unavailable", ("Content-Encoding", "gzip")),
    )
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == 503
    assert len(wire.heads) == 2
    assert_safe(error)


async def test_a_gzip_answer_that_is_whole_decodes(http_backend: HttpBackend) -> None:
    rows, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, gzip.compress(GOOD_JSON), ("Content-Encoding", "gzip")),
    )
    assert isinstance(rows, list)
    assert [row.gsm_track_id for row in rows] == [410471976]


async def test_a_compression_bomb_stops_at_max_response_bytes(http_backend: HttpBackend) -> None:
    bomb = gzip.compress(b" " * (CAP * 16))
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, bomb, ("Content-Encoding", "gzip"))
    )
    assert isinstance(error, ResponseTooLargeError)
    assert_safe(error)


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    http_backend: HttpBackend,
) -> None:
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, GOOD_JSON, ("Content-Length", str(CAP * 100))),
    )
    assert isinstance(error, ResponseTooLargeError)
    assert str(CAP * 100) in str(error)


async def test_a_chunked_answer_over_the_cap_stops_at_the_cap(http_backend: HttpBackend) -> None:
    big = rows_answer(*[SEED_ROW] * 400)
    assert len(big) > CAP
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, chunked(big), ("Transfer-Encoding", "chunked"), length=False),
    )
    assert isinstance(error, ResponseTooLargeError)


async def test_a_chunked_answer_under_the_cap_decodes(http_backend: HttpBackend) -> None:
    rows, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(
            200, chunked(GOOD_JSON, 50), ("Transfer-Encoding", "chunked"), length=False
        ),
    )
    assert isinstance(rows, list)
    assert len(rows) == 1


async def test_a_body_cut_short_is_a_transport_error_after_its_retry(
    http_backend: HttpBackend,
) -> None:
    cut = answer(200, GOOD_JSON[:40], ("Content-Length", str(len(GOOD_JSON))))
    error, wire = await one_call(http_backend=http_backend, reply=lambda _: cut + CLOSE)
    assert isinstance(error, TransportError)
    assert_safe(error)
    assert len(wire.heads) == 2


async def test_a_connection_closed_without_an_answer_is_retried_then_a_transport_error(
    http_backend: HttpBackend,
) -> None:
    error, wire = await one_call(http_backend=http_backend, reply=lambda _: CLOSE)
    assert isinstance(error, TransportError)
    assert not isinstance(error, EndpointUnreachableError)
    assert error.attempts == 2
    assert len(wire.heads) == 2
    assert_safe(error)


async def test_a_closed_connection_then_an_answer_is_rows(http_backend: HttpBackend) -> None:
    rows, wire = await one_call(
        http_backend=http_backend, reply=lambda n: CLOSE if n == 1 else answer()
    )
    assert isinstance(rows, list)
    assert len(rows) == 1
    assert len(wire.heads) == 2


@pytest.mark.slow
async def test_an_answer_that_stops_arriving_is_a_timeout_error(http_backend: HttpBackend) -> None:
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: HANG, timeout=httpx.Timeout(5, read=0.3)
    )
    assert isinstance(error, TimeoutExpiredError)
    assert error.attempts == 2
    assert_safe(error)


async def test_an_echoed_key_in_an_error_body_is_masked(http_backend: HttpBackend) -> None:
    body = b"bad gateway for /v2/" + KEY.encode() + b"/detailedreport/ and " + KEY.upper().encode()
    error, _ = await one_call(http_backend=http_backend, reply=lambda _: answer(502, body))
    assert isinstance(error, HTTPStatusError)
    assert KEY.encode() not in error.body
    assert KEY.upper().encode() not in error.body
    assert_safe(error)


async def test_a_429_with_retry_after_is_a_rate_limit_error_that_names_the_wait(
    http_backend: HttpBackend,
) -> None:
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(429, b"slow down", ("Retry-After", "7")),
        max_retries=0,
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


async def test_nothing_listening_is_an_unreachable_endpoint_with_no_key(
    http_backend: HttpBackend,
) -> None:
    with anyio.fail_after(10):
        async with client(closed_url(), http_backend, max_retries=9, unreachable_after=3) as c:
            with pytest.raises(EndpointUnreachableError) as caught:
                await c.detailed_report(transaction_ids=[1])
    assert caught.value.attempts == 3
    assert_safe(caught.value)


@pytest.mark.parametrize("where", ["connection refused", "name not resolved"])
async def test_could_not_connect_reads_the_same_on_every_backend(
    http_backend: HttpBackend, where: str
) -> None:
    """No library's wording (aiohttp's "Cannot connect to host h:80 ssl:default [...]")
    leaks into the message: the operating system's reason, in one shape."""
    # "provider.invalid": RFC 6761, it never resolves
    url = closed_url() if where == "connection refused" else "http://provider.invalid"
    async with client(url, http_backend, max_retries=2, unreachable_after=2) as c:
        with anyio.fail_after(20), pytest.raises(EndpointUnreachableError) as caught:
            await c.detailed_report(transaction_ids=[1])
    error = caught.value
    assert error.cause.startswith(where), error.cause
    assert f"(last: {where}" in str(error)
    assert "ssl:default" not in str(error)
    assert "Cannot connect to host" not in str(error)
    assert_safe(error)


async def test_closing_the_client_ends_a_hanging_request_at_once(http_backend: HttpBackend) -> None:
    async with wire_server(lambda _: HANG) as wire:
        c = client(wire.url, http_backend)
        outcome: list[BaseException] = []

        async def call() -> None:
            try:
                await c.detailed_report(transaction_ids=[1])
            except OrganikError as exc:
                outcome.append(exc)

        with anyio.fail_after(10):
            async with c, anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wire.arrived.wait()
                await c.aclose()
    [error] = outcome
    assert type(error).__name__ == "ClientClosedError"


# --- the wire's smaller lies: one behaviour, httpx's -------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param([("X-Long", "a" * 8_200)], id="a header line over 8,190 bytes"),
        pytest.param([("X-Long", "a" * 60_000)], id="a header line of 60 kB"),
        pytest.param([(f"X-{n}", "a") for n in range(300)], id="300 header lines"),
    ],
)
async def test_a_long_head_under_100_kib_is_read_on_every_backend(
    http_backend: HttpBackend, head: list[tuple[str, str]]
) -> None:
    """httpcore reads a status line and headers of up to 100 KiB in all; aiohttp is
    given the same room (its own defaults: 8,190 bytes a line, 128 lines)."""
    rows, wire = await one_call(lambda _: answer(200, GOOD_JSON, *head), http_backend=http_backend)
    assert isinstance(rows, list), rows
    assert len(rows) == 1
    assert len(wire.heads) == 1


async def test_a_long_status_line_is_read_on_every_backend(http_backend: HttpBackend) -> None:
    long_status = answer().replace(b" X\r\n", b" " + b"X" * 9_000 + b"\r\n", 1)
    rows, _ = await one_call(lambda _: long_status, http_backend=http_backend)
    assert isinstance(rows, list), rows


async def test_a_head_far_over_100_kib_is_a_transport_error_retried(
    http_backend: HttpBackend,
) -> None:
    """(httpcore checks its limit between reads of 64 KiB: a head just over it can pass.)"""
    error, wire = await one_call(
        lambda _: answer(200, GOOD_JSON, ("X-Long", "a" * 300_000)), http_backend=http_backend
    )
    assert isinstance(error, TransportError), error
    assert len(wire.heads) == 2
    assert_safe(error)


async def test_every_backend_asks_for_gzip_or_deflate_only(http_backend: HttpBackend) -> None:
    _, wire = await one_call(lambda _: answer(), http_backend=http_backend)
    [head] = wire.heads
    assert b"\r\naccept-encoding: gzip, deflate\r\n" in head.lower()


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "deflate, gzip"])
async def test_an_encoding_the_client_did_not_ask_for_is_a_decode_error(
    http_backend: HttpBackend, encoding: str
) -> None:
    """Whether a library for it happens to be installed or not: the client asked for
    gzip or deflate, and reads one of them (or none) only."""
    body = gzip.compress(gzip.compress(GOOD_JSON)) if "," in encoding else GOOD_JSON
    error, wire = await one_call(
        lambda _: answer(200, body, ("Content-Encoding", encoding)), http_backend=http_backend
    )
    assert isinstance(error, DecodeError), error
    assert error.position == "Content-Encoding header"
    assert error.attempts == 1
    assert len(wire.heads) == 1


@pytest.mark.parametrize("encoding", ["identity", "utf-8", "x-unknown", "GZIP"])
async def test_an_encoding_that_is_no_compression_is_read_as_it_came(
    http_backend: HttpBackend, encoding: str
) -> None:
    """A server that labels a plain body "utf-8" (a common misconfiguration) still
    gives rows, as it did on both libraries; a known one in capitals is decoded."""
    body = gzip.compress(GOOD_JSON) if encoding == "GZIP" else GOOD_JSON
    rows, _ = await one_call(
        lambda _: answer(200, body, ("Content-Encoding", encoding)), http_backend=http_backend
    )
    assert isinstance(rows, list), rows
    assert len(rows) == 1


async def test_bytes_after_the_declared_body_differ_by_backend(http_backend: HttpBackend) -> None:
    """The one wire difference left (see the docs): httpx keeps the body its
    Content-Length declares and drops the connection; aiohttp's parser refuses the
    whole answer when the extra bytes arrive with it (retried, then a TransportError)."""
    outcome, wire = await one_call(
        lambda _: answer() + b"EXTRA BYTES AFTER THE BODY", http_backend=http_backend
    )
    if http_backend == "httpx":
        assert isinstance(outcome, list), outcome
        assert len(wire.heads) == 1
    else:
        assert isinstance(outcome, TransportError), outcome
        assert len(wire.heads) == 2
        assert_safe(outcome)


# --- the environment's proxy, looked up once ----------------------------------------------


async def test_a_proxy_named_in_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend
) -> None:
    async with wire_server(lambda _: answer()) as wire:
        monkeypatch.setenv("HTTP_PROXY", wire.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client("http://provider.invalid", http_backend) as c:
            with anyio.fail_after(10):
                rows = await c.detailed_report(transaction_ids=[1])
    assert len(rows) == 1
    [head] = wire.heads
    assert head.startswith(b"POST http://provider.invalid/v2/")  # the absolute form: a proxy


async def test_no_proxy_leaves_the_provider_direct(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend
) -> None:
    async with wire_server(lambda _: answer()) as wire:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: never used
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with client(wire.url, http_backend) as c:
            with anyio.fail_after(10):
                rows = await c.detailed_report(transaction_ids=[1])
    assert len(rows) == 1
    [head] = wire.heads
    assert head.startswith(b"POST /v2/")


# --- redirects: an answer, never followed -------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_an_http_status_error_naming_where_never_followed(
    http_backend: HttpBackend, status: int
) -> None:
    def reply(n: int) -> bytes:
        if n == 1:
            where = f"/v2/{KEY}/detailedreport/json/?page=2"  # same server: following would work
            return answer(status, b"", ("Location", where))
        return answer()

    error, wire = await one_call(http_backend=http_backend, reply=reply, max_retries=3)
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == status
    assert "Location: /v2/***/detailedreport/json/?page=2" in str(error)
    assert error.attempts == 1  # a redirect is not retried either
    assert len(wire.heads) == 1  # and the IDs went nowhere else
    assert_safe(error)


async def test_a_2xx_that_does_not_decompress_says_it_took_one_attempt(
    http_backend: HttpBackend,
) -> None:
    body = GOOD_JSON + KEY.encode()
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, body, ("Content-Encoding", "gzip"))
    )
    assert isinstance(error, DecodeError)
    assert error.attempts == 1
