"""Faults on demand: declarative, scripted by request number or by chance.

A fault is a frozen value built with one of [`Fault`][organik_async.testing.Fault]'s constructors:

    Fault.status(503, on_requests={2, 3})        # the 2nd and 3rd request get HTTP 503
    Fault.provider_error(93, probability=0.1)    # one request in ten is rate-limited
    Fault.latency((0.05, 0.2))                   # every request waits 50-200 ms first

Which requests a fault hits is decided from the server's seed and the
request's number alone (requests are numbered from 1, in order of arrival,
since the last ``stats.reset()``), so a seed replays the same faults however
the requests interleave. Latencies add up; of the other faults, the first one
in the list that hits a request decides what happens to it.

Each kind of fault is a class that holds both its definition (its fields and their checks) and its
effect on an answer: [`Fault.rewrite()`][organik_async.testing.Fault.rewrite] changes the answer
before it is sent, [`Fault.send()`][organik_async.testing.Fault.send] sends it in its own way. The
app only asks the fault that hit a request to do its part.
"""

from __future__ import annotations

import http
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import anyio

from ._answer import Answer, Exchange
from ._clock import Delay
from ._clock import check_delay as _checked
from ._stats import Outcome
from ._wire import XML_DECLARATION

__all__ = [
    "Disconnect",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Latency",
    "Malformed",
    "ProviderError",
    "Status",
    "Trickle",
    "Truncate",
    "plan_faults",
    "request_random",
]

FaultKind = Literal[
    "latency", "status", "provider_error", "truncate", "malformed", "trickle", "disconnect"
]
"""The kinds of fault, one per [`Fault`][organik_async.testing.Fault] constructor
(`rate_limited()` makes a ``"status"`` fault)."""
RequestSet = frozenset[int] | range


def _requests(on_requests: Iterable[int] | None) -> RequestSet | None:
    if on_requests is None:
        return None
    if isinstance(on_requests, range):
        return on_requests
    numbers = frozenset(on_requests)
    if any(n < 1 for n in numbers):
        raise ValueError("request numbers start at 1")
    return numbers


def _check_probability(probability: float) -> float:
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
    return float(probability)


def _check_delay(delay: Delay) -> Delay:
    return _checked(delay, "a latency")


