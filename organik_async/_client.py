"""``OrganikClient``: settings, lifecycle, and one request done right.

One request here means: build the URL and body, send, read at most
``max_response_bytes``, decode, map whatever went wrong onto the exception
tree, retry what is worth retrying. Batching and fan-out live in ``_bulk``.

The API key is part of the URL path. It is kept in one private attribute,
only ever put into the URL handed to httpx, and replaced by ``***`` in
everything we show: ``repr``, error messages, our log lines, and httpx's own
"HTTP Request: POST <url>" log line (see :class:`_RedactingFilter`).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import os
import re
import ssl
import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Self

import httpx

from . import _retry
from ._bulk import (
    BatchResult,
    BatchSizes,
    BulkOptions,
    BulkRun,
    IdSource,
    Progress,
    ReportStream,
    batches_as_they_are,
    check_sources,
    collect,
    dedupe_rows,
)
from ._codec import ID_KINDS, BodyError, Decoded, ProviderError, decode, encode_request
from ._exceptions import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    RequestInfo,
    ResponseTooLargeError,
    TimeoutError,
    TransportError,
)
from ._models import API_ERROR_CODES, DetailedReport, Format
from ._pool import PoolSet
from ._ratelimit import RateLimiter
from ._retry import RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "OrganikClient",
    "api_key_from_credentials",
]

logger = logging.getLogger("organik_async")

DEFAULT_BASE_URL: Final = "https://organikapi.com"
DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=180.0, write=30.0, pool=60.0)
"""Connect fails fast; read waits as long as the provider's own PHP sample (180 s)."""
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
DEFAULT_BATCH_SIZES: Final = BatchSizes()
API_KEY_ENV: Final = "ORGANIK_API_KEY"

_KEY_SHAPE = re.compile(r"[0-9a-fA-F]{32}")
_AUTH_CODES: Final = frozenset({89, 90, 98, 99})
_RATE_LIMIT_CODE: Final = 93
_NO_RECORDS_CODE: Final = 87
_BAD_PARAMETERS_CODE: Final = 96
_BATCH_HINT: Final = (
    " (if the provider refuses requests this large, lower the client's batch_sizes setting)"
)
_BODY_CAP: Final = 2048
_FORMATS: Final = ("json", "xml")
_MEDIA_TYPES: Final = {"json": "application/json", "xml": "application/xml"}


def api_key_from_credentials(username: str, password: str) -> str:
    """The provider's API key for an account: ``MD5(username + password)``, hex."""
    return hashlib.md5((username + password).encode(), usedforsecurity=False).hexdigest()


def redact_url(url: str) -> str:
    """``…/v2/<key>/…`` → ``…/v2/***/…``."""
    return _URL_KEY.sub(r"\1***", url)


_URL_KEY = re.compile(r"(/v2/)[^/?#\s\"']+")


