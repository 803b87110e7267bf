"""The data: one delivery-report row, and the tables that give its codes meaning.

Rows are frozen ``msgspec.Struct``s so that decoding goes straight from bytes to
objects (no intermediate dicts on the JSON path) and rows are cheap, hashable
and immutable. Codes are stored as plain ``int``s: the provider may add a status
or an error code tomorrow, and a report must never crash on it. The enum and
table lookups are *views* on top of those integers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Literal

import msgspec

__all__ = [
    "API_ERROR_CODES",
    "DELIVERY_ERROR_CODES",
    "DeliveryErrorCode",
    "DeliveryStatus",
    "DetailedReport",
    "Format",
]

Format = Literal["json", "xml"]
"""A wire format: the two values the URL's type segments take."""


class DeliveryStatus(enum.IntEnum):
    """The ``status`` of one recipient number, as the provider defines it."""

    NOT_SENT = 0
    SENT_TO_OPERATOR = 1
    DELIVERED = 2
    INVALID_NUMBER = 3
    TIMED_OUT = 4

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
    english: str
    turkish: str


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

API_ERROR_CODES: Mapping[int, str] = MappingProxyType(
    {
        1: "unknown error",
        84: "database operation failed",
        85: "database could not be registered",
        86: "no valid registration data found",
        87: "no records were found",
        88: "unsupported request name",
        89: "user not found",
        90: "API key must be 32 characters",
        91: "unsupported response type",
        92: "unsupported request type",
        93: "too many requests",
        94: "server temporarily unavailable",
        95: "server fault",
        96: "invalid request parameters",
        97: "invalid request body format",
        98: "unauthorised IP address",
        99: "authorisation error (invalid key)",
    }
)
"""The API-wide ``error.code`` values (request-level failures), in English."""


class DetailedReport(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one SMS for one recipient number.

    Dates are naive ``datetime``s in the provider's local time (Turkey,
    ``Europe/Istanbul``); see the README for timezone-aware values. ``status``
    and ``errorcode`` stay plain integers so unknown codes survive; use
    :attr:`delivery_status`, :attr:`error` and :attr:`failure_reason` for the
    typed views.
    """

    gsm: int
    transaction_id: int
    gsm_track_id: int | str
    delivery_track_id: str | None = None
    create_date: datetime
    start_date: datetime
    finish_date: datetime | None = None
    status: int
    sms_count: int
    credit_amount: int
    is_foreign_gsm: bool
    errorcode: int = 0

    @property
    def delivery_status(self) -> DeliveryStatus | int:
        """``status`` as a :class:`DeliveryStatus`, or the bare int if unknown."""
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
