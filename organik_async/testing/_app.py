"""FakeOrganikAPI: the provider's ``detailedreport`` request as a plain ASGI app.

One request goes through four steps: count it (stats, request number), decide
its faults (from the seed and the number alone), work out the provider's real
answer, then deliver that answer, or what a fault makes of it. The real answer
is always worked out, even when a fault replaces it, so that the stats record
the key and the number of IDs of every request the client sent.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from .._models import DetailedReport, Format
from ._asgi import Receive, Scope, Send
from ._data import Dataset
from ._faults import Fault, FaultPlan, plan_faults
from ._keys import DEMO_API_KEY, KEY_LENGTH, KeyRing, redact_key
from ._request import ProviderRefusal, check_route, parse_body, parse_route
from ._stats import Outcome, Stats
from ._transport import FakeTransport
from ._wire import PROVIDER_TZ, XML_DECLARATION, content_type, error_body, rows_body

if TYPE_CHECKING:
    from .._client import OrganikClient

__all__ = ["FakeOrganikAPI"]

_IN_PROCESS_BASE_URL = "http://organik.test"


def _provider_now() -> datetime:
    return datetime.now(PROVIDER_TZ).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A complete answer, before any fault touches its delivery."""

    status: int
    content_type: bytes
    body: bytes
    outcome: Outcome
    rows: int = 0
    api_code: int | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _plain(status: int, *headers: tuple[bytes, bytes]) -> _Answer:
    phrase = http.HTTPStatus(status).phrase
    return _Answer(
        status, b"text/plain; charset=utf-8", phrase.encode(), Outcome.HTTP_ERROR, headers=headers
    )


def _proxy_page(status: int) -> bytes:
    title = f"{status} {http.HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _corrupt(body: bytes) -> bytes:
    """The same answer with a syntax error near its start."""
    if body.startswith(b"{"):
        return b"{," + body[1:]
    if body.startswith(XML_DECLARATION):
        return XML_DECLARATION + b"<oops></item>\n" + body[len(XML_DECLARATION) :]
    return b"\x00<oops>" + body


