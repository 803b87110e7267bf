"""The seeded generator of realistic report rows.

A dataset of a million rows must not cost a million Python objects up front,
so generation happens in two steps. `plan_transactions()` draws the
per-transaction facts (ID, size, dates, how far sending got) from one random
stream: that is cheap, a few thousand transactions for a million rows. The
rows of one transaction are drawn later, on demand, from a random stream of
their own seeded by ``(seed, transaction index)``, so they come out the same
whatever order transactions are asked for in, and nothing is kept that can be
drawn again.

Only ``Random.random`` and ``Random.getrandbits`` are used: Python promises
their sequences stay the same across versions, so a seed is a stable name for
a dataset.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from ._wire import WireRow

__all__ = [
    "INVALID_NUMBER_CODES",
    "TIMED_OUT_CODES",
    "GeneratorSettings",
    "Progress",
    "TransactionPlan",
    "final_outcome",
    "generate_rows",
    "plan_transactions",
    "regular_numbers",
    "track_ids",
]

_EPOCH = datetime(2016, 11, 2, 8, 0, 0)
_FIRST_TRANSACTION_ID = 14_094_857
_FIRST_GSM_TRACK_ID = 410_471_976

# Codes from the provider's errorcode table, by the status they go with, and a
# few codes the table does not know (the client must keep them as integers).
INVALID_NUMBER_CODES = (1, 1, 1, 2, 4, 4, 5, 23, 99, 99)
TIMED_OUT_CODES = (3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 3, 7, 3)
_UNKNOWN_CODES = (24, 31, 42, 77, 100, 255)

# (country calling code, digits after it) for foreign recipients.
_FOREIGN_PLANS = ((49, 10), (44, 10), (1, 10), (61, 9), (31, 9), (994, 9), (7, 10), (33, 9))


class Progress(Enum):
    """How far the sending of a transaction has got."""

    NOT_STARTED = "not_started"  # scheduled for later: every row status 0
    IN_PROGRESS = "in_progress"  # some rows still 0/1 with no finish_date
    DONE = "done"  # every row final: 2, 3 or 4


@dataclass(frozen=True, slots=True)
class GeneratorSettings:
    """The knobs of [`Dataset.generate()`][organik_async.testing.Dataset.generate], with realistic
    defaults."""

    rows: int = 1_000
    seed: int = 0
    string_track_id_share: float = 0.0
    foreign_share: float = 0.06
    scheduled_share: float = 0.1
    in_progress_share: float = 0.08
    not_started_share: float = 0.04
    unknown_errorcode_share: float = 0.03
    max_transaction_rows: int = 5_000

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError("rows must be >= 0")
        if self.max_transaction_rows < 1:
            raise ValueError("max_transaction_rows must be >= 1")
        shares = {
            "string_track_id_share": self.string_track_id_share,
            "foreign_share": self.foreign_share,
            "scheduled_share": self.scheduled_share,
            "in_progress_share": self.in_progress_share,
            "not_started_share": self.not_started_share,
            "unknown_errorcode_share": self.unknown_errorcode_share,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if self.in_progress_share + self.not_started_share > 1.0:
            raise ValueError("in_progress_share + not_started_share must not exceed 1")


@dataclass(frozen=True, slots=True)
class TransactionPlan:
    """Everything about one transaction that its rows share."""

    index: int
    transaction_id: int
    delivery_track_id: str
    create_date: datetime
    start_date: datetime
    sms_count: int
    progress: Progress
    size: int
    first_track_id: int
    track_stride: int


def _stream(settings: GeneratorSettings, index: int, purpose: str) -> random.Random:
    # String seeds are hashed with SHA-512 (not Python's salted hash): stable
    # across processes and Python versions.
    return random.Random(f"organik-fake/{settings.seed}/{index}/{purpose}")


def _pick(rng: random.Random, choices: Sequence[int]) -> int:
    return choices[int(rng.random() * len(choices))]


def _between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``."""
    return low + int(rng.random() * (high - low + 1))


