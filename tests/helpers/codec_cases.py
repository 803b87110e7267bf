"""Answers and rows shared by the codec tests (test_codec.py, test_codec_xml.py):
the seed documents' fixtures and rows, and a provider-style ``<item>`` to vary."""

from __future__ import annotations

from datetime import datetime

import msgspec

from organik_async import DetailedReport
from tests.helpers.paths import FIXTURES

# The rows of the seed documents' examples, written out by hand from the seeds.
SEED_ROWS = [
    DetailedReport(
        gsm=905445359675,
        transaction_id=14094857,
        gsm_track_id=410471976,
        delivery_track_id="b627ffe79fc148e8ea7425222c4ed8",
        create_date=datetime(2016, 11, 2, 11, 47, 38),
        start_date=datetime(2016, 11, 2, 11, 47, 38),
        finish_date=datetime(2016, 11, 2, 12, 47, 42),
        status=2,
        sms_count=1,
        credit_amount=1,
        is_foreign_gsm=False,
        errorcode=0,
    ),
    DetailedReport(
        gsm=61491570156,
        transaction_id=14094857,
        gsm_track_id=410471979,
        delivery_track_id="b627ffe79fc148e8ea7425222c4ed8",
        create_date=datetime(2016, 11, 2, 11, 47, 38),
        start_date=datetime(2016, 11, 2, 11, 47, 38),
        finish_date=datetime(2016, 11, 2, 13, 47, 45),
        status=4,
        sms_count=1,
        credit_amount=0,
        is_foreign_gsm=True,
        errorcode=99,
    ),
    DetailedReport(
        gsm=905445359675,
        transaction_id=16334701,
        gsm_track_id=474057742,
        delivery_track_id="6959792d54f3c7510bcbb6303a67a4",
        create_date=datetime(2017, 2, 2, 11, 36, 9),
        start_date=datetime(2017, 2, 28, 0, 0, 0),
        finish_date=None,
        status=0,
        sms_count=0,
        credit_amount=0,
        is_foreign_gsm=False,
        errorcode=0,
    ),
]


# What a document without ``errorcode`` (001, and every XML example) describes.
SEED_ROWS_NO_ERRORCODE = [msgspec.structs.replace(r, errorcode=0) for r in SEED_ROWS]


XML_DECL = b'<?xml version="1.0" encoding="UTF-8" ?>\n'


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def xml_item(**changes: str | None) -> str:
    """One provider-style ``<item>`` (the seed's first row), pretty-printed."""
    fields: dict[str, str | None] = {
        "gsm": "905445359675",
        "transaction_id": "14094857",
        "gsm_track_id": "410471976",
        "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
        "create_date": "2016-11-02 11:47:38",
        "start_date": "2016-11-02 11:47:38",
        "finish_date": "2016-11-02 12:47:42",
        "status": "2",
        "sms_count": "1",
        "credit_amount": "1",
        "is_foreign_gsm": "0",
    }
    fields.update(changes)
    lines = ["<item>"]
    for name, value in fields.items():
        lines.append(f"   <{name} />" if value is None else f"   <{name}>{value}</{name}>")
    lines.append("</item>")
    return "\n".join(lines)


ISO_ROW_ERROR = "Kayıt bulunamadı: ğüşöçİ"  # "no records found", with every Turkish letter


DEEP = 5_000  # far past Python's recursion limit (1 000)
