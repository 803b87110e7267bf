"""The API key, which travels in every URL path, is shown nowhere, on any error path.

One test, run once per way a server can echo the key (whole, 16 characters of
it, upper-cased) and per backend. It drives every class of the exception tree
through the public client: a server over TCP that echoes the key in bodies,
provider error fields, XML element names, headers and half-sent answers; httpx
exceptions whose messages carry the URL; a dead endpoint; closing the client
mid-call; and the constructor refusing a key or a base URL that holds it. Then
it looks for the key (any run of 8 or more of its characters, in any case)
in everything those errors show: ``str``, ``repr``, every attribute (walked
deep: failures, their errors, requests, rows), bodies, chained causes,
tracebacks formatted plainly and with ``capture_locals=True`` (what error
trackers such as Sentry record), and every log record at DEBUG of the root
logger (ours, httpx's, httpcore's), retries included. It must find nothing,
while the masks (``***``) prove the echoes were there.
"""

from __future__ import annotations

import builtins
import logging
import traceback
import types
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from organik_async import (
    APIError,
    AuthenticationError,
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
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
    instant_retries,
)
from organik_async.testing import serve
from tests.helpers.provider import KEY, SEED_ROW, error_answer, rows_answer
from tests.helpers.secrets import key_runs
from tests.helpers.wire import closed_url

pytestmark = pytest.mark.anyio

ECHOES: dict[str, Callable[[str], str]] = {
    "whole": lambda key: key,
    "part": lambda key: key[8:24],  # 16 characters from the middle
    "upper": lambda key: key.upper(),
}
TREE: set[type[BaseException]] = {
    APIError,
    AuthenticationError,
    RateLimitError,
    HTTPStatusError,
    TransportError,
    TimeoutExpiredError,
    EndpointUnreachableError,
    DecodeError,
    ResponseTooLargeError,
    BulkReportError,
    ClosedDuringCallError,
    ClientClosedError,
}
HEALTHY_ID = SEED_ROW["transaction_id"]  # the echo server answers rows for it, errors otherwise


# --- A server that echoes the key everywhere an error can look --------------------------

Message = dict[str, Any]


