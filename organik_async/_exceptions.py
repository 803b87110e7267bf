"""Every error organik_async raises, in one tree, and what each provider code means.

    OrganikError                    base of everything raised here
    ├── ClientClosedError           the client was used after aclose(), or closed
    │                               during the call
    ├── AnsweredError               an answer came, and it is not rows
    │   ├── APIError                the provider answered ``result: false``
    │   │   ├── AuthenticationError codes 89, 90, 98, 99; missing or malformed key
    │   │   └── RateLimitError      code 93, or HTTP 429 however it was sent
    │   └── HTTPStatusError         any other non-2xx answer (a redirect too)
    ├── TransportError              the request did not complete (connection)
    │   ├── TimeoutExpiredError     ... because a timeout expired
    │   └── EndpointUnreachableError  ... and connecting failed so often in a row
    │                                 that the call stopped
    ├── DecodeError                 a body that is not valid JSON/XML or not the
    │                               expected shape
    ├── ResponseTooLargeError       a body over ``max_response_bytes``
    ├── StillPendingError           follow_until_final's deadline passed with
    │                               rows not final yet
    └── BulkReportError             some batches of a multi-request call failed
        └── ClosedDuringCallError   (also a ClientClosedError) the client was
                                    closed while a multi-request call ran

Each error carries the [`RequestInfo`][organik_async.RequestInfo] of the request it belongs to (with
the API key replaced by ``***``) and the number of attempts made, and says both
in its message. Every field is given to the constructor, already redacted: the
request path masks the key's value in everything it takes from an answer, and
raises errors outside the ``except`` block of the underlying httpx exception so
that nothing carrying the URL is chained.

[`PROVIDER_CODES`][organik_async.PROVIDER_CODES] is the one place that says what an API error code
means: its English and Turkish text, the exception class it raises, whether it is retried, and
whether it means "no records". Every consumer reads it.
"""

import builtins
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal, Self

import msgspec

from ._models import DetailedReport, Format, Id, IdArguments, IdKind, id_arguments

__all__ = [
    "API_ERROR_CODES",
    "PROVIDER_CODES",
    "APIError",
    "AnsweredError",
    "AuthenticationError",
    "BatchFailure",
    "BatchOutcome",
    "BulkReportError",
    "ClientClosedError",
    "ClosedDuringCallError",
    "DecodeError",
    "EndpointUnreachableError",
    "HTTPStatusError",
    "OrganikError",
    "ProviderCode",
    "RateLimitError",
    "RequestInfo",
    "ResponseTooLargeError",
    "StillPendingError",
    "TimeoutExpiredError",
    "TransportError",
]


class RequestInfo(msgspec.Struct, frozen=True):
    """Which request an error belongs to. Safe to log: the URL is redacted."""

    url: str
    """The request's URL, with the API key shown as ``***``."""
    request_format: Format
    """The format of the request body: ``"json"`` or ``"xml"``."""
    response_format: Format
    """The format asked for the answer."""
    id_count: int
    """How many IDs the request carried."""

    def describe(self) -> str:
        """The request in one line, as error messages show it.

        Returns:
            For example ``POST https://organikapi.com/v2/***/detailedreport/json/ (json,
                20 IDs)``.
        """
        fmt: str = self.request_format
        if self.response_format != fmt:
            fmt = f"{fmt}->{self.response_format}"
        ids = "ID" if self.id_count == 1 else "IDs"
        return f"POST {self.url} ({fmt}, {self.id_count} {ids})"


