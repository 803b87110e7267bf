"""``OrganikClient``: the facade users hold.

It owns settings (read-only properties over one validated `Settings`), lifecycle, and the public
methods. The work is below it: one request with its retries in ``_requester``, batching and fan-out
in ``_bulk``, which receives a fetch callable and never the client.
[`OrganikClient.with_options()`][organik_async.OrganikClient.with_options] returns a view with some
settings changed that shares the same pools, rate budget and open/closed state.

The API key is wrapped in a `Secret` (masked ``repr``) as the first
thing the constructor does, and masked by value, through one redactor per
client, in everything shown: errors, ``repr``, our log lines and httpx's.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from functools import cached_property
from types import TracebackType
from typing import Any, Final, Self, Unpack

import httpx

from ._bulk import Batches, BulkOptions, BulkRun, ReportStream, Rows, check_sources, collect
from ._exceptions import AuthenticationError, RequestInfo
from ._follow import FollowStream
from ._http import Answer, make_sender, url_problem
from ._models import (
    ID_KINDS,
    BatchResult,
    BatchSizes,
    DetailedReport,
    Format,
    HttpBackend,
    Id,
    IdKind,
    IdSource,
    canonical_id,
    validate_id,
)
from ._options import (
    CALL_OPTIONS,
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    CallOptions,
    SettingChanges,
    Settings,
    check_positive_int,
    check_positive_number,
)
from ._ratelimit import AdaptiveLimit, ConcurrencyBudget, RateLimiter
from ._raw import RawResponse, masked_headers
from ._redact import Redactor, Secret, install_log_filter
from ._requester import CallState, Keep, Requester, is_pushback
from ._retry import RetryPolicy
from ._shared import SharedBudget, SharedConcurrency, SharedLimits
from ._shared import resolve as resolve_shared_limits
from ._telemetry import Instrumentation, Telemetry, telemetry_setting

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "OrganikClient",
    "RawResponses",
    "api_key_from_credentials",
]

DEFAULT_BASE_URL: Final = "https://organikapi.com"
"""The provider's root URL: the client's ``base_url`` when neither the argument nor the
``ORGANIK_BASE_URL`` environment variable gives one."""
DEFAULT_BATCH_SIZES: Final = BatchSizes()
API_KEY_ENV: Final = "ORGANIK_API_KEY"
BASE_URL_ENV: Final = "ORGANIK_BASE_URL"
_KEY_SHAPE: Final = re.compile(r"[0-9a-fA-F]{32}")
_V2_SEGMENT: Final = re.compile(r"(^|/)v2(/|$)", re.IGNORECASE)


def api_key_from_credentials(username: str, password: str) -> str:
    """The provider's API key for an account.

    Args:
        username: the account's user name.
        password: its password.

    Returns:
        ``MD5(username + password)`` in hex: 32 characters, as the provider computes it.
    """
    return hashlib.md5((username + password).encode(), usedforsecurity=False).hexdigest()


def _resolve_key(api_key: object) -> Secret:
    # Read from the environment straight into a Secret: a plain local would show
    # the key (a malformed one, say with a trailing newline) in a traceback's locals.
    key = api_key if api_key is not None else Secret(os.environ.get(API_KEY_ENV) or "")
    if not key:
        raise AuthenticationError(
            f"no API key: pass api_key= or set the {API_KEY_ENV} environment variable"
        )
    if not isinstance(key, str) or not _KEY_SHAPE.fullmatch(key):
        length = len(key) if isinstance(key, str) else 0
        raise AuthenticationError(
            f"the API key must be 32 hexadecimal characters (MD5 of username + password); "
            f"the one given has {length} characters or other symbols",
            code=90,
        )
    return Secret(key.lower())  # the provider issues keys in lower case, and compares them so


def _check_base_url(value: object, redactor: Redactor) -> str:
    """A usable base URL, or a ``ValueError`` naming the setting (never showing the key)."""
    if value is None:
        value = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not isinstance(value, str):
        raise ValueError(f"base_url must be a str: {type(value).__name__}")
    shown = redactor.text(value)
    if shown != value:
        del value  # it holds the key: no local of this frame may show it
        raise ValueError(
            "base_url must not contain the API key: the client puts the key in the path itself"
        )
    try:
        url: httpx.URL | str = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:  # ValueError: an IDNA label refused
        url = str(exc)
    if isinstance(url, str):  # raised here: httpx's half-built URL is not chained
        raise ValueError(f"base_url is not a valid URL ({url}): {shown!r}")
    if url.scheme not in ("http", "https"):
        raise ValueError(f"base_url must start with http:// or https://: {shown!r}")
    if not url.raw_host:
        raise ValueError(f"base_url has no host: {shown!r}")
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"base_url is not a valid URL ({problem}): {shown!r}")
    if url.query or url.fragment or "?" in value or "#" in value:
        raise ValueError(f"base_url must have no query or fragment: {shown!r}")
    if _V2_SEGMENT.search(url.path):
        raise ValueError(
            f"base_url must not contain /v2: the client adds /v2/<key>/detailedreport/ "
            f"itself (give the provider's root, or your proxy's prefix): {shown!r}"
        )
    return value.rstrip("/")


class OrganikClient:
    """An async client for the provider's ``detailedreport`` request.

    Open it once (an app's lifespan, a worker's start) and share it: it is
    safe under any number of concurrent calls. Use it as an async context
    manager, or call [`aclose()`][organik_async.OrganikClient.aclose] when done. A client
    belongs to the event loop that first uses it, as httpx's pools do.

    Every value is checked here, and a bad one raises ``ValueError`` naming the setting.
    Settings are read-only properties afterwards, named as the arguments (``retry`` holds
    the five retry settings); [`with_options()`][organik_async.OrganikClient.with_options]
    gives a view with some changed. The [Client settings][client-settings] page has them
    all in one table.

    ``telemetry`` reports calls and requests to OpenTelemetry when the application has set a
    tracer or meter provider (``False`` never does; a [`Telemetry`][organik_async.Telemetry]
    says more). [`with_raw_response`][organik_async.OrganikClient.with_raw_response] gives the
    answer as it came. ``shared_limits`` (a Redis URL or a
    [`SharedLimits`][organik_async.SharedLimits], default ``ORGANIK_SHARED_LIMITS``) shares
    one budget among every process that uses the key (see
    [Many processes, one account](../shared-limits.md)).

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
            ``ORGANIK_SHARED_LIMITS`` environment variable; ``""`` turns it off. Shared only
            inside ``async with client:``.

    Raises:
        AuthenticationError: the key is missing, or not 32 hex characters.
        ValueError: a setting out of range or of the wrong type; a ``base_url`` that is not
            an http(s) URL, or holds ``/v2``, the key, a query or a fragment; both
            ``http_client`` and ``transport``; ``http_backend="aiohttp"`` without aiohttp
            installed, or with an ``http_client`` or ``transport``.
    """

    _requester: Requester
    _settings: Settings

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
        key = _resolve_key(secret)
        redactor = Redactor(key)
        install_log_filter(redactor)
        if isinstance(base_url, str) and redactor.text(base_url) != base_url:
            base_url = Secret(base_url)  # it holds the key (refused below): masked in locals
        url = _check_base_url(base_url, redactor)
        settings = Settings().evolve(
            {
                "request_format": request_format,
                "response_format": response_format,
                "timeout": timeout,
                "max_retries": max_retries,
                "backoff_base": backoff_base,
                "backoff_max": backoff_max,
                "max_retry_after": max_retry_after,
                "pushback_timeout": pushback_timeout,
                "max_response_bytes": max_response_bytes,
                "batch_sizes": batch_sizes,
                "max_concurrency": max_concurrency,
                "attempt_timeout": attempt_timeout,
                "unreachable_after": unreachable_after,
            }
        )
        rate_limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        shared = resolve_shared_limits(shared_limits)
        budget = None
        if shared is not None:  # the account's budget, in Redis, replaces this process's own
            budget = SharedBudget(
                shared,
                api_key=key,
                ceiling=max_connections,
                adaptive=adaptive_concurrency,
                rate=rate_limit,
            )
        check_positive_int("max_connections", max_connections)
        check_positive_int("pool_size", pool_size)
        sender = make_sender(
            http_backend,
            http_client=http_client,
            transport=transport,
            timeout=settings.timeout,
            base_url=url,
            max_connections=max_connections,
            pool_size=pool_size,
        )
        concurrency: ConcurrencyBudget | None = (
            budget.concurrency
            if budget is not None
            else AdaptiveLimit(max_connections)
            if adaptive_concurrency
            else None
        )
        instrumentation = Instrumentation(
            telemetry_setting(telemetry),
            base_url=url,
            redactor=redactor,
            limit=None if concurrency is None else lambda: concurrency.limit,
            is_refusal=is_pushback,
        )
        self._settings = settings
        self._requester = Requester(
            api_key=key,
            base_url=url,
            redactor=redactor,
            sender=sender,
            rate_limiter=rate_limiter if budget is None else budget.rate,
            concurrency=concurrency,
            http_backend=http_backend,
            telemetry=instrumentation,
        )

    def with_options(self, **changes: Unpack[SettingChanges]) -> OrganikClient:
        """A view of this client with some settings changed, as openai-python's.

        The view shares this client's pools, rate budget, adaptive limit and open/closed
        state: closing either closes both. Values are validated as the constructor
        validates them.

        ```python
        patient = client.with_options(max_retries=6, batch_sizes=50)
        ```

        Args:
            **changes: the settings to change, by the constructor's names: those of
                [`SettingChanges`][organik_async.SettingChanges] (everything that is not
                about connections, shared budgets or telemetry), and ``retry``, a whole
                [`RetryPolicy`][organik_async.RetryPolicy].

        Returns:
            The view: an `OrganikClient`.

        Raises:
            TypeError: a name that is not a changeable setting.
            ValueError: a value the constructor would refuse.
        """
        view = object.__new__(type(self))
        view._requester = self._requester
        view._settings = self._settings.evolve(changes)
        return view

    # --- settings (read-only) -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The provider's root URL, without ``/v2/<key>/…``."""
        return self._requester.redactor.text(self._requester.base_url)

    @property
    def request_format(self) -> Format:
        """The format of request bodies: ``"json"`` or ``"xml"``."""
        return self._settings.request_format

    @property
    def response_format(self) -> Format:
        """The format answers are asked in (``request_format`` unless set apart)."""
        return self._settings.answer_format

    @property
    def timeout(self) -> httpx.Timeout:
        """httpx's timeouts, per operation (connect, read, write, pool)."""
        return self._settings.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy the ``max_retries``, ``backoff_base``, ``backoff_max``,
        ``max_retry_after`` and ``pushback_timeout`` settings make."""
        return self._settings.retry

    @property
    def max_response_bytes(self) -> int:
        """The largest answer read, in bytes (decompressed); a larger one raises
        [`ResponseTooLargeError`][organik_async.ResponseTooLargeError]."""
        return self._settings.max_response_bytes

    @property
    def batch_sizes(self) -> BatchSizes:
        """IDs per request, per kind."""
        return self._settings.batch_sizes

    @property
    def max_concurrency(self) -> int:
        """Requests in flight per call."""
        return self._settings.max_concurrency

    @property
    def attempt_timeout(self) -> float | None:
        """Seconds one attempt may take, from sending to the last byte; ``None``: no bound."""
        return self._settings.attempt_timeout

    @property
    def unreachable_after(self) -> int:
        """Failures to connect in a row after which a call stops with
        [`EndpointUnreachableError`][organik_async.EndpointUnreachableError]."""
        return self._settings.unreachable_after

    @property
    def http_backend(self) -> HttpBackend:
        """What sends requests, as asked: ``"auto"``, ``"httpx"`` or ``"aiohttp"``."""
        return self._requester.http_backend

    @property
    def rate_limit(self) -> float | None:
        """The client-wide requests-per-second budget shared by every call, if any."""
        limiter = self._requester.rate_limiter
        return None if limiter is None else limiter.rate

    @property
    def telemetry(self) -> Telemetry:
        """How this client reports to OpenTelemetry."""
        return self._requester.telemetry.setting

    @property
    def shared_limits(self) -> SharedLimits | None:
        """Where the account's budget is shared with other processes (Redis), if it is."""
        budget = self._shared_budget
        return None if budget is None else budget.settings

    @property
    def _shared_budget(self) -> SharedBudget | None:
        concurrency = self._requester.concurrency
        return concurrency.budget if isinstance(concurrency, SharedConcurrency) else None

    @property
    def url(self) -> str:
        """The request URL, with the key redacted: safe to show."""
        settings = self._settings
        return self._requester.route(settings.request_format, settings.answer_format).shown

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._requester.open()
        if (budget := self._shared_budget) is not None:
            await budget.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if (budget := self._shared_budget) is not None:
            await budget.exit()  # its connection ends where it began, as anyio requires

    async def aclose(self) -> None:
        """Close the pools this client opened, and end every call in flight.

        A call cut short raises [`ClientClosedError`][organik_async.ClientClosedError]
        (a call of several requests,
        [`ClosedDuringCallError`][organik_async.ClosedDuringCallError]). Closing a view closes
        the client, and the other way round. Calling it twice is harmless; an
        ``http_client`` of your own is left open.
        """
        await self._requester.aclose()
        if (budget := self._shared_budget) is not None:
            await budget.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether [`aclose()`][organik_async.OrganikClient.aclose] was called (on this
        client or on any view of it)."""
        return self._requester.is_closed

    def __repr__(self) -> str:
        # Safe even on a half-built client (a traceback with locals shows it).
        requester: Requester | None = getattr(self, "_requester", None)
        settings: Settings | None = getattr(self, "_settings", None)
        if requester is None or settings is None:
            return "<OrganikClient (not constructed)>"
        return (
            f"<OrganikClient base_url={self.base_url!r} "
            f"request_format={settings.request_format!r} "
            f"response_format={settings.answer_format!r} state={requester.state}>"
        )

    # --- the report methods -------------------------------------------------------------

    async def detailed_report(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> list[DetailedReport]:
        """Every row for the given IDs, fetched in concurrent batches.

        Rows come in input order (batch by batch, kinds in the order transaction, delivery track,
        GSM track), each ``gsm_track_id`` once. Lists are checked whole before anything is sent,
        lazy inputs as they are read; duplicate IDs are sent once.

        ```python
        rows = await client.detailed_report(transaction_ids=[14094857, 16334701])
        ```

        Args:
            transaction_ids: transaction IDs (the send tasks), as any iterable or async
                iterable of ints or strings.
            delivery_track_ids: delivery track IDs (your own IDs given to ``sendsms``).
            gsm_track_ids: GSM track IDs (one row each).
            **options: the per-call options of [`CallOptions`][organik_async.CallOptions]:
                ``batch_sizes``, ``max_concurrency``, ``retry``, ``rate_limit``,
                ``fail_fast``, ``dedupe``, ``on_progress``, ``timeout``.

        Returns:
            The rows, each a [`DetailedReport`][organik_async.DetailedReport]; none when the
                provider has no record of the IDs.

        Raises:
            BulkReportError: some batches of a call of several requests failed after their
                retries; it holds the rows that arrived and every failed ID.
            AuthenticationError: the provider refused the key; raised at once, whatever the
                call's size.
            OrganikError: for a call of one request, that request's own error
                ([`RateLimitError`][organik_async.RateLimitError],
                [`DecodeError`][organik_async.DecodeError], ...).
            TimeoutExpiredError: the call's ``timeout`` passed (a call of one request).
            ClientClosedError: the client is closed, or was closed during the call.
            TypeError: an ID that is not an int or a str, an ID argument that is not an
                iterable, or an unknown option.
            ValueError: an ID that cannot be one ID (empty, or holding a comma, whitespace or a
                control character), or an option out of range.
        """
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids), options, "detailed_report"
        )
        return await collect(start())

    def iter_detailed_report(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> ReportStream[DetailedReport]:
        """Rows as batches complete, in bounded memory.

        ```python
        async with client.iter_detailed_report(transaction_ids=ids) as rows:
            async for row in rows:
                ...
        ```

        Order follows completion, not input. The input is read lazily, and fetching pauses
        while the consumer is slow: at most ``max_concurrency`` answers are held. With
        ``dedupe`` (the default) each input ID is sent once and each ``gsm_track_id``
        yielded once, at the cost of remembering them (``dedupe=False`` for flat memory).

        Args:
            transaction_ids: transaction IDs, as any iterable or async iterable.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs.
            **options: the per-call options of [`CallOptions`][organik_async.CallOptions].

        Returns:
            A [`ReportStream`][organik_async.ReportStream] of
                [`DetailedReport`][organik_async.DetailedReport]s: the call runs inside its
                ``async with`` block.

        Raises:
            ClientClosedError: the client is closed.
            TypeError: an ID argument that is not an iterable, or an unknown option.
            ValueError: an option out of range.
            BulkReportError: from the iteration, after the last row: some batches failed
                (the rows already yielded are not in it). A call of one request raises that
                request's error instead.
        """
        dedupe = options.get("dedupe", True)
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids), options, "iter_detailed_report"
        )
        return ReportStream(start, lambda results: Rows(results, dedupe))

    def iter_batches(
        self,
        *,
        transaction_ids: IdSource | None = None,
        delivery_track_ids: IdSource | None = None,
        gsm_track_ids: IdSource | None = None,
        **options: Unpack[CallOptions],
    ) -> ReportStream[BatchResult]:
        """One [`BatchResult`][organik_async.BatchResult] per successful request, as they complete.

        For checkpointing: each result names the IDs it answered. With ``dedupe`` (the
        default) a row already yielded in an earlier batch, through any ID kind, is left out
        of later ones.

        ```python
        async with client.iter_batches(transaction_ids=ids) as batches:
            async for batch in batches:
                save(batch.rows, done=batch.ids)
        ```

        Args:
            transaction_ids: transaction IDs, as any iterable or async iterable.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs.
            **options: the per-call options of [`CallOptions`][organik_async.CallOptions].

        Returns:
            A [`ReportStream`][organik_async.ReportStream] of
                [`BatchResult`][organik_async.BatchResult]s: the call runs inside its
                ``async with`` block.

        Raises:
            ClientClosedError: the client is closed.
            TypeError: an ID argument that is not an iterable, or an unknown option.
            ValueError: an option out of range.
            BulkReportError: from the iteration, after the last batch: the failed batches,
                with their IDs. A call of one request raises that request's error instead.
        """
        dedupe = options.get("dedupe", True)
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids), options, "iter_batches"
        )
        return ReportStream(start, lambda results: Batches(results, dedupe))

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
    ) -> FollowStream:
        """Each row once, when it becomes final, until every row is final.

        ```python
        async with client.follow_until_final(transaction_ids=ids) as rows:
            async for row in rows:
                ...  # delivered, invalid number or timed out
        ```

        The first round asks for the given IDs; later rounds only for the rows still pending, by
        ``gsm_track_id``, after ``poll_interval`` seconds, doubling up to ``max_poll_interval``.
        A round is a [`detailed_report()`][organik_async.OrganikClient.detailed_report] call.

        Args:
            transaction_ids: transaction IDs, as any iterable or async iterable.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs.
            poll_interval: seconds before the second round.
            max_poll_interval: the longest wait between rounds, in seconds.
            deadline: seconds after entering the block at which rows still pending end the
                stream (default one day).
            **options: the per-call options of [`CallOptions`][organik_async.CallOptions],
                applied to every round.

        Returns:
            A [`FollowStream`][organik_async.FollowStream] of the rows that became final:
                the rounds run inside its ``async with`` block.

        Raises:
            ValueError: a ``poll_interval``, ``max_poll_interval`` or ``deadline`` that is not
                a positive number, or an option out of range.
            TypeError: an ID argument that is not an iterable, or an unknown option.
            ClientClosedError: the client is closed.
            StillPendingError: from the iteration, at the deadline, with the rows still
                pending. A round's own error ends the iteration as it would end the call.
        """
        check_positive_number("poll_interval", poll_interval)
        check_positive_number("max_poll_interval", max_poll_interval)
        check_positive_number("deadline", deadline)
        sources = (transaction_ids, delivery_track_ids, gsm_track_ids)
        self._prepare(sources, options, "follow_until_final")  # refuse bad arguments now
        first = {k: v for k, v in zip(ID_KINDS, sources, strict=True) if v is not None}

        async def one_round(ids: Mapping[IdKind, IdSource]) -> list[DetailedReport]:
            return await self.detailed_report(
                transaction_ids=ids.get("transaction_ids", ()),
                delivery_track_ids=ids.get("delivery_track_ids", ()),
                gsm_track_ids=ids.get("gsm_track_ids", ()),
                **options,
            )

        return FollowStream(
            one_round,
            first,
            poll_interval=poll_interval,
            max_poll_interval=max(max_poll_interval, poll_interval),
            deadline=deadline,
            trace=self._requester.telemetry.follow(first),
        )

    @cached_property
    def with_raw_response(self) -> RawResponses:
        """The calls of one request that return the answer as it came (openai-python's
        convention): ``await client.with_raw_response.detailed_report(...)`` returns a
        [`RawResponse`][organik_async.RawResponse]."""
        return RawResponses(self)

    def _prepare(
        self,
        sources: tuple[object, object, object],
        options: Mapping[str, Any],
        operation: str,
        *,
        keep: Keep | None = None,
    ) -> Callable[[], BulkRun]:
        """Check a call's arguments now (errors are raised at the call) and
        return what starts its run. With ``keep`` (a call of one request that
        returns the answer as it came), a batch refused for its size is not split."""
        self._requester.check_open()
        unknown = sorted(set(options) - CALL_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        if all(source is None for source in sources):
            raise TypeError(
                "a report call needs IDs: pass transaction_ids=, delivery_track_ids= or "
                "gsm_track_ids= (an empty list asks for nothing, and gets no rows)"
            )
        given = zip(ID_KINDS, sources, strict=True)
        checked = check_sources({kind: () if ids is None else ids for kind, ids in given})
        overrides = {
            name: options[name]
            for name in ("batch_sizes", "max_concurrency", "retry")
            if options.get(name) is not None
        }
        settings = self._settings.evolve(overrides) if overrides else self._settings
        rate_limit = options.get("rate_limit")
        limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        timeout = options.get("timeout")
        if timeout is not None:
            check_positive_number("timeout", timeout)
        engine = BulkOptions(
            batch_sizes=settings.batch_sizes,
            max_concurrency=settings.max_concurrency,
            fail_fast=bool(options.get("fail_fast", False)),
            dedupe=bool(options.get("dedupe", True)),
            on_progress=options.get("on_progress"),
            timeout=timeout,
            concurrency=self._requester.concurrency,
            sizes=self._requester.sizes if keep is None else None,
            trace=self._requester.telemetry.call(operation, checked),
        )
        requester = self._requester

        def start() -> BulkRun:
            call = CallState()  # one per call: connection failures in a row, retries, refusals

            async def fetch(
                ids: Mapping[IdKind, Sequence[Id]],
                on_attempt: Callable[[int, int], object],
                batch: int,
            ) -> tuple[list[DetailedReport], int]:
                return await requester.fetch(
                    ids,
                    settings,
                    rate_limiter=limiter,
                    on_attempt=on_attempt,
                    call=call,
                    batch=batch,
                    keep=keep,
                )

            return BulkRun(fetch, checked, engine, call)

        return start


class RawResponses:
    """``client.with_raw_response``: calls of one request that return the answer as it came.

    Each takes the arguments of the plain method of the same name, and the IDs must fit in
    one request (see [`BatchSizes`][organik_async.BatchSizes]; IDs of several kinds share
    it). Errors are raised as the plain method raises them.
    """

    def __init__(self, client: OrganikClient) -> None:
        self._client = client

    async def detailed_report(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        **options: Unpack[CallOptions],
    ) -> RawResponse:
        """The answer to one request for these IDs: status, headers, body, the key masked.

        Args:
            transaction_ids: IDs of send tasks.
            delivery_track_ids: the delivery track IDs given when sending.
            gsm_track_ids: IDs of single messages.
            **options: per-call overrides ([`CallOptions`][organik_async.CallOptions]); a
                ``batch_sizes`` given here decides what fits in one request.

        Returns:
            The successful answer (after any retries), with ``parse()`` for its rows.

        Raises:
            ValueError: the IDs do not fit in one request, or there are none.
            OrganikError: as [`detailed_report()`][organik_async.OrganikClient.detailed_report]
                raises it for a call of one request.
        """
        client = self._client
        client._requester.check_open()
        sizes = client._settings.batch_sizes
        if options.get("batch_sizes") is not None:
            sizes = client._settings.evolve({"batch_sizes": options["batch_sizes"]}).batch_sizes
        dedupe = bool(options.get("dedupe", True))
        sources = check_sources(
            dict(zip(ID_KINDS, (transaction_ids, delivery_track_ids, gsm_track_ids), strict=True))
        )
        ids = {
            kind: await _read_one_request(kind, sources[kind], sizes, dedupe) for kind in ID_KINDS
        }
        share = sum(len(ids[kind]) / sizes.for_kind(kind) for kind in ID_KINDS)
        if share > 1:
            asked = ", ".join(f"{len(ids[k])} {k}" for k in ID_KINDS if ids[k])
            raise ValueError(
                f"with_raw_response needs IDs that fit in one request ({asked} is {share:.2f} "
                f"requests at batch_sizes={sizes}); call detailed_report() for more"
            )
        if not share:
            raise ValueError(
                "with_raw_response needs at least one ID (no request is sent for none)"
            )
        kept: list[tuple[Answer, int, float]] = []
        start = client._prepare(
            (ids["transaction_ids"], ids["delivery_track_ids"], ids["gsm_track_ids"]),
            options,
            "detailed_report",
            keep=lambda answer, attempt, elapsed: kept.append((answer, attempt, elapsed)),
        )
        rows = await collect(start())
        answer, attempts, elapsed = kept[-1]
        redactor = client._requester.redactor
        settings = client._settings
        route = client._requester.route(settings.request_format, settings.answer_format)
        count = sum(len(v) for v in ids.values())
        return RawResponse(
            status_code=answer.status,
            headers=masked_headers(answer.headers, redactor),
            content=redactor.bytes(answer.body),
            request=RequestInfo(
                route.shown, settings.request_format, settings.answer_format, count
            ),
            attempts=attempts,
            elapsed=elapsed,
            rows=rows,
        )


async def _read_one_request(
    kind: IdKind, source: IdSource, sizes: BatchSizes, dedupe: bool
) -> list[Id]:
    """The IDs of ``kind``, each once with ``dedupe``: at most one request's and one
    more (to tell "too many"); a lazy input is read no further, then closed."""
    limit = sizes.for_kind(kind) + 1
    ids: list[Id] = []
    seen: set[Id] = set()

    def take(value: object) -> bool:
        checked = validate_id(value, kind)
        key = canonical_id(checked)
        if not dedupe or key not in seen:
            seen.add(key)
            ids.append(checked)
        return len(ids) < limit

    if isinstance(source, AsyncIterable):
        iterator = aiter(source)
        try:
            async for value in iterator:
                if not take(value):
                    break
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                await closer()
    else:
        for value in source:
            if not take(value):
                break
    return ids
