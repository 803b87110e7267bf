"""The rows the simulator answers from: storage, lookup and the encoded cache.

Rows are grouped by transaction (more exactly by ``(transaction_id,
delivery_track_id)``, which is one group per send for the provider's data).
Every group has a global row offset, so a row is known by one integer. The
lookups are dictionaries from each kind of ID to groups or rows, so finding
rows costs O(1) per requested ID whatever the size of the dataset.

Encoded rows are cached per group and per row style (format, and whether
``errorcode`` is written), one byte string per group (see
`Block`): a whole transaction is then a single slice and a
response a single join. When time passes (a `Timeline`),
a group with pending rows is encoded again only when one of its rows has
changed since it was last encoded; every kind of ID reads the same evolved
block.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from .._models import DetailedReport, Format
from ._clock import PROVIDER_TZ
from ._generate import (
    GeneratorSettings,
    Progress,
    TransactionPlan,
    generate_rows,
    plan_transactions,
    regular_numbers,
    track_ids,
)
from ._timeline import Moment, Schedule, Timeline
from ._wire import SEPARATOR, Block, RowStyle, WireRow, encode_block

__all__ = ["Dataset", "IdKey", "Span", "normalize_id"]

_TIMELINES_KEPT = 8
"""Simulators sharing one dataset whose schedules are kept (the latest ones)."""

IdKey = int | str
"""A looked-up ID: an ``int`` when it is all digits, else the stripped string."""


def normalize_id(value: int | str) -> IdKey:
    """How the simulator compares IDs: ``" 42 "``, ``"42"`` and ``42`` are one ID.

    Anything not all digits (a string-form gsm_track_id) stays a string.
    """
    if isinstance(value, int):
        return value
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() else text


@dataclass(frozen=True, slots=True)
class _Group:
    transaction_id: int
    delivery_track_id: str | None
    base: int
    size: int


class _RowSource(Protocol):
    def rows(self, group: int) -> list[WireRow]: ...

    def track_ids(self, group: int) -> list[int | str]: ...

    def may_be_pending(self, group: int) -> bool: ...


class _StoredRows:
    """Rows a user loaded: kept as encoded-ready wire rows."""

    def __init__(self, groups: list[list[WireRow]]) -> None:
        self._groups = groups

    def rows(self, group: int) -> list[WireRow]:
        return self._groups[group]

    def track_ids(self, group: int) -> list[int | str]:
        return [row.gsm_track_id for row in self._groups[group]]

    def may_be_pending(self, group: int) -> bool:
        return any(row.status in (0, 1) for row in self._groups[group])


class _GeneratedRows:
    """Rows drawn again from the seed whenever they are needed."""

    def __init__(self, settings: GeneratorSettings, plans: list[TransactionPlan]) -> None:
        self._settings = settings
        self._plans = plans
        self._regulars: list[int] | None = None

    def rows(self, group: int) -> list[WireRow]:
        if self._regulars is None:
            # One draw of the recurring numbers, shared by every transaction.
            self._regulars = regular_numbers(self._settings)
        return generate_rows(self._settings, self._plans[group], self._regulars)

    def track_ids(self, group: int) -> list[int | str]:
        return track_ids(self._settings, self._plans[group])

    def may_be_pending(self, group: int) -> bool:
        # Known from the plan: no need to draw the rows of a finished send.
        return self._plans[group].progress is not Progress.DONE


@dataclass(frozen=True, slots=True)
class Span:
    """Rows ``start..stop`` (exclusive) of one group."""

    group: int
    start: int
    stop: int


class Dataset:
    """The delivery-report rows a [`FakeOrganikAPI`][organik_async.testing.FakeOrganikAPI] answers
    from.

    Build one with [`generate()`][organik_async.testing.Dataset.generate] (seeded, deterministic,
    lazy: a million rows cost little until they are asked for) or
    [`from_rows()`][organik_async.testing.Dataset.from_rows] (your own rows, as
    [`DetailedReport`][organik_async.DetailedReport] or plain dicts). Iterating gives every row as a
    ``DetailedReport``; `expected()` gives the rows the provider would answer for some IDs, which is
    what a test compares a client's result with.
    """

    def __init__(self, groups: list[_Group], source: _RowSource, *, eager_index: bool) -> None:
        """Internal: use [`generate()`][organik_async.testing.Dataset.generate] or
        [`from_rows()`][organik_async.testing.Dataset.from_rows].

        Args:
            groups: the rows' groups (one per transaction and delivery track ID).
            source: where each group's rows come from.
            eager_index: build the index by ``gsm_track_id`` now, not on first use.
        """
        self._groups = groups
        self._source = source
        self._rows = groups[-1].base + groups[-1].size if groups else 0
        self._by_transaction: dict[int, list[int]] = {}
        self._by_delivery: dict[str, list[int]] = {}
        for index, group in enumerate(groups):
            self._by_transaction.setdefault(group.transaction_id, []).append(index)
            if group.delivery_track_id is not None:
                self._by_delivery.setdefault(group.delivery_track_id, []).append(index)
        self._by_track: dict[IdKey, int] | None = None
        self._row_group = array("I")
        self._blocks: dict[RowStyle, list[Block | None]] = {}
        # Per timeline: each group's schedule (None: no pending rows), drawn once.
        self._schedules: dict[Timeline, dict[int, Schedule | None]] = {}
        # The latest evolved encoding of a group: its (timeline, version) and block.
        self._evolved: dict[tuple[RowStyle, int], tuple[Timeline, int, Block]] = {}
        if eager_index:
            self._track_index()

    # -- construction ---------------------------------------------------------

    @classmethod
    def generate(
        cls,
        rows: int = 1_000,
        *,
        seed: int = 0,
        string_track_id_share: float = 0.0,
        foreign_share: float = 0.06,
        scheduled_share: float = 0.1,
        in_progress_share: float = 0.08,
        not_started_share: float = 0.04,
        unknown_errorcode_share: float = 0.03,
        max_transaction_rows: int = 5_000,
    ) -> Dataset:
        """A realistic dataset; the same seed gives the same rows.

        Transactions are heavy-tailed in size (most have a few numbers, a few
        have thousands). Rows mix delivered, pending (status 0/1, ``finish_date``
        null), invalid and timed-out numbers (3/4 with error codes from the
        provider's table, and some with codes it does not list), foreign numbers
        (``credit_amount`` 0), and scheduled sends (``start_date`` after
        ``create_date``). gsm_track_ids are integers, as in every report the
        provider documents, unless ``string_track_id_share`` says otherwise.

        Only the transactions are drawn now; rows are drawn when first asked
        for and encoded once per format (see [`warm()`][organik_async.testing.Dataset.warm]).

        Args:
            rows: how many rows.
            seed: the seed of every draw.
            string_track_id_share: the share of gsm_track_ids in the
                ``"16502030-4730-63032793"`` string form of the provider's ``sendsms``
                answers.
            foreign_share: the share of foreign numbers.
            scheduled_share: the share of transactions sent later than created.
            in_progress_share: the share of rows handed to the operator, not final yet
                (status 1).
            not_started_share: the share of rows not sent yet (status 0).
            unknown_errorcode_share: the share of failed rows whose ``errorcode`` the
                provider's table does not list.
            max_transaction_rows: the most rows one transaction has.

        Returns:
            The dataset.
        """
        settings = GeneratorSettings(
            rows=rows,
            seed=seed,
            string_track_id_share=string_track_id_share,
            foreign_share=foreign_share,
            scheduled_share=scheduled_share,
            in_progress_share=in_progress_share,
            not_started_share=not_started_share,
            unknown_errorcode_share=unknown_errorcode_share,
            max_transaction_rows=max_transaction_rows,
        )
        plans = plan_transactions(settings)
        groups: list[_Group] = []
        base = 0
        for plan in plans:
            groups.append(_Group(plan.transaction_id, plan.delivery_track_id, base, plan.size))
            base += plan.size
        return cls(groups, _GeneratedRows(settings, plans), eager_index=False)

    @classmethod
    def from_rows(cls, rows: Iterable[DetailedReport | Mapping[str, Any]]) -> Dataset:
        """A dataset of your own rows.

        Timezone-aware dates are converted to the provider's local time. Rows are grouped
        by ``(transaction_id, delivery_track_id)`` in order of first appearance;
        gsm_track_ids must be unique, as they are at the provider.

        Args:
            rows: each a [`DetailedReport`][organik_async.DetailedReport] or a dict with its
                fields (dates as ``datetime`` or ``"YYYY-MM-DD HH:MM:SS"``,
                ``is_foreign_gsm`` as bool or 0/1, ``errorcode`` and ``delivery_track_id``
                optional).

        Returns:
            The dataset.

        Raises:
            ValueError: a row that is not a valid report, or a gsm_track_id given twice.
        """
        grouped: dict[tuple[int, str | None], list[WireRow]] = {}
        for position, row in enumerate(rows):
            report = _as_report(row, position)
            wire = _to_wire(report)
            grouped.setdefault((wire.transaction_id, wire.delivery_track_id), []).append(wire)
        groups: list[_Group] = []
        stored: list[list[WireRow]] = []
        base = 0
        for (transaction_id, delivery_track_id), members in grouped.items():
            groups.append(_Group(transaction_id, delivery_track_id, base, len(members)))
            stored.append(members)
            base += len(members)
        return cls(groups, _StoredRows(stored), eager_index=True)

    # -- what is in it ----------------------------------------------------------

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[DetailedReport]:
        for index in range(len(self._groups)):
            yield from (_to_report(row) for row in self._source.rows(index))

    def __repr__(self) -> str:
        return f"Dataset(rows={self._rows}, transactions={len(self._by_transaction)})"

    @property
    def transaction_ids(self) -> list[int]:
        """Every transaction ID, in order of creation."""
        return list(self._by_transaction)

    @property
    def delivery_track_ids(self) -> list[str]:
        """Every delivery_track_id, in order of creation."""
        return list(self._by_delivery)

    def gsm_track_ids(self) -> Iterator[int | str]:
        """Every gsm_track_id.

        Returns:
            An iterator over them, in row order, as the rows carry them (int or str).
        """
        for index in range(len(self._groups)):
            yield from self._source.track_ids(index)

    def transaction_size(self, transaction_id: int) -> int:
        """How many rows a transaction has.

        Args:
            transaction_id: the transaction ID.

        Returns:
            Its rows; 0 for an unknown ID.
        """
        return sum(self._groups[g].size for g in self._by_transaction.get(transaction_id, ()))

    def expected(
        self,
        *,
        transaction_ids: Iterable[int | str] = (),
        delivery_track_ids: Iterable[int | str] = (),
        gsm_track_ids: Iterable[int | str] = (),
    ) -> list[DetailedReport]:
        """The rows the simulator answers for these IDs: the oracle for tests.

        It gives the rows as stored;
        [`FakeOrganikAPI.expected()`][organik_async.testing.FakeOrganikAPI.expected] gives them
        as a simulator answers at its clock's current time.

        Args:
            transaction_ids: transaction IDs.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs.

        Returns:
            The rows, in the simulator's order: what a correct client returns.
        """
        spans = self.select(
            [normalize_id(v) for v in transaction_ids],
            [str(v).strip() for v in delivery_track_ids],
            [normalize_id(v) for v in gsm_track_ids],
        )
        return self.reports(spans)

    # -- lookup and encoding (used by the app) --------------------------------------

    def select(
        self,
        transaction_ids: Sequence[IdKey],
        delivery_track_ids: Sequence[str],
        gsm_track_ids: Sequence[IdKey],
    ) -> list[Span]:
        """The distinct rows matching any of the IDs, in dataset order (the simulator's
        lookup).

        Like a SQL ``IN`` on each column joined with ``OR``: an ID asked for
        twice, or a row matched by two IDs, comes back once.

        Args:
            transaction_ids: transaction IDs, normalized.
            delivery_track_ids: delivery track IDs.
            gsm_track_ids: GSM track IDs, normalized.

        Returns:
            The rows, as runs of rows of one group.
        """
        whole: set[int] = set()
        for key in transaction_ids:
            if isinstance(key, int):
                whole.update(self._by_transaction.get(key, ()))
        for text in delivery_track_ids:
            whole.update(self._by_delivery.get(text, ()))
        spans = [Span(g, 0, self._groups[g].size) for g in whole]
        if gsm_track_ids:
            spans.extend(self._runs(gsm_track_ids, whole))
        spans.sort(key=lambda span: (span.group, span.start))
        return spans

    def _runs(self, gsm_track_ids: Sequence[IdKey], skip: set[int]) -> list[Span]:
        """The rows of these gsm_track_ids, as runs of consecutive rows.

        Rows in a group of ``skip`` are left out (they come with their whole
        group); neighbouring rows become one span, so one slice of the block.
        """
        index = self._track_index()
        found: set[int] = set()
        for track in gsm_track_ids:
            row = index.get(track)
            if row is not None:
                found.add(row)
        row_group = self._row_group
        runs: list[Span] = []
        run_group = run_first = run_last = -1
        for row in sorted(found):
            group = row_group[row]
            if group in skip:
                continue
            if group != run_group or row != run_last + 1:
                if run_group >= 0:
                    base = self._groups[run_group].base
                    runs.append(Span(run_group, run_first - base, run_last + 1 - base))
                run_group, run_first = group, row
            run_last = row
        if run_group >= 0:
            base = self._groups[run_group].base
            runs.append(Span(run_group, run_first - base, run_last + 1 - base))
        return runs

    def reports(self, spans: Sequence[Span], moment: Moment | None = None) -> list[DetailedReport]:
        """Rows as models.

        Args:
            spans: the rows, as [`select()`][organik_async.testing.Dataset.select] gives them.
            moment: the point of a timeline to see them at; ``None``: as stored.

        Returns:
            The rows, in the spans' order.
        """
        drawn: dict[int, list[WireRow]] = {}  # a group's rows, drawn once per call
        reports: list[DetailedReport] = []
        for span in spans:
            if span.group not in drawn:
                drawn[span.group] = self._rows_at(span.group, moment)
            reports.extend(_to_report(row) for row in drawn[span.group][span.start : span.stop])
        return reports

    def encoded(
        self, spans: Sequence[Span], style: Format | RowStyle, moment: Moment | None = None
    ) -> tuple[list[memoryview], int]:
        """Rows as the answer's bytes (the simulator's encoding, cached per format).

        Args:
            spans: the rows, as [`select()`][organik_async.testing.Dataset.select] gives them.
            style: a format (rows written as the provider's documents show them in it), or
                a row style naming whether rows carry ``errorcode``.
            moment: the point of a timeline to answer at; ``None``: the rows as stored.

        Returns:
            The encoded rows (zero-copy slices) and how many rows they hold.
        """
        if not isinstance(style, RowStyle):
            style = RowStyle.default(style)
        separator_length = len(SEPARATOR[style.fmt])
        blocks = self._blocks.get(style)
        if blocks is None:
            blocks = self._blocks[style] = [None] * len(self._groups)
        rows_of = self._source.rows
        may_be_pending = self._source.may_be_pending
        pieces: list[memoryview] = []
        count = 0
        for span in spans:
            group = span.group
            block = None
            if moment is not None and may_be_pending(group):
                block = self._evolved_block(group, style, moment)
            if block is None:
                block = blocks[group]
                if block is None:
                    block = blocks[group] = encode_block(rows_of(group), style)
            pieces.append(block.span(span.start, span.stop, separator_length))
            count += span.stop - span.start
        return pieces, count

    def warm(self, formats: Iterable[Format | RowStyle] = ("json", "xml")) -> None:
        """Draw and encode every row now, so that no request pays for it.

        A benchmark calls this before it starts the clock. Encoded rows take
        about their wire size in memory (an XML row is larger than a JSON one),
        so warm only the formats you will ask for.

        Args:
            formats: the formats (or row styles) to encode.
        """
        whole = [Span(g, 0, group.size) for g, group in enumerate(self._groups)]
        for style in formats:
            self.encoded(whole, style)
        self._track_index()

    def _evolved_block(self, group: int, style: RowStyle, moment: Moment) -> Block | None:
        """The group's rows as evolved at ``moment``; ``None`` while they are as stored."""
        schedule = self._schedule(moment.timeline, group)
        version = 0 if schedule is None else schedule.version(moment.elapsed)
        if schedule is None or not version:
            return None
        cached = self._evolved.get((style, group))
        if cached is not None and cached[0] == moment.timeline and cached[1] == version:
            return cached[2]
        block = encode_block(schedule.rows_at(moment.elapsed), style)
        self._evolved[style, group] = (moment.timeline, version, block)
        return block

    def _schedule(self, timeline: Timeline, group: int) -> Schedule | None:
        schedules = self._schedules.get(timeline)
        if schedules is None:
            if len(self._schedules) >= _TIMELINES_KEPT:  # simulators come and go
                # Over a snapshot of the keys: a served app may add one from its thread.
                oldest, *_ = tuple(self._schedules)
                self._schedules.pop(oldest, None)
            schedules = self._schedules[timeline] = {}
        if group not in schedules:
            schedules[group] = timeline.schedule(self._source.rows(group))
        return schedules[group]

    def _rows_at(self, group: int, moment: Moment | None) -> list[WireRow]:
        if moment is not None and self._source.may_be_pending(group):
            schedule = self._schedule(moment.timeline, group)
            if schedule is not None and schedule.version(moment.elapsed):
                return schedule.rows_at(moment.elapsed)
        return self._source.rows(group)

    def _track_index(self) -> dict[IdKey, int]:
        """gsm_track_id → global row number, built on first use.

        About 100 bytes a row, so a generated dataset pays for it only once a
        request asks for gsm_track_ids (or `warm()` is called).
        """
        if self._by_track is None:
            index: dict[IdKey, int] = {}
            row_group = array("I")
            for g, group in enumerate(self._groups):
                row_group.extend([g] * group.size)
                for offset, track in enumerate(self._source.track_ids(g)):
                    key = normalize_id(track)
                    if key in index:
                        raise ValueError(
                            f"gsm_track_id {track!r} appears twice; the provider's are unique"
                        )
                    index[key] = group.base + offset
            self._row_group = row_group
            self._by_track = index
        return self._by_track


def _as_report(row: DetailedReport | Mapping[str, Any], position: int) -> DetailedReport:
    if isinstance(row, DetailedReport):
        return row
    try:
        return msgspec.convert(row, DetailedReport, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"row {position} is not a valid DetailedReport: {exc}") from None


def _provider_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(PROVIDER_TZ).replace(tzinfo=None)
    return str(value.replace(microsecond=0))


def _to_wire(report: DetailedReport) -> WireRow:
    return WireRow(
        gsm=report.gsm,
        transaction_id=report.transaction_id,
        gsm_track_id=report.gsm_track_id,
        delivery_track_id=report.delivery_track_id,
        create_date=_provider_time(report.create_date),
        start_date=_provider_time(report.start_date),
        finish_date=None if report.finish_date is None else _provider_time(report.finish_date),
        status=report.status,
        sms_count=report.sms_count,
        credit_amount=report.credit_amount,
        is_foreign_gsm=int(report.is_foreign_gsm),
        errorcode=report.errorcode,
    )


def _to_report(row: WireRow) -> DetailedReport:
    return DetailedReport(
        gsm=row.gsm,
        transaction_id=row.transaction_id,
        gsm_track_id=row.gsm_track_id,
        delivery_track_id=row.delivery_track_id,
        create_date=datetime.fromisoformat(row.create_date),
        start_date=datetime.fromisoformat(row.start_date),
        finish_date=None if row.finish_date is None else datetime.fromisoformat(row.finish_date),
        status=row.status,
        sms_count=row.sms_count,
        credit_amount=row.credit_amount,
        is_foreign_gsm=bool(row.is_foreign_gsm),
        errorcode=row.errorcode,
    )
