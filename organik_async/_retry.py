"""When to try a request again, how long to wait first, and a switch for tests.

The report request is a read, so repeating it is always safe. What is worth
repeating is what a later attempt can fix: the network, an overloaded or
restarting server, and the provider saying "slow down". Everything else
(a bad key, a bad body) fails the same way every time and is raised at once.

[`RetryPolicy.delay_for()`][organik_async.RetryPolicy.delay_for] is a pure decision (error and
attempt in, a wait or "give up" out); `wait()` is the only place the client sleeps before a retry,
and [`set_testing()`][organik_async.set_testing] makes those waits instant for a whole test suite
(as ``stamina.set_testing`` does), with no patching of private code.
"""

import email.utils
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

import anyio
import anyio.lowlevel
import msgspec

from ._exceptions import (
    PROVIDER_CODES,
    AnsweredError,
    APIError,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    TransportError,
)

__all__ = [
    "RETRYABLE_STATUS_CODES",
    "RetryPolicy",
    "instant_retries",
    "is_retryable",
    "is_testing",
    "parse_retry_after",
    "set_testing",
    "wait",
]

RETRYABLE_STATUS_CODES: Final = frozenset({408, 429, 500, 502, 503, 504})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When to send a request again, and how long to wait first.

    Two budgets, because two different things go wrong:

    * **Faults** (a transport error, a timeout, a 5xx, a body that does not
      decode) spend ``max_retries``. The wait before retry ``n`` (1-based) is
      ``backoff_base * 2 ** (n - 1)``, capped at ``backoff_max``, then scaled
      by a random factor in [0.5, 1] so that many clients retrying together do
      not stampede.
    * **Refusals** (the provider's "slow down": code 93, HTTP 429, or a 503
      with ``Retry-After``) never do: the provider said "not now", not "no".
      They are retried until ``pushback_timeout`` seconds have passed since
      the request's first refusal (``None``: until the call's own
      ``timeout``, if any). While the adaptive concurrency limit is above one,
      lowering it is the wait; at its floor, each further refusal waits with
      exponential backoff and full jitter (a random wait between zero and
      ``backoff_base * 2 ** (n - 1)``, capped at ``backoff_max``), so that
      processes sharing one account fall out of step instead of refusing each
      other in lockstep.

    A ``Retry-After`` from the server replaces either wait, unless it is
    longer than ``max_retry_after``: then waiting is not worth it and the
    error is raised at once. Set ``backoff_base=0`` to make every computed
    wait zero.

    The client's ``max_retries``, ``backoff_base``, ``backoff_max``, ``max_retry_after``
    and ``pushback_timeout`` settings make one (`OrganikClient.retry`); pass one as
    ``retry=`` to [`with_options()`][organik_async.OrganikClient.with_options] or to a call.
    A negative value, or NaN, raises ``ValueError`` when the policy is built.
    """

    max_retries: int = 3
    """Retries after faults, per request (refusals do not count)."""
    backoff_base: float = 0.5
    """Seconds: the first backoff; it doubles with each retry."""
    backoff_max: float = 30.0
    """Seconds: no computed backoff is longer."""
    max_retry_after: float = 120.0
    """Seconds: a longer ``Retry-After`` is not waited for; the error is raised."""
    pushback_timeout: float | None = 600.0
    """Seconds a request keeps retrying after the provider first refused it
    (``None``: no limit but the call's ``timeout``)."""

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0: {self.max_retries!r}")
        for name in ("backoff_base", "backoff_max", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be a number >= 0: {value!r}")
        timeout = self.pushback_timeout
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ValueError(f"pushback_timeout must be a positive number or None: {timeout!r}")

    def backoff(self, retry: int, *, draw: float | None = None) -> float:
        """The computed wait before a retry, ``Retry-After`` aside.

        Args:
            retry: which retry, from 1.
            draw: the jitter's random number in [0, 1); drawn when omitted.

        Returns:
            Seconds: ``backoff_base * 2 ** (retry - 1)``, capped at ``backoff_max``, times
                ``0.5 + draw / 2``.
        """
        if draw is None:
            draw = random.random()  # jitter: not a secret
        return self._ceiling(retry) * (0.5 + draw / 2)

    def _ceiling(self, retry: int) -> float:
        # 2.0 ** 1024 overflows (OverflowError); past 2 ** 1023 the cap has long won.
        return min(self.backoff_max, self.backoff_base * 2.0 ** min(retry - 1, 1023))

    def delay_for(
        self, error: OrganikError, retry: int, *, draw: float | None = None
    ) -> float | None:
        """The decision after a fault (not a refusal): wait and retry, or give up.

        A pure function of its arguments (and of ``draw``): it sleeps and sends nothing.

        Args:
            error: what the attempt raised.
            retry: the number the next retry would have, from 1.
            draw: the jitter's random number in [0, 1); drawn when omitted.

        Returns:
            Seconds to wait before retrying (the server's ``Retry-After`` when it sent one,
                else [`backoff()`][organik_async.RetryPolicy.backoff]), or ``None`` to give
                up: the error is not retryable, the retries are used up, or the
                ``Retry-After`` is longer than ``max_retry_after``.
        """
        if retry > self.max_retries or not is_retryable(error):
            return None
        retry_after = error.retry_after if isinstance(error, AnsweredError) else None
        if retry_after is None:
            return self.backoff(retry, draw=draw)
        if retry_after > self.max_retry_after:
            return None
        return retry_after

    def pushback_delay(
        self,
        error: OrganikError,
        refused_for: float,
        at_floor: int,
        *,
        draw: float | None = None,
    ) -> float | None:
        """How long to wait before retrying a refused request; ``None``: give up.

        Args:
            error: the refusal just heard.
            refused_for: seconds since this request was first refused.
            at_floor: refusals in a row heard with the concurrency limit at its
                floor (0: the limit is still above one, and lowering it is the wait).
            draw: the jitter's random number in [0, 1) (drawn when omitted).

        Returns:
            The wait in seconds, or ``None`` when ``pushback_timeout`` would pass
                first or a ``Retry-After`` asks for more than ``max_retry_after``.
        """
        retry_after = error.retry_after if isinstance(error, AnsweredError) else None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = retry_after
        elif at_floor == 0:
            delay = 0.0
        else:
            if draw is None:
                draw = random.random()  # jitter: not a secret
            delay = self._ceiling(at_floor) * draw  # full jitter
        timeout = self.pushback_timeout
        if timeout is not None and refused_for + delay > timeout:
            return None
        return delay


def is_retryable(error: OrganikError) -> bool:
    """Whether another attempt could succeed where this one failed.

    When the provider's envelope names an error code, that code decides (see
    [`PROVIDER_CODES`][organik_async.PROVIDER_CODES]), whatever the HTTP status it came with: a bad
    key (99) or a bad body (96, 97) sent with a 500 or a 503 fails the same way every time.
    """
    if isinstance(error, TransportError | RateLimitError):
        return True
    if isinstance(error, APIError):
        if error.code is not None:
            entry = PROVIDER_CODES.get(error.code)
            return entry is not None and entry.retryable
        return error.status_code in RETRYABLE_STATUS_CODES
    if isinstance(error, HTTPStatusError):
        return error.status_code in RETRYABLE_STATUS_CODES
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date; else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # Overflow: a year of 20 digits
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- Waiting, and the test switch -------------------------------------------------------

_skipped: list[list[float]] = []

"""While testing: one list per active
[`instant_retries()`][organik_async.instant_retries] block (plus the
[`set_testing()`][organik_async.set_testing] one), each receiving the waits that were skipped."""
_testing = False


def set_testing(testing: bool) -> None:
    """Make every retry wait instant, or real again.

    For a user's test suite: retries still happen, with every decision and ``Retry-After`` honoured,
    but nobody waits. Put it in a ``conftest.py`` (``organik_async.set_testing(True)``), or use
    [`instant_retries()`][organik_async.instant_retries] for one block.

    Args:
        testing: ``True`` for instant waits, ``False`` for real ones.
    """
    global _testing
    _testing = testing


def is_testing() -> bool:
    """Whether retry waits are instant now.

    Returns:
        ``True`` after [`set_testing(True)`][organik_async.set_testing] or inside an
            [`instant_retries()`][organik_async.instant_retries] block.
    """
    return _testing or bool(_skipped)


@contextmanager
def instant_retries() -> Iterator[list[float]]:
    """Within the block, retry waits are instant.

    ```python
    with organik_async.instant_retries() as waits:
        await client.detailed_report(transaction_ids=ids)
    assert waits == [2.0]  # the Retry-After the server asked for
    ```

    Yields:
        The list of the waits skipped in the block, in seconds, filled as retries happen.
    """
    waits: list[float] = []
    _skipped.append(waits)
    try:
        yield waits
    finally:
        _skipped.remove(waits)


async def wait(seconds: float) -> None:
    """Wait before a retry: really, or (testing) not at all, but still yielding."""
    if not is_testing():
        await anyio.sleep(seconds)
        return
    for waits in _skipped:
        waits.append(seconds)
    await anyio.lowlevel.checkpoint()
