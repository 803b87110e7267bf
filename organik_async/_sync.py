"""``SyncOrganikClient``: the client for code that is not async.

Django views, Celery tasks, scripts and notebooks call a blocking client. This one does not
duplicate the async client: it wraps an [`OrganikClient`][organik_async.OrganikClient] and runs
every call on one event loop in a background thread, through anyio's blocking portal (the way
openai-python's ``OpenAI`` and ``AsyncOpenAI`` share one implementation). So settings, batching,
retries, errors and key masking are those of the async client, by construction.

The thread starts on the first call and stops when the client is closed (or garbage collected,
or the interpreter exits); it is a daemon thread, so a script that never closes its client still
exits. Many threads may share one client: each call is a task on the one loop, and the loop's
connection pools, rate budget and adaptive limit are shared as they are between async tasks.

A waiting caller can be interrupted (Ctrl-C): the call's task is cancelled, and its requests and
connections are let go before the ``KeyboardInterrupt`` goes on, as an async caller's cancellation
would. The streams are plain iterators (and context managers); one dropped half-read stops its
requests, as leaving an ``async with`` block does.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
)
from concurrent.futures import CancelledError, Future
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import cached_property, partial
from types import TracebackType
from typing import Final, Generic, Self, TypeGuard, TypeVar, Unpack

import anyio
import httpx
from anyio.from_thread import BlockingPortal

from ._bulk import ReportStream
from ._client import DEFAULT_BATCH_SIZES, OrganikClient
from ._exceptions import ClientClosedError
from ._follow import FollowStream
from ._models import (
    ID_KINDS,
    BatchResult,
    BatchSizes,
    DetailedReport,
    Format,
    HttpBackend,
    Id,
    IdSource,
)
from ._options import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    CallOptions,
    SettingChanges,
)
from ._raw import RawResponse
from ._redact import Secret
from ._retry import RetryPolicy
from ._shared import SharedLimits
from ._telemetry import Telemetry

__all__ = ["SyncFollowStream", "SyncOrganikClient", "SyncRawResponses", "SyncReportStream"]

logger = logging.getLogger("organik_async")

T = TypeVar("T")

_CLEANUP_WAIT: Final = 10.0
"""How long an interrupted caller waits for its call's requests to be let go."""
_STOP_WAIT: Final = 10.0
"""How long closing waits for the loop's thread to end."""
_READ_CHUNK: Final = 1_000
"""IDs read at a time from a lazy input of a stream, in a worker thread."""
_END: Final = object()
_numbers = itertools.count(1)


class _Loop:
    """One event loop in a daemon thread, reached through anyio's `BlockingPortal`.

    Shared by a blocking client and its views. Started on first use, with the async client
    entered (``async with``: its shared limits are used from then on) for the loop's life;
    `stop()` runs the client's ``aclose()`` on the loop, stops the portal and joins the
    thread. Every method is safe to call from any thread but the loop's own.
    """

    def __init__(self, client: AbstractAsyncContextManager[object]) -> None:
        self._lock = threading.Lock()
        self._client = client
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self.closed = False

    def _running_portal(self) -> BlockingPortal:
        with self._lock:
            if self.closed:
                raise ClientClosedError("this SyncOrganikClient is closed; create a new one")
            if self._portal is None:
                self._portal, self._thread = _start_portal(self._client)
            return self._portal

    def run(self, func: Callable[[], Awaitable[T]]) -> T:
        """``await func()`` on the loop; the caller waits for the result or the error.

        An exception raised in the waiting thread (``KeyboardInterrupt`` from Ctrl-C, a
        signal handler's) cancels the call, waits until its requests are let go (at most
        `_CLEANUP_WAIT` seconds), and goes on.
        """
        if self.in_loop_thread():
            raise RuntimeError(
                "a SyncOrganikClient cannot be called from its own event loop's thread "
                "(an on_progress callback, say): the call would wait for itself"
            )
        portal = self._running_portal()
        finished = threading.Event()
        func = _in_callers_context(func)

        async def task() -> T:
            try:
                return await func()
            finally:
                finished.set()

        try:
            future = portal.start_task_soon(task)
        except RuntimeError:  # stop() got there first: the portal no longer takes calls
            if self.closed:
                raise ClientClosedError("the client was closed during this call") from None
            raise
        try:
            return _result(future)
        except BaseException:
            if not future.done():
                future.cancel()  # the portal cancels the task's scope on its loop
                if not finished.wait(_CLEANUP_WAIT):
                    logger.warning("an interrupted call was still ending after %gs", _CLEANUP_WAIT)
            raise

    def enter(self, stream: AbstractAsyncContextManager[T]) -> AbstractContextManager[T]:
        """``stream`` entered and left in one task of the loop (an ``async with`` block)."""
        return self._running_portal().wrap_async_context_manager(_InCallersContext(stream))

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, aclose: Callable[[], Awaitable[None]]) -> None:
        """Close the client on the loop, then stop the loop and its thread (which leaves the
        client's ``async with``). Idempotent."""
        if self.in_loop_thread():  # a finaliser run by the loop's own thread: hand it over
            threading.Thread(target=self.stop, args=(aclose,), daemon=True).start()
            return
        with self._lock:
            if self.closed:
                return
            self.closed = True
            portal, thread = self._portal, self._thread
        if portal is None or thread is None:
            return  # never started: nothing was opened
        try:
            portal.call(aclose)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                portal.call(portal.stop, True)
            thread.join(_STOP_WAIT)
            if thread.is_alive():
                logger.warning("the client's event loop thread was still running after closing")
            with self._lock:
                self._portal = self._thread = None


