"""OpenTelemetry traces and metrics, when the application has set OpenTelemetry up.

As elasticsearch-py does, a client reports to OpenTelemetry by itself whenever
``opentelemetry-api`` is importable and the application has set a tracer or meter
provider (or gives one in [`Telemetry`][organik_async.Telemetry]); ``telemetry=False``
or the ``OTEL_PYTHON_INSTRUMENTATION_ORGANIK_ASYNC_ENABLED=false`` environment variable
turn it off. An application that set nothing up pays one dictionary look-up per call
and per attempt: the hooks below return do-nothing singletons, and OpenTelemetry is
not even imported unless the application imported it first.

What is reported (the names are in docs/telemetry.md):

* one span per call (``organik.detailed_report``, the streams, ``organik.follow_until_final``
  with each round a call beneath it), and one child span per HTTP attempt named as the
  semantic conventions name HTTP client spans (``POST``, with ``http.request.method``,
  ``server.address``, ``server.port``, ``url.full``, ``http.response.status_code``,
  ``error.type``), plus ``organik.*`` attributes;
* counters of attempts by outcome, refusals, retries, rows and failed IDs; the
  ``http.client.request.duration`` and ``http.client.response.body.size`` histograms;
  the adaptive concurrency limit as a gauge per client.

The key never reaches any of it: the URL is the masked one every error shows, a
status description goes through the client's `Redactor`, and nothing else that is
recorded is text from the wire (codes and counts only). Trace context is sent to the
provider only when [`Telemetry.propagate`][organik_async.Telemetry] asks for it.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, TypeVar

import httpx

from ._exceptions import APIError, BatchFailure, HTTPStatusError, OrganikError, RequestInfo
from ._models import ID_KINDS, DetailedReport, IdKind
from ._redact import Redactor
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import (
        Counter,
        Histogram,
        MeterProvider,
        ObservableGauge,
        Observation,
    )
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "DURATION_BUCKETS",
    "ENABLED_ENV",
    "NO_CALL",
    "CallSpan",
    "CallTrace",
    "Instrumentation",
    "RequestTrace",
    "Telemetry",
    "error_type",
    "off",
    "telemetry_setting",
]

ENABLED_ENV: Final = "OTEL_PYTHON_INSTRUMENTATION_ORGANIK_ASYNC_ENABLED"
"""``false`` turns every client's telemetry off, whatever its setting (as elasticsearch-py's
``OTEL_PYTHON_INSTRUMENTATION_ELASTICSEARCH_ENABLED``)."""
SCOPE: Final = "organik_async"
"""The instrumentation scope: the tracer's and the meter's name."""
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The semantic conventions' bucket boundaries for ``http.client.request.duration``."""
_CANCELLED: Final = "cancelled"
_client_numbers = itertools.count(1)


@dataclass(frozen=True, kw_only=True)
class Telemetry:
    """How a client reports to OpenTelemetry: the ``telemetry=`` setting.

    ``telemetry=True`` (the default) reports whenever the application has set a global
    tracer or meter provider; ``telemetry=False`` never reports. This class says more:

    ```python
    OrganikClient(telemetry=Telemetry(propagate=True, tracer_provider=provider))
    ```

    Raises:
        ValueError: ``enabled`` or ``propagate`` is not a bool.
    """

    enabled: bool = True
    """Report at all (the ``OTEL_PYTHON_INSTRUMENTATION_ORGANIK_ASYNC_ENABLED`` environment
    variable set to ``false`` overrides it)."""
    propagate: bool = False
    """Send the trace context (``traceparent``, and whatever the global propagator adds) to
    the provider with each request. Off by default: the provider is a third party."""
    tracer_provider: TracerProvider | None = None
    """Spans go here instead of to the global tracer provider."""
    meter_provider: MeterProvider | None = None
    """Metrics go here instead of to the global meter provider."""

    def __post_init__(self) -> None:
        for name in ("enabled", "propagate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Telemetry.{name} must be a bool: {getattr(self, name)!r}")