class EchoServer:
    """ASGI app: ``/<scenario>/v2/<key>/detailedreport/...`` answers as the scenario says.

    The key is read from the request's own path (as a proxy's error page would
    show it) and echoed in the form the test asks for.
    """

    def __init__(self, echo: Callable[[str], str]) -> None:
        self.echo = echo
        self.echoed: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        _, scenario, rest = scope["path"].split("/", 2)
        echo = self.echo(rest.split("/")[1])
        self.echoed[scenario] += 1
        await getattr(self, scenario.replace("-", "_"))(echo, scope["path"], body, send)

    @staticmethod
    async def answer(
        send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        all_headers = [(b"content-length", str(len(body)).encode()), *(headers or [])]
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    async def api_96(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await self.answer(
            send,
            200,
            error_answer(96, message=f"refused key {echo}", number=echo, time=echo),
            [(b"x-echo", echo.encode())],
        )

    async def auth_99_xml(self, echo: str, path: str, body: bytes, send: Any) -> None:
        xml = error_answer(99, "xml", message=f"unknown key {echo}", number=echo, time=echo)
        await self.answer(send, 200, xml)

    async def rate_limited(self, echo: str, path: str, body: bytes, send: Any) -> None:
        headers = [(b"retry-after", b"0"), (b"x-echo", echo.encode())]
        await self.answer(send, 429, f"quota exceeded for {echo}".encode(), headers)

    async def unavailable(self, echo: str, path: str, body: bytes, send: Any) -> None:
        page = f"<html><h1>503</h1><p>{path.replace(KEY, echo)}</p><p>{echo}</p></html>"
        await self.answer(send, 503, page.encode(), [(b"location", path.encode())])

    async def dropped(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"500")]}
        )
        await send({"type": "http.response.body", "body": echo.encode(), "more_body": True})
        # returning unfinished: the server drops the connection

    async def stalled(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": echo.encode(), "more_body": True})
        await anyio.sleep(30)

    async def not_json(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await self.answer(send, 200, f"Error: {echo} is not a valid key".encode())

    async def xml_element(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await self.answer(send, 200, f"<response><k{echo}>1</k{echo}></response>".encode())

    async def gzip_lie(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await self.answer(send, 200, f"plain {echo}".encode(), [(b"content-encoding", b"gzip")])

    async def too_large(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await self.answer(send, 200, f"[{echo}]".encode() * 50)

    async def too_large_streamed(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(50):  # no Content-Length: the cap is met while reading
            await send({"type": "http.response.body", "body": echo.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def slow(self, echo: str, path: str, body: bytes, send: Any) -> None:
        await anyio.sleep(30)

    async def mixed(self, echo: str, path: str, body: bytes, send: Any) -> None:
        if str(HEALTHY_ID).encode() in body:
            await self.answer(send, 200, rows_answer(SEED_ROW))
        else:
            await self.unavailable(echo, path, body, send)


# --- Driving every error path ---------------------------------------------------------


async def caught(call: Awaitable[object]) -> OrganikError:
    with pytest.raises(OrganikError) as info:
        await call
    return info.value


async def tcp_errors(base_url: str, http_backend: HttpBackend) -> list[BaseException]:
    """Errors from real answers over TCP (httpx and httpcore log at DEBUG)."""

    def client(scenario: str, **kwargs: Any) -> OrganikClient:
        kwargs.setdefault("max_retries", 2)
        return OrganikClient(
            KEY, base_url=f"{base_url}/{scenario}", http_backend=http_backend, **kwargs
        )

    errors: list[BaseException] = []
    one = [HEALTHY_ID + 1]
    scenarios: list[tuple[str, dict[str, Any]]] = [
        ("api-96", {}),
        ("auth-99-xml", {"request_format": "xml"}),
        ("rate-limited", {"pushback_timeout": 0.5}),  # Retry-After: 0, refused for ever
        ("unavailable", {}),
        ("dropped", {}),
        ("stalled", {"attempt_timeout": 0.3, "max_retries": 1}),
        ("not-json", {}),
        ("xml-element", {"request_format": "xml"}),
        ("gzip-lie", {}),
        ("too-large", {"max_response_bytes": 100}),
        ("too-large-streamed", {"max_response_bytes": 100}),
    ]
    for scenario, kwargs in scenarios:
        async with client(scenario, **kwargs) as c:
            errors.append(await caught(c.detailed_report(transaction_ids=one)))

    # A bulk call: the healthy batch's rows are kept, the others fail with echoes.
    async with client("mixed", batch_sizes=1) as c:
        ids = [HEALTHY_ID, HEALTHY_ID + 1, HEALTHY_ID + 2]
        errors.append(await caught(c.detailed_report(transaction_ids=ids)))
        async with c.iter_batches(transaction_ids=ids) as batches:
            with pytest.raises(BulkReportError) as streamed:
                async for _batch in batches:
                    pass
        errors.append(streamed.value)

    # The caller's own time budget cancelling a call that waits for its answer: the
    # builtin TimeoutExpiredError it ends with runs down through the HTTP library's frames.
    async with client("slow") as c:
        with pytest.raises(builtins.TimeoutError) as budget:
            with anyio.fail_after(0.5):
                await c.detailed_report(transaction_ids=one)
        errors.append(budget.value)

    # Closing mid-call: one request, then a call of several.
    for ids, expected in [([1], ClientClosedError), ([1, 2, 3], ClosedDuringCallError)]:
        c = client("slow", batch_sizes=1)
        outcome: list[BaseException] = []

        async def call(
            c: OrganikClient = c, ids: list[int] = ids, outcome: list[BaseException] = outcome
        ) -> None:
            outcome.append(await caught(c.detailed_report(transaction_ids=ids)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.sleep(0.15)
            await c.aclose()
        assert type(outcome[0]) is expected
        errors.append(outcome[0])
        errors.append(await caught(c.detailed_report(transaction_ids=[1])))
    return errors


async def transport_errors(echo: Callable[[str], str]) -> list[BaseException]:
    """httpx exceptions whose messages carry the URL and the echoed key."""
    errors: list[BaseException] = []
    cases: list[tuple[type[httpx.TransportError], dict[str, Any]]] = [
        (httpx.ReadError, {}),
        (httpx.ReadTimeout, {}),
        (httpx.ConnectError, {"unreachable_after": 2}),
    ]
    for exc, kwargs in cases:

        def answer(request: httpx.Request, exc: type[httpx.TransportError] = exc) -> Any:
            key = request.url.path.split("/")[2]
            raise exc(f"{request.url} failed for {echo(key)}", request=request)

        async with OrganikClient(
            KEY, transport=httpx.MockTransport(answer), max_retries=2, **kwargs
        ) as c:
            errors.append(await caught(c.detailed_report(transaction_ids=[1])))
    async with OrganikClient(KEY, base_url=closed_url(), unreachable_after=2, batch_sizes=1) as c:
        errors.append(await caught(c.detailed_report(transaction_ids=[1, 2, 3])))
    return errors


def constructor_errors(echo: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The constructor refusing a key, or a base URL that holds the key."""
    errors: list[Any] = []
    for key in (echo(KEY) + "\n", echo(KEY) + " ", echo(KEY)[:-1]):
        with pytest.raises(AuthenticationError) as refused:
            OrganikClient(key)
        errors.append(refused.value)
        monkeypatch.setenv("ORGANIK_API_KEY", key)  # e.g. read from a file, newline kept
        with pytest.raises(AuthenticationError) as refused:
            OrganikClient()
        errors.append(refused.value)
        monkeypatch.delenv("ORGANIK_API_KEY")
    for url in (f"https://proxy.local/{echo(KEY)}/", f"https://{echo(KEY)[:12]}.example/x"):
        with pytest.raises(ValueError, match="base_url") as bad:
            OrganikClient(KEY, base_url=url)
        errors.append(bad.value)
        monkeypatch.setenv("ORGANIK_BASE_URL", url)
        with pytest.raises(ValueError, match="base_url") as bad:
            OrganikClient(KEY)
        errors.append(bad.value)
        monkeypatch.delenv("ORGANIK_BASE_URL")
    return errors


# --- Everything an error shows ----------------------------------------------------------

_OPAQUE = (types.TracebackType, types.FrameType, types.ModuleType, type, types.CodeType)


class JobFailed(Exception):
    """An application's own error, raised ``from`` ours (a chained cause)."""


def chained(error: BaseException) -> JobFailed:
    try:
        raise JobFailed("the nightly report job failed") from error
    except JobFailed as exc:
        return exc


def library_frames(summary: traceback.TracebackException) -> traceback.TracebackException:
    """``summary`` and its chain without this file's frames.

    This test holds the key in its own locals, as any application does; what
    must never show it is the library's frames.
    """
    todo = [summary]
    while todo:
        current = todo.pop()
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if frame.filename != __file__]
        )
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return summary


def shown_by(obj: object, path: str = "error") -> Iterator[tuple[str, str]]:
    """Every text ``obj`` can show, walked deep, with where it was found."""
    seen: set[int] = set()
    todo: list[tuple[object, str]] = [(obj, path)]
    while todo:
        value, where = todo.pop()
        if id(value) in seen or isinstance(value, _OPAQUE) or value is None:
            continue
        seen.add(id(value))
        if isinstance(value, bytes):
            yield where, value.decode("latin-1")
            continue
        if isinstance(value, str | int | float | bool):
            yield where, str(value)
            continue
        yield f"{where} (repr)", repr(value)
        yield f"{where} (str)", str(value)
        if isinstance(value, BaseException):
            yield f"{where} (traceback)", "".join(traceback.format_exception(value))
            with_locals = traceback.TracebackException.from_exception(value, capture_locals=True)
            yield f"{where} (traceback with locals)", "".join(library_frames(with_locals).format())
            todo += [(value.args, f"{where}.args"), (value.__cause__, f"{where}.__cause__")]
            todo.append((value.__context__, f"{where}.__context__"))
        if isinstance(value, list | tuple | set | frozenset):
            todo += [(item, f"{where}[{n}]") for n, item in enumerate(value)]
            continue
        if isinstance(value, dict):
            todo += [(item, f"{where}[{name!r}]") for name, item in value.items()]
            continue
        if isinstance(value, msgspec.Struct):
            names = list(value.__struct_fields__)
        else:
            names = list(getattr(value, "__dict__", {}))
        names += [n for n in dir(value) if not n.startswith("_") and n not in names]
        for name in names:
            try:
                item = getattr(value, name)
            except Exception:  # a property that does not apply
                continue
            if not callable(item) or isinstance(item, BaseException):
                todo.append((item, f"{where}.{name}"))


def logged(records: list[logging.LogRecord]) -> Iterator[tuple[str, str]]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for n, record in enumerate(records):
        where = f"log record {n} ({record.name})"
        yield where, formatter.format(record)
        yield f"{where} msg/args", f"{record.msg!r} {record.args!r}"
        yield f"{where} attributes", repr(vars(record))


def clients(client: OrganikClient) -> list[str]:
    """What a client shows of itself (its private state holds the key, necessarily)."""
    return [repr(client), str(client), client.url, client.base_url, repr(vars(client))]


def classes(errors: list[BaseException]) -> set[type[BaseException]]:
    found = {type(e) for e in errors}
    for error in errors:
        if isinstance(error, BulkReportError):
            found |= {type(f.error) for f in error.failures if f.error is not None}
    return found


@pytest.mark.slow
@pytest.mark.parametrize("echo_form", list(ECHOES))
async def test_the_key_is_shown_nowhere_on_any_error_path(
    anyio_backend: str,
    echo_form: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
) -> None:
    echo = ECHOES[echo_form]
    caplog.set_level(logging.DEBUG)  # the root logger: ours, httpx's, httpcore's, all
    server = EchoServer(echo)
    with instant_retries(), anyio.fail_after(60):
        async with serve(server, shutdown_timeout=1) as base_url:
            errors = await tcp_errors(base_url, "httpx")
            if anyio_backend == "asyncio":
                errors += await tcp_errors(base_url, "aiohttp")
        errors += await transport_errors(echo)
    errors += constructor_errors(echo, monkeypatch)

    assert classes(errors) >= TREE, f"not driven: {TREE - classes(errors)}"
    assert all(server.echoed.values())
    found: list[str] = []
    for error in [*errors, *(chained(e) for e in errors)]:
        for where, text in shown_by(error):
            if key_runs(text):
                found.append(f"{type(error).__name__} {where}: {text!r}")
    client = OrganikClient(KEY, base_url="https://proxy.local/organik")
    view = client.with_options(request_format="xml", response_format="json")
    shown = [
        *[(f"client {n}", text) for n, c in enumerate((client, view)) for text in clients(c)],
        *logged(caplog.records),
        ("caplog.text", caplog.text),
        *[(f"warning {w.category.__name__}", str(w.message)) for w in recwarn],
    ]
    for where, text in shown:
        if key_runs(text):
            found.append(f"{where}: {text!r}")
    assert not found, "the key is shown:\n" + "\n".join(found[:10])

    # The echoes were there, and masked: not merely absent.
    masked = [text for e in errors for _, text in shown_by(e) if "***" in text]
    assert len(masked) > len(errors)
    api = next(e for e in errors if type(e) is APIError)
    assert "***" in (api.error_message or "")
    assert "***" in (api.number or "")
    # Every path was logged, and retries were: ours at DEBUG and INFO, httpx, httpcore.
    names = {r.name for r in caplog.records}
    assert {"organik_async", "httpx"} <= names
    assert any(name.startswith("httpcore.") for name in names)
    assert any(r.name == "organik_async" and "retrying" in r.getMessage() for r in caplog.records)
    assert any(r.name == "organik_async" and r.levelno == logging.DEBUG for r in caplog.records)
