"""FakeOrganikAPI: the provider's ``detailedreport`` request as a plain ASGI app.

One request goes through these steps: count it (stats, request number);
refuse it at once with code 93 if ``max_concurrent_requests`` are being
handled; decide its faults (from the seed and the number alone); work out
the provider's real answer at the clock's current time; then let the fault
that hit it, if any, rewrite and send that answer (each fault's effect is in
`_faults`, beside its definition). The real answer is always worked out,
even when a fault replaces it, so that the stats record the key and the
number of IDs of every request that was handled.
"""

from __future__ import annotations

import http
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._models import DetailedReport, Format
from ._answer import Answer, Exchange
from ._asgi import Receive, Scope, Send
from ._clock import PROVIDER_TZ, Clock, Delay, check_delay, provider_now
from ._data import Dataset, normalize_id
from ._faults import Fault, FaultPlan, plan_faults
from ._keys import DEMO_API_KEY, KEY_LENGTH, KeyRing, redact_key
from ._request import ProviderRefusal, Route, check_route, parse_body, parse_route
from ._stats import Outcome, Stats
from ._timeline import Moment, Timeline
from ._transport import FakeTransport
from ._wire import RowStyle, content_type, error_body, error_message, rows_body

if TYPE_CHECKING:
    from .._client import OrganikClient
    from .._sync import SyncOrganikClient

__all__ = ["FakeOrganikAPI"]

_IN_PROCESS_BASE_URL = "http://organik.test"
_FORMATS: tuple[Format, ...] = ("json", "xml")
_JSON_ONLY: tuple[Format, ...] = ("json",)


def _plain(status: int, *headers: tuple[bytes, bytes]) -> Answer:
    phrase = http.HTTPStatus(status).phrase
    return Answer(
        status, b"text/plain; charset=utf-8", phrase.encode(), Outcome.HTTP_ERROR, headers=headers
    )


def _local(now: datetime) -> datetime:
    """A clock's reading as a naive provider-local time."""
    if now.tzinfo is not None:
        now = now.astimezone(PROVIDER_TZ).replace(tzinfo=None)
    return now


def _formats(value: Collection[str], name: str) -> frozenset[Format]:
    if isinstance(value, str):
        value = (value,)
    chosen: set[Format] = set()
    for fmt in value:
        if fmt not in _FORMATS:
            raise ValueError(f"{name} takes formats among 'json' and 'xml', got {fmt!r}")
        chosen.add("xml" if fmt == "xml" else "json")
    return frozenset(chosen)


