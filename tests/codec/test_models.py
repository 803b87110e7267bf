"""DetailedReport and the code tables: types, views on codes, and what survives."""

from __future__ import annotations

import enum
import re
import typing
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from organik_async import (
    API_ERROR_CODES,
    DELIVERY_ERROR_CODES,
    DeliveryErrorCode,
    DeliveryStatus,
    DetailedReport,
)
from organik_async._codec import decode_json
from tests.helpers.paths import FIXTURES
from tests.helpers.provider import rows_answer, seed_row

SEED_000 = FIXTURES / "seeds" / "000_3254615d2c902982.txt"  # verbatim copy, see test_codec


def make_row(**changes: object) -> DetailedReport:
    """The seed's first row, with ``changes``."""
    fields: dict[str, typing.Any] = {
        "gsm": 905445359675,
        "transaction_id": 14094857,
        "gsm_track_id": 410471976,
        "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
        "create_date": datetime(2016, 11, 2, 11, 47, 38),
        "start_date": datetime(2016, 11, 2, 11, 47, 38),
        "finish_date": datetime(2016, 11, 2, 12, 47, 42),
        "status": 2,
        "sms_count": 1,
        "credit_amount": 1,
        "is_foreign_gsm": False,
        "errorcode": 0,
    }
    fields.update(changes)
    return DetailedReport(**fields)


def one_json_row(**fields: object) -> bytes:
    return rows_answer(seed_row(**fields))


# --- the Struct ---------------------------------------------------------------------------


def test_detailed_report_is_a_frozen_msgspec_struct() -> None:
    row = make_row()
    assert isinstance(row, msgspec.Struct)
    with pytest.raises(AttributeError):
        row.status = 3  # type: ignore[misc]
    assert hash(row) == hash(make_row())
    assert {row, make_row()} == {row}


def test_detailed_report_fields_have_the_spec_types() -> None:
    hints = typing.get_type_hints(DetailedReport)
    assert hints == {
        "gsm": int,
        "transaction_id": int,
        "gsm_track_id": int | str,
        "delivery_track_id": str | None,
        "create_date": datetime,
        "start_date": datetime,
        "finish_date": datetime | None,
        "status": int,
        "sms_count": int,
        "credit_amount": int,
        "is_foreign_gsm": bool,
        "errorcode": int,
    }


def test_errorcode_is_optional_and_defaults_to_zero() -> None:
    info = msgspec.inspect.type_info(DetailedReport)
    assert isinstance(info, msgspec.inspect.StructType)
    required = {f.name for f in info.fields if f.required}
    assert "errorcode" not in required
    assert {"gsm", "transaction_id", "gsm_track_id", "create_date", "status"} <= required
    [row] = decode_json(one_json_row()).rows
    assert row.errorcode == 0


def test_decoded_values_have_python_types_not_wire_types() -> None:
    [row] = decode_json(one_json_row(is_foreign_gsm=1, finish_date=None)).rows
    assert row.is_foreign_gsm is True
    assert row.finish_date is None
    assert type(row.create_date) is datetime
    assert type(row.gsm) is int


def test_dates_are_naive_provider_local_time() -> None:
    [row] = decode_json(one_json_row()).rows
    assert row.create_date == datetime(2016, 11, 2, 11, 47, 38)
    assert row.create_date.tzinfo is None
    assert row.start_date.tzinfo is None
    assert row.finish_date is not None
    assert row.finish_date.tzinfo is None


def test_readme_zoneinfo_snippet_gives_istanbul_time() -> None:
    [row] = decode_json(one_json_row()).rows
    aware = row.create_date.replace(tzinfo=ZoneInfo("Europe/Istanbul"))
    assert aware.utcoffset() == timedelta(hours=3)
    assert aware.astimezone(UTC) == datetime(2016, 11, 2, 8, 47, 38, tzinfo=UTC)
    # Same wall-clock reading, only the zone attached.
    assert aware.replace(tzinfo=None) == row.create_date


@pytest.mark.parametrize("track_id", [410471976, "16502030-4730-63032793", "007"])
def test_gsm_track_id_keeps_its_form(track_id: int | str) -> None:
    [row] = decode_json(one_json_row(gsm_track_id=track_id)).rows
    assert row.gsm_track_id == track_id
    assert type(row.gsm_track_id) is type(track_id)


def test_rows_encode_to_json_and_decode_unchanged() -> None:
    rows = [
        make_row(),
        make_row(gsm_track_id="16502030-4730-63032793", finish_date=None, errorcode=99, status=4),
        make_row(delivery_track_id=None, is_foreign_gsm=True, status=17, errorcode=555),
    ]
    encoded = msgspec.json.encode(rows)
    assert msgspec.json.decode(encoded, type=list[DetailedReport]) == rows