class _RedactingFilter(logging.Filter):
    """Rewrites httpx's request log lines so they never carry the key.

    httpx logs ``HTTP Request: POST <full url> "HTTP/1.1 200 OK"`` at INFO for
    every request. The key is in that URL's path, so the rendered message is
    redacted in place before any handler sees it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/v2/" in message:
            record.msg = redact_url(message)
            record.args = None
        return True


_REDACTOR = _RedactingFilter()
for _name in ("httpx", "httpcore"):
    if _REDACTOR not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_REDACTOR)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _resolve_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
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
    return key


def _check_format(name: str, value: str) -> Format:
    if value not in _FORMATS:
        raise ValueError(f"{name} must be 'json' or 'xml', got {value!r}")
    return value  # type: ignore[return-value]


class OrganikClient:
    """An async client for the provider's ``detailedreport`` request.

    Open it once (an app's lifespan, a worker's start) and share it: it is
    safe under any number of concurrent calls. Use it as an async context
    manager, or call :meth:`aclose` when done. A client belongs to the event
    loop that first uses it, as httpx's pools do.

    Pass ``http_client`` to use your own ``httpx.AsyncClient`` as is (we never
    close it), or ``transport`` for a custom httpx transport (the simulator's
    in-process one, say). Without either, the client owns its pools.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
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
        rate_limit: float | None = None,
        max_connections: int = 128,
        pool_size: int = 4,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = _resolve_key(api_key)
        self._base_url = base_url.rstrip("/")
        self.request_format: Format = _check_format("request_format", request_format)
        self.response_format: Format = _check_format(
            "response_format", request_format if response_format is None else response_format
        )
        self.retry = RetryPolicy(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self.max_response_bytes = max_response_bytes
        self.batch_sizes = BatchSizes.coerce(batch_sizes)
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.max_concurrency = max_concurrency
        self._rate_limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        if http_client is not None and transport is not None:
            raise ValueError("pass http_client or transport, not both")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._owns_pools = http_client is None
        self._ssl_context: ssl.SSLContext | None = None
        if http_client is not None:
            self._pools = PoolSet(
                None, max_connections=max_connections, pool_size=pool_size, shared=http_client
            )
        elif transport is not None:
            self._pools = PoolSet(
                lambda _size: self._new_pool(transport=transport),
                max_connections=max_connections,
                pool_size=max_connections,
            )
        else:
            self._pools = PoolSet(
                lambda size: self._new_pool(limits=_pool_limits(size)),
                max_connections=max_connections,
                pool_size=pool_size,
            )
        self._state = _State.UNOPENED
        self._url = self._build_url()
        self._shown_url = redact_url(self._url)
        self._headers = {
            "Content-Type": _MEDIA_TYPES[self.request_format],
            "Accept": _MEDIA_TYPES[self.response_format],
        }

    # --- lifecycle -----------------------------------------------------------------------

    def _new_pool(self, **kwargs: Any) -> httpx.AsyncClient:
        # Building an AsyncClient loads the CA store (~24 ms); one SSL context,
        # made when the first pool opens, serves them all (~0.1 ms each after).
        if "transport" in kwargs:  # the transport brings its own connections
            return httpx.AsyncClient(timeout=self._timeout, **kwargs)
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return httpx.AsyncClient(timeout=self._timeout, verify=self._ssl_context, **kwargs)

    async def __aenter__(self) -> Self:
        if self._state is _State.CLOSED:
            raise ClientClosedError("this OrganikClient is closed; create a new one")
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pools this client opened. Calling it twice is harmless."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        await self._pools.aclose(close_pools=self._owns_pools)

    @property
    def is_closed(self) -> bool:
        return self._state is _State.CLOSED

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosedError("this OrganikClient is closed; create a new one")

    def __repr__(self) -> str:
        return (
            f"<OrganikClient base_url={self._base_url!r} request_format={self.request_format!r} "
            f"response_format={self.response_format!r} state={self._state.value}>"
        )

    # --- requests ------------------------------------------------------------------------

    def _build_url(self) -> str:
        url = f"{self._base_url}/v2/{self._api_key}/detailedreport/{self.request_format}/"
        if self.response_format != self.request_format:
            url += f"{self.response_format}/"
        return url

    @property
    def url(self) -> str:
        """The request URL, with the key redacted: safe to show."""
        return self._shown_url

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***")

    def _redact_body(self, raw: bytes) -> bytes:
        """The start of ``raw``, key masked *before* cutting, so no half key survives."""
        return raw.replace(self._api_key.encode(), b"***")[:_BODY_CAP]

    def _redact_excerpt(self, text: str) -> str:
        """An excerpt cut from the raw body: also mask a piece of the key at either edge."""
        text = self._redact(text)
        key = self._api_key
        for n in range(len(key) - 1, 3, -1):
            if text.startswith(key[-n:]):
                text = "***" + text[n:]
                break
        for n in range(len(key) - 1, 3, -1):
            if text.endswith(key[:n]):
                text = text[:-n] + "***"
                break
        return text

    async def detailed_report(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        batch_sizes: BatchSizes | int | None = None,
        max_concurrency: int | None = None,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        fail_fast: bool = False,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> list[DetailedReport]:
        """Every row for the given IDs, fetched in concurrent batches.

        Rows come in input order (batch by batch, kinds in the order
        transaction, delivery track, GSM track), each ``gsm_track_id`` once.
        A call of one request raises that request's error as is; a call of
        several raises :class:`BulkReportError` with the rows that arrived and
        the failed batches; an :class:`AuthenticationError` is raised at once.
        """
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids),
            batch_sizes=batch_sizes,
            max_concurrency=max_concurrency,
            rate_limit=rate_limit,
            retry=retry,
            fail_fast=fail_fast,
            dedupe=True,
            on_progress=on_progress,
        )
        return await collect(start())

    def iter_detailed_report(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        batch_sizes: BatchSizes | int | None = None,
        max_concurrency: int | None = None,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        fail_fast: bool = False,
        dedupe: bool = True,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> ReportStream[DetailedReport]:
        """Rows as batches complete, in bounded memory::

            async with client.iter_detailed_report(transaction_ids=ids) as rows:
                async for row in rows:
                    ...

        Order follows completion, not input. With ``dedupe`` (the default)
        each input ID is sent once and each ``gsm_track_id`` yielded once, at
        the cost of remembering them (see the README for figures).
        """
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids),
            batch_sizes=batch_sizes,
            max_concurrency=max_concurrency,
            rate_limit=rate_limit,
            retry=retry,
            fail_fast=fail_fast,
            dedupe=dedupe,
            on_progress=on_progress,
        )
        return ReportStream(
            start,
            lambda results: dedupe_rows(results, dedupe),
        )

    def iter_batches(
        self,
        *,
        transaction_ids: IdSource = (),
        delivery_track_ids: IdSource = (),
        gsm_track_ids: IdSource = (),
        batch_sizes: BatchSizes | int | None = None,
        max_concurrency: int | None = None,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        fail_fast: bool = False,
        dedupe: bool = True,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> ReportStream[BatchResult]:
        """One :class:`BatchResult` per successful request, as they complete.

        For checkpointing: each result names the IDs it answered. Failed
        batches are raised at the end in a :class:`BulkReportError`.
        """
        start = self._prepare(
            (transaction_ids, delivery_track_ids, gsm_track_ids),
            batch_sizes=batch_sizes,
            max_concurrency=max_concurrency,
            rate_limit=rate_limit,
            retry=retry,
            fail_fast=fail_fast,
            dedupe=dedupe,
            on_progress=on_progress,
        )
        return ReportStream(
            start,
            batches_as_they_are,
        )

    def _prepare(
        self,
        sources: tuple[object, object, object],
        *,
        batch_sizes: BatchSizes | int | None,
        max_concurrency: int | None,
        rate_limit: float | None,
        retry: RetryPolicy | None,
        fail_fast: bool,
        dedupe: bool,
        on_progress: Callable[[Progress], object] | None,
    ) -> Callable[[], BulkRun]:
        """Check a call's arguments now (errors are raised at the call) and
        return what starts its run."""
        self._check_open()
        checked = check_sources(dict(zip(ID_KINDS, sources, strict=True)))
        options = BulkOptions(
            batch_sizes=BatchSizes.coerce(batch_sizes) if batch_sizes else self.batch_sizes,
            max_concurrency=max_concurrency or self.max_concurrency,
            retry=retry or self.retry,
            rate_limiter=RateLimiter(rate_limit) if rate_limit is not None else None,
            fail_fast=fail_fast,
            dedupe=dedupe,
            on_progress=on_progress,
        )
        return functools.partial(BulkRun, self, checked, options)

    async def _fetch_batch(
        self,
        ids: dict[str, list[int | str]],
        *,
        retry: RetryPolicy,
        rate_limiter: RateLimiter | None = None,
        on_attempt: Callable[[int], object] | None = None,
    ) -> tuple[list[DetailedReport], int]:
        """One request for ``ids`` (kind → IDs), retried as ``retry`` says.

        Returns the rows and the attempts made; raises the last attempt's
        error, with ``attempts`` set, when retrying is over. ``on_attempt``
        hears each attempt's number as it starts, so a caller that cancels
        this knows how many were sent.
        """
        self._check_open()
        count = sum(len(v) for v in ids.values())
        info = RequestInfo(self._shown_url, self.request_format, self.response_format, count)
        body = encode_request(self.request_format, ids)
        attempt = 0
        while True:
            attempt += 1
            for limiter in (self._rate_limiter, rate_limiter):
                if limiter is not None:
                    await limiter.acquire()
            if on_attempt is not None:
                on_attempt(attempt)
            outcome = await self._attempt(body, info, attempt)
            if isinstance(outcome, list):
                return outcome, attempt
            delay = retry.delay_for(outcome, attempt)
            if delay is None:
                outcome.attempts = attempt
                raise outcome
            logger.info(
                "retrying %s in %.2fs after %s (attempt %d of %d)",
                info.describe(),
                delay,
                type(outcome).__name__,
                attempt + 1,
                retry.max_retries + 1,
            )
            await _retry.sleep(delay)

    async def _attempt(
        self, body: bytes, info: RequestInfo, attempt: int
    ) -> list[DetailedReport] | OrganikError:
        """One try: the rows, or the typed error (returned, so the caller decides)."""
        started = time.perf_counter()
        status: int | str = "-"
        try:
            status, response_headers, raw = await self._send(body, info)
        except OrganikError as exc:
            return exc
        finally:
            logger.debug(
                "POST %s ids=%d status=%s duration=%.3fs attempt=%d",
                info.url,
                info.id_count,
                status,
                time.perf_counter() - started,
                attempt,
            )
        return self._interpret(int(status), response_headers, raw, info)

    async def _send(self, body: bytes, info: RequestInfo) -> tuple[int, httpx.Headers, bytes]:
        """POST and read the answer, with transport failures mapped (never chained)."""
        failure: OrganikError
        try:
            async with (
                self._pools.acquire() as pool,
                pool.stream("POST", self._url, content=body, headers=self._headers) as response,
            ):
                raw = await self._read_capped(response, info)
                return response.status_code, response.headers, raw
        except httpx.TimeoutException as exc:
            failure = TimeoutError(
                f"timed out ({type(exc).__name__})", cause=self._cause(exc), request=info
            )
        except httpx.TransportError as exc:
            failure = TransportError(
                f"request failed ({type(exc).__name__})", cause=self._cause(exc), request=info
            )
        raise failure

    def _cause(self, exc: Exception) -> str:
        return self._redact(f"{type(exc).__name__}: {exc}")

    async def _read_capped(self, response: httpx.Response, info: RequestInfo) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        # isascii: "²".isdigit() is true; [:20]: int() refuses over 4 300 digits.
        if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
            raise ResponseTooLargeError(_too_large(int(declared[:20]), limit), request=info)
        chunks: list[bytes] = []
        size = 0
        undecodable: DecodeError | None = None
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLargeError(_too_large(size, limit), request=info)
                chunks.append(chunk)
        except httpx.DecodingError as exc:
            # Content-Encoding lied. httpx's error holds the request (the key is in
            # its URL), so ours is raised after this block, never chained to it.
            undecodable = DecodeError(
                f"answer does not decompress as its Content-Encoding says ({self._cause(exc)})",
                position="Content-Encoding header",
                request=info,
            )
        if undecodable is not None and response.is_success:
            raise undecodable
        # Not a 2xx: the status says what happened (a 503 is retried); the body
        # was only decoration, and what did decompress of it is kept.
        return b"".join(chunks)

    def _interpret(
        self, status: int, headers: httpx.Headers, raw: bytes, info: RequestInfo
    ) -> list[DetailedReport] | OrganikError:
        """Turn an answer into rows or the one error that describes it best."""
        ok = 200 <= status < 300
        try:
            decoded: Decoded | None = decode(self.response_format, raw)
        except BodyError as exc:
            if ok:
                return DecodeError(
                    exc.message,
                    position=exc.position,
                    excerpt=self._redact_excerpt(exc.excerpt),
                    request=info,
                )
            decoded = None
        retry_after = parse_retry_after(headers.get("retry-after"))
        if decoded is not None and decoded.error is not None:
            return self._api_error(decoded.error, status, raw, retry_after, info)
        if decoded is not None and ok:
            return decoded.rows
        excerpt = self._redact_body(raw).decode("utf-8", "replace")
        if status == 429:
            error: APIError | HTTPStatusError = RateLimitError(
                "HTTP 429 Too Many Requests", status_code=429, body=excerpt.encode(), request=info
            )
        else:
            error = HTTPStatusError(
                f"HTTP {status} {_reason(status)}",
                status_code=status,
                body=excerpt.encode(),
                request=info,
            )
        error.retry_after = retry_after
        return error

    def _api_error(
        self,
        err: ProviderError,
        status: int,
        raw: bytes,
        retry_after: float | None,
        info: RequestInfo,
    ) -> list[DetailedReport] | APIError:
        if err.code == _NO_RECORDS_CODE:
            return []
        cls = APIError
        if err.code in _AUTH_CODES:
            cls = AuthenticationError
        elif err.code == _RATE_LIMIT_CODE or status == 429:
            cls = RateLimitError
        text = self._redact(err.message) if err.message else None
        known = f" ({info_text})" if (info_text := _describe_code(err.code)) else ""
        hint = _BATCH_HINT if err.code == _BAD_PARAMETERS_CODE and info.id_count > 1 else ""
        error = cls(
            f"provider error {err.code}{known}: {text or 'no message'}{hint}",
            code=err.code,
            number=self._redact(err.number) if err.number else err.number,
            error_message=text,
            time=err.time,
            status_code=status,
            body=self._redact_body(raw),
            request=info,
        )
        error.retry_after = retry_after
        return error


def _pool_limits(size: int) -> httpx.Limits:
    """Limits for one small pool.

    Every connection is kept alive (a pool never holds more than it needs),
    and an idle one is dropped after 4 s: servers commonly close idle
    connections after 5 s (uvicorn, Apache), and reusing one at that moment
    fails a request that never reached the server (measured: retries at
    httpx's default 5 s, none at 4 s).
    """
    return httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=4.0)


def _describe_code(code: int | None) -> str | None:
    return None if code is None else API_ERROR_CODES.get(code)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _too_large(size: int, limit: int) -> str:
    return (
        f"answer of {size} bytes or more exceeds max_response_bytes={limit}; "
        "send fewer IDs per request or raise the limit"
    )
