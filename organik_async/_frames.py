"""Rows as columns, the shape data-frame libraries take without guessing.

``pl.DataFrame(rows)`` and ``pd.DataFrame(rows)`` do not know msgspec Structs: each gives one column
of objects, silently. ``msgspec.to_builtins(rows)`` makes dates strings, and polars refuses a
``gsm_track_id`` column that mixes ints and the provider's ``"16502030-4730-63032793"`` strings.
[`rows_to_columns()`][organik_async.rows_to_columns] gives one typed list per field instead (dates
stay ``datetime``, ``gsm_track_id`` is always a string), plus the status's name and the failure
reason, so that ``pl.DataFrame(rows_to_columns(rows))`` and ``pd.DataFrame(rows_to_columns(rows))``
are what one expects. No data-frame library is imported here, nor needed by the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from ._models import DeliveryStatus, DetailedReport

__all__ = ["rows_to_columns"]

_FIELDS: Final = DetailedReport.__struct_fields__
_TRACK_ID: Final = _FIELDS.index("gsm_track_id")
_STATUS_NAMES: Final = {status.value: status.name for status in DeliveryStatus}

_COLUMNS: Final = (*_FIELDS, "status_name", "failure_reason")


def rows_to_columns(rows: Iterable[DetailedReport]) -> dict[str, list[Any]]:
    """One list per column, for ``pl.DataFrame(...)`` or ``pd.DataFrame(...)``.

    The columns, in order: every field of [`DetailedReport`][organik_async.DetailedReport] as it is,
    except ``gsm_track_id``, always a ``str`` (the provider sends both ints and strings, and a
    column needs one type); then ``status_name``, the
    [`DeliveryStatus`][organik_async.DeliveryStatus] name (``"DELIVERED"``...) or ``None`` for a
    status code the provider added since, and ``failure_reason``
    ([`DetailedReport.failure_reason`][organik_async.DetailedReport.failure_reason]). Dates are
    naive ``datetime`` values in the provider's local time (Turkey).

    Args:
        rows: the rows, in any iterable.

    Returns:
        Column name to its values, one per row, in the rows' order; no rows give empty
            columns.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return {name: [] for name in _COLUMNS}
    fields = [list(column) for column in zip(*map(msgspec.structs.astuple, rows), strict=True)]
    fields[_TRACK_ID] = [str(value) for value in fields[_TRACK_ID]]
    columns = dict(zip(_FIELDS, fields, strict=True))
    columns["status_name"] = [_STATUS_NAMES.get(status) for status in columns["status"]]
    columns["failure_reason"] = [row.failure_reason for row in rows]
    return columns
