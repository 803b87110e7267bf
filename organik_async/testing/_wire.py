"""The provider's wire format, written by hand so the simulator owns every byte.

The simulator must answer like the provider, not like whatever our client
happens to accept, so nothing here is shared with the client's codec: not
even the wording of errors, which is the provider's own list. Rows are
encoded once into their final bytes (dates as ``YYYY-MM-DD HH:MM:SS``,
``is_foreign_gsm`` as 0/1, ``errorcode`` where the provider's documents show
it) and a response is a join of those cached byte strings between a fixed
head and tail.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, NamedTuple
from xml.sax.saxutils import escape

import msgspec

from .._exceptions import PROVIDER_CODES
from .._models import Format
from ._clock import PROVIDER_TZ

__all__ = [
    "ERROR_MESSAGES",
    "JSON_CONTENT_TYPE",
    "PROVIDER_TZ",
    "XML_CONTENT_TYPE",
    "Block",
    "RowStyle",
    "WireRow",
    "content_type",
    "encode_block",
    "error_body",
    "error_message",
    "rows_body",
]

ERROR_MESSAGES: Final[Mapping[int, str]] = MappingProxyType(
    {code: entry.message for code, entry in PROVIDER_CODES.items()}
)
"""``error.message`` for each API error code, word for word (typos included) as
the provider's error list gives it: a view of the client's one code table."""


def error_message(code: int) -> str:
    """The provider's message for ``code`` (its "unknown error" one for a code it does not list)."""
    return ERROR_MESSAGES.get(code, ERROR_MESSAGES[1])


JSON_CONTENT_TYPE: Final = b"application/json"
XML_CONTENT_TYPE: Final = b"application/xml"

XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8" ?>\n'
_JSON_HEAD: Final = b'{"response":{"result":true,"data":['
_JSON_TAIL: Final = b"]}}"
_XML_WRAPPED_HEAD: Final = XML_DECLARATION + b"<response><result>1</result><data>\n"
_XML_WRAPPED_TAIL: Final = b"\n</data></response>\n"

SEPARATOR: Final[dict[Format, bytes]] = {"json": b",", "xml": b"\n"}
"""What goes between two encoded rows of one response."""


class WireRow(msgspec.Struct, frozen=True):
    """One row exactly as the provider sends it, fields in the provider's order."""

    gsm: int
    transaction_id: int
    gsm_track_id: int | str
    delivery_track_id: str | None
    create_date: str
    start_date: str
    finish_date: str | None
    status: int
    sms_count: int
    credit_amount: int
    is_foreign_gsm: int
    errorcode: int


class RowStyle(NamedTuple):
    """How rows are written: the format, and whether ``errorcode`` is in them.

    The provider's first seed document shows ``errorcode`` in JSON rows; no
    document shows it in XML rows.
    """

    fmt: Format
    errorcode: bool

    @classmethod
    def default(cls, fmt: Format) -> RowStyle:
        """The provider's documents: ``errorcode`` in JSON rows, not in XML rows."""
        return cls(fmt, fmt == "json")


_json_encoder = msgspec.json.Encoder()
_JSON_ERRORCODE: Final = b',"errorcode":'


def _xml_text(value: str) -> str:
    # Most values (hex IDs, dates) need no escaping; skip the three replaces.
    if "&" in value or "<" in value or ">" in value:
        return escape(value)
    return value


def encode_json_row(row: WireRow, errorcode: bool = True) -> bytes:
    """One row as a JSON object (msgspec escapes the strings for us)."""
    encoded = _json_encoder.encode(row)
    if errorcode:
        return encoded
    # errorcode is the last field and an integer: cut it off before the "}".
    return encoded[: encoded.rindex(_JSON_ERRORCODE)] + b"}"