def test_unknown_fields_in_a_row_are_ignored() -> None:
    [row] = decode_json(one_json_row(operator="Turkcell", price=0.12)).rows
    assert row == make_row()


# --- status --------------------------------------------------------------------------------


def test_delivery_status_is_an_int_enum_with_the_documented_values() -> None:
    assert issubclass(DeliveryStatus, enum.IntEnum)
    assert {s.name: s.value for s in DeliveryStatus} == {
        "NOT_SENT": 0,
        "SENT_TO_OPERATOR": 1,
        "DELIVERED": 2,
        "INVALID_NUMBER": 3,
        "TIMED_OUT": 4,
    }


@pytest.mark.parametrize(
    ("status", "final", "failed"),
    [(0, False, False), (1, False, False), (2, True, False), (3, True, True), (4, True, True)],
)
def test_is_final_and_is_failed_follow_the_status(status: int, final: bool, failed: bool) -> None:
    row = make_row(status=status)
    assert row.is_final is final
    assert row.is_failed is failed
    assert row.delivery_status is DeliveryStatus(status)
    assert DeliveryStatus(status).is_final is final
    assert DeliveryStatus(status).is_failure is failed


def test_unknown_status_is_kept_as_an_int_never_a_crash() -> None:
    [row] = decode_json(one_json_row(status=17)).rows
    assert row.status == 17
    assert row.delivery_status == 17
    assert not isinstance(row.delivery_status, DeliveryStatus)
    assert row.is_final is False
    assert row.is_failed is False
    assert row.failure_reason is None


# --- error codes ---------------------------------------------------------------------------


def _seed_error_table() -> dict[int, str]:
    """``errorcode`` → Turkish text, read from the seed document itself."""
    text = SEED_000.read_text(encoding="utf-8")
    table = text.split("Değişkeninin Alabileceği Değerler", 1)[1]
    table = table.split("Organik API'yi kullanarak", 1)[0]
    rows = re.findall(r"^(\d+) (.+)$", table, flags=re.MULTILINE)
    return {int(code): description for code, description in rows}


def test_delivery_error_codes_match_the_seed_table_in_turkish() -> None:
    seed = _seed_error_table()
    assert len(seed) == 25
    assert set(DELIVERY_ERROR_CODES) == set(seed)
    for code, turkish in seed.items():
        entry = DELIVERY_ERROR_CODES[code]
        assert isinstance(entry, DeliveryErrorCode)
        assert entry.code == code
        assert entry.turkish == turkish


@pytest.mark.parametrize(
    ("code", "english"),
    [
        (1, "Invalid number"),
        (5, "Number opted out of campaign SMS"),
        (19, "Network connection error"),
        (88, "Test operation"),
        (99, "Invalid number"),
    ],
)
def test_delivery_error_codes_have_english_text(code: int, english: str) -> None:
    assert DELIVERY_ERROR_CODES[code].english == english


def test_every_delivery_error_code_has_both_texts() -> None:
    for entry in DELIVERY_ERROR_CODES.values():
        assert entry.english.strip()
        assert entry.turkish.strip()


def test_error_code_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        DELIVERY_ERROR_CODES[5] = DeliveryErrorCode(5, "x", "y")  # type: ignore[index]
    with pytest.raises(TypeError):
        API_ERROR_CODES[5] = "x"  # type: ignore[index]


def test_api_error_codes_cover_the_documented_codes() -> None:
    assert set(API_ERROR_CODES) == {1, *range(84, 100), *range(101, 113)}
    assert API_ERROR_CODES[87] == "no records were found"
    assert API_ERROR_CODES[93] == "too many requests"


def test_known_errorcode_gives_its_table_entry() -> None:
    row = make_row(status=4, errorcode=99)
    assert row.error is DELIVERY_ERROR_CODES[99]
    assert make_row(errorcode=0).error is None


def test_unknown_errorcode_is_kept_as_an_int_never_a_crash() -> None:
    [row] = decode_json(one_json_row(status=3, errorcode=555)).rows
    assert row.errorcode == 555
    assert row.error is None
    assert row.failure_reason == "error code 555"


@pytest.mark.parametrize(
    ("status", "errorcode", "reason"),
    [
        (4, 99, "Invalid number"),  # the seed's second row
        (3, 1, "Invalid number"),
        (4, 10, "Network error"),
        (3, 0, "invalid number"),  # no code: the status says why
        (4, 0, "timed out"),
        (2, 0, None),  # delivered: no failure
        (0, 0, None),
        (1, 0, None),
    ],
)
def test_failure_reason(status: int, errorcode: int, reason: str | None) -> None:
    assert make_row(status=status, errorcode=errorcode).failure_reason == reason