class OrganikError(Exception):
    """Base class of every error raised by organik_async.

    ``str(error)`` is the message, then the request and the attempts made, key masked.
    """

    message: str
    """What went wrong, without the request and attempts (``str(error)`` adds them)."""
    request: RequestInfo | None
    """The request the error belongs to; ``None`` for an error of no single request."""
    attempts: int
    """Attempts made for that request, the first included; 0 when none was sent."""
    refusals: int = 0
    """How many of those the provider refused ("slow down": code 93, HTTP 429,
    a 503 with ``Retry-After``)."""

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
        if self.refusals:
            parts.append(f"refusals: {self.refusals}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ClientClosedError(OrganikError, RuntimeError):
    """The client was used after [`OrganikClient.aclose()`][organik_async.OrganikClient.aclose], or
    closed during a call."""


class AnsweredError(OrganikError):
    """The server answered, and the answer is not rows: the base of
    [`APIError`][organik_async.APIError] and
    [`HTTPStatusError`][organik_async.HTTPStatusError].

    Both carry the answer's HTTP status, the start of its body (the key masked)
    and its ``Retry-After``, so ``except AnsweredError`` reads them whichever
    kind of answer it was.
    """

    status_code: int | None
    """The HTTP status of the answer (``None`` only for an error built by hand)."""
    body: bytes
    """The start of the raw answer, the key masked."""
    retry_after: float | None
    """The server's ``Retry-After``, in seconds, when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


class APIError(AnsweredError):
    """The provider refused the request (``result: false``).

    ``code``, ``number``, ``error_message`` and ``time`` are what the provider
    sent (key masked), or ``None`` where it sent nothing (a bare HTTP 429 has
    no envelope). ``status_code`` is the HTTP status of the answer; ``body`` is
    the start of the raw answer, redacted; ``retry_after`` is the server's
    ``Retry-After`` in seconds, when it sent one.
    """

    code: int | None
    """The provider's error code (see [`PROVIDER_CODES`][organik_async.PROVIDER_CODES])."""
    number: str | None
    """The provider's number for the request, as it sent it."""
    error_message: str | None
    """The provider's own message (the key masked)."""
    time: str | None
    """When the provider refused, as it wrote it (its local time)."""

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
        retry_after: float | None = None,
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            body=body,
            retry_after=retry_after,
            request=request,
            attempts=attempts,
        )
        self.code = code
        self.number = number
        self.error_message = error_message
        self.time = time

    @property
    def description(self) -> str | None:
        """The documented meaning of `code`, if it is a known code."""
        entry = None if self.code is None else PROVIDER_CODES.get(self.code)
        return None if entry is None else entry.english


class AuthenticationError(APIError):
    """The key is missing, malformed, unknown, or not allowed from this IP."""


class RateLimitError(APIError):
    """The provider asked us to slow down (code 93 or HTTP 429)."""


class HTTPStatusError(AnsweredError):
    """A non-2xx answer that carried no provider error envelope (a redirect
    included: the client never follows one; the message names its ``Location``)."""

    status_code: int
    """The HTTP status of the answer."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: bytes = b"",
        retry_after: float | None = None,
        request: RequestInfo | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            body=body,
            retry_after=retry_after,
            request=request,
            attempts=attempts,
        )


class TransportError(OrganikError):
    """The request could not be completed: connection refused, reset, ...

    ``cause`` names the underlying httpx exception (type and redacted text);
    the exception object itself is not chained, so that no URL can leak.
    """

    cause: str
    """What failed underneath: the HTTP library's exception type and its text, redacted."""

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


class TimeoutExpiredError(TransportError, builtins.TimeoutError):
    """A timeout expired: httpx's connect, read, write or pool timeout, the
    ``attempt_timeout`` of one attempt, or a call's ``timeout``.

    Also a subclass of the builtin `TimeoutError`, so ``except TimeoutError`` catches it.
    It was called ``TimeoutError`` before 0.2, a name that hid the builtin; that
    name still works, with a `DeprecationWarning`, until the next release.
    """


class EndpointUnreachableError(TransportError):
    """Connecting failed ``unreachable_after`` times in a row (connection refused,
    name not resolved), with no answer between: the endpoint is down or wrong, so
    the call stopped instead of retrying every batch. ``cause`` is the last failure.
    (A connect *timeout* is a [`TimeoutExpiredError`][organik_async.TimeoutExpiredError],
    retried as usual.)"""