def _start_portal(
    client: AbstractAsyncContextManager[object],
) -> tuple[BlockingPortal, threading.Thread]:
    """A portal on a new asyncio loop in a daemon thread (a script that never closes exits),
    with ``client`` entered in the loop's main task until the portal stops (the task that
    enters an async context manager must leave it, as anyio requires)."""
    ready: Future[BlockingPortal] = Future()

    async def host() -> None:
        async with client, BlockingPortal() as portal:
            ready.set_result(portal)
            await portal.sleep_until_stopped()

    def main() -> None:
        try:
            anyio.run(host)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)

    thread = threading.Thread(target=main, name=f"organik-sync-{next(_numbers)}", daemon=True)
    thread.start()
    return ready.result(), thread


def _in_callers_context(func: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``func`` run with the calling thread's context variables (its current span, say).

    The call runs in a task of the loop's thread, whose context is not the caller's;
    as asgiref's ``async_to_sync`` does, the caller's variables are copied into it, so
    the call's span is a child of the caller's and log context follows.
    """
    values = list(contextvars.copy_context().items())
    if not values:
        return func

    async def call() -> T:
        for variable, value in values:
            variable.set(value)
        return await func()

    return call


class _InCallersContext(Generic[T]):
    """An async context manager entered with the calling thread's context variables (the
    stream's run task, started on entering, inherits them)."""

    def __init__(self, inner: AbstractAsyncContextManager[T]) -> None:
        self._inner = inner
        self._values = list(contextvars.copy_context().items())

    async def __aenter__(self) -> T:
        for variable, value in self._values:
            variable.set(value)
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)


def _result(future: Future[T]) -> T:
    try:
        return future.result()
    except CancelledError:  # closing cancelled the call before it raised anything of ours
        raise ClientClosedError("the client was closed during this call") from None


async def _next_or_end(iterator: AsyncIterator[T]) -> T | object:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END


class _Shared:
    """What a blocking client and its views share: the loop, and what closes it.

    When none of them is referenced any more, the finaliser closes the client and stops
    the thread, as ``close()`` would (at interpreter exit too).
    """

    def __init__(self, client: OrganikClient) -> None:
        self.loop = _Loop(client)
        self.close: Callable[[], None] = weakref.finalize(self, self.loop.stop, client.aclose)