class FakeOrganikAPI:
    """A faithful, fast stand-in for the provider's ``detailedreport`` request.

    It is a plain ASGI application serving ``POST
    /v2/{api_key}/detailedreport/{request_type}/{response_type}/`` (type segments optional, JSON by
    default, any letter case). Use it in-process with
    [`client()`][organik_async.testing.FakeOrganikAPI.client] or
    [`transport()`][organik_async.testing.FakeOrganikAPI.transport], or over TCP with
    [`serve()`][organik_async.testing.serve].

    Args:
        dataset: the rows to answer from: a [`Dataset`][organik_async.testing.Dataset], or
            your own rows ([`DetailedReport`][organik_async.DetailedReport]s or dicts), or
            ``None`` for ``Dataset.generate(1_000, seed=seed)``.
        api_keys: the accepted keys, 32 characters each (default
            [`DEMO_API_KEY`][organik_async.testing.DEMO_API_KEY]).
        faults: the initial [`faults`][organik_async.testing.FakeOrganikAPI.faults] list.
        seed: drives which requests probabilistic faults hit, random latencies, and how
            pending rows finish.
        max_ids_per_request: larger requests fail with code 96, as an undocumented provider
            limit might; ``None`` for no limit.
        max_concurrent_requests: a request that arrives while that many are being handled
            is answered at once with code 93 ("Too much request.", HTTP 200, as the provider
            sends every refusal); ``None`` for no cap.
        xml_wrapped: XML answers as ``<response><result>1</result><data><item>...``, as
            the provider's API documentation shows them; ``False``: bare top-level
            ``<item>``s, as its seed page does.
        errorcode_in: the formats whose rows carry ``errorcode`` (the provider's documents:
            JSON only).
        finalize_after: how long each pending row (status 0 or 1) stays pending before it
            becomes final (2, 3 or 4), counted from when this object was built: seconds, or
            a ``(low, high)`` range drawn per row; ``None``: rows never change.
        clock: returns "now" in the provider's local time (default: the real time); it gives
            the ``time`` of error answers and drives ``finalize_after``. A
            [`ManualClock`][organik_async.testing.ManualClock] lets a test move time by hand.

    Raises:
        ValueError: a limit below 1, a key that is not 32 characters, an unknown format in
            ``errorcode_in``, or a bad ``finalize_after``.
    """

    def __init__(
        self,
        dataset: Dataset | Iterable[DetailedReport | Mapping[str, Any]] | None = None,
        *,
        api_keys: Iterable[str] = (DEMO_API_KEY,),
        faults: Iterable[Fault] = (),
        seed: int = 0,
        max_ids_per_request: int | None = None,
        max_concurrent_requests: int | None = None,
        xml_wrapped: bool = True,
        errorcode_in: Collection[Format] = _JSON_ONLY,
        finalize_after: Delay | None = None,
        clock: Clock = provider_now,
    ) -> None:
        if dataset is None:
            dataset = Dataset.generate(1_000, seed=seed)
        elif not isinstance(dataset, Dataset):
            dataset = Dataset.from_rows(dataset)
        if max_ids_per_request is not None and max_ids_per_request < 1:
            raise ValueError("max_ids_per_request must be >= 1 or None")
        if max_concurrent_requests is not None and max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be >= 1 or None")
        self.dataset: Dataset = dataset
        """The rows answered from."""
        self.faults: list[Fault] = list(faults)
        """The active faults, in order; change it at any time (append, clear...)."""
        self.stats: Stats = Stats(max_concurrent_requests=max_concurrent_requests)
        """What was served; ``stats.reset()`` also restarts request numbering."""
        self.seed = seed
        """The seed of fault draws, random latencies and pending rows' fates."""
        self.max_ids_per_request = max_ids_per_request
        """Requests with more IDs are refused with code 96; ``None``: no limit."""
        self.max_concurrent_requests = max_concurrent_requests
        """More requests at once are refused with code 93; ``None``: no cap."""
        self.xml_wrapped = xml_wrapped
        """Whether XML answers are wrapped in ``<response>`` (else bare ``<item>``s)."""
        self.errorcode_in: frozenset[Format] = _formats(errorcode_in, "errorcode_in")
        """The formats whose rows carry ``errorcode``."""
        self._keys = KeyRing(api_keys)
        self._clock = clock
        self._timeline = (
            None
            if finalize_after is None
            else Timeline(check_delay(finalize_after, "finalize_after"), seed, _local(clock()))
        )

    def __repr__(self) -> str:
        return (
            f"FakeOrganikAPI({self.dataset!r}, keys={len(self._keys)}, faults={len(self.faults)}, "
            f"seed={self.seed}, max_ids_per_request={self.max_ids_per_request}, "
            f"max_concurrent_requests={self.max_concurrent_requests})"
        )

    @property
    def api_key(self) -> str:
        """The first accepted key (the demo key unless you gave others)."""
        return self._keys.first

    @property
    def clock(self) -> Clock:
        """The clock this simulator reads "now" from."""
        return self._clock

    @property
    def finalize_after(self) -> Delay | None:
        """How long pending rows stay pending, in seconds (``None``: for ever)."""
        return None if self._timeline is None else self._timeline.after

    # -- what it answers -----------------------------------------------------------

    def expected(
        self,
        *,
        transaction_ids: Iterable[int | str] = (),
        delivery_track_ids: Iterable[int | str] = (),
        gsm_track_ids: Iterable[int | str] = (),
        response_format: Format = "json",
    ) -> list[DetailedReport]:
        """The rows this simulator answers for these IDs now, as a client decodes them.

        Like [`Dataset.expected()`][organik_async.testing.Dataset.expected], with the clock's
        current time applied (rows that became final are final) and, for a format whose rows carry
        no ``errorcode`` (XML by default), ``errorcode`` 0 as a client reads its absence.

        Args:
            transaction_ids: transaction IDs.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs.
            response_format: the format of the answer the rows would come in.

        Returns:
            The rows, in the simulator's order: what a correct client returns.
        """
        spans = self.dataset.select(
            [normalize_id(v) for v in transaction_ids],
            [str(v).strip() for v in delivery_track_ids],
            [normalize_id(v) for v in gsm_track_ids],
        )
        rows = self.dataset.reports(spans, self._moment(_local(self._clock())))
        if response_format in self.errorcode_in:
            return rows
        return [msgspec.structs.replace(row, errorcode=0) for row in rows]

    def warm(self, formats: Iterable[Format] = ("json",)) -> None:
        """Encode every row now, so that no request pays for it.

        As [`Dataset.warm()`][organik_async.testing.Dataset.warm], with this simulator's
        ``errorcode_in``.

        Args:
            formats: the answer formats to prepare.
        """
        self.dataset.warm([self._style(fmt) for fmt in formats])

    def _style(self, fmt: Format) -> RowStyle:
        return RowStyle(fmt, fmt in self.errorcode_in)

    def _moment(self, now: datetime) -> Moment | None:
        return None if self._timeline is None else self._timeline.moment(now)

    # -- wiring a client ----------------------------------------------------------

    def transport(self) -> FakeTransport:
        """An ``httpx`` transport that sends requests to this app with no sockets.

        Returns:
            A new [`FakeTransport`][organik_async.testing.FakeTransport], for an
                ``httpx.AsyncClient`` or an ``OrganikClient(transport=...)`` of your own.
        """
        return FakeTransport(self)

    def client(self, **kwargs: Any) -> OrganikClient:
        """An [`OrganikClient`][organik_async.OrganikClient] wired to this app in-process.

        Args:
            **kwargs: the client's settings. ``api_key`` defaults to
                [`api_key`][organik_async.testing.FakeOrganikAPI.api_key], ``base_url`` to
                ``http://organik.test``, ``transport`` to
                [`transport()`][organik_async.testing.FakeOrganikAPI.transport] (unless an
                ``http_client`` is given); the others go to the client as they are.

        Returns:
            A new client, to use as ``async with fake.client() as client:``.
        """
        from .._client import OrganikClient

        return OrganikClient(**self._client_settings(kwargs))

    def sync_client(self, **kwargs: Any) -> SyncOrganikClient:
        """A [`SyncOrganikClient`][organik_async.SyncOrganikClient] wired to this app
        in-process, as [`client()`][organik_async.testing.FakeOrganikAPI.client] wires an
        async one.

        Args:
            **kwargs: the client's settings, with the defaults
                [`client()`][organik_async.testing.FakeOrganikAPI.client] gives.

        Returns:
            A new blocking client, to use as ``with fake.sync_client() as client:``.
        """
        from .._sync import SyncOrganikClient

        return SyncOrganikClient(**self._client_settings(kwargs))

    def _client_settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("base_url", _IN_PROCESS_BASE_URL)
        if "http_client" not in kwargs:
            kwargs.setdefault("transport", self.transport())
        return kwargs

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
        now = _local(self._clock())
        route = parse_route(scope["path"])
        fmt = "json" if route is None else route.answer_format()
        exchange = Exchange(number, fmt, send, self.stats, partial(self._refusal, number, fmt, now))
        cap = self.max_concurrent_requests
        if (
            cap is not None
            and self.stats.admitted >= cap
            and route is not None
            and scope["method"] == "POST"
        ):
            detail = f"max_concurrent_requests={cap} requests were being handled"
            refusal = self._refusal(number, fmt, now, 93, detail=detail)
            self.stats.refused += 1
            outcome = await exchange.send_whole(replace(refusal, outcome=Outcome.REFUSED))
            self.stats.outcomes[outcome] += 1
            return
        self.stats.admit()
        # Left as it is only if the request ends early: in-process, that is the
        # client's task being cancelled while the simulator still works on it.
        outcome = Outcome.CLIENT_GONE
        try:
            plan = plan_faults(self.faults, number, self.seed)
            for name in plan.applied:
                self.stats.faults[name] += 1
            answer = self._answer(route, scope["method"], body, exchange, now)
            fault = plan.action
            if fault is not None:
                answer = fault.rewrite(answer, exchange)
            if plan.latency <= 0 and (fault is None or not fault.sends_slowly):
                outcome = await _send(answer, fault, exchange)
            else:
                outcome = await _send_slowly(receive, answer, plan, exchange, self.stats)
        finally:
            self.stats.outcomes[outcome] += 1
            self.stats.release()

    def _answer(
        self, route: Route | None, method: str, body: bytes, exchange: Exchange, now: datetime
    ) -> Answer:
        """The provider's answer to this request."""
        if route is None:
            return _plain(404)
        if method != "POST":
            return _plain(405, (b"allow", b"POST"))
        fmt = exchange.fmt
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
            return self._refusal(exchange.number, fmt, now, refusal.code, detail=refusal.detail)
        pieces, count = self.dataset.encoded(spans, self._style(fmt), self._moment(now))
        payload = rows_body(pieces, fmt, xml_wrapped=self.xml_wrapped)
        return Answer(200, content_type(fmt), payload, Outcome.OK, rows=count)

    def _refusal(
        self,
        number: int,
        fmt: Format,
        now: datetime,
        code: int,
        status: int = 200,
        *,
        detail: str = "",
    ) -> Answer:
        """The provider's error envelope, worded as the provider words it."""
        time = str(now.replace(microsecond=0))  # YYYY-MM-DD HH:MM:SS
        body = error_body(
            fmt, code=code, message=error_message(code), number=str(number), time=time
        )
        if status != 200:
            outcome = Outcome.HTTP_ERROR
        elif code == 87:
            outcome = Outcome.NO_RECORDS
        else:
            outcome = Outcome.API_ERROR
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if detail:
            headers = ((b"x-simulator-detail", detail.encode("ascii", "backslashreplace")),)
        return Answer(status, content_type(fmt), body, outcome, api_code=code, headers=headers)


async def _send(answer: Answer, fault: Fault | None, exchange: Exchange) -> Outcome:
    if fault is None:
        return await exchange.send_whole(answer)
    return await fault.send(answer, exchange)


async def _send_slowly(
    receive: Receive, answer: Answer, plan: FaultPlan, exchange: Exchange, stats: Stats
) -> Outcome:
    """Send after a latency and/or slowly, stopping if the client leaves.

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
            stats.latency_added += plan.latency
            await anyio.sleep(plan.latency)
        outcome = await _send(answer, plan.action, exchange)
        finished = True
        group.cancel_scope.cancel()
    return Outcome.CLIENT_GONE if gone else outcome


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
