"""The data: rows, IDs, batch records, and the tables that give codes meaning.

This is the ground floor: it imports nothing else of the package, so every
other module can use these types. Rows are frozen ``msgspec.Struct``s so that
decoding goes straight from bytes to objects (no intermediate dicts on the JSON
path) and rows are cheap, hashable and immutable. Codes are stored as plain
``int``s: the provider may add a status or an error code tomorrow, and a report
must never crash on it. The enum and table lookups are *views* on top of those
integers.
"""

import enum
from collections.abc import AsyncIterable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal, TypedDict

import msgspec

__all__ = [
    "DELIVERY_ERROR_CODES",
    "ID_KINDS",
    "BatchResult",
    "BatchSizes",
    "DeliveryErrorCode",
    "DeliveryStatus",
    "DetailedReport",
    "Format",
    "HttpBackend",
    "Id",
    "IdArguments",
    "IdKind",
    "IdSource",
    "Progress",
    "canonical_id",
    "id_arguments",
    "validate_id",
]

Format = Literal["json", "xml"]
"""A wire format: the two values the URL's type segments take."""

HttpBackend = Literal["auto", "httpx", "aiohttp"]
"""What sends requests: ``"auto"`` is aiohttp on asyncio when it is installed
(and httpx is not mocked), httpx otherwise."""

IdKind = Literal["transaction_ids", "delivery_track_ids", "gsm_track_ids"]
"""The three kinds of ID a request can carry, named as the request body names them."""

ID_KINDS: Final[tuple[IdKind, ...]] = ("transaction_ids", "delivery_track_ids", "gsm_track_ids")
"""The ID kinds in the order the provider documents them (and requests are made)."""

Id = int | str
"""One ID: the provider takes numbers or strings."""

IdSource = Iterable[Id] | AsyncIterable[Id]
"""What each ID argument accepts: any iterable or async iterable of IDs."""


class IdArguments(TypedDict, total=False):
    """IDs by kind, as keyword arguments: ``await client.detailed_report(**ids)``."""

    transaction_ids: list[Id]
    """Transaction IDs: the send tasks ``sendsms`` returned."""
    delivery_track_ids: list[Id]
    """Delivery track IDs: your own IDs given to ``sendsms``."""
    gsm_track_ids: list[Id]
    """GSM track IDs: one per recipient number of a send."""


def id_arguments(kind: IdKind, ids: Iterable[Id]) -> IdArguments:
    """``ids`` of one ``kind`` as keyword arguments for a report call."""
    arguments: IdArguments = {}
    arguments[kind] = list(ids)
    return arguments


def validate_id(value: object, kind: str) -> Id:
    """Return ``value`` if it is one ID, else raise ``TypeError`` or ``ValueError``.

    An ID is an ``int`` or a ``str`` (``bool`` is an ``int`` to Python but never
    an ID, so it is refused by name). A string that cannot be one ID is refused
    before anything is sent: empty, or holding a comma, whitespace or a control
    character. The provider's own ASP sample comma-joins IDs into one string;
    sent as is, that is "no records" and a call silently returns zero rows.
    """
    if isinstance(value, str):
        if value and value.isprintable() and " " not in value and "," not in value:
            return value
        raise ValueError(f"{kind}: {value!r} is not one ID ({_why_not_one_id(value)})")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{kind} must contain only int or str IDs, got {type(value).__name__}: {value!r}"
        )
    return value


def _why_not_one_id(value: str) -> str:
    if not value:
        return "it is empty"
    if "," in value:
        return "it holds a comma: give each ID as its own item"
    if any(c.isspace() for c in value):
        return "it holds whitespace: strip it, or split it into separate IDs"
    return "it holds a control or other unprintable character"


