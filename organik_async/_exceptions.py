"""Every error organik_async raises, in one tree.

::

    OrganikError                    base of everything raised here
    ├── ClientClosedError           the client was used after aclose()
    ├── APIError                    the provider answered ``result: false``
    │   ├── AuthenticationError     codes 89, 90, 98, 99; missing or malformed key
    │   └── RateLimitError          code 93, or HTTP 429 however it was sent
    ├── HTTPStatusError             any other non-2xx answer
    ├── TransportError              the request did not complete (connection)
    │   └── TimeoutError            ... because a timeout expired
    ├── DecodeError                 a body that is not valid JSON/XML or not the
    │                               expected shape
    ├── ResponseTooLargeError       a body over ``max_response_bytes``
    └── BulkReportError             some batches of a multi-request call failed

Each error carries the :class:`RequestInfo` of the request it belongs to (with
the API key replaced by ``***``) and the number of attempts made, and says both
in its message. The API key never appears in a message, a ``repr``, a chained
cause or a log line: errors are raised outside the ``except`` block of the
underlying httpx exception, and anything taken from a response body is
redacted first.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from ._models import API_ERROR_CODES, Format

if TYPE_CHECKING:
    from ._bulk import BatchFailure
    from ._models import DetailedReport

__all__ = [
    "APIError",
    "AuthenticationError",
    "BulkReportError",
    "ClientClosedError",
    "DecodeError",
    "HTTPStatusError",
    "OrganikError",
    "RateLimitError",
    "RequestInfo",
    "ResponseTooLargeError",
    "TimeoutError",
    "TransportError",
]


class RequestInfo(msgspec.Struct, frozen=True):
    """Which request an error belongs to. Safe to log: the URL is redacted."""

    url: str
    request_format: Format
    response_format: Format
    id_count: int

    def describe(self) -> str:
        fmt: str = self.request_format
        if self.response_format != fmt:
            fmt = f"{fmt}->{self.response_format}"
        ids = "ID" if self.id_count == 1 else "IDs"
        return f"POST {self.url} ({fmt}, {self.id_count} {ids})"


class OrganikError(Exception):
    """Base class of every error raised by organik_async."""

    def __init__(
        self, message: str, *, request: RequestInfo | None = None, attempts: int = 0
    ) -> None:
        self.message = message
        self.request = request
        self.attempts = attempts
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.request is not None:
            parts.append(f"request: {self.request.describe()}")
        if self.attempts:
            parts.append(f"attempts: {self.attempts}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ClientClosedError(OrganikError, RuntimeError):
    """The client was used after :meth:`OrganikClient.aclose`."""


class APIError(OrganikError):
    """The provider refused the request (``result: false``).

    ``code``, ``number``, ``error_message`` and ``time`` are what the provider
    sent, or ``None`` where it sent nothing (a bare HTTP 429 has no envelope).
    ``status_code`` is the HTTP status of the answer; ``body`` is the start of
    the raw answer, redacted; ``retry_after`` is the server's ``Retry-After``
    in seconds, when it sent one.
    """

    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        number: str | None = None,
        error_message: str | None = None,
        time: str | None = None,
        status_code: int | None = None,
        body: bytes = b"",
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.code = code
        self.number = number
        self.error_message = error_message
        self.time = time
        self.status_code = status_code
        self.body = body

    @property
    def description(self) -> str | None:
        """The documented meaning of :attr:`code`, if it is a known code."""
        return None if self.code is None else API_ERROR_CODES.get(self.code)


class AuthenticationError(APIError):
    """The key is missing, malformed, unknown, or not allowed from this IP."""


class RateLimitError(APIError):
    """The provider asked us to slow down (code 93 or HTTP 429)."""


class HTTPStatusError(OrganikError):
    """A non-2xx answer that carried no provider error envelope."""

    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: bytes = b"",
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.status_code = status_code
        self.body = body


class TransportError(OrganikError):
    """The request could not be completed: connection refused, reset, ...

    ``cause`` names the underlying httpx exception (type and redacted text);
    the exception object itself is not chained, so that no URL can leak.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: str = "",
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.cause = cause


class TimeoutError(TransportError, builtins.TimeoutError):
    """A connect, read, write or pool timeout expired.

    Also a subclass of the builtin :class:`TimeoutError`.
    """


class DecodeError(OrganikError):
    """The answer was not valid JSON/XML, or not the shape the spec describes.

    ``position`` says where (a byte offset, line/column, or a path such as
    ``$.response.data[3].gsm``); ``excerpt`` is a short, redacted slice of the
    body around it.
    """

    def __init__(
        self,
        message: str,
        *,
        position: str = "",
        excerpt: str = "",
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        detail = message
        if position:
            detail += f" at {position}"
        if excerpt:
            detail += f": {excerpt!r}"
        super().__init__(detail, request=request, attempts=attempts)
        self.position = position
        self.excerpt = excerpt


class ResponseTooLargeError(OrganikError):
    """The answer was larger than ``max_response_bytes``.

    Lower the batch size (fewer IDs per request) or raise the limit.
    """


class BulkReportError(OrganikError):
    """Some requests of a multi-request call failed after their retries.

    ``rows`` holds the rows that did arrive (empty for the streaming APIs,
    which already yielded them). ``failures`` has one entry per failed batch,
    with its IDs and its typed error; batches cancelled by ``fail_fast``
    in flight are ``"cancelled"`` and those never sent ``"not_attempted"``.
    Retry just what failed with
    ``await client.detailed_report(**err.failed_id_arguments)``.
    """

    def __init__(
        self,
        message: str,
        *,
        rows: Sequence[DetailedReport] = (),
        failures: Sequence[BatchFailure] = (),
    ) -> None:
        super().__init__(message)
        self.rows = list(rows)
        self.failures = list(failures)

    @property
    def failed_id_arguments(self) -> dict[str, list[int | str]]:
        """Every failed ID, by kind, as keyword arguments for a retry call."""
        merged: dict[str, list[int | str]] = {}
        for failure in self.failures:
            merged.setdefault(failure.kind, []).extend(failure.ids)
        return merged
