"""Test data shared by the client tests: the spec's key and its first example row."""

from __future__ import annotations

from typing import Any

KEY = "ce136df4c9c92d1428e828aba07d3b05"  # the spec's example key

SEED_ROW: dict[str, Any] = {
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