def canonical_id(value: Id) -> Id:
    """One form per ID: ``"410471976"`` → ``410471976``; ``"16502030-4730-63032793"``
    and ``"007"`` unchanged.

    The provider takes IDs as numbers or strings, and XML has no types: its
    ``gsm_track_id`` is an int in report examples and a string elsewhere. A
    string is an int only when writing that int back gives the same text, so
    no information is lost either way; one too long for Python to convert
    (over 4 300 digits) stays a string, as JSON's ``int | str`` decoding
    does. Used to type XML values and to tell duplicate IDs apart.
    """
    if isinstance(value, int):
        return value
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        return value
    try:
        number = int(value)
    except ValueError:  # over Python's int-string limit (4 300 digits): kept as text
        return value
    return number if str(number) == value else value


class DeliveryStatus(enum.IntEnum):
    """The ``status`` of one recipient number, as the provider defines it."""

    NOT_SENT = 0
    """0: not sent yet (pending)."""
    SENT_TO_OPERATOR = 1
    """1: handed to the operator, not yet delivered (pending)."""
    DELIVERED = 2
    """2: delivered to the recipient (final)."""
    INVALID_NUMBER = 3
    """3: the number is invalid (final, failed)."""
    TIMED_OUT = 4
    """4: not delivered in time (final, failed)."""

    def __str__(self) -> str:
        """The name (``DELIVERED``), not the bare number an ``IntEnum`` prints."""
        return self.name

    @property
    def is_final(self) -> bool:
        """Whether the provider will not change this status any more."""
        return self in _FINAL

    @property
    def is_failure(self) -> bool:
        """Whether this status means the SMS did not reach the recipient."""
        return self in _FAILED


_FINAL = frozenset(
    {DeliveryStatus.DELIVERED, DeliveryStatus.INVALID_NUMBER, DeliveryStatus.TIMED_OUT}
)
_FAILED = frozenset({DeliveryStatus.INVALID_NUMBER, DeliveryStatus.TIMED_OUT})
_STATUS_TEXT = {
    DeliveryStatus.INVALID_NUMBER: "invalid number",
    DeliveryStatus.TIMED_OUT: "timed out",
}


class DeliveryErrorCode(msgspec.Struct, frozen=True):
    """One entry of the provider's per-number ``errorcode`` table."""

    code: int
    """The code, as a row's `errorcode` carries it."""
    english: str
    """What it means, in English."""
    turkish: str
    """The provider's own description, in Turkish."""


def _error_table(*rows: tuple[int, str, str]) -> Mapping[int, DeliveryErrorCode]:
    return MappingProxyType({code: DeliveryErrorCode(code, en, tr) for code, en, tr in rows})


DELIVERY_ERROR_CODES: Mapping[int, DeliveryErrorCode] = _error_table(
    (1, "Invalid number", "Geçersiz Numara"),
    (2, "Operator number is wrong", "Operator numarası hatalı"),
    (3, "Unreachable", "Ulaşılamıyor."),
    (4, "Passive (inactive) number", "Pasif Numara"),
    (5, "Number opted out of campaign SMS", "Kampanya smslerine kapalı numara"),
    (
        6,
        "Message content does not meet operator criteria",
        "Operator Kriterlerine uymayan mesaj içeriği",
    ),
    (7, "Unreachable", "Ulaşılamıyor"),
    (8, "Closed to receiving SMS", "SMS alımına kapalı."),
    (9, "GSM device error", "GSM Cihaz hatası"),
    (10, "Network error", "Şebeke Hatası oluştu"),
    (11, "Network error", "Şebeke Hatası oluştu"),
    (12, "GSM device error", "GSM Cihaz Hatası"),
    (13, "Network error", "Şebeke Hatası oluştu."),
    (14, "GSM device error", "GSM Cihaz Hatası"),
    (15, "Network error", "Şebeke Hatası oluştu."),
    (16, "GSM device could not complete the operation", "GSM Cihaz işlemi sonuçlayamadı."),
    (17, "GSM device error occurred", "GSM Cihaz hatası oluştu."),
    (18, "Network error", "Şebeke Hatası."),
    (19, "Network connection error", "Şebeke Bağlantı Hatası."),
    (20, "Network connection error", "Şebeke Bağlantı Hatası."),
    (21, "Network could not be verified", "Şebeke Doğrulanamadı."),
    (22, "Operator could not approve the operation", "Operator işlemi onaylayamadı."),
    (23, "Number is on the İYS consent-registry rejection list", "İYS Retli numara listesinde"),
    (88, "Test operation", "Test islem"),
    (99, "Invalid number", "Hatalı numara"),
)
"""Every per-number ``errorcode`` the provider documents, by code."""