def telemetry_setting(value: object) -> Telemetry:
    """The ``telemetry=`` setting as a [`Telemetry`][organik_async.Telemetry], or a
    ``ValueError`` naming it."""
    if isinstance(value, Telemetry):
        return value
    if isinstance(value, bool):
        return Telemetry(enabled=value)
    raise ValueError(f"telemetry must be a bool or a Telemetry: {value!r}")


# --- is OpenTelemetry there, and set up? -----------------------------------------------


class _Api:
    """The parts of ``opentelemetry-api`` used here, imported once they are needed."""

    def __init__(self) -> None:
        self.trace: Any = importlib.import_module("opentelemetry.trace")
        self.metrics: Any = importlib.import_module("opentelemetry.metrics")
        self.context: Any = importlib.import_module("opentelemetry.context")
        self.propagate: Any = importlib.import_module("opentelemetry.propagate")


_api: _Api | None = None
_providers_set = False
_unset_until = 0.0
_RECHECK: Final = 1.0
"""Seconds a "no global provider set" answer is kept."""


def _otel() -> _Api:
    global _api
    if _api is None:
        _api = _Api()
    return _api


def _a_global_provider_is_set() -> bool:
    """Whether the application set a global tracer or meter provider.

    An application that set one imported ``opentelemetry`` to do it, so until it is
    in ``sys.modules`` the answer is no, for the price of a dictionary look-up. Once
    yes, always yes (a global provider can be set only once). With the API imported
    and nothing set, asking it costs microseconds (its getters read the environment),
    so a no is kept for `_RECHECK` seconds: a provider set later is used from the next
    call after that.
    """
    global _providers_set, _unset_until
    if _providers_set:
        return True
    trace: ModuleType | None = sys.modules.get("opentelemetry.trace")
    metrics: ModuleType | None = sys.modules.get("opentelemetry.metrics")
    if trace is None and metrics is None:
        return False
    now = time.monotonic()
    if now < _unset_until:
        return False
    if trace is not None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            _providers_set = True
    if metrics is not None and not _providers_set:
        provider = metrics.get_meter_provider()
        # The API's stand-in until one is set is private (_ProxyMeterProvider): told by name.
        unset = type(provider).__name__ == "_ProxyMeterProvider"
        if not unset and not isinstance(provider, metrics.NoOpMeterProvider):
            _providers_set = True
    if not _providers_set:
        _unset_until = now + _RECHECK
    return _providers_set


# --- the instruments ------------------------------------------------------------------


class _Instruments:
    """The metric instruments of one meter provider, shared by every client reporting to it
    (an instrument made twice under one name is a duplicate to the SDK)."""

    def __init__(self, provider: MeterProvider | None) -> None:
        metrics = _otel().metrics
        meter = (
            metrics.get_meter(SCOPE, __version__)
            if provider is None
            else provider.get_meter(SCOPE, __version__)
        )
        self.clients: weakref.WeakSet[Instrumentation] = weakref.WeakSet()
        self.requests: Counter = meter.create_counter(
            "organik.client.requests",
            unit="{request}",
            description="HTTP attempts, by outcome: answered, refused, failed or cancelled",
        )
        self.refusals: Counter = meter.create_counter(
            "organik.client.refusals",
            unit="{request}",
            description="Attempts the provider refused as too many at once (code 93, HTTP 429)",
        )
        self.retries: Counter = meter.create_counter(
            "organik.client.retries", unit="{request}", description="Attempts retried"
        )
        self.rows: Counter = meter.create_counter(
            "organik.client.rows", unit="{row}", description="Rows received"
        )
        self.ids_failed: Counter = meter.create_counter(
            "organik.client.ids.failed",
            unit="{id}",
            description="IDs of calls' failed or unsent batches",
        )
        self.duration: Histogram = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.body_size: Histogram = meter.create_histogram(
            "http.client.response.body.size",
            unit="By",
            description="Size of HTTP client response bodies (decompressed)",
        )
        self.limit: ObservableGauge = meter.create_observable_gauge(
            "organik.client.concurrency.limit",
            callbacks=[self._observe_limits],
            unit="{request}",
            description="Each client's adaptive limit on requests at once",
        )

    def _observe_limits(self, _options: object) -> Iterator[Observation]:
        observation = _otel().metrics.Observation
        for client in list(self.clients):
            if client.limit is not None:
                yield observation(client.limit(), client.identity)