def _check_fraction(fraction: float) -> float:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    return float(fraction)


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of misbehaviour and the requests it hits.

    Build it with a constructor ([`latency()`][organik_async.testing.Fault.latency],
    [`status()`][organik_async.testing.Fault.status],
    [`rate_limited()`][organik_async.testing.Fault.rate_limited],
    [`provider_error()`][organik_async.testing.Fault.provider_error],
    [`truncate()`][organik_async.testing.Fault.truncate],
    [`malformed()`][organik_async.testing.Fault.malformed],
    [`trickle()`][organik_async.testing.Fault.trickle],
    [`disconnect()`][organik_async.testing.Fault.disconnect]) or parse the command line's form with
    [`parse()`][organik_async.testing.Fault.parse]. Every constructor takes ``on_requests`` (request
    numbers, from 1; a ``range`` works, also an open-ended one like ``range(10, 10**9)``) and
    ``probability`` (the chance that a request it could hit is hit); with neither it hits every
    request.

    Each constructor returns the subclass of its kind (`Status`,
    `Latency`...), which defines what the fault does to an answer.
    """

    kind: ClassVar[FaultKind]
    """The fault's kind, from its class."""
    adds_latency: ClassVar[bool] = False
    """Latencies add up; of the other faults only the first that hits acts."""
    sends_slowly: ClassVar[bool] = False
    """Its delivery takes time, during which the client may leave."""

    on_requests: RequestSet | None = None
    """The request numbers it may hit (from 1, since the last ``stats.reset()``); ``None``:
    every request."""
    probability: float = 1.0
    """The chance that a request it may hit is hit, from the server's seed and the request's
    number."""

    def __post_init__(self) -> None:
        if type(self) is Fault:
            raise TypeError(
                "build a fault with a constructor: Fault.status(503), Fault.latency(1)..."
            )

    # -- constructors ---------------------------------------------------------

    @classmethod
    def latency(
        cls,
        seconds: Delay,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Wait before answering.

        Args:
            seconds: a fixed time, or ``(low, high)`` for a uniform draw per request.
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Latency``.

        Raises:
            ValueError: a negative time or range, or a probability outside [0, 1].
        """
        return Latency(
            _requests(on_requests), _check_probability(probability), delay=_check_delay(seconds)
        )

    @classmethod
    def status(
        cls,
        status: int,
        *,
        retry_after: float | str | None = None,
        code: int | None = None,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Answer with an HTTP error status instead of the provider's answer.

        The body is the HTML page a proxy in front of the provider would send,
        or, with ``code``, the provider's ``result: false`` envelope with that
        API error code (so a client can check which of the two it reports).

        Args:
            status: the HTTP status, 400 to 599.
            retry_after: the ``Retry-After`` header: seconds, or an HTTP date as text;
                ``None`` for none.
            code: an API error code to put in the body, in the provider's envelope.
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Status``.

        Raises:
            ValueError: a status outside 400 to 599, or a probability outside [0, 1].
        """
        if not 400 <= status <= 599:
            raise ValueError(f"an error status is 400-599, got {status!r}")
        return Status(
            _requests(on_requests),
            _check_probability(probability),
            http_status=status,
            code=code,
            retry_after=retry_after,
        )

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | str | None = 1.0,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """HTTP 429, "too many requests".

        Args:
            retry_after: the ``Retry-After`` header: seconds, or an HTTP date as text;
                ``None`` for none.
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Status`` of 429.
        """
        return cls.status(
            429, retry_after=retry_after, on_requests=on_requests, probability=probability
        )

    @classmethod
    def provider_error(
        cls,
        code: int = 93,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """The provider refuses with an API error code, sent with HTTP 200 as it does.

        Args:
            code: the API error code (93 "too many requests", 94, 95...), worded as the
                provider words it.
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``ProviderError``.
        """
        return ProviderError(_requests(on_requests), _check_probability(probability), code=code)

    @classmethod
    def truncate(
        cls,
        fraction: float = 0.5,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Send only the start of the body, with a matching ``Content-Length``.

        The HTTP exchange is complete, the payload is not, so the client sees a decode
        error rather than a transport error.

        Args:
            fraction: the share of the body sent, in [0, 1).
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Truncate``.

        Raises:
            ValueError: a fraction outside [0, 1), or a probability outside [0, 1].
        """
        return Truncate(
            _requests(on_requests),
            _check_probability(probability),
            fraction=_check_fraction(fraction),
        )

    @classmethod
    def malformed(
        cls,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Send the whole answer with a syntax error injected near its start.

        Args:
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Malformed``.
        """
        return Malformed(_requests(on_requests), _check_probability(probability))

    @classmethod
    def trickle(
        cls,
        chunk_size: int = 64,
        delay: float = 0.05,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Send the body a few bytes at a time.

        Over TCP this trips a client's read timeout; in-process the transport buffers
        the body, so it only makes the answer slow.

        Args:
            chunk_size: bytes per chunk.
            delay: seconds between chunks.
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Trickle``.

        Raises:
            ValueError: a chunk size below 1, a negative delay, or a probability outside
                [0, 1].
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError(f"a trickle's delay must be seconds >= 0, got {delay!r}")
        return Trickle(
            _requests(on_requests),
            _check_probability(probability),
            delay=float(delay),
            chunk_size=chunk_size,
        )

    @classmethod
    def disconnect(
        cls,
        fraction: float = 0.5,
        *,
        on_requests: Iterable[int] | None = None,
        probability: float = 1.0,
    ) -> Fault:
        """Start the answer, send part of its body, then drop the connection.

        Args:
            fraction: the share of the body sent before the connection drops, in [0, 1).
            on_requests: the request numbers it may hit; ``None``: every request.
            probability: the chance that a request it may hit is hit.

        Returns:
            The fault: a ``Disconnect``.

        Raises:
            ValueError: a fraction outside [0, 1), or a probability outside [0, 1].
        """
        return Disconnect(
            _requests(on_requests),
            _check_probability(probability),
            fraction=_check_fraction(fraction),
        )

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Build a fault from the command line's form.

        Examples: ``latency:0.05``, ``latency:0.05:0.2``, ``status:503@2,3``,
        ``status:502:2`` (Retry-After 2), ``rate-limit:1.5%0.05``,
        ``provider:93%0.1``, ``truncate:0.3@4``, ``malformed@5``,
        ``trickle:128:0.1``, ``disconnect%0.02``.

        Args:
            spec: ``KIND[:ARG...][@REQUESTS][%PROBABILITY]``; ``REQUESTS`` is a comma list of
                numbers and ``A-B`` ranges, ``A-`` meaning "from A on".

        Returns:
            The fault, as its constructor builds it.

        Raises:
            ValueError: a spec that does not parse, naming it.
        """
        try:
            return _parse(spec)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"bad fault {spec!r}: {exc}") from None

    # -- which requests -----------------------------------------------------------

    @property
    def name(self) -> str:
        """How the fault is counted in ``stats.faults``."""
        return self.kind

    def hits(self, number: int, rng: random.Random) -> bool:
        """Whether this fault hits a request (the simulator asks, request by request).

        Args:
            number: the request's number, from 1.
            rng: the request's own random stream (from the server's seed and the number).

        Returns:
            ``True`` when the request is one it may hit and the draw says so.
        """
        if self.on_requests is not None and number not in self.on_requests:
            return False
        return self.probability >= 1.0 or rng.random() < self.probability

    # -- its effect ------------------------------------------------------------------

    def seconds(self, rng: random.Random) -> float:
        """The latency it adds to a request it hits (none but a ``Latency``'s).

        Args:
            rng: the request's own random stream.

        Returns:
            Seconds.
        """
        return 0.0

    def rewrite(self, answer: Answer, exchange: Exchange) -> Answer:
        """What the fault does to an answer before it is sent.

        Args:
            answer: the provider's answer to the request.
            exchange: the request being answered.

        Returns:
            The answer to send instead (``answer`` itself by default).
        """
        return answer

    async def send(self, answer: Answer, exchange: Exchange) -> Outcome:
        """Send the (rewritten) answer, in the fault's own way.

        Args:
            answer: what to send.
            exchange: the request being answered.

        Returns:
            How the request ended.
        """
        return await exchange.send_whole(answer)


@dataclass(frozen=True, slots=True)
class Latency(Fault):
    """The answer, later: ``delay`` seconds, or uniform in ``(low, high)``."""

    kind: ClassVar[FaultKind] = "latency"
    adds_latency: ClassVar[bool] = True

    delay: Delay = 0.0

    def seconds(self, rng: random.Random) -> float:
        if isinstance(self.delay, tuple):
            low, high = self.delay
            return low + rng.random() * (high - low)
        return self.delay


@dataclass(frozen=True, slots=True)
class Status(Fault):
    """An HTTP error status: a proxy's HTML page, or the provider's envelope with ``code``."""

    kind: ClassVar[FaultKind] = "status"

    http_status: int = 503
    code: int | None = None
    retry_after: float | str | None = None

    @property
    def name(self) -> str:
        return f"status:{self.http_status}"

    def rewrite(self, answer: Answer, exchange: Exchange) -> Answer:
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if self.retry_after is not None:
            headers = ((b"retry-after", _retry_after(self.retry_after)),)
        if self.code is not None:
            refusal = exchange.refusal(self.code, self.http_status)
            return replace(refusal, outcome=Outcome.HTTP_ERROR, headers=headers)
        return Answer(
            self.http_status,
            b"text/html",
            _proxy_page(self.http_status),
            Outcome.HTTP_ERROR,
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class ProviderError(Fault):
    """The provider's ``result: false`` envelope with API code ``code``, and HTTP 200."""

    kind: ClassVar[FaultKind] = "provider_error"

    code: int = 93

    @property
    def name(self) -> str:
        return f"provider_error:{self.code}"

    def rewrite(self, answer: Answer, exchange: Exchange) -> Answer:
        return exchange.refusal(self.code)


@dataclass(frozen=True, slots=True)
class Truncate(Fault):
    """The first ``fraction`` of the body, with a matching ``Content-Length``."""

    kind: ClassVar[FaultKind] = "truncate"

    fraction: float = 0.5

    def rewrite(self, answer: Answer, exchange: Exchange) -> Answer:
        body = answer.body[: int(len(answer.body) * self.fraction)]
        return replace(answer, body=body, outcome=Outcome.TRUNCATED)


@dataclass(frozen=True, slots=True)
class Malformed(Fault):
    """The whole body with a syntax error near its start."""

    kind: ClassVar[FaultKind] = "malformed"

    def rewrite(self, answer: Answer, exchange: Exchange) -> Answer:
        body = answer.body
        if body.startswith(b"{"):
            body = b"{," + body[1:]
        elif body.startswith(XML_DECLARATION):
            body = XML_DECLARATION + b"<oops></item>\n" + body[len(XML_DECLARATION) :]
        else:
            body = b"\x00<oops>" + body
        return replace(answer, body=body, outcome=Outcome.MALFORMED)


@dataclass(frozen=True, slots=True)
class Trickle(Fault):
    """The body ``chunk_size`` bytes at a time, ``delay`` seconds apart."""

    kind: ClassVar[FaultKind] = "trickle"
    sends_slowly: ClassVar[bool] = True

    delay: float = 0.05
    chunk_size: int = 64

    async def send(self, answer: Answer, exchange: Exchange) -> Outcome:
        body = answer.body
        await exchange.start(answer, len(body))
        if not body:
            await exchange.body(b"")
        for start in range(0, len(body), self.chunk_size):
            if start:
                await anyio.sleep(self.delay)
            end = start + self.chunk_size
            await exchange.body(body[start:end], more=end < len(body))
        return answer.outcome


@dataclass(frozen=True, slots=True)
class Disconnect(Fault):
    """The start of the answer, ``fraction`` of its body, then a dropped connection."""

    kind: ClassVar[FaultKind] = "disconnect"

    fraction: float = 0.5

    async def send(self, answer: Answer, exchange: Exchange) -> Outcome:
        await exchange.start(answer, len(answer.body))
        await exchange.body(answer.body[: int(len(answer.body) * self.fraction)], more=True)
        # Returning with the body unfinished: the server drops the connection.
        return Outcome.DROPPED


def _proxy_page(status: int) -> bytes:
    title = f"{status} {http.HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _retry_after(value: float | str) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1")
    return (str(int(value)) if float(value).is_integer() else str(value)).encode()


@dataclass(slots=True)
class FaultPlan:
    """What the faults do to one request: a delay, and at most one other fault."""

    latency: float = 0.0
    action: Fault | None = None
    applied: list[str] = field(default_factory=list)


def request_random(seed: int, number: int) -> random.Random:
    """The random stream of request ``number``: depends on nothing else."""
    return random.Random(f"organik-fake-request/{seed}/{number}")


def plan_faults(faults: Sequence[Fault], number: int, seed: int) -> FaultPlan:
    """Decide the faults of request ``number``."""
    plan = FaultPlan()
    if not faults:
        return plan
    rng = request_random(seed, number)
    for fault in faults:
        if fault.adds_latency:
            if fault.hits(number, rng):
                plan.latency += fault.seconds(rng)
                plan.applied.append(fault.name)
        elif plan.action is None and fault.hits(number, rng):
            plan.action = fault
            plan.applied.append(fault.name)
    return plan


def _parse_requests(text: str) -> RequestSet:
    numbers: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, _, high = part.partition("-")
            if not high:
                return range(int(low), 2**62)
            numbers.update(range(int(low), int(high) + 1))
        else:
            numbers.add(int(part))
    return frozenset(numbers)


def _parse(spec: str) -> Fault:
    body, _, probability_text = spec.partition("%")
    body, _, requests_text = body.partition("@")
    kind, *args = body.split(":")
    fault = _parse_kind(kind.strip().lower().replace("-", "_"), args)
    return replace(
        fault,
        on_requests=_parse_requests(requests_text) if requests_text else None,
        probability=_check_probability(float(probability_text) if probability_text else 1.0),
    )


def _parse_kind(kind: str, args: list[str]) -> Fault:
    if kind == "latency":
        seconds: Delay = float(args[0]) if len(args) == 1 else (float(args[0]), float(args[1]))
        return Fault.latency(seconds)
    if kind == "status":
        return Fault.status(int(args[0]), retry_after=float(args[1]) if len(args) > 1 else None)
    if kind == "rate_limit":
        return Fault.rate_limited(float(args[0]) if args else 1.0)
    if kind in ("provider", "provider_error"):
        return Fault.provider_error(int(args[0]) if args else 93)
    if kind == "truncate":
        return Fault.truncate(float(args[0]) if args else 0.5)
    if kind == "malformed":
        return Fault.malformed()
    if kind == "trickle":
        return Fault.trickle(
            int(args[0]) if args else 64, float(args[1]) if len(args) > 1 else 0.05
        )
    if kind == "disconnect":
        return Fault.disconnect(float(args[0]) if args else 0.5)
    raise ValueError(f"unknown fault kind {kind!r}")