class DecodeError(OrganikError):
    """The answer was not valid JSON/XML, or not the shape the spec describes.

    ``position`` says where (a byte offset, line/column, or a path such as
    ``$.response.data[3].gsm``); ``excerpt`` is a short, redacted slice of the
    body around it.
    """

    position: str
    """Where the answer went wrong: a byte offset, a line and column, or a path such as
    ``$.response.data[3].gsm``; empty when unknown."""
    excerpt: str
    """A short slice of the answer around ``position``, the key masked."""

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

    @classmethod
    def for_size(cls, size: int, limit: int, *, request: RequestInfo) -> Self:
        """The error for an answer of ``size`` bytes or more against ``limit``.

        Args:
            size: bytes read when the answer passed the limit (or its ``Content-Length``).
            limit: the ``max_response_bytes`` setting.
            request: the request the answer belongs to.

        Returns:
            The error, its message saying what to change.
        """
        return cls(
            f"answer of {size} bytes or more exceeds max_response_bytes={limit}; "
            "send fewer IDs per request or raise the limit",
            request=request,
        )


class StillPendingError(OrganikError):
    """``follow_until_final`` reached its deadline with rows not final yet.

    ``pending`` holds those rows as last seen (status 0 or 1); follow them
    again later with ``client.follow_until_final(**err.pending_id_arguments)``.
    """

    pending: list[DetailedReport]
    """The rows still pending at the deadline, as last seen (status 0 or 1)."""

    def __init__(self, message: str, *, pending: Sequence[DetailedReport] = ()) -> None:
        super().__init__(message)
        self.pending = list(pending)

    @property
    def pending_id_arguments(self) -> IdArguments:
        """The pending rows' ``gsm_track_id``s, as keyword arguments."""
        return {"gsm_track_ids": [row.gsm_track_id for row in self.pending]}


BatchOutcome = Literal["failed", "cancelled", "not_attempted"]
"""How a batch ended when it did not succeed (see [`BatchFailure`][organik_async.BatchFailure])."""


class BatchFailure(msgspec.Struct, frozen=True):
    """One batch that did not succeed, with its IDs, so they can be retried.

    ``outcome`` is ``"failed"`` (sent, failed after its retries: ``error`` says
    why), ``"cancelled"`` (in flight when the call was stopped: ``fail_fast``,
    or the client closed) or ``"not_attempted"`` (never sent).
    """

    index: int
    """The batch's place in the call, from 0, in input order."""
    kind: IdKind
    """The kind of the IDs (``"transaction_ids"``, ...)."""
    ids: tuple[Id, ...]
    """The IDs that got no answer."""
    outcome: BatchOutcome
    """``"failed"``, ``"cancelled"`` or ``"not_attempted"``."""
    error: OrganikError | None = None
    """Why it failed: the last attempt's typed error; for a cancelled or unsent batch, what
    stopped the call, if an error did."""
    attempts: int = 0
    """Attempts made, the first included; 0 if never sent."""
    refusals: int = 0
    """Attempts the provider refused ("slow down"); they spend no ``max_retries``."""

    @property
    def attempted(self) -> bool:
        """Whether any of the batch was sent (the outcome is not ``"not_attempted"``)."""
        return self.outcome != "not_attempted"

    @property
    def id_arguments(self) -> IdArguments:
        """``await client.detailed_report(**failure.id_arguments)`` retries just these."""
        return id_arguments(self.kind, self.ids)


class BulkReportError(OrganikError):
    """Some requests of a multi-request call failed after their retries.

    ``rows`` holds the rows that did arrive (empty for the streaming APIs,
    which already yielded them). ``failures`` has one entry per failed batch,
    with its IDs and its typed error; batches stopped in flight are
    ``"cancelled"`` and those never sent ``"not_attempted"``.
    Retry just what failed with
    ``await client.detailed_report(**err.failed_id_arguments)``.
    """

    rows: list[DetailedReport]
    """The rows that arrived, in input order (empty for the streaming APIs)."""
    failures: list[BatchFailure]
    """One entry per batch not answered, in input order."""

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
    def failed_id_arguments(self) -> IdArguments:
        """Every failed ID, by kind, as keyword arguments for a retry call."""
        merged: IdArguments = {}
        for failure in self.failures:
            merged.setdefault(failure.kind, []).extend(failure.ids)
        return merged


