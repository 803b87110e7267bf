"""Time passing at the provider: pending rows become final.

A row with status 0 (not sent yet) or 1 (handed to the operator) is a
snapshot of a send in progress. At the provider it becomes final (2
delivered, 3 invalid number, 4 timed out) some time later. A
`Timeline` says when: each pending row gets its own delay, drawn from
the seed, counted in seconds from a start time on the simulator's clock. A row
not sent yet is first handed to the operator (status 1) part-way through its
delay.

Rows are evolved per transaction group, on demand: a group's
`Schedule` lists the moments at which any of its rows changes, so the
number of those moments already past (`Schedule.version()`) says whether
an encoded group is still current. Groups without pending rows, most of a
dataset, never get a schedule.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from ._clock import Delay
from ._generate import final_outcome
from ._wire import WireRow

__all__ = ["Moment", "Schedule", "Timeline"]


@dataclass(frozen=True, slots=True)
class Timeline:
    """When each pending row of a dataset becomes final.

    ``after`` is the delay of a row, counted from ``started`` (the clock's
    time when the simulator was built); ``seed`` draws each row's delay and
    its final status, the same ones whatever order rows are asked for in.
    """

    after: Delay
    seed: int
    started: datetime

    def moment(self, now: datetime) -> Moment:
        """The point of this timeline that the clock's ``now`` is at."""
        return Moment(self, max(0.0, (now - self.started).total_seconds()))

    def schedule(self, rows: Sequence[WireRow]) -> Schedule | None:
        """How one group's rows change, or ``None`` if none of them is pending."""
        pending = [i for i, row in enumerate(rows) if row.status in (0, 1)]
        if not pending:
            return None
        first = rows[0]
        rng = random.Random(
            f"organik-fake-timeline/{self.seed}/{first.transaction_id}/{first.delivery_track_id}"
        )
        # A send has one text: rows not sent yet will take as many parts as
        # those already sent (1 if none was).
        sms_count = max((row.sms_count for row in rows), default=0) or 1
        fates: list[_Fate] = []
        for index in pending:
            row = rows[index]
            final_at = self._draw(rng)
            handover_at = final_at * rng.random() if row.status == 0 else None
            status, errorcode, _ = final_outcome(rng, bool(row.is_foreign_gsm), 0.0)
            fates.append(_Fate(index, handover_at, final_at, status, errorcode))
        changes = sorted(
            at for fate in fates for at in (fate.handover_at, fate.final_at) if at is not None
        )
        return Schedule(self, rows, fates, changes, sms_count)

    def _draw(self, rng: random.Random) -> float:
        if isinstance(self.after, tuple):
            low, high = self.after
            return low + rng.random() * (high - low)
        return self.after


@dataclass(frozen=True, slots=True)
class Moment:
    """A point on a timeline: ``elapsed`` seconds after its start."""

    timeline: Timeline
    elapsed: float


@dataclass(frozen=True, slots=True)
class _Fate:
    index: int
    handover_at: float | None
    final_at: float
    status: int
    errorcode: int


class Schedule:
    """The changes of one group's pending rows over time.

    It keeps the group's rows as stored, so that evolving them again as time
    passes does not draw them again.
    """

    __slots__ = ("_changes", "_fates", "_rows", "_sms_count", "_timeline")

    def __init__(
        self,
        timeline: Timeline,
        rows: Sequence[WireRow],
        fates: list[_Fate],
        changes: list[float],
        sms_count: int,
    ) -> None:
        self._timeline = timeline
        self._rows = rows
        self._fates = fates
        self._changes = changes
        self._sms_count = sms_count

    def version(self, elapsed: float) -> int:
        """How many changes happened by ``elapsed``: 0 means the rows are as stored."""
        return bisect.bisect_right(self._changes, elapsed)

    def rows_at(self, elapsed: float) -> list[WireRow]:
        """The group's rows as they stand ``elapsed`` seconds into the timeline."""
        rows = self._rows
        evolved = list(rows)
        started = self._timeline.started
        for fate in self._fates:
            row = rows[fate.index]
            if elapsed >= fate.final_at:
                sms_count = row.sms_count or self._sms_count
                moment = str((started + timedelta(seconds=fate.final_at)).replace(microsecond=0))
                evolved[fate.index] = msgspec.structs.replace(
                    row,
                    status=fate.status,
                    errorcode=fate.errorcode,
                    # Never before the send started (string order is date order).
                    finish_date=max(moment, row.start_date),
                    sms_count=sms_count,
                    credit_amount=0 if row.is_foreign_gsm else sms_count,
                )
            elif fate.handover_at is not None and elapsed >= fate.handover_at:
                sms_count = row.sms_count or self._sms_count
                evolved[fate.index] = msgspec.structs.replace(
                    row,
                    status=1,
                    sms_count=sms_count,
                    credit_amount=0 if row.is_foreign_gsm else sms_count,
                )
        return evolved
