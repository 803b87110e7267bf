"""Property: any list of realistic rows survives encode → decode, in JSON and in XML."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from organik_async import DetailedReport
from organik_async._codec import decode, encode_rows_json, encode_rows_xml

pytestmark = pytest.mark.slow

INT64 = 2**63 - 1

_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
# XML 1.0 cannot carry C0 controls other than TAB/LF/CR, nor U+FFFE/U+FFFF;
# surrogates are not text at all.
_XML_CHARS = st.characters(
    blacklist_categories=_SURROGATES,
    blacklist_characters=[chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)]
    + ["\ufffe", "\uffff"],
)


def _no_padding(text: str) -> bool:
    return text == text.strip()


def _not_canonical_int(text: str) -> bool:
    digits = text.removeprefix("-")
    return not (digits.isascii() and digits.isdigit() and str(int(text)) == text)


texts = st.text(_XML_CHARS, min_size=1, max_size=40).filter(_no_padding)

dates = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)

gsm_track_ids = st.one_of(
    st.integers(min_value=0, max_value=INT64),
    st.from_regex(r"\A[0-9]{8}-[0-9]{4}-[0-9]{8}\Z"),  # the sendsms form
    texts.filter(_not_canonical_int),
)

rows = st.builds(
    DetailedReport,
    gsm=st.integers(min_value=0, max_value=INT64),
    transaction_id=st.integers(min_value=0, max_value=INT64),
    gsm_track_id=gsm_track_ids,
    delivery_track_id=st.none() | texts,
    create_date=dates,
    start_date=dates,
    finish_date=st.none() | dates,
    status=st.integers(min_value=-(2**31), max_value=2**31),
    sms_count=st.integers(min_value=0, max_value=10_000),
    credit_amount=st.integers(min_value=-(2**31), max_value=2**31),
    is_foreign_gsm=st.booleans(),
    errorcode=st.integers(min_value=-(2**31), max_value=2**31),
)

row_lists = st.lists(rows, max_size=8)

_SEED_LIKE = DetailedReport(
    gsm=905445359675,
    transaction_id=14094857,
    gsm_track_id="16502030-4730-63032793",
    delivery_track_id="a<b&c</delivery_track_id>\r\n]]>",
    create_date=datetime(999, 1, 1, 0, 0, 0),
    start_date=datetime(2017, 2, 28, 0, 0, 0),
    finish_date=None,
    status=-1,
    sms_count=0,
    credit_amount=0,
    is_foreign_gsm=True,
    errorcode=555,
)

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(row_lists)
@example([])
@example([_SEED_LIKE])
def test_rows_survive_json_encode_then_decode(rows: list[DetailedReport]) -> None:
    decoded = decode("json", encode_rows_json(rows))
    assert decoded.error is None
    assert decoded.rows == rows
    # Same types too (an int gsm_track_id must not come back as "123").
    assert [type(r.gsm_track_id) for r in decoded.rows] == [type(r.gsm_track_id) for r in rows]


@_SETTINGS
@given(row_lists)
@example([])
@example([_SEED_LIKE])
@example([msgspec.structs.replace(_SEED_LIKE, gsm_track_id=-5, delivery_track_id="null")])
def test_rows_survive_xml_encode_then_decode(rows: list[DetailedReport]) -> None:
    decoded = decode("xml", encode_rows_xml(rows))
    assert decoded.error is None
    assert decoded.rows == rows
    assert [type(r.gsm_track_id) for r in decoded.rows] == [type(r.gsm_track_id) for r in rows]