class SyncReportStream(Generic[T]):
    """A blocking client's stream: a plain iterator, and a context manager.

    [`SyncOrganikClient.iter_detailed_report()`][organik_async.SyncOrganikClient.iter_detailed_report]
    returns one that gives rows,
    [`SyncOrganikClient.iter_batches()`][organik_async.SyncOrganikClient.iter_batches] one
    that gives [`BatchResult`][organik_async.BatchResult]s:

    ```python
    for row in client.iter_detailed_report(transaction_ids=ids):
        ...
    ```

    Leaving the ``for`` loop early (``break``, an exception) and dropping the iterator stops
    every request still in flight; so do [`close()`][organik_async.SyncReportStream.close] and
    leaving a ``with`` block:

    ```python
    with client.iter_detailed_report(transaction_ids=ids) as rows:
        for row in rows:
            ...
    ```
    """

    def __init__(
        self, shared: _Shared, stream: AbstractAsyncContextManager[AsyncIterator[T]]
    ) -> None:
        self._shared = shared  # the client stays open while its stream is read
        self._loop = shared.loop
        self._stream: AbstractAsyncContextManager[AsyncIterator[T]] | None = stream
        self._block: AbstractContextManager[AsyncIterator[T]] | None = None
        self._iterator: AsyncIterator[T] | None = None
        self._done = False

    def __enter__(self) -> Self:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        iterator = self._open()
        try:
            item = self._loop.run(partial(_next_or_end, iterator))
        except BaseException:
            self.close()
            raise
        if item is _END:
            self.close()
            raise StopIteration
        return item  # type: ignore[return-value]

    def _open(self) -> AsyncIterator[T]:
        if self._iterator is None:
            if self._stream is None:
                raise RuntimeError("this stream is closed")
            stream, self._stream = self._stream, None
            block = self._loop.enter(stream)
            self._iterator = block.__enter__()
            self._block = block
        return self._iterator

    def close(self) -> None:
        """Stop the stream: requests in flight are cancelled, no new one is sent. Idempotent."""
        self._done = True
        self._stream = None
        block, self._block = self._block, None
        if block is not None:
            block.__exit__(None, None, None)

    def __del__(self) -> None:
        if getattr(self, "_block", None) is None:
            return
        if self._loop.in_loop_thread():  # collected by the loop's own thread: hand it over
            threading.Thread(target=self.close, daemon=True).start()
            return
        with contextlib.suppress(Exception):  # the loop is gone (interpreter exit)
            self.close()


class SyncFollowStream(SyncReportStream[DetailedReport]):
    """[`follow_until_final()`][organik_async.SyncOrganikClient.follow_until_final]'s rows:
    a plain iterator, as [`SyncReportStream`][organik_async.SyncReportStream]."""

    def __init__(self, shared: _Shared, stream: FollowStream) -> None:
        super().__init__(shared, stream)
        self._follow = stream

    @property
    def rounds(self) -> int:
        """Rounds asked so far (a round is one report call)."""
        return self._follow.rounds

    @property
    def pending(self) -> list[DetailedReport]:
        """The rows not final yet, as last seen."""
        return self._follow.pending