def encode_xml_row(row: WireRow, errorcode: bool = False) -> bytes:
    """One row as the provider's indented ``<item>`` element."""
    track = row.gsm_track_id
    track_text = str(track) if isinstance(track, int) else _xml_text(track)
    delivery = (
        "   <delivery_track_id />\n"
        if row.delivery_track_id is None
        else f"   <delivery_track_id>{_xml_text(row.delivery_track_id)}</delivery_track_id>\n"
    )
    finish = (
        "   <finish_date />\n"
        if row.finish_date is None
        else f"   <finish_date>{row.finish_date}</finish_date>\n"
    )
    code = f"   <errorcode>{row.errorcode}</errorcode>\n" if errorcode else ""
    return (
        "<item>\n"
        f"   <gsm>{row.gsm}</gsm>\n"
        f"   <transaction_id>{row.transaction_id}</transaction_id>\n"
        f"   <gsm_track_id>{track_text}</gsm_track_id>\n"
        f"{delivery}"
        f"   <create_date>{row.create_date}</create_date>\n"
        f"   <start_date>{row.start_date}</start_date>\n"
        f"{finish}"
        f"   <status>{row.status}</status>\n"
        f"   <sms_count>{row.sms_count}</sms_count>\n"
        f"   <credit_amount>{row.credit_amount}</credit_amount>\n"
        f"   <is_foreign_gsm>{row.is_foreign_gsm}</is_foreign_gsm>\n"
        f"{code}"
        "</item>"
    ).encode()


class Block(NamedTuple):
    """The encoded rows of one transaction, stored as one byte string.

    One ``bytes`` per transaction instead of one per row keeps a million rows
    at little more than their wire size. ``starts[j]`` is where row ``j``
    begins; ``starts[-1]`` is one separator past the end, so rows ``a..b`` are
    ``blob[starts[a] : starts[b] - len(separator)]`` whatever ``a`` and ``b``.
    """

    blob: bytes
    starts: array[int]

    def span(self, start: int, stop: int, separator_length: int) -> memoryview:
        """Rows ``start..stop`` (exclusive) as a zero-copy slice of the blob."""
        return memoryview(self.blob)[self.starts[start] : self.starts[stop] - separator_length]


def encode_block(rows: Sequence[WireRow], style: RowStyle) -> Block:
    """Encode the rows of one transaction in ``style``."""
    encode = encode_json_row if style.fmt == "json" else encode_xml_row
    parts = [encode(row, style.errorcode) for row in rows]
    separator = SEPARATOR[style.fmt]
    starts = array("Q", [0])
    position = 0
    for part in parts:
        position += len(part) + len(separator)
        starts.append(position)
    return Block(separator.join(parts), starts)


def rows_body(
    pieces: Sequence[bytes | memoryview], fmt: Format, *, xml_wrapped: bool = True
) -> bytes:
    """A successful answer: the provider's envelope around the encoded rows.

    JSON is ``{"response":{"result":true,"data":[...]}}``. XML is
    ``<response><result>1</result><data><item>...``, the form of the
    provider's API README and of every other XML answer it publishes;
    ``xml_wrapped=False`` gives the ``detailedreport`` seed page's form
    instead: a declaration followed by bare top-level ``<item>``s (no root
    element).
    """
    separator = SEPARATOR[fmt]
    if fmt == "json":
        return b"".join((_JSON_HEAD, separator.join(pieces), _JSON_TAIL))
    if xml_wrapped:
        return b"".join((_XML_WRAPPED_HEAD, separator.join(pieces), _XML_WRAPPED_TAIL))
    return b"".join((XML_DECLARATION, separator.join(pieces), b"\n"))


def error_body(fmt: Format, *, code: int, message: str, number: str, time: str) -> bytes:
    """A refusal as the provider sends it (with HTTP 200): ``result`` false/0."""
    if fmt == "json":
        envelope = {
            "response": {
                "result": False,
                "error": {"message": message, "number": number, "time": time, "code": code},
            }
        }
        return _json_encoder.encode(envelope)
    return (
        XML_DECLARATION
        + (
            "<response><result>0</result><error>"
            f"<message>{_xml_text(message)}</message>"
            f"<number>{_xml_text(number)}</number>"
            f"<time>{_xml_text(time)}</time>"
            f"<code>{code}</code>"
            "</error></response>\n"
        ).encode()
    )


def content_type(fmt: Format) -> bytes:
    """The ``Content-Type`` the provider sends for ``fmt``."""
    return JSON_CONTENT_TYPE if fmt == "json" else XML_CONTENT_TYPE