def _transaction_size(rng: random.Random, cap: int) -> int:
    # Heavy-tailed: most sends go to a handful of numbers, a few go to
    # thousands (a campaign), which is what makes batching interesting.
    u = rng.random()
    if u < 0.65:
        size = _between(rng, 1, 20)
    elif u < 0.88:
        size = _between(rng, 21, 300)
    elif u < 0.97:
        size = _between(rng, 301, 2_000)
    else:
        size = _between(rng, 2_001, 5_000)
    return min(size, cap)


def plan_transactions(settings: GeneratorSettings) -> list[TransactionPlan]:
    """Draw the transactions of a dataset, in order of creation."""
    rng = _stream(settings, -1, "plan")
    plans: list[TransactionPlan] = []
    remaining = settings.rows
    transaction_id = _FIRST_TRANSACTION_ID
    track_cursor = _FIRST_GSM_TRACK_ID
    created = _EPOCH
    while remaining > 0:
        index = len(plans)
        size = min(_transaction_size(rng, settings.max_transaction_rows), remaining)
        remaining -= size
        if index:
            transaction_id += _between(rng, 1, 5_000)
            created += timedelta(seconds=_between(rng, 60, 12 * 3600))
        delivery_track_id = f"{rng.getrandbits(120):030x}"
        u = rng.random()
        if u < settings.not_started_share:
            progress = Progress.NOT_STARTED
        elif u < settings.not_started_share + settings.in_progress_share:
            progress = Progress.IN_PROGRESS
        else:
            progress = Progress.DONE
        if progress is Progress.NOT_STARTED or rng.random() < settings.scheduled_share:
            # A scheduled send starts later, at a round hour (often midnight).
            day = created.replace(hour=0, minute=0, second=0) + timedelta(days=_between(rng, 1, 30))
            start = day + timedelta(hours=_pick(rng, (0, 0, 0, 9, 10, 12, 18)))
        else:
            start = created
        u = rng.random()
        sms_count = 1 if u < 0.7 else 2 if u < 0.9 else 3 if u < 0.97 else _between(rng, 4, 6)
        first_track_id = track_cursor + _between(rng, 1, 50_000)
        stride = _between(rng, 1, 3)
        track_cursor = first_track_id + size * stride
        plans.append(
            TransactionPlan(
                index=index,
                transaction_id=transaction_id,
                delivery_track_id=delivery_track_id,
                create_date=created,
                start_date=start,
                sms_count=sms_count,
                progress=progress,
                size=size,
                first_track_id=first_track_id,
                track_stride=stride,
            )
        )
    return plans


def track_ids(settings: GeneratorSettings, plan: TransactionPlan) -> list[int | str]:
    """The ``gsm_track_id`` of each row of a transaction.

    Integers rising with a per-transaction stride (other customers' sends take
    the IDs in between), and a share in the ``sendsms`` string form such as
    ``"16502030-4730-63032793"``. Cheap on purpose: the index of a big
    dataset is built from these without drawing the rest of the rows.
    """
    rng = _stream(settings, plan.index, "track")
    share = settings.string_track_id_share
    prefix = f"{plan.transaction_id % 100_000_000:08d}-"
    ids: list[int | str] = []
    track = plan.first_track_id
    for _ in range(plan.size):
        if rng.random() < share:
            ids.append(f"{prefix}{int(rng.random() * 10_000):04d}-{track % 100_000_000:08d}")
        else:
            ids.append(track)
        track += plan.track_stride
    return ids


def _domestic_gsm(rng: random.Random) -> int:
    return 905_000_000_000 + int(rng.random() * 1_000_000_000)


def _foreign_gsm(rng: random.Random) -> int:
    code, digits = _FOREIGN_PLANS[int(rng.random() * len(_FOREIGN_PLANS))]
    low = 10 ** (digits - 1)
    return int(f"{code}{low + int(rng.random() * 9 * low)}")