class ClosedDuringCallError(ClientClosedError, BulkReportError):
    """The client was closed while a call of several requests was running.

    It is a [`ClientClosedError`][organik_async.ClientClosedError] (one rule: a call cut short by
    ``aclose()`` raises that) and a [`BulkReportError`][organik_async.BulkReportError], so ``rows``
    and ``failures`` still account for every ID: batches in flight are ``"cancelled"``, batches not
    yet sent ``"not_attempted"``.
    """


# --- What each provider code means ------------------------------------------------------


class ProviderCode(msgspec.Struct, frozen=True):
    """One API-wide ``error.code``: its meaning and how the client treats it.

    ``message`` is the provider's own English wording (what its server sends
    in ``error.message``); ``english`` our plain description; ``turkish`` the
    provider's Turkish explanation. ``error`` is the class raised for it,
    ``retryable`` whether another attempt could succeed, and ``no_records``
    whether it means "nothing found" (a report of zero rows, not an error).
    """

    code: int
    """The code, as ``error.code`` carries it."""
    english: str
    """What it means, in plain English."""
    message: str
    """The provider's own English wording, as its server sends it in ``error.message``."""
    turkish: str
    """The provider's explanation, in Turkish."""
    error: type[APIError] = APIError
    """The class raised for this code."""
    retryable: bool = False
    """Whether another attempt could succeed (the client retries it)."""
    no_records: bool = False
    """Whether the code means "nothing found": a report of zero rows, not an error."""


def _code_table(*entries: ProviderCode) -> Mapping[int, ProviderCode]:
    return MappingProxyType({entry.code: entry for entry in entries})


