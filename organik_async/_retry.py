"""When to try a request again, and how long to wait first.

The report request is a read, so repeating it is always safe. What is worth
repeating is what a later attempt can fix: the network, an overloaded or
restarting server, and the provider saying "slow down". Everything else
(a bad key, a bad body) fails the same way every time and is raised at once.
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime
from typing import Final

import anyio
import msgspec

from ._exceptions import APIError, HTTPStatusError, OrganikError, RateLimitError, TransportError

__all__ = ["RETRYABLE_API_CODES", "RETRYABLE_STATUS_CODES", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUS_CODES: Final = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_API_CODES: Final = frozenset({84, 93, 94, 95})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Retry settings: how many more attempts, and the backoff curve.

    The wait before retry ``n`` (1-based) is ``backoff_base * 2 ** (n - 1)``,
    capped at ``backoff_max``, then scaled by a random factor in [0.5, 1] so
    that many clients retrying together do not stampede. A ``Retry-After``
    from the server replaces that wait, unless it is longer than
    ``max_retry_after``: then waiting is not worth it and the error is raised
    at once. Set ``backoff_base=0`` to make every computed wait zero (tests).
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.max_retry_after < 0:
            raise ValueError("backoff_base, backoff_max and max_retry_after must be >= 0")

    def backoff(self, retry: int) -> float:
        """The computed wait, in seconds, before retry number ``retry`` (1-based)."""
        # 2.0 ** 1024 overflows (OverflowError); past 2 ** 1023 the cap has long won.
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(retry - 1, 1023))
        return ceiling * (0.5 + random.random() / 2)  # jitter: not a secret

    def delay_for(self, error: OrganikError, retry: int) -> float | None:
        """How long to wait before retrying after ``error``; ``None``: do not retry."""
        if retry > self.max_retries or not is_retryable(error):
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None:
            return self.backoff(retry)
        if retry_after > self.max_retry_after:
            return None
        return float(retry_after)


def is_retryable(error: OrganikError) -> bool:
    """Whether another attempt could succeed where this one failed.

    When the provider's envelope names an error code, that code decides, whatever
    the HTTP status it came with: a bad key (99) or a bad body (96, 97) sent
    with a 500 or a 503 fails the same way every time.
    """
    if isinstance(error, TransportError | RateLimitError):
        return True
    if isinstance(error, APIError):
        if error.code is not None:
            return error.code in RETRYABLE_API_CODES
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


async def sleep(seconds: float) -> None:
    """Wait before a retry. One indirection, so tests can record waits instead."""
    await anyio.sleep(seconds)
