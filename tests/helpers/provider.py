"""What the provider sends, for tests that answer in its place: the keys, the spec's first
example row, and its answers (rows, or a refusal) in JSON and in XML.

``KEY`` is the spec's example key. It starts with a letter, so it can also stand where
an XML element name does; a test that needs a key the server does not accept uses
``OTHER_KEY``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from xml.sax.saxutils import escape

KEY: Final = "ce136df4c9c92d1428e828aba07d3b05"
"""The API key the tests use: the spec's example key."""
OTHER_KEY: Final = "0123456789abcdef0123456789abcdef"
"""A well-formed key that is not ``KEY`` (nor the simulator's demo key)."""

SEED_ROW: Final[Mapping[str, Any]] = {
    # The first row of the seed documents' JSON example, in the provider's wire form
    # (no errorcode, as in 001_…txt).
    "gsm": 905445359675,
    "transaction_id": 14094857,
    "gsm_track_id": 410471976,
    "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
    "create_date": "2016-11-02 11:47:38",
    "start_date": "2016-11-02 11:47:38",
    "finish_date": "2016-11-02 12:47:42",
    "status": 2,
    "sms_count": 1,
    "credit_amount": 1,
    "is_foreign_gsm": 0,
}


def seed_row(**changes: object) -> dict[str, Any]:
    """The seed row in wire form, with ``changes``."""
    return {**SEED_ROW, **changes}


def rows_answer(*rows: Mapping[str, object], fmt: str = "json") -> bytes:
    """The provider's answer holding ``rows``: JSON's success envelope, or XML's bare
    ``<item>``s."""
    assert fmt in ("json", "xml"), fmt
    if fmt == "json":
        return json.dumps({"response": {"result": True, "data": list(rows)}}).encode()
    items = "".join(
        "<item>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in row.items()) + "</item>"
        for row in rows
    )
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n{items}\n'.encode()


NO_ROWS: Final = rows_answer()
"""The provider's JSON answer when nothing matches."""


def error_answer(
    code: int,
    fmt: str = "json",
    *,
    message: str = "m",
    number: str = "n",
    time: str | None = None,
) -> bytes:
    """The provider's refusal (``result`` false) with ``code``, as its documentation
    shows it: JSON, or indented XML."""
    assert fmt in ("json", "xml"), fmt
    if fmt == "json":
        error: dict[str, object] = {"message": message, "number": number}
        if time is not None:
            error["time"] = time
        error["code"] = code
        return json.dumps({"response": {"result": False, "error": error}}).encode()
    time_node = f"    <time>{escape(time)}</time>\n" if time is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <result>0</result>\n  <error>\n'
        f"    <message>{escape(message)}</message>\n    <number>{escape(number)}</number>\n"
        f"{time_node}    <code>{code}</code>\n  </error>\n</response>\n"
    ).encode()