class DetailedReport(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one SMS for one recipient number: one row of a report.

    Dates are naive ``datetime``s in the provider's local time (Turkey, ``Europe/Istanbul``),
    exactly as sent. ``status`` and ``errorcode`` stay plain integers so that a code the provider
    adds later survives; [`delivery_status`][organik_async.DetailedReport.delivery_status],
    [`error`][organik_async.DetailedReport.error] and
    [`failure_reason`][organik_async.DetailedReport.failure_reason] are the typed views. Rows are
    frozen, hashable, and encode back to the provider's JSON with ``msgspec.json.encode``.
    """

    gsm: int
    """The recipient number, in international form (``905445359675``)."""
    transaction_id: int
    """The send task the row belongs to (the ``sendsms`` call that sent it)."""
    gsm_track_id: int | str
    """The per-number tracking ID: an int in reports, a string such as
    ``"16502030-4730-63032793"`` where the provider writes it so. Unique per row."""
    delivery_track_id: str | None = None
    """Your own ID for the send, as given to ``sendsms``; ``None`` when there is none."""
    create_date: datetime
    """When the send task was created (provider's local time, naive)."""
    start_date: datetime
    """When sending of the task started; later than `create_date` for a scheduled send."""
    finish_date: datetime | None = None
    """When sending to this number concluded; ``None`` while it has not."""
    status: int
    """The delivery status code: 0 not sent yet, 1 handed to the operator, 2 delivered,
    3 invalid number, 4 timed out (see [`DeliveryStatus`][organik_async.DeliveryStatus])."""
    sms_count: int
    """How many SMS parts the text takes; 0 while sending to this number has not started."""
    credit_amount: int
    """The credit calculated for the send (not the credit actually spent); 0 for a foreign
    number and for a send not started."""
    is_foreign_gsm: bool
    """Whether the number is foreign (not Turkish); the provider sends 0 or 1."""
    errorcode: int = 0
    """The operator's error for this number, 0 for none or when the answer does not carry
    it (XML answers at this provider); see
    [`DELIVERY_ERROR_CODES`][organik_async.DELIVERY_ERROR_CODES]."""

    @property
    def delivery_status(self) -> DeliveryStatus | int:
        """``status`` as a [`DeliveryStatus`][organik_async.DeliveryStatus], or the bare int if
        unknown."""
        try:
            return DeliveryStatus(self.status)
        except ValueError:
            return self.status

    @property
    def is_final(self) -> bool:
        """Delivered, invalid number or timed out: this row will not change."""
        return self.status in _FINAL

    @property
    def is_failed(self) -> bool:
        """The SMS did not reach the number (invalid number or timed out)."""
        return self.status in _FAILED

    @property
    def error(self) -> DeliveryErrorCode | None:
        """The table entry for ``errorcode``; ``None`` for 0 or an unknown code."""
        return DELIVERY_ERROR_CODES.get(self.errorcode)

    @property
    def failure_reason(self) -> str | None:
        """Why the SMS failed, in English; ``None`` when it did not fail.

        The error code's description when the provider gave a known one, else
        the status itself ("invalid number", "timed out"), and for an unknown
        non-zero code, that code.
        """
        if not self.is_failed:
            return None
        if (entry := self.error) is not None:
            return entry.english
        if self.errorcode:
            return f"error code {self.errorcode}"
        return _STATUS_TEXT[DeliveryStatus(self.status)]


class BatchSizes(msgspec.Struct, frozen=True, kw_only=True):
    """IDs per request, per ID kind.

    Conservative, because the provider documents no limit: a transaction or a
    delivery track ID can stand for thousands of recipient numbers (rows), so
    those batches are small; a GSM track ID is one row. Each size is an ``int >= 1``;
    another value raises ``ValueError`` when the object is built.
    """

    transaction_ids: int = 20
    """Transaction IDs per request (each can stand for thousands of rows)."""
    delivery_track_ids: int = 20
    """Delivery track IDs per request (each can stand for thousands of rows)."""
    gsm_track_ids: int = 250
    """GSM track IDs per request (one row each)."""

    def __post_init__(self) -> None:
        for kind in ID_KINDS:
            size = getattr(self, kind)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"batch_sizes: the size for {kind} must be an int >= 1: {size!r}")

    @classmethod
    def coerce(cls, value: "BatchSizes | int") -> "BatchSizes":
        """A `BatchSizes` from what the ``batch_sizes`` setting accepts.

        Args:
            value: sizes per kind, or one int for every kind.

        Returns:
            ``value`` itself if it is a `BatchSizes`, else one with ``value`` for every kind.

        Raises:
            ValueError: an int below 1.
        """
        if isinstance(value, BatchSizes):
            return value
        return cls(transaction_ids=value, delivery_track_ids=value, gsm_track_ids=value)

    def for_kind(self, kind: IdKind) -> int:
        """The size for one kind of ID.

        Args:
            kind: ``"transaction_ids"``, ``"delivery_track_ids"`` or ``"gsm_track_ids"``.

        Returns:
            IDs per request for that kind.
        """
        size: int = getattr(self, kind)
        return size


class BatchResult(msgspec.Struct, frozen=True):
    """One successful request: the IDs asked, the rows, attempts and timing.

    [`OrganikClient.iter_batches()`][organik_async.OrganikClient.iter_batches] yields one per
    request, as requests complete: record ``ids`` as done to checkpoint a long job.
    """

    index: int
    """The batch's place in the call, from 0, in input order (not completion order)."""
    kind: IdKind
    """The kind of the IDs asked (``"transaction_ids"``, ...)."""
    ids: tuple[Id, ...]
    """The IDs answered (all of the batch's, or the part that succeeded when a batch
    refused as too large was split)."""
    rows: list[DetailedReport]
    """The rows answered, in the provider's order (with ``dedupe``, less those an earlier
    batch already yielded)."""
    attempts: int
    """Attempts made, the first included (1 when no retry was needed)."""
    elapsed: float
    """Seconds the batch took, from its start to its answer: waits for the limits,
    retries and their waits included."""
    refusals: int = 0
    """Attempts the provider refused ("slow down") before it answered."""

    @property
    def id_arguments(self) -> IdArguments:
        """The IDs as keyword arguments: ``client.detailed_report(**result.id_arguments)``."""
        return id_arguments(self.kind, self.ids)


class Progress(msgspec.Struct, frozen=True):
    """A snapshot for progress bars and metrics, sent to a call's ``on_progress`` after
    every batch."""

    batches_done: int
    """Batches finished so far, failed ones included."""
    batches_total: int | None
    """Exact once the input has been read to the end; before that an estimate
    from ``len()`` of sized inputs (duplicates included), or ``None``."""
    rows: int
    """Rows received so far."""
    retries: int
    """Requests sent again after a fault (a transport error, a timeout, a 5xx...)."""
    failures: int
    """Failed batches reported so far (after their retries)."""
    elapsed: float
    """Seconds since the call started."""
    concurrency: int = 0
    """Requests this call may have in flight now: its ``max_concurrency``, or
    less while the client's adaptive limit is lower (after pushback)."""
    refusals: int = 0
    """Answers that said "slow down" (code 93, HTTP 429, a 503 with ``Retry-After``);
    each is sent again, under ``pushback_timeout``, not ``max_retries``."""