_global_instruments: _Instruments | None = None
_instruments_of: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = (
    weakref.WeakKeyDictionary()
)


def _instruments_for(provider: MeterProvider | None) -> _Instruments:
    global _global_instruments
    if provider is None:
        if _global_instruments is None:
            _global_instruments = _Instruments(None)
        return _global_instruments
    instruments = _instruments_of.get(provider)
    if instruments is None:
        instruments = _instruments_of[provider] = _Instruments(provider)
    return instruments


# --- a client's hooks ---------------------------------------------------------------


class _Routed(Protocol):
    def with_headers(self, extra: Mapping[str, str]) -> Self: ...


class _Answered(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def body(self) -> bytes: ...


R = TypeVar("R", bound=_Routed)


class Instrumentation:
    """A client's hooks into OpenTelemetry, shared by its views.

    Each hook (`call()`, `follow()`, `request()`) returns a do-nothing singleton while
    telemetry is off or nothing is set up, so the request path calls them unconditionally.
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_enabled",
        "_explicit",
        "_instruments",
        "_setting",
        "_tracer",
        "identity",
        "is_refusal",
        "limit",
        "redactor",
    )

    def __init__(
        self,
        setting: Telemetry,
        *,
        base_url: str,
        redactor: Redactor,
        limit: Callable[[], int] | None,
        is_refusal: Callable[[OrganikError], bool],
    ) -> None:
        self._setting = setting
        # Whether the API is installed is never asked: a provider set globally or given
        # here means it is (nothing else could have made one).
        self._enabled = (
            setting.enabled and os.environ.get(ENABLED_ENV, "true").strip().lower() != "false"
        )
        self._explicit = setting.tracer_provider is not None or setting.meter_provider is not None
        self.redactor = redactor
        self.limit = limit
        self.is_refusal = is_refusal
        url = httpx.URL(base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        self._base: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": url.host,
            "server.port": port,
        }
        self.identity = {"organik.client.id": next(_client_numbers), "server.address": url.host}
        self._tracer: Tracer | None = None
        self._instruments: _Instruments | None = None

    @property
    def setting(self) -> Telemetry:
        return self._setting

    @property
    def active(self) -> bool:
        """Whether anything is reported now (a global provider may be set later)."""
        if not self._enabled:
            return False
        return self._explicit or _providers_set or _a_global_provider_is_set()

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            provider = self._setting.tracer_provider
            trace = _otel().trace
            self._tracer = (
                trace.get_tracer(SCOPE, __version__)
                if provider is None
                else provider.get_tracer(SCOPE, __version__)
            )
        return self._tracer

    @property
    def instruments(self) -> _Instruments:
        if self._instruments is None:
            self._instruments = _instruments_for(self._setting.meter_provider)
            self._instruments.clients.add(self)
        return self._instruments

    # --- the hooks ----------------------------------------------------------------

    def call(self, operation: str, sources: Mapping[IdKind, object]) -> CallTrace:
        """The span of one call (``detailed_report``, a stream), started when its run starts."""
        if not self.active:
            return NO_CALL
        kinds = [kind for kind in ID_KINDS if not _known_empty(sources.get(kind))]
        attributes: dict[str, Any] = {
            "organik.operation": operation,
            "organik.id.kinds": kinds,
            "server.address": self._base["server.address"],
            "server.port": self._base["server.port"],
        }
        counts = [_size(sources.get(kind)) for kind in ID_KINDS]
        if all(count is not None for count in counts):
            attributes["organik.id.count"] = sum(c for c in counts if c is not None)
        return CallTrace(self, f"organik.{operation}", attributes)

    def follow(self, sources: Mapping[IdKind, object]) -> CallTrace:
        """The span of a follow stream: its rounds are calls beneath it."""
        return self.call("follow_until_final", sources)

    def request(
        self, info: RequestInfo, ids: Mapping[IdKind, Sequence[object]], batch: int | None
    ) -> RequestTrace:
        """One request's attempts (spans and metrics), and its retries."""
        if not self.active:
            return _NO_REQUEST
        kinds = [kind for kind in ID_KINDS if ids.get(kind)]
        attributes: dict[str, Any] = {
            **self._base,
            "url.full": info.url,
            "organik.id.kind": kinds[0] if len(kinds) == 1 else kinds,
            "organik.id.count": info.id_count,
        }
        if batch is not None:
            attributes["organik.batch.index"] = batch
        return RequestTrace(self, attributes)

    # --- what the hooks share ------------------------------------------------------

    def describe(self, error: BaseException) -> str:
        """A status description: the error's message, key masked."""
        return self.redactor.text(f"{type(error).__name__}: {error}")[:500]

    def metric_base(self) -> dict[str, str | int]:
        return dict(self._base)


class CallTrace:
    """A call's span: `span()` around the run, in the task that runs it."""

    __slots__ = ("_attributes", "_instrumentation", "_name")

    def __init__(
        self, instrumentation: Instrumentation | None, name: str, attributes: dict[str, Any]
    ) -> None:
        self._instrumentation = instrumentation
        self._name = name
        self._attributes = attributes

    def span(self) -> AbstractContextManager[CallSpan]:
        """The call's span, current in this task while the block runs (attempts and
        rounds inside it are its children)."""
        inst = self._instrumentation
        if inst is None:
            return _UNTRACED
        return self._span(inst)

    @contextmanager
    def _span(self, inst: Instrumentation) -> Iterator[CallSpan]:
        api = _otel()
        span = inst.tracer.start_span(
            self._name,
            kind=api.trace.SpanKind.INTERNAL,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        token = api.context.attach(api.trace.set_span_in_context(span))
        handle = CallSpan(inst, span)
        try:
            yield handle
        except BaseException as exc:
            handle.raised(exc)
            raise
        finally:
            api.context.detach(token)
            span.end()

    def within(self, handle: CallSpan | None) -> AbstractContextManager[object]:
        """``handle``'s span made current again (a follow stream's round)."""
        if handle is None or handle.span is None:
            return _UNTRACED
        return self._within(handle.span)

    @contextmanager
    def _within(self, span: Span) -> Iterator[None]:
        api = _otel()
        token = api.context.attach(api.trace.set_span_in_context(span))
        try:
            yield
        finally:
            api.context.detach(token)

    def start(self) -> CallSpan:
        """The span started and not made current: for a stream whose life spans many awaits
        of its caller (`within()` makes it current for a while; `CallSpan.end()` ends it)."""
        inst = self._instrumentation
        if inst is None:
            return _NO_CALL_SPAN
        span = inst.tracer.start_span(
            self._name,
            kind=_otel().trace.SpanKind.INTERNAL,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        return CallSpan(inst, span)


class CallSpan:
    """A running call's span: what the call learnt, set when it ends."""

    __slots__ = ("_instrumentation", "span")

    def __init__(self, instrumentation: Instrumentation | None, span: Span | None) -> None:
        self._instrumentation = instrumentation
        self.span = span

    def finish(
        self,
        *,
        rows: int,
        batches: int,
        retries: int,
        refusals: int,
        failures: Sequence[BatchFailure],
        error: Callable[[], BaseException | None],
    ) -> None:
        """Set what the call did; record its IDs that failed."""
        inst, span = self._instrumentation, self.span
        if inst is None or span is None:
            return
        failed = sum(len(failure.ids) for failure in failures)
        span.set_attributes(
            {
                "organik.rows": rows,
                "organik.batches": batches,
                "organik.batches.failed": len(failures),
                "organik.retries": retries,
                "organik.refusals": refusals,
                "organik.ids.failed": failed,
            }
        )
        if failed:
            inst.instruments.ids_failed.add(failed, inst.metric_base())
        raised = error()
        if raised is not None:
            self.raised(raised)

    def set(self, attributes: Mapping[str, Any]) -> None:
        if self.span is not None:
            self.span.set_attributes(attributes)

    def raised(self, error: BaseException) -> None:
        """The call ends with ``error`` (a cancellation is not a failure)."""
        inst, span = self._instrumentation, self.span
        if inst is None or span is None:
            return
        if _is_cancellation(error):
            span.set_attribute("organik.cancelled", True)
            return
        api = _otel()
        span.set_attribute("error.type", error_type(error))
        span.set_status(api.trace.Status(api.trace.StatusCode.ERROR, inst.describe(error)))

    def end(self, error: BaseException | None = None) -> None:
        if self.span is None:
            return
        if error is not None:
            self.raised(error)
        self.span.end()


class RequestTrace:
    """One request's attempts: a span and metrics each; its retries, as events and a count."""

    __slots__ = ("_attributes", "_instrumentation")

    def __init__(self, instrumentation: Instrumentation | None, attributes: dict[str, Any]):
        self._instrumentation = instrumentation
        self._attributes = attributes

    def attempt(self, number: int, backend: str) -> AttemptTrace:
        """Around one attempt: ``with trace.attempt(n, sender.name) as seen:``, sending
        ``seen.prepared(route)`` (the trace context added, when propagated)."""
        if self._instrumentation is None:
            return _NO_ATTEMPT
        return AttemptTrace(self._instrumentation, self._attributes, number, backend)

    def retrying(self, error: OrganikError, attempt: int, delay: float) -> None:
        """Attempt ``attempt`` failed with ``error``; the next follows in ``delay`` seconds."""
        inst = self._instrumentation
        if inst is None:
            return
        api = _otel()
        kind = error_type(error)
        api.trace.get_current_span().add_event(
            "organik.retry",
            {"organik.attempt": attempt, "organik.retry.delay": delay, "error.type": kind},
        )
        if not inst.is_refusal(error):  # a refusal is counted as one, not as a retry
            inst.instruments.retries.add(1, {**inst.metric_base(), "error.type": kind})


class AttemptTrace:
    """One HTTP attempt's span (kind CLIENT, named ``POST``) and its metrics."""

    __slots__ = ("_attempt", "_attributes", "_backend", "_context", "_inst", "_span", "_token")

    def __init__(
        self,
        instrumentation: Instrumentation | None,
        attributes: dict[str, Any],
        attempt: int,
        backend: str,
    ) -> None:
        self._inst = instrumentation
        self._attributes = attributes
        self._attempt = attempt
        self._backend = backend
        self._span: Span | None = None
        self._token: object = None
        self._context: Context | None = None

    def __enter__(self) -> Self:
        inst = self._inst
        if inst is None:
            return self
        api = _otel()
        span = inst.tracer.start_span(
            "POST",
            kind=api.trace.SpanKind.CLIENT,
            attributes={
                **self._attributes,
                "organik.attempt": self._attempt,
                "organik.backend": self._backend,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        context: Context = api.trace.set_span_in_context(span)
        self._token = api.context.attach(context)
        if inst.setting.propagate:
            self._context = context
        return self

    def prepared(self, route: R) -> R:
        """``route``, with the trace context in its headers when it is propagated."""
        if self._context is None:
            return route
        headers: dict[str, str] = {}
        _otel().propagate.inject(headers, context=self._context)
        return route.with_headers(headers)

    def ended(
        self,
        sent: _Answered | OrganikError,
        result: list[DetailedReport] | OrganikError,
        elapsed: float,
    ) -> None:
        """What the attempt got: ``sent`` off the wire in ``elapsed`` seconds, then
        ``result`` once decoded."""
        inst, span = self._inst, self._span
        if inst is None or span is None:
            return
        instruments = inst.instruments
        metric: dict[str, Any] = inst.metric_base()
        attributes: dict[str, Any] = {}
        if not isinstance(sent, OrganikError):
            metric["http.response.status_code"] = attributes["http.response.status_code"] = (
                sent.status
            )
            instruments.body_size.record(len(sent.body), metric)
        outcome = "answered"
        if isinstance(result, OrganikError):
            kind = error_type(result)
            metric["error.type"] = attributes["error.type"] = kind
            outcome = "refused" if inst.is_refusal(result) else "failed"
            if isinstance(result, APIError) and result.code is not None:
                attributes["organik.provider.code"] = result.code
            span.set_status(
                _otel().trace.Status(_otel().trace.StatusCode.ERROR, inst.describe(result))
            )
            if outcome == "refused":
                instruments.refusals.add(1, inst.metric_base())
        else:
            attributes["organik.rows"] = len(result)
            instruments.rows.add(len(result), inst.metric_base())
        attributes["organik.outcome"] = outcome
        span.set_attributes(attributes)
        instruments.duration.record(elapsed, metric)
        instruments.requests.add(
            1, {**inst.metric_base(), "organik.outcome": outcome, "organik.backend": self._backend}
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        inst, span = self._inst, self._span
        if inst is None or span is None:
            return
        api = _otel()
        if exc is not None:
            kind = _CANCELLED if _is_cancellation(exc) else error_type(exc)
            span.set_attributes({"error.type": kind, "organik.outcome": _CANCELLED})
            inst.instruments.requests.add(
                1,
                {
                    **inst.metric_base(),
                    "organik.outcome": _CANCELLED,
                    "organik.backend": self._backend,
                },
            )
        api.context.detach(self._token)
        span.end()


# --- the do-nothing hooks ----------------------------------------------------------------

NO_CALL: Final = CallTrace(None, "", {})
"""The span of a call that is not traced."""
_NO_CALL_SPAN: Final = CallSpan(None, None)
_NO_REQUEST: Final = RequestTrace(None, {})
_NO_ATTEMPT: Final = AttemptTrace(None, {}, 0, "")
_UNTRACED: Final = nullcontext(_NO_CALL_SPAN)


def off() -> Instrumentation:
    """Instrumentation that never reports (a requester built without a client's)."""
    return Instrumentation(
        Telemetry(enabled=False),
        base_url="http://off",
        redactor=Redactor(""),
        limit=None,
        is_refusal=lambda _: False,
    )


# --- attribute values -------------------------------------------------------------------


def error_type(error: BaseException) -> str:
    """``error.type`` as the conventions want it: the HTTP status of a bare error answer,
    else the exception's public class name (``organik_async.RateLimitError``)."""
    if type(error) is HTTPStatusError:
        return str(error.status_code)
    for cls in type(error).__mro__:
        if cls.__module__ == "organik_async":
            return f"organik_async.{cls.__qualname__}"
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_cancellation(error: BaseException) -> bool:
    # anyio's cancellation: asyncio.CancelledError or trio.Cancelled, by name (no event
    # loop is needed to ask, and this may run where none is current).
    return type(error).__name__ in ("CancelledError", "Cancelled") or isinstance(
        error, GeneratorExit
    )


def _known_empty(source: object) -> bool:
    size = _size(source)
    return source is None or size == 0


def _size(source: object) -> int | None:
    """How many IDs an input holds, when that is known without reading it (as the
    engine's estimate: a collection's ``len``; a lazy input is never asked)."""
    if source is None:
        return 0
    return len(source) if isinstance(source, Collection) else None
