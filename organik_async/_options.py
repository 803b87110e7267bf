"""A client's settings and a call's overrides, validated in one place.

The constructor, [`OrganikClient.with_options()`][organik_async.OrganikClient.with_options] and
every per-call override go through `Settings` (a frozen Struct whose ``__post_init__`` checks every
field), so a value refused by the constructor is refused the same way everywhere, with a
``ValueError`` naming the option. Nothing falls back silently: an override given is an override
used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypedDict

import httpx
import msgspec

from ._models import BatchSizes, Format, Progress
from ._retry import RetryPolicy

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "CallOptions",
    "SettingChanges",
    "Settings",
    "check_positive_int",
    "check_positive_number",
]

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=180.0, write=30.0, pool=60.0)
"""The client's ``timeout`` by default: connect fails fast; read waits as long as the
provider's own PHP sample does, since a big report takes time."""
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
DEFAULT_ATTEMPT_TIMEOUT: Final = 300.0
"""httpx's timeouts are per operation: a server trickling a byte every few seconds
never trips them. This bounds one attempt from start to last byte."""
_FORMATS: Final = ("json", "xml")
_RETRY_FIELDS: Final = frozenset(RetryPolicy.__struct_fields__)


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an ``int >= 1``, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1: {value!r}")
    return value


def check_positive_number(name: str, value: object) -> float:
    """``value`` if it is a real number > 0 (not a bool, not NaN), else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number: {value!r}")
    return float(value)


def _check_format(name: str, value: object) -> None:
    if value not in _FORMATS:
        raise ValueError(f"{name} must be 'json' or 'xml': {value!r}")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about a request that may differ between two views of one client.

    ``response_format=None`` means "the same as ``request_format``".
    """

    request_format: Format = "json"
    response_format: Format | None = None
    timeout: httpx.Timeout = DEFAULT_TIMEOUT
    retry: RetryPolicy = RetryPolicy()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    batch_sizes: BatchSizes = BatchSizes()
    max_concurrency: int = 8
    attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT
    unreachable_after: int = 5

    def __post_init__(self) -> None:
        _check_format("request_format", self.request_format)
        if self.response_format is not None:
            _check_format("response_format", self.response_format)
        if not isinstance(self.timeout, httpx.Timeout):
            raise ValueError(f"timeout must be a number or an httpx.Timeout: {self.timeout!r}")
        check_positive_int("max_response_bytes", self.max_response_bytes)
        check_positive_int("max_concurrency", self.max_concurrency)
        check_positive_int("unreachable_after", self.unreachable_after)
        if self.attempt_timeout is not None:
            check_positive_number("attempt_timeout", self.attempt_timeout)

    @property
    def answer_format(self) -> Format:
        """The format answers come in."""
        return self.request_format if self.response_format is None else self.response_format

    def evolve(self, changes: Mapping[str, Any]) -> Settings:
        """A copy with ``changes`` applied ([`SettingChanges`][organik_async.SettingChanges]'
        names), validated."""
        unknown = sorted(set(changes) - _CHANGEABLE)
        if unknown:
            raise TypeError(f"unexpected option(s): {', '.join(unknown)}")
        fields = {k: v for k, v in changes.items() if k not in _RETRY_FIELDS}
        retry_changes = {k: v for k, v in changes.items() if k in _RETRY_FIELDS}
        if retry_changes:
            base = fields.get("retry", self.retry)
            fields["retry"] = msgspec.structs.replace(base, **retry_changes)
        if "timeout" in fields and not isinstance(fields["timeout"], httpx.Timeout):
            given = fields["timeout"]  # None: no per-operation limit (attempt_timeout remains)
            seconds = None if given is None else check_positive_number("timeout", given)
            fields["timeout"] = httpx.Timeout(seconds)
        if "batch_sizes" in fields and not isinstance(fields["batch_sizes"], BatchSizes):
            fields["batch_sizes"] = BatchSizes.coerce(
                check_positive_int("batch_sizes", fields["batch_sizes"])
            )
        if "retry" in fields and not isinstance(fields["retry"], RetryPolicy):
            raise ValueError(f"retry must be a RetryPolicy: {fields['retry']!r}")
        return msgspec.structs.replace(self, **fields)


class SettingChanges(TypedDict, total=False):
    """What [`OrganikClient.with_options()`][organik_async.OrganikClient.with_options] can change:
    every setting that is not about the client's connections, shared budgets or telemetry (a
    view shares those), by the constructor's names. Values are validated as the constructor
    validates them."""

    request_format: Format
    """The format of request bodies: ``"json"`` or ``"xml"``."""
    response_format: Format | None
    """The format of answers; ``None``: the same as ``request_format``."""
    timeout: float | httpx.Timeout | None
    """httpx's timeouts: seconds for all four, an ``httpx.Timeout``, or ``None`` for no
    per-operation limit (``attempt_timeout`` still bounds an attempt)."""
    max_retries: int
    """More attempts after the first."""
    backoff_base: float
    """Seconds before the first retry, doubled for each one after."""
    backoff_max: float
    """The longest wait between attempts, in seconds."""
    max_retry_after: float
    """A longer ``Retry-After``, in seconds, is not waited for."""
    pushback_timeout: float | None
    """Seconds a request keeps retrying after the provider first refused it."""
    retry: RetryPolicy
    """A whole retry policy, instead of its five settings one by one (those given beside it
    change it)."""
    max_response_bytes: int
    """The largest answer read, in bytes."""
    batch_sizes: BatchSizes | int
    """IDs per request, per kind, or one int for every kind."""
    max_concurrency: int
    """Requests in flight per call."""
    attempt_timeout: float | None
    """Seconds one attempt may take, from sending to the last byte; ``None``: no bound."""
    unreachable_after: int
    """Failures to connect in a row after which a call stops."""


_CHANGEABLE: Final = frozenset(SettingChanges.__annotations__)


class CallOptions(TypedDict, total=False):
    """Per-call options, accepted as keywords by every report method.

    Overrides are validated as the constructor validates them: ``max_concurrency=0`` is a
    ``ValueError``, never a silent fallback; ``None`` keeps the client's setting.
    """

    batch_sizes: BatchSizes | int | None
    """Replaces the client's ``batch_sizes`` for this call."""
    max_concurrency: int | None
    """Replaces the client's ``max_concurrency`` for this call."""
    rate_limit: float | None
    """A requests-per-second budget of this call's own, on top of the client's shared one."""
    retry: RetryPolicy | None
    """Replaces the client's retry policy for this call."""
    fail_fast: bool
    """Stop at the first failed batch: requests in flight are cancelled, IDs not yet sent are
    reported ``"not_attempted"`` (default ``False``)."""
    dedupe: bool
    """Send each input ID once and yield each ``gsm_track_id`` once, at the cost of memory
    that grows with the input (default ``True``)."""
    on_progress: Callable[[Progress], object] | None
    """Called with a [`Progress`][organik_async.Progress] after every batch; an exception it
    raises stops the call and is raised as is."""
    timeout: float | None
    """Seconds for the whole call, retries included (what a web request needs): when they
    pass, requests in flight are cancelled and the call raises
    [`TimeoutExpiredError`][organik_async.TimeoutExpiredError] (one request) or
    [`BulkReportError`][organik_async.BulkReportError] (several; the rows that came are kept)."""


CALL_OPTIONS: Final = frozenset(CallOptions.__annotations__)
