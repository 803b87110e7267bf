"""What the simulator saw: counters for tests and benchmarks to assert on.

The bulk engine's tests rely on two of these: `Stats.peak_in_flight` (the most requests being
handled at one moment, to check a concurrency limit) and
[`Stats.max_ids_per_request`][organik_async.testing.Stats.max_ids_per_request] (to check a batch
size); `Stats.refused` counts the requests a concurrency cap turned away. Keys appear only redacted.

The counters are plain attributes updated from the event loop that serves
requests; reading them from another thread (a test beside a served app) is
safe under the GIL.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any

__all__ = ["Outcome", "Stats"]


class Outcome(enum.StrEnum):
    """How one request ended, as seen by the simulator."""

    OK = "ok"
    """Rows were sent (possibly slowly, under a trickle fault)."""
    NO_RECORDS = "no_records"
    """The provider's code 87: nothing matched."""
    API_ERROR = "api_error"
    """Any other ``result: false`` answer sent with HTTP 200."""
    REFUSED = "refused"
    """Code 93 at once: ``max_concurrent_requests`` requests were being handled."""
    HTTP_ERROR = "http_error"
    """A non-200 status: an injected status fault, 404 or 405."""
    TRUNCATED = "truncated"
    """A truncate fault sent part of the body, with a matching ``Content-Length``."""
    MALFORMED = "malformed"
    """A malformed fault sent the body with a syntax error in it."""
    DROPPED = "dropped"
    """The connection was dropped part-way through the body."""
    CLIENT_GONE = "client_gone"
    """The client went away before the (delayed or trickled) answer was sent
    (in-process: the client's task was cancelled)."""


class Stats:
    """Counters of everything served since creation or the last
    [`reset()`][organik_async.testing.Stats.reset]."""

    requests: int
    """Requests received; each got the next number, from 1."""
    in_flight: int
    """Requests being handled right now."""
    peak_in_flight: int
    """The most requests handled at one moment (refused ones included: they arrived)."""
    refused: int
    """Requests refused with code 93 because ``max_concurrent_requests`` were being handled."""
    admitted: int
    """Requests being worked on right now: `in_flight` less those being refused."""
    peak_admitted: int
    """The most requests worked on at one moment: never above ``max_concurrent_requests``."""
    outcomes: Counter[Outcome]
    """How requests ended (one outcome each)."""
    api_error_codes: Counter[int]
    """``result: false`` answers by code, 87 and injected ones included."""
    http_statuses: Counter[int]
    """Statuses sent, 200 included."""
    faults: Counter[str]
    """Faults applied, by [`Fault.name`][organik_async.testing.Fault.name]
    (``"status:503"``, ``"latency"``...)."""
    ids_per_request: Counter[int]
    """Histogram: number of IDs in a request (as sent) → how many requests.
    Requests refused by the concurrency cap are answered unread: not counted."""
    keys_seen: Counter[str]
    """Keys in request URLs, redacted by
    [`redact_key()`][organik_async.testing.redact_key] → count (cap refusals
    not counted)."""
    rows_served: int
    """Rows in answers that were sent whole or in part."""
    bytes_served: int
    """Body bytes sent."""
    latency_added: float
    """Seconds of injected latency, summed."""

    max_concurrent_requests: int | None
    """The cap `admitted` is counted against; ``None``: no cap (`as_dict()` then reports no
    admissions, which would only repeat `in_flight`)."""

    def __init__(self, *, max_concurrent_requests: int | None = None) -> None:
        self.max_concurrent_requests = max_concurrent_requests
        self.in_flight = 0
        self.admitted = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter and restart request numbering at 1.

        Requests in flight stay counted in `in_flight` (and
        `admitted`), and the peaks restart from them.
        """
        self.requests = 0
        self.refused = 0
        self.outcomes = Counter()
        self.api_error_codes = Counter()
        self.http_statuses = Counter()
        self.faults = Counter()
        self.ids_per_request = Counter()
        self.keys_seen = Counter()
        self.rows_served = 0
        self.bytes_served = 0
        self.latency_added = 0.0
        self.peak_in_flight = self.in_flight
        self.peak_admitted = self.admitted

    @property
    def max_ids_per_request(self) -> int:
        """The most IDs any one request carried (0 before the first)."""
        return max(self.ids_per_request, default=0)

    def as_dict(self) -> dict[str, Any]:
        """Every counter, for a JSON report.

        Returns:
            The counters by name, as plain values (counters' keys as strings), with
                ``max_ids_per_request`` too; ``admitted`` and ``peak_admitted`` are
                ``None`` without a concurrency cap.
        """
        capped = self.max_concurrent_requests is not None
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "max_concurrent_requests": self.max_concurrent_requests,
            "refused": self.refused,
            "admitted": self.admitted if capped else None,
            "peak_admitted": self.peak_admitted if capped else None,
            "outcomes": {str(k): v for k, v in sorted(self.outcomes.items())},
            "api_error_codes": {str(k): v for k, v in sorted(self.api_error_codes.items())},
            "http_statuses": {str(k): v for k, v in sorted(self.http_statuses.items())},
            "faults": dict(sorted(self.faults.items())),
            "max_ids_per_request": self.max_ids_per_request,
            "ids_per_request": {str(k): v for k, v in sorted(self.ids_per_request.items())},
            "keys_seen": dict(sorted(self.keys_seen.items())),
            "rows_served": self.rows_served,
            "bytes_served": self.bytes_served,
            "latency_added": round(self.latency_added, 6),
        }

    def __repr__(self) -> str:
        return (
            f"Stats(requests={self.requests}, peak_in_flight={self.peak_in_flight}, "
            f"refused={self.refused}, "
            f"max_ids_per_request={self.max_ids_per_request}, rows_served={self.rows_served}, "
            f"outcomes={dict(self.outcomes)})"
        )

    # -- updated by the app ----------------------------------------------------

    def begin(self) -> int:
        """Count a request that arrived (the simulator's own bookkeeping).

        Returns:
            The request's number, from 1 since the last reset.
        """
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return self.requests

    def end(self) -> None:
        """A request is done (whatever happened to it)."""
        self.in_flight -= 1

    def admit(self) -> None:
        """A request got past the concurrency cap: it is being worked on."""
        self.admitted += 1
        self.peak_admitted = max(self.peak_admitted, self.admitted)

    def release(self) -> None:
        """An admitted request is done."""
        self.admitted -= 1