def regular_numbers(settings: GeneratorSettings) -> list[int]:
    """Numbers that get SMS again and again, so a GSM recurs across sends."""
    rng = _stream(settings, -1, "regulars")
    return [_domestic_gsm(rng) for _ in range(200)]


def _date(value: datetime) -> str:
    # str() of a datetime without microseconds is exactly "YYYY-MM-DD HH:MM:SS".
    return str(value)


def generate_rows(
    settings: GeneratorSettings,
    plan: TransactionPlan,
    regulars: list[int] | None = None,
) -> list[WireRow]:
    """Draw the rows of one transaction, the same ones every time."""
    rng = _stream(settings, plan.index, "rows")
    numbers = regulars if regulars is not None else regular_numbers(settings)
    create = _date(plan.create_date)
    start = _date(plan.start_date)
    started = plan.start_date
    foreign_share = settings.foreign_share
    transaction_id = plan.transaction_id
    delivery_track_id = plan.delivery_track_id
    finish_dates: dict[int, str] = {}  # many rows finish the same number of seconds in
    rand = rng.random
    rows: list[WireRow] = []
    for track_id in track_ids(settings, plan):
        foreign = rand() < foreign_share
        if foreign:
            gsm = _foreign_gsm(rng)
        elif rand() < 0.15:
            gsm = _pick(rng, numbers)
        else:
            gsm = 905_000_000_000 + int(rand() * 1_000_000_000)
        status, errorcode, finish = _outcome(rng, settings, plan, foreign)
        finish_date = None
        if finish is not None:
            finish_date = finish_dates.get(finish)
            if finish_date is None:
                finish_date = finish_dates[finish] = _date(started + timedelta(seconds=finish))
        sms_count = 0 if status == 0 else plan.sms_count
        rows.append(
            # Positional, in WireRow's field order: this loop runs once a row.
            WireRow(
                gsm,
                transaction_id,
                track_id,
                delivery_track_id,
                create,
                start,
                finish_date,
                status,
                sms_count,
                0 if foreign else sms_count,
                int(foreign),
                errorcode,
            )
        )
    return rows


def final_outcome(
    rng: random.Random, foreign: bool, unknown_errorcode_share: float
) -> tuple[int, int, bool]:
    """``(status, errorcode, quick)`` of a row that is final: 2, 3 or 4.

    ``quick`` is true for an invalid number (the operator refuses it at once)
    and false for a delivery or a time-out. Foreign numbers fail more often.
    """
    u = rng.random()
    invalid, timed_out = (0.08, 0.2) if foreign else (0.04, 0.1)
    if u < invalid or u < timed_out:
        table: Sequence[int] = INVALID_NUMBER_CODES if u < invalid else TIMED_OUT_CODES
        if rng.random() < unknown_errorcode_share:
            table = _UNKNOWN_CODES
        return (3, _pick(rng, table), True) if u < invalid else (4, _pick(rng, table), False)
    return 2, 0, False


def _outcome(
    rng: random.Random, settings: GeneratorSettings, plan: TransactionPlan, foreign: bool
) -> tuple[int, int, int | None]:
    """``(status, errorcode, seconds from start to finish or None)`` of one row."""
    if plan.progress is Progress.NOT_STARTED:
        return 0, 0, None
    if plan.progress is Progress.IN_PROGRESS:
        u = rng.random()
        if u < 0.15:
            return 0, 0, None
        if u < 0.55:
            return 1, 0, None
    status, errorcode, _ = final_outcome(rng, foreign, settings.unknown_errorcode_share)
    if status == 3:
        return 3, errorcode, _between(rng, 1, 60)
    if status == 4:
        return 4, errorcode, _between(rng, 3600, 48 * 3600)
    # Delivered: most within minutes, a long tail up to two hours.
    return 2, 0, 2 + int(rng.random() ** 4 * 7_200)
