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
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, Unpack

import httpx

from ._bulk import Batches, BulkOptions, BulkRun, ReportStream, Rows, check_sources, collect
from ._exceptions import AuthenticationError
from ._follow import FollowStream
from ._http import make_sender
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
from ._ratelimit import AdaptiveLimit, RateLimiter
from ._redact import Redactor, Secret, install_log_filter
from ._requester import Reachability, Requester
from ._retry import RetryPolicy
from ._shared import SharedBudget, SharedConcurrency, SharedLimits
from ._shared import resolve as resolve_shared_limits

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "OrganikClient",
    "api_key_from_credentials",
]

DEFAULT_BASE_URL: Final = "https://organikapi.com"
DEFAULT_BATCH_SIZES: Final = BatchSizes()
API_KEY_ENV: Final = "ORGANIK_API_KEY"
BASE_URL_ENV: Final = "ORGANIK_BASE_URL"
_KEY_SHAPE: Final = re.compile(r"[0-9a-fA-F]{32}")
_V2_SEGMENT: Final = re.compile(r"(^|/)v2(/|$)", re.IGNORECASE)
_HOST: Final = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")


def api_key_from_credentials(username: str, password: str) -> str:
    """The provider's API key for an account: ``MD5(username + password)``, hex."""
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
    return Secret(key)


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
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL ({exc}): {shown!r}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"base_url must start with http:// or https://: {shown!r}")
    if not url.host:
        raise ValueError(f"base_url has no host: {shown!r}")
    if not _HOST.fullmatch(url.host) and ":" not in url.host:  # IPv6 literals have colons
        raise ValueError(f"base_url is not a valid URL (bad host name): {shown!r}")
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
    manager, or call `aclose()` when done. A client belongs to the event
    loop that first uses it, as httpx's pools do.

    Pass ``http_client`` to use your own ``httpx.AsyncClient`` as is (we never
    close it), or ``transport`` for a custom httpx transport (the simulator's
    in-process one, say). Without either, the client owns its pools, and
    ``http_backend`` picks what sends: ``"auto"`` (aiohttp on asyncio when it
    is installed and httpx is not mocked, httpx otherwise), ``"httpx"`` or
    ``"aiohttp"`` (asyncio only).

    ``base_url`` defaults to the ``ORGANIK_BASE_URL`` environment variable, else the provider's;
    ``api_key`` to ``ORGANIK_API_KEY``. ``shared_limits`` (a Redis URL or a
    [`SharedLimits`][organik_async.SharedLimits], default ``ORGANIK_SHARED_LIMITS``) shares
    one budget among every process that uses the key: see "Many processes, one account".
    Settings are read-only afterwards: [`with_options()`][organik_async.OrganikClient.with_options]
    gives a view with some changed.
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
        self._settings = settings
        self._requester = Requester(
            api_key=key,
            base_url=url,
            redactor=redactor,
            sender=sender,
            rate_limiter=rate_limiter if budget is None else budget.rate,
            concurrency=(
                budget.concurrency
                if budget is not None
                else AdaptiveLimit(max_connections)
                if adaptive_concurrency
                else None
            ),
            http_backend=http_backend,
        )

    def with_options(self, **changes: Unpack[SettingChanges]) -> OrganikClient:
        """A view of this client with some settings changed (as openai-python's).

        The view shares this client's pools, rate budget and open/closed state:
        closing either closes both. Values are validated as the constructor
        validates them:

            slow = client.with_options(max_retries=6, batch_sizes=50)
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
        return self._settings.request_format

    @property
    def response_format(self) -> Format:
        return self._settings.answer_format

    @property
    def timeout(self) -> httpx.Timeout:
        return self._settings.timeout

    @property
    def retry(self) -> RetryPolicy:
        return self._settings.retry

    @property
    def max_response_bytes(self) -> int:
        return self._settings.max_response_bytes

    @property
    def batch_sizes(self) -> BatchSizes:
        return self._settings.batch_sizes

    @property
    def max_concurrency(self) -> int:
        return self._settings.max_concurrency

    @property
    def attempt_timeout(self) -> float | None:
        return self._settings.attempt_timeout

    @property
    def unreachable_after(self) -> int:
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
        """Close the pools this client opened. Calling it twice is harmless."""
        await self._requester.aclose()
        if (budget := self._shared_budget) is not None:
            await budget.aclose()

    @property
    def is_closed(self) -> bool:
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
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        **options: Unpack[CallOptions],
    ) -> list[DetailedReport]:
        """Every row for the given IDs, fetched in concurrent batches.

        Rows come in input order (batch by batch, kinds in the order transaction, delivery track,
        GSM track), each ``gsm_track_id`` once. A call of one request raises that request's error as
        is; a call of several raises [`BulkReportError`][organik_async.BulkReportError] with the
        rows that arrived and the failed batches; an
        [`AuthenticationError`][organik_async.AuthenticationError] is raised at once. ``options``
        are the per-call overrides of [`CallOptions`][organik_async.CallOptions].
        """
        start = self._prepare((transaction_ids, delivery_track_ids, gsm_track_ids), options)
        return await collect(start())

    def iter_detailed_report(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        **options: Unpack[CallOptions],
    ) -> ReportStream[DetailedReport]:
        """Rows as batches complete, in bounded memory:

            async with client.iter_detailed_report(transaction_ids=ids) as rows:
                async for row in rows:
                    ...

        Order follows completion, not input. With ``dedupe`` (the default)
        each input ID is sent once and each ``gsm_track_id`` yielded once, at
        the cost of remembering them (see the README for figures).
        """
        dedupe = options.get("dedupe", True)
        start = self._prepare((transaction_ids, delivery_track_ids, gsm_track_ids), options)
        return ReportStream(start, lambda results: Rows(results, dedupe))

    def iter_batches(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        **options: Unpack[CallOptions],
    ) -> ReportStream[BatchResult]:
        """One [`BatchResult`][organik_async.BatchResult] per successful request, as they complete.

        For checkpointing: each result names the IDs it answered. Failed
        batches are raised at the end in a [`BulkReportError`][organik_async.BulkReportError]. With
        ``dedupe`` (the default) a row already yielded in an earlier batch,
        through any ID kind, is left out of later ones.
        """
        dedupe = options.get("dedupe", True)
        start = self._prepare((transaction_ids, delivery_track_ids, gsm_track_ids), options)
        return ReportStream(start, lambda results: Batches(results, dedupe))

    def follow_until_final(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        poll_interval: float = 60.0,
        max_poll_interval: float = 900.0,
        deadline: float = 24 * 3600.0,
        **options: Unpack[CallOptions],
    ) -> FollowStream:
        """Each row once, when it becomes final, until every row is final:

            async with client.follow_until_final(transaction_ids=ids) as rows:
                async for row in rows:
                    ...  # delivered, invalid number or timed out

        The first round asks for the given IDs; later rounds only for the rows still pending, by
        ``gsm_track_id``, after ``poll_interval`` seconds, doubling up to ``max_poll_interval``.
        When ``deadline`` seconds have passed with rows still pending, the stream raises
        [`StillPendingError`][organik_async.StillPendingError] carrying them. ``options`` apply to
        every round (a round is a [`detailed_report()`][organik_async.OrganikClient.detailed_report]
        call).
        """
        check_positive_number("poll_interval", poll_interval)
        check_positive_number("max_poll_interval", max_poll_interval)
        check_positive_number("deadline", deadline)
        sources = (transaction_ids, delivery_track_ids, gsm_track_ids)
        self._prepare(sources, options)  # refuse bad arguments now, at the call
        first = dict(zip(ID_KINDS, sources, strict=True))

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
        )

    def _prepare(
        self, sources: tuple[object, object, object], options: Mapping[str, Any]
    ) -> Callable[[], BulkRun]:
        """Check a call's arguments now (errors are raised at the call) and
        return what starts its run."""
        self._requester.check_open()
        unknown = sorted(set(options) - CALL_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        checked = check_sources(dict(zip(ID_KINDS, sources, strict=True)))
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
            sizes=self._requester.sizes,
        )
        requester = self._requester

        def start() -> BulkRun:
            reachability = Reachability()  # one per call: connection failures in a row

            async def fetch(
                ids: Mapping[IdKind, Sequence[Id]], on_attempt: Callable[[int], object]
            ) -> tuple[list[DetailedReport], int]:
                return await requester.fetch(
                    ids,
                    settings,
                    rate_limiter=limiter,
                    on_attempt=on_attempt,
                    reachability=reachability,
                )

            return BulkRun(fetch, checked, engine)

        return start