PROVIDER_CODES: Mapping[int, ProviderCode] = _code_table(
    ProviderCode(
        1,
        "unknown error",
        "An unknown error has occurred.",
        "Bilinmeyen bir hata oluştuğunda bu hata alınır.",
    ),
    ProviderCode(
        84,
        "database operation failed",
        "Database operation failed.",
        "Veritabanına erişim hatası oluştuğunda bu hata alınır.",
        retryable=True,
    ),
    ProviderCode(
        85,
        "database could not be registered",
        "The database could not be registered.",
        "Kayıt işlemi başarısız olduğunda bu hata alınır.",
    ),
    ProviderCode(
        86,
        "no valid registration data found",
        "No valid registration data was found.",
        "Arama yapılan kriterlere uygun kayıt bulunamadığında bu hata alınır.",
    ),
    ProviderCode(
        87,
        "no records were found",
        "No records were found.",
        "Herhangi bir veri bulunamadığında bu hata alınır.",
        no_records=True,
    ),
    ProviderCode(
        88,
        "unsupported request name",
        "Unsupported request_name",
        "İstek prosedürü değişkenine geçersiz bir değer verildiğinde bu hata alınır.",
    ),
    ProviderCode(
        89,
        "user not found",
        "User not found.",
        "Gönderilen API anahtarına bağlı bir kullanıcı bulunamaz ya da bulunan kullanıcı "
        "aktive edilmemişse bu hata alınır.",
        error=AuthenticationError,
    ),
    ProviderCode(
        90,
        "API key must be 32 characters",
        "API KEY must be 32 characters.",
        "API anahtarınız yanlış formatta gönderildiğinde bu hata alınır.",
        error=AuthenticationError,
    ),
    ProviderCode(
        91,
        "unsupported response type",
        "Unsupported response type.",
        "Gönderdiğiniz response_type değişkeninde geçersiz değer olduğunda bu hata alınır.",
    ),
    ProviderCode(
        92,
        "unsupported request type",
        "Unsupported request type.",
        "Gönderdiğiniz request_response_type değişkeninde geçersiz değer olduğunda bu hata alınır.",
    ),
    ProviderCode(
        93,
        "too many requests",
        "Too much request.",
        "API'ye aynı anda izin verilenden çok talep olduğunda bu hata alınır.",
        error=RateLimitError,
        retryable=True,
    ),
    ProviderCode(
        94,
        "server temporarily unavailable",
        "Server temporary unavailable.",
        "İstek yaptığınız sırada sunucudan yanıt gelmezse bu hata alınır.",
        retryable=True,
    ),
    ProviderCode(
        95,
        "server fault",
        "Server fault.",
        "Sunucu hatası oluştuğunda bu hata alınır.",
        retryable=True,
    ),
    ProviderCode(
        96,
        "invalid request parameters",
        "Invalid request parameters.",
        "API'ye gönderdiğiniz istek gövdesi değişkenlerinde bir veya daha fazlasında geçersiz "
        "değer olduğunda bu hata alınır.",
    ),
    ProviderCode(
        97,
        "invalid request body format",
        "Invalid request body format.",
        "API'ye gönderdiğiniz istek gövdesi istenilen biçimden farklı olduğunda bu hata alınır.",
    ),
    ProviderCode(
        98,
        "unauthorised IP address",
        "Unauthorize IP address.",
        "Panelden IP kısıtlaması yapılıp, izin verilen IP'lerden başka bir IP ile giriş "
        "yapıldığında bu hata alınır.",
        error=AuthenticationError,
    ),
    ProviderCode(
        99,
        "authorisation error (invalid key)",
        "Authorization error.",
        "Geçersiz API anahtarı gönderildiğinde alınır.",
        error=AuthenticationError,
    ),
    ProviderCode(
        101,
        "the SMS title (sender name) is incorrect",
        "The SMS title is incorrect.",
        "Gönderimde belirttiğiniz başlık sistemde bulunamazsa bu hata alınır.",
    ),
    ProviderCode(
        102,
        "no valid GSM number",
        "Couldn't found any valid GSM number",
        "Gönderimde GSM numarası veya grup ID'si belirtilmediği veya belirtilen GSM "
        "numaralarının geçersiz olduğu durumlarda bu hata alınır.",
    ),
    ProviderCode(
        103,
        "insufficient balance",
        "Insufficient balance",
        "Gönderim için gerekli kontör yoksa bu hata alınır.",
    ),
    ProviderCode(
        104,
        "no customer contract for sending SMS",
        "There is no customer contract for sending SMS.",
        "SMS gönderimi için gerekli sözleşme yoksa bu hata alınır.",
    ),
    ProviderCode(
        105,
        "message text not found",
        "Message text was not found.",
        "Gönderim isteğinde mesaj metni bulunmazsa bu hata alınır.",
    ),
    ProviderCode(
        106,
        "message text too long",
        "Message text is too long.",
        "SMS mesaj metni olması gerekenden uzun ise bu hata alınır.",
    ),
    ProviderCode(
        107,
        "SMS title disabled",
        "This SMS title is disabled.",
        "Gönderim yapılmak istenen başlık kullanıma kapalı ise bu hata alınır.",
    ),
    ProviderCode(
        108,
        "insufficient TL balance",
        "Insufficient TL balance",
        "Gönderim için gerekli tutarı kadar TL bakiyesi yoksa bu hata alınır.",
    ),
    ProviderCode(
        109,
        "GSM number on the black list",
        "The GSM number is on the black list.",
        "Gönderim yapılan GSM numarası kara listede ise bu hata alınır.",
    ),
    ProviderCode(
        110,
        "incorrect number",
        "The number is incorrect.",
        "Gönderim yapılan GSM numarası yanlış ise bu hata alınır.",
    ),
    ProviderCode(
        111,
        "GSM number too short or too long",
        "The GSM number is too short or too long.",
        "Gönderilen GSM numarası olması gerekenden uzun ya da kısa olduğunda bu hata alınır.",
    ),
    ProviderCode(
        112,
        "message text not in BASE64",
        "Message text is not in BASE64 format.",
        "Gönderilen mesaj metni base64 formatında değilse bu hata alınır.",
    ),
)
"""Every API-wide error code in the provider's error list, by code.

Source: the provider's ``HATA KODLARI/ERROR_CODES.md`` (``message`` word for word,
typos included). Codes 101-112 belong to ``sendsms`` and should never answer a
report request; they are here so that one that does is still described. An
unknown code is an [`APIError`][organik_async.APIError] with its integer kept.
"""

API_ERROR_CODES: Mapping[int, str] = MappingProxyType(
    {code: entry.english for code, entry in PROVIDER_CODES.items()}
)
"""``error.code`` → its English description (a view of
[`PROVIDER_CODES`][organik_async.PROVIDER_CODES])."""
