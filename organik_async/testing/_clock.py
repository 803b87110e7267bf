"""The simulator's sense of time: the provider's local time, real or driven by a test.

The provider writes every date in Turkish local time (``Europe/Istanbul``) without a zone. The
simulator reads "now" from a clock: a callable returning a naive ``datetime`` in that local time. By
default it is the real time; [`ManualClock`][organik_async.testing.ManualClock] is a clock a test
moves by hand, so that what depends on time (the ``time`` of an error answer, pending rows becoming
final) happens exactly when the test says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["PROVIDER_TZ", "Clock", "Delay", "ManualClock", "check_delay", "provider_now"]


def _provider_zone() -> tzinfo:
    try:
        return ZoneInfo("Europe/Istanbul")
    except ZoneInfoNotFoundError:  # no system zone data and no tzdata package
        # Exact for every date since September 2016: Turkey stays on UTC+03:00.
        return timezone(timedelta(hours=3), "+03")


PROVIDER_TZ: Final = _provider_zone()
"""The provider's local time zone, ``Europe/Istanbul`` (a fixed UTC+03:00 when
no zone data is installed, which is exact for every date since 2016)."""

Clock = Callable[[], datetime]
"""A clock: returns "now" as a naive ``datetime`` in the provider's local time."""

Delay = float | tuple[float, float]
"""Seconds: fixed, or uniform in ``(low, high)``."""


def check_delay(delay: Delay, name: str) -> Delay:
    """A validated delay (``ValueError`` naming ``name`` otherwise)."""
    if isinstance(delay, tuple):
        if len(delay) != 2 or not all(_is_seconds(value) for value in delay):
            raise ValueError(f"{name} as a range is (low, high) in seconds, got {delay!r}")
        low, high = delay
        if not 0.0 <= low <= high:
            raise ValueError(f"{name} as a range must be 0 <= low <= high, got {delay!r}")
        return (float(low), float(high))
    if not _is_seconds(delay) or delay < 0:
        raise ValueError(f"{name} must be seconds >= 0 or a (low, high) range, got {delay!r}")
    return float(delay)


def _is_seconds(value: object) -> bool:
    # A number of seconds, not a bool, not NaN (the one value unequal to itself).
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def provider_now() -> datetime:
    """The real time now, in the provider's local time, to the second, without a zone."""
    return datetime.now(PROVIDER_TZ).replace(tzinfo=None, microsecond=0)


class ManualClock:
    """A clock that moves only when told: ``clock.advance(60)``.

    Give it to [`FakeOrganikAPI`][organik_async.testing.FakeOrganikAPI] as ``clock=``;
    calling it returns the current time. It never goes backwards.

    Args:
        start: where it starts: a naive ``datetime`` in the provider's local time (an aware
            one is converted to it); by default 2024-01-01 12:00:00, so that answers are the
            same on every run.
    """

    __slots__ = ("_now",)

    def __init__(self, start: datetime = datetime(2024, 1, 1, 12, 0, 0)) -> None:
        if start.tzinfo is not None:
            start = start.astimezone(PROVIDER_TZ).replace(tzinfo=None)
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat(sep=' ')})"

    def now(self) -> datetime:
        """The current time, the same as calling the clock.

        Returns:
            A naive ``datetime`` in the provider's local time.
        """
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the clock forward.

        Args:
            seconds: how far, in seconds or as a ``timedelta``.

        Returns:
            The new time.

        Raises:
            ValueError: a negative step: the provider's time does not run backwards, and
                rows that became final stay final.
        """
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError(f"a clock only moves forward, got {seconds!r}")
        self._now += step
        return self._now
