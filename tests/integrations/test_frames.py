"""rows_to_columns: rows become typed polars and pandas frames, and nothing is lost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import organik_async
from organik_async import DeliveryStatus, DetailedReport, rows_to_columns
from organik_async.testing import Dataset

FIELDS = list(DetailedReport.__struct_fields__)
COLUMNS = [*FIELDS, "status_name", "failure_reason"]

POLARS_SCHEMA = {
    "gsm": pl.Int64,
    "transaction_id": pl.Int64,
    "gsm_track_id": pl.String,
    "delivery_track_id": pl.String,
    "create_date": pl.Datetime("us"),
    "start_date": pl.Datetime("us"),
    "finish_date": pl.Datetime("us"),
    "status": pl.Int64,
    "sms_count": pl.Int64,
    "credit_amount": pl.Int64,
    "is_foreign_gsm": pl.Boolean,
    "errorcode": pl.Int64,
    "status_name": pl.String,
    "failure_reason": pl.String,
}


def as_report(record: dict[str, Any]) -> DetailedReport:
    """A frame's row back to a model: the track ID was made a string, undo that."""
    values = {name: record[name] for name in FIELDS}
    track = values["gsm_track_id"]
    values["gsm_track_id"] = int(track) if track.isdigit() and str(int(track)) == track else track
    return DetailedReport(**values)


def mixed_rows() -> list[DetailedReport]:
    """Generated rows with both int and ``"16502030-4730-63032793"`` track IDs, all statuses."""
    rows = list(Dataset.generate(10_000, seed=11, string_track_id_share=0.1))
    kinds = {type(row.gsm_track_id) for row in rows}
    assert kinds == {int, str}
    assert {row.status for row in rows} == {status.value for status in DeliveryStatus}
    assert any(row.finish_date is None for row in rows)
    return rows


@pytest.mark.slow
def test_a_polars_frame_gets_one_typed_column_per_field() -> None:
    rows = mixed_rows()
    frame = pl.DataFrame(rows_to_columns(rows))
    assert dict(frame.schema) == POLARS_SCHEMA
    assert [as_report(record) for record in frame.iter_rows(named=True)] == rows


@pytest.mark.slow
def test_a_pandas_frame_gets_one_typed_column_per_field() -> None:
    rows = mixed_rows()
    frame = pd.DataFrame(rows_to_columns(rows))
    assert list(frame.columns) == COLUMNS
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    for name in ("gsm", "transaction_id", "status", "sms_count", "credit_amount", "errorcode"):
        assert dtypes[name] == "int64"
    for name in ("create_date", "start_date", "finish_date"):
        assert dtypes[name].startswith("datetime64")
    assert dtypes["is_foreign_gsm"] == "bool"
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for name in ("create_date", "start_date", "finish_date"):
            if record[name] is not None:
                record[name] = record[name].to_pydatetime()
    assert [as_report(record) for record in records] == rows


def test_status_name_and_failure_reason_are_columns() -> None:
    rows = mixed_rows()
    columns = rows_to_columns(rows)
    assert columns["status_name"] == [DeliveryStatus(row.status).name for row in rows]
    assert columns["failure_reason"] == [row.failure_reason for row in rows]
    delivered = pl.DataFrame(columns).filter(pl.col("status_name") == "DELIVERED")
    assert delivered.height == sum(row.status == 2 for row in rows)


def test_an_unknown_status_has_no_name_but_keeps_its_code() -> None:
    row = next(iter(Dataset.generate(1, seed=1)))
    unknown = DetailedReport(**{**{f: getattr(row, f) for f in FIELDS}, "status": 7})
    columns = rows_to_columns([unknown])
    assert (columns["status"], columns["status_name"]) == ([7], [None])


def test_no_rows_give_empty_columns() -> None:
    columns = rows_to_columns([])
    assert columns == {name: [] for name in COLUMNS}
    assert pl.DataFrame(columns).shape == (0, len(COLUMNS))
    assert pd.DataFrame(columns).shape == (0, len(COLUMNS))


def test_any_iterable_of_rows_will_do() -> None:
    rows = list(Dataset.generate(50, seed=2, string_track_id_share=0.1))
    assert rows_to_columns(row for row in rows) == rows_to_columns(rows)


moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
reports = st.builds(
    DetailedReport,
    gsm=st.integers(0, 10**15),
    transaction_id=st.integers(0, 2**62),
    gsm_track_id=st.integers(0, 2**62) | st.text(min_size=1),
    delivery_track_id=st.none() | st.text(),
    create_date=moments,
    start_date=moments,
    finish_date=st.none() | moments,
    status=st.integers(-5, 10),
    sms_count=st.integers(0, 100),
    credit_amount=st.integers(0, 100),
    is_foreign_gsm=st.booleans(),
    errorcode=st.integers(0, 200),
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(st.lists(reports, max_size=20))
def test_columns_hold_every_field_of_every_row(rows: list[DetailedReport]) -> None:
    columns = rows_to_columns(rows)
    assert list(columns) == COLUMNS
    for index, row in enumerate(rows):
        for name in FIELDS:
            value = getattr(row, name)
            expected = str(value) if name == "gsm_track_id" else value
            assert columns[name][index] == expected
        names = {status.value: status.name for status in DeliveryStatus}
        assert columns["status_name"][index] == names.get(row.status)
        assert columns["failure_reason"][index] == row.failure_reason
    frame = pl.DataFrame(columns)
    assert frame.height == len(rows)
    assert frame.schema["gsm_track_id"] == (pl.String if rows else pl.Null)


def test_it_is_public() -> None:
    assert "rows_to_columns" in organik_async.__all__