class SyncOrganikClient:
    """A blocking client for the provider's ``detailedreport`` request, for code that is not
    async.

    It takes the same settings as [`OrganikClient`][organik_async.OrganikClient] and has the same
    methods, errors and key masking: it wraps one, and runs its calls on an event loop in a
    background thread (started on first use, stopped by
    [`close()`][organik_async.SyncOrganikClient.close]). Open it once and share it: any number
    of threads may call it at once.

    ```python
    with SyncOrganikClient() as client:
        rows = client.detailed_report(transaction_ids=[20230000001])
    ```

    Streams are plain iterators: `for row in client.iter_detailed_report(...)`.

    Args:
        api_key: 32 hex characters, ``MD5(username + password)``
            ([`api_key_from_credentials()`][organik_async.api_key_from_credentials]).
            Default: the ``ORGANIK_API_KEY`` environment variable.
        base_url: the provider's root, ``http://`` or ``https://`` with a host; a path
            prefix (a proxy's) is kept. The client adds ``/v2/<key>/detailedreport/…``
            itself. Default: the ``ORGANIK_BASE_URL`` environment variable, else
            [`DEFAULT_BASE_URL`][organik_async.DEFAULT_BASE_URL].
        request_format: ``"json"`` or ``"xml"``: the format of request bodies.
        response_format: the format of answers; ``None``: the same as ``request_format``.
        timeout: httpx's timeouts, per operation: seconds for all four, or an
            ``httpx.Timeout``. Default: [`DEFAULT_TIMEOUT`][organik_async.DEFAULT_TIMEOUT].
        max_retries: more attempts after the first; 0 sends once.
        backoff_base: seconds before the first retry, doubled for each one after.
        backoff_max: the longest wait between attempts, in seconds.
        max_retry_after: a ``Retry-After`` longer than this many seconds is not waited for:
            the error is raised at once.
        pushback_timeout: seconds a request keeps retrying after the provider first refused
            it ("slow down": code 93, HTTP 429, a 503 with ``Retry-After``); refusals spend
            no ``max_retries``. ``None``: until the call's own ``timeout``.
        max_response_bytes: a larger answer raises
            [`ResponseTooLargeError`][organik_async.ResponseTooLargeError] (default 64 MiB).
        batch_sizes: IDs per request, per kind ([`BatchSizes`][organik_async.BatchSizes];
            default 20 transaction or delivery track IDs, 250 GSM track IDs), or one int for
            every kind.
        max_concurrency: requests in flight per call.
        attempt_timeout: seconds one attempt may take, from sending to the last byte of the
            answer (default 300); ``None`` for no bound.
        unreachable_after: failures to connect in a row after which a call stops with
            [`EndpointUnreachableError`][organik_async.EndpointUnreachableError].
        rate_limit: requests per second, one budget shared by every call on this client and
            its views, retries included; ``None`` for none.
        max_connections: requests in flight on this client, all calls together; also the
            ceiling of the adaptive limit.
        pool_size: connections per internal httpx pool (the client spreads requests over
            small pools).
        adaptive_concurrency: keep a per-client limit on requests in flight that follows
            the provider's pushback; ``False`` leaves only ``max_concurrency`` and
            ``max_connections``.
        http_client: your own ``httpx.AsyncClient``, used as is and never closed by this
            client.
        transport: an httpx transport for the client's own pool (the simulator's
            in-process one, say).
        http_backend: what sends requests: ``"auto"`` (aiohttp on asyncio when it is
            installed and httpx is not mocked, httpx otherwise), ``"httpx"``, or
            ``"aiohttp"`` (asyncio only).
        telemetry: OpenTelemetry traces and metrics: ``True`` (on when the application set
            a tracer or meter provider), ``False`` (never), or a
            [`Telemetry`][organik_async.Telemetry].
        shared_limits: one budget of requests in flight, adaptive limit, rate and
            ``Retry-After`` pause for every process using this key, kept in Redis: a
            ``redis://``, ``rediss://`` or ``unix://`` URL, or a
            [`SharedLimits`][organik_async.SharedLimits]. Default: the
            ``ORGANIK_SHARED_LIMITS`` environment variable; ``""`` turns it off. Shared
            from the client's first call until it is closed.

    Raises:
        AuthenticationError: the key is missing, or not 32 hex characters.
        ValueError: a setting out of range or of the wrong type; a ``base_url`` that is not
            an http(s) URL, or holds ``/v2``, the key, a query or a fragment; both
            ``http_client`` and ``transport``; ``http_backend="aiohttp"`` without aiohttp
            installed, or with an ``http_client`` or ``transport``.
    """

    _client: OrganikClient
    _shared: _Shared

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        request_format: Format = "json",
        response_format: Format | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        pushback_timeout: float | None = 600.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        batch_sizes: BatchSizes | int = DEFAULT_BATCH_SIZES,
        max_concurrency: int = 8,
        attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT,
        unreachable_after: int = 5,
        rate_limit: float | None = None,
        max_connections: int = 128,
        pool_size: int = 4,
        adaptive_concurrency: bool = True,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_backend: HttpBackend = "auto",
        telemetry: Telemetry | bool = True,
        shared_limits: str | SharedLimits | None = None,
    ) -> None:
        # The key never sits in a plain local: a traceback with locals shows reprs.
        secret = Secret(api_key) if isinstance(api_key, str) else api_key
        del api_key
        url = Secret(base_url) if isinstance(base_url, str) else base_url  # it may hold the key
        del base_url
        client = OrganikClient(
            secret,
            base_url=url,
            request_format=request_format,
            response_format=response_format,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            pushback_timeout=pushback_timeout,
            max_response_bytes=max_response_bytes,
            batch_sizes=batch_sizes,
            max_concurrency=max_concurrency,
            attempt_timeout=attempt_timeout,
            unreachable_after=unreachable_after,
            rate_limit=rate_limit,
            max_connections=max_connections,
            pool_size=pool_size,
            adaptive_concurrency=adaptive_concurrency,
            http_client=http_client,
            transport=transport,
            http_backend=http_backend,
            telemetry=telemetry,
            shared_limits=shared_limits,
        )
        self._client = client
        self._shared = _Shared(client)

    def with_options(self, **changes: Unpack[SettingChanges]) -> SyncOrganikClient:
        """A view of this client with some settings changed, as
        [`OrganikClient.with_options()`][organik_async.OrganikClient.with_options].

        The view shares this client's thread, pools, rate budget, adaptive limit and
        open/closed state: closing either closes both. Values are validated as the
        constructor validates them.

        ```python
        patient = client.with_options(max_retries=6, batch_sizes=50)
        ```

        Args:
            **changes: the settings to change, by the constructor's names: those of
                [`SettingChanges`][organik_async.SettingChanges] (everything that is not
                about connections, shared budgets or telemetry), and ``retry``, a whole
                [`RetryPolicy`][organik_async.RetryPolicy].

        Returns:
            The view: a `SyncOrganikClient`.

        Raises:
            TypeError: a name that is not a changeable setting.
            ValueError: a value the constructor would refuse.
        """
        view = object.__new__(type(self))
        view._client = self._client.with_options(**changes)
        view._shared = self._shared
        return view

    # --- settings (read-only), as the async client's ------------------------------------

    @property
    def base_url(self) -> str:
        """The provider's root URL, without ``/v2/<key>/…``."""
        return self._client.base_url

    @property
    def request_format(self) -> Format:
        """The format of request bodies: ``"json"`` or ``"xml"``."""
        return self._client.request_format

    @property
    def response_format(self) -> Format:
        """The format answers are asked in (``request_format`` unless set apart)."""
        return self._client.response_format

    @property
    def timeout(self) -> httpx.Timeout:
        """httpx's timeouts, per operation (connect, read, write, pool)."""
        return self._client.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy the ``max_retries``, ``backoff_base``, ``backoff_max``,
        ``max_retry_after`` and ``pushback_timeout`` settings make."""
        return self._client.retry

    @property
    def max_response_bytes(self) -> int:
        """The largest answer read, in bytes (decompressed); a larger one raises
        [`ResponseTooLargeError`][organik_async.ResponseTooLargeError]."""
        return self._client.max_response_bytes

    @property
    def batch_sizes(self) -> BatchSizes:
        """IDs per request, per kind."""
        return self._client.batch_sizes

    @property
    def max_concurrency(self) -> int:
        """Requests in flight per call."""
        return self._client.max_concurrency

    @property
    def attempt_timeout(self) -> float | None:
        """Seconds one attempt may take, from sending to the last byte; ``None``: no bound."""
        return self._client.attempt_timeout

    @property
    def unreachable_after(self) -> int:
        """Failures to connect in a row after which a call stops with
        [`EndpointUnreachableError`][organik_async.EndpointUnreachableError]."""
        return self._client.unreachable_after

    @property
    def http_backend(self) -> HttpBackend:
        """What sends requests, as asked: ``"auto"``, ``"httpx"`` or ``"aiohttp"``."""
        return self._client.http_backend

    @property
    def rate_limit(self) -> float | None:
        """The client-wide requests-per-second budget shared by every call, if any."""
        return self._client.rate_limit

    @property
    def telemetry(self) -> Telemetry:
        """How this client reports to OpenTelemetry."""
        return self._client.telemetry

    @property
    def shared_limits(self) -> SharedLimits | None:
        """Where the account's budget is shared with other processes (Redis), if it is."""
        return self._client.shared_limits

    @property
    def url(self) -> str:
        """The request URL, with the key redacted: safe to show."""
        return self._client.url

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End every call in flight, close the connections and stop the background thread.

        Calls in flight end at once with [`ClientClosedError`][organik_async.ClientClosedError].
        Calling it twice is harmless.
        """
        self._shared.close()

    @property
    def is_closed(self) -> bool:
        """Whether [`close()`][organik_async.SyncOrganikClient.close] was called (on this
        client or on any view of it)."""
        return self._shared.loop.closed or self._client.is_closed

    def __repr__(self) -> str:
        client: OrganikClient | None = getattr(self, "_client", None)
        shared: _Shared | None = getattr(self, "_shared", None)
        if client is None or shared is None:
            return "<SyncOrganikClient (not constructed)>"
        state = "closed" if self.is_closed else client._requester.state
        return (
            f"<SyncOrganikClient base_url={client.base_url!r} "
            f"request_format={client.request_format!r} "
            f"response_format={client.response_format!r} state={state}>"
        )

    def _check_open(self) -> None:
        if self.is_closed:
            raise ClientClosedError("this SyncOrganikClient is closed; create a new one")

    @cached_property
    def with_raw_response(self) -> SyncRawResponses:
        """The calls of one request that return the answer as it came:
        ``client.with_raw_response.detailed_report(...)`` returns a
        [`RawResponse`][organik_async.RawResponse]."""
        return SyncRawResponses(self)

    # --- the report methods -------------------------------------------------------------

    def detailed_report(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> list[DetailedReport]:
        """Every row for the given IDs, as
        [`OrganikClient.detailed_report()`][organik_async.OrganikClient.detailed_report].

        A lazy input (a generator, a database cursor) is read in the calling thread before
        anything is sent.

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            **options: per-call overrides ([`CallOptions`][organik_async.CallOptions]);
                ``on_progress`` is called in the client's thread.

        Returns:
            The rows, in input order.

        Raises:
            OrganikError: as the async client raises it (one request's own error,
                [`BulkReportError`][organik_async.BulkReportError] for a call of several).
        """
        self._check_open()
        ids = _read_here((transaction_ids, delivery_track_ids, gsm_track_ids))
        call = partial(
            self._client.detailed_report,
            transaction_ids=ids[0],
            delivery_track_ids=ids[1],
            gsm_track_ids=ids[2],
            **options,
        )
        return self._shared.loop.run(call)

    def iter_detailed_report(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> SyncReportStream[DetailedReport]:
        """Rows as batches complete, in bounded memory, as
        [`OrganikClient.iter_detailed_report()`][organik_async.OrganikClient.iter_detailed_report]:

        ```python
        for row in client.iter_detailed_report(transaction_ids=ids):
            ...
        ```

        A lazy input is read as needed, a thousand IDs at a time, in a worker thread (never
        in the event loop's thread).

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            **options: per-call overrides ([`CallOptions`][organik_async.CallOptions]).

        Returns:
            A plain iterator of rows; leaving it early stops the call.

        Raises:
            OrganikError: while iterating, as the async stream raises it.
        """
        self._check_open()
        ids = _read_in_thread((transaction_ids, delivery_track_ids, gsm_track_ids))
        stream = self._client.iter_detailed_report(
            transaction_ids=ids[0], delivery_track_ids=ids[1], gsm_track_ids=ids[2], **options
        )
        return SyncReportStream(self._shared, stream)

    def iter_batches(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> SyncReportStream[BatchResult]:
        """One [`BatchResult`][organik_async.BatchResult] per successful request, as
        [`OrganikClient.iter_batches()`][organik_async.OrganikClient.iter_batches].

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            **options: per-call overrides ([`CallOptions`][organik_async.CallOptions]).

        Returns:
            A plain iterator of batch results; leaving it early stops the call.

        Raises:
            BulkReportError: at the end, when some batches failed.
        """
        self._check_open()
        ids = _read_in_thread((transaction_ids, delivery_track_ids, gsm_track_ids))
        stream: ReportStream[BatchResult] = self._client.iter_batches(
            transaction_ids=ids[0], delivery_track_ids=ids[1], gsm_track_ids=ids[2], **options
        )
        return SyncReportStream(self._shared, stream)

    def follow_until_final(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        poll_interval: float = 60.0,
        max_poll_interval: float = 900.0,
        deadline: float = 24 * 3600.0,
        **options: Unpack[CallOptions],
    ) -> SyncFollowStream:
        """Each row once, when it becomes final, as
        [`OrganikClient.follow_until_final()`][organik_async.OrganikClient.follow_until_final]:

        ```python
        for row in client.follow_until_final(transaction_ids=ids):
            ...  # delivered, invalid number or timed out
        ```

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            poll_interval: seconds before the second round, doubling after each.
            max_poll_interval: the longest wait between rounds.
            deadline: seconds after which rows still pending are raised.
            **options: per-call overrides, for every round.

        Returns:
            A plain iterator of final rows, with ``rounds`` and ``pending``.

        Raises:
            StillPendingError: at the deadline, with the rows still pending.
        """
        self._check_open()
        ids = _read_here((transaction_ids, delivery_track_ids, gsm_track_ids))
        stream = self._client.follow_until_final(
            transaction_ids=ids[0],
            delivery_track_ids=ids[1],
            gsm_track_ids=ids[2],
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            deadline=deadline,
            **options,
        )
        return SyncFollowStream(self._shared, stream)


class SyncRawResponses:
    """``client.with_raw_response`` of a blocking client, as
    [`RawResponses`][organik_async.RawResponses]."""

    def __init__(self, client: SyncOrganikClient) -> None:
        self._client = client

    def detailed_report(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        **options: Unpack[CallOptions],
    ) -> RawResponse:
        """The answer to one request for these IDs, as
        [`RawResponses.detailed_report()`][organik_async.RawResponses.detailed_report].

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            **options: per-call overrides ([`CallOptions`][organik_async.CallOptions]).

        Returns:
            The successful answer (after any retries), with ``parse()`` for its rows.

        Raises:
            ValueError: the IDs do not fit in one request, or there are none.
            OrganikError: as the plain call raises it.
        """
        client = self._client
        client._check_open()
        given = options.get("batch_sizes")
        sizes = client._client.batch_sizes if given is None else BatchSizes.coerce(given)
        # One request's IDs and one more (to tell "too many") are read here, no further;
        # the call itself checks the sizes (a bad one is a ValueError naming it).
        first, second, third = (max(1, sizes.for_kind(kind) + 1) for kind in ID_KINDS)
        ids = _read_here(
            (transaction_ids, delivery_track_ids, gsm_track_ids), limits=(first, second, third)
        )
        call = partial(
            client._client.with_raw_response.detailed_report,
            transaction_ids=ids[0],
            delivery_track_ids=ids[1],
            gsm_track_ids=ids[2],
            **options,
        )
        return client._shared.loop.run(call)


# --- where lazy inputs are read ---------------------------------------------------------

S = TypeVar("S", bound="IdSource | None")
"""An ID argument: ``None`` (not given) goes through as it is."""


def _is_lazy(source: object) -> TypeGuard[Iterable[Id]]:
    """A sync iterable that is not a sized collection: a generator, a cursor, a file."""
    return (
        isinstance(source, Iterable)
        and not isinstance(source, Collection | str | bytes | bytearray)
        and not isinstance(source, AsyncIterable)
    )


def _read_here(
    sources: tuple[S, S, S], limits: tuple[int, int, int] | None = None
) -> tuple[S | list[Id], S | list[Id], S | list[Id]]:
    """Lazy inputs read into lists by the calling thread (a call returns every row anyway),
    each to its limit if one is given.

    User code (a generator, an ORM cursor) then runs in the caller's thread, with its
    thread-local state, never in the event loop's thread.
    """
    bounds = limits or (None, None, None)
    first, second, third = (
        list(itertools.islice(s, bound)) if _is_lazy(s) else s
        for s, bound in zip(sources, bounds, strict=True)
    )
    return first, second, third


def _read_in_thread(
    sources: tuple[S, S, S],
) -> tuple[S | _ThreadRead, S | _ThreadRead, S | _ThreadRead]:
    """Lazy inputs of a stream, read as needed in a worker thread, in bounded memory."""
    first, second, third = (_ThreadRead(s) if _is_lazy(s) else s for s in sources)
    return first, second, third


class _ThreadRead:
    """An async iterator over a sync iterable read in a worker thread, a chunk at a time.

    The event loop never runs the iterable's code, which may block (a file, a database
    cursor) or refuse to run where an event loop is running (Django's ORM).
    """

    __slots__ = ("_chunk", "_iterator", "_source")

    def __init__(self, source: Iterable[Id]) -> None:
        self._source = source
        self._iterator: Iterator[Id] | None = None
        self._chunk: list[Id] = []

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Id:
        if not self._chunk:
            self._chunk = await anyio.to_thread.run_sync(self._read)
            if not self._chunk:
                raise StopAsyncIteration
            self._chunk.reverse()
        return self._chunk.pop()

    def _read(self) -> list[Id]:
        if self._iterator is None:
            self._iterator = iter(self._source)
        return list(itertools.islice(self._iterator, _READ_CHUNK))