class FakeOrganikAPI:
    """A faithful, fast stand-in for the provider's ``detailedreport`` request.

    It is a plain ASGI application serving
    ``POST /v2/{api_key}/detailedreport/{request_type}/{response_type}/``
    (type segments optional, JSON by default). Use it in-process with
    :meth:`client` or :meth:`transport`, or over TCP with
    :func:`organik_async.testing.serve`.

    ``dataset`` is a :class:`Dataset`, or your own rows (``DetailedReport``s
    or dicts), or ``None`` for ``Dataset.generate(1_000, seed=seed)``.
    ``api_keys`` are the accepted keys (32 characters; default
    :data:`DEMO_API_KEY`). ``faults`` is the initial :attr:`faults` list.
    ``seed`` drives which requests probabilistic faults hit and random
    latencies. ``max_ids_per_request`` makes larger requests fail with code
    96, as an unknown provider limit might. ``xml_wrapped`` answers XML rows
    as ``<response><result>1</result><data><item>...`` instead of the
    provider's bare top-level ``<item>``s. ``clock`` gives the ``time`` of
    error answers (default: now, in the provider's local time).
    """

    def __init__(
        self,
        dataset: Dataset | Iterable[DetailedReport | Mapping[str, Any]] | None = None,
        *,
        api_keys: Iterable[str] = (DEMO_API_KEY,),
        faults: Iterable[Fault] = (),
        seed: int = 0,
        max_ids_per_request: int | None = None,
        xml_wrapped: bool = False,
        clock: Callable[[], datetime] = _provider_now,
    ) -> None:
        if dataset is None:
            dataset = Dataset.generate(1_000, seed=seed)
        elif not isinstance(dataset, Dataset):
            dataset = Dataset.from_rows(dataset)
        if max_ids_per_request is not None and max_ids_per_request < 1:
            raise ValueError("max_ids_per_request must be >= 1 or None")
        self.dataset: Dataset = dataset
        """The rows answered from."""
        self.faults: list[Fault] = list(faults)
        """The active faults, in order; change it at any time (append, clear...)."""
        self.stats: Stats = Stats()
        """What was served; ``stats.reset()`` also restarts request numbering."""
        self.seed = seed
        self.max_ids_per_request = max_ids_per_request
        self.xml_wrapped = xml_wrapped
        self._keys = KeyRing(api_keys)
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"FakeOrganikAPI({self.dataset!r}, keys={len(self._keys)}, faults={len(self.faults)}, "
            f"seed={self.seed}, max_ids_per_request={self.max_ids_per_request})"
        )

    @property
    def api_key(self) -> str:
        """The first accepted key (the demo key unless you gave others)."""
        return self._keys.first

    # -- wiring a client ----------------------------------------------------------

    def transport(self) -> FakeTransport:
        """An ``httpx`` transport that sends requests to this app with no sockets."""
        return FakeTransport(self)

    def client(self, **kwargs: Any) -> OrganikClient:
        """An :class:`~organik_async.OrganikClient` wired to this app in-process.

        It uses :attr:`api_key`, base URL ``http://organik.test`` and
        :meth:`transport` unless ``kwargs`` say otherwise; other keyword
        arguments go to the client as they are.
        """
        from .._client import OrganikClient

        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("base_url", _IN_PROCESS_BASE_URL)
        if "http_client" not in kwargs:
            kwargs.setdefault("transport", self.transport())
        return OrganikClient(**kwargs)

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: the server refuses the handshake
        number = self.stats.begin()
        try:
            await self._handle(number, scope, receive, send)
        finally:
            self.stats.end()

    async def _handle(self, number: int, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        plan = plan_faults(self.faults, number, self.seed)
        for name in plan.applied:
            self.stats.faults[name] += 1
        answer, fmt = self._answer(number, scope, body)
        answer = self._replace(number, answer, fmt, plan.action)
        if plan.latency <= 0 and (plan.action is None or plan.action.kind != "trickle"):
            outcome = await self._deliver(send, answer, plan.action)
        else:
            outcome = await self._deliver_slowly(receive, send, answer, plan)
        self.stats.outcomes[outcome] += 1

    def _answer(self, number: int, scope: Scope, body: bytes) -> tuple[_Answer, Format]:
        """The provider's answer to this request, and the format it is in."""
        route = parse_route(scope["path"])
        if route is None:
            return _plain(404), "json"
        fmt = route.answer_format()
        if scope["method"] != "POST":
            return _plain(405, (b"allow", b"POST")), fmt
        self.stats.keys_seen[redact_key(route.api_key)] += 1
        try:
            if len(route.api_key) != KEY_LENGTH:
                raise ProviderRefusal(90)
            if route.api_key not in self._keys:
                raise ProviderRefusal(99)
            request_format, fmt = check_route(route)
            query = parse_body(body, request_format)
            self.stats.ids_per_request[query.id_count] += 1
            limit = self.max_ids_per_request
            if limit is not None and query.id_count > limit:
                raise ProviderRefusal(
                    96,
                    f"too many IDs in one request: {query.id_count} > max_ids_per_request={limit}",
                )
            spans = self.dataset.select(
                query.transaction_ids, query.delivery_track_ids, query.gsm_track_ids
            )
            if not spans:
                raise ProviderRefusal(87)
        except ProviderRefusal as refusal:
            return self._refusal(number, fmt, refusal.code, refusal.message), fmt
        pieces, count = self.dataset.encoded(spans, fmt)
        payload = rows_body(pieces, fmt, xml_wrapped=self.xml_wrapped)
        return _Answer(200, content_type(fmt), payload, Outcome.OK, rows=count), fmt

    def _refusal(
        self, number: int, fmt: Format, code: int, message: str, status: int = 200
    ) -> _Answer:
        body = error_body(
            fmt,
            code=code,
            message=message,
            number=str(number),
            time=str(self._clock().replace(microsecond=0)),
        )
        if status != 200:
            outcome = Outcome.HTTP_ERROR
        elif code == 87:
            outcome = Outcome.NO_RECORDS
        else:
            outcome = Outcome.API_ERROR
        return _Answer(status, content_type(fmt), body, outcome, api_code=code)

    def _replace(self, number: int, answer: _Answer, fmt: Format, action: Fault | None) -> _Answer:
        """The answer a status or provider-error fault sends instead."""
        if action is None:
            return answer
        if action.kind == "provider_error":
            code = 93 if action.code is None else action.code
            return self._refusal(number, fmt, code, ProviderRefusal(code).message)
        if action.kind != "status":
            return answer
        status = action.http_status
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if action.retry_after is not None:
            headers = ((b"retry-after", _retry_after(action.retry_after)),)
        if action.code is not None:
            refusal = self._refusal(
                number, fmt, action.code, ProviderRefusal(action.code).message, status
            )
            return _Answer(
                status,
                refusal.content_type,
                refusal.body,
                Outcome.HTTP_ERROR,
                api_code=action.code,
                headers=headers,
            )
        return _Answer(
            status, b"text/html", _proxy_page(status), Outcome.HTTP_ERROR, headers=headers
        )

    async def _deliver_slowly(
        self, receive: Receive, send: Send, answer: _Answer, plan: FaultPlan
    ) -> Outcome:
        """Deliver after a latency and/or in a trickle, stopping if the client leaves.

        After the body is read, ``receive()`` returns only when the client
        disconnects (or the answer is complete), so a watcher task turns a
        client that gave up into a prompt end of the request.
        """
        finished = False
        gone = False
        outcome = Outcome.CLIENT_GONE
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal gone
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not finished:
                    gone = True
                    group.cancel_scope.cancel()

            group.start_soon(watch)
            if plan.latency > 0:
                self.stats.latency_added += plan.latency
                await anyio.sleep(plan.latency)
            outcome = await self._deliver(send, answer, plan.action)
            finished = True
            group.cancel_scope.cancel()
        return Outcome.CLIENT_GONE if gone else outcome

    async def _deliver(self, send: Send, answer: _Answer, action: Fault | None) -> Outcome:
        """Send the answer, or what a delivery fault makes of it."""
        kind = None if action is None else action.kind
        body = answer.body
        outcome = answer.outcome
        if kind == "truncate" and action is not None:
            body = body[: int(len(body) * action.fraction)]
            outcome = Outcome.TRUNCATED
        elif kind == "malformed":
            body = _corrupt(body)
            outcome = Outcome.MALFORMED
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(body)).encode()),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        self.stats.http_statuses[answer.status] += 1
        if answer.api_code is not None:
            self.stats.api_error_codes[answer.api_code] += 1
        self.stats.rows_served += answer.rows
        if kind == "disconnect" and action is not None:
            part = body[: int(len(body) * action.fraction)]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            self.stats.bytes_served += len(part)
            return Outcome.DROPPED  # returning unfinished: the server drops the connection
        if kind == "trickle" and action is not None:
            step = action.chunk_size
            pause = action.delay if isinstance(action.delay, float) else action.delay[0]
            for start in range(0, len(body), step):
                if start:
                    await anyio.sleep(pause)
                chunk = body[start : start + step]
                more = start + step < len(body)
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                self.stats.bytes_served += len(chunk)
            if not body:
                await send({"type": "http.response.body", "body": b""})
            return outcome
        await send({"type": "http.response.body", "body": body})
        self.stats.bytes_served += len(body)
        return outcome


def _retry_after(value: float | str) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1")
    return (str(int(value)) if float(value).is_integer() else str(value)).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # http.disconnect: the client left before sending everything
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
