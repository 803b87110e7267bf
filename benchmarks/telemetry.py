"""``benchmarks.percall`` with OpenTelemetry in the process: what telemetry costs per call.

``python -m benchmarks.percall`` measures a process that never imported OpenTelemetry
(the client then does not either). This runs the same measurement after setting up:

* ``--otel api``: ``opentelemetry-api`` imported, no provider set (the client asks,
  per call and per attempt, whether one has been set since);
* ``--otel sdk``: the SDK's global tracer and meter providers, spans exported to an
  in-memory exporter as they end (``SimpleSpanProcessor``), metrics to an in-memory
  reader (read once at the end): every span and instrument of the client recording.

Other arguments go to ``benchmarks.percall``::

    python -m benchmarks.telemetry --otel sdk [--calls 1000] [--backend auto|httpx]

``--hooks`` measures instead, without a network, what the telemetry hooks of a one-request
call cost when nothing is reported (the call's span, its run's summary, the request's and
its attempt's hooks), in this process as set up::

    python -m benchmarks.telemetry --hooks            # OpenTelemetry never imported
    python -m benchmarks.telemetry --hooks --otel api # imported, no provider set
"""

from __future__ import annotations

import argparse
import sys
import time

from . import percall


def set_up(mode: str) -> None:
    from opentelemetry import metrics, trace

    if mode == "api":
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def hooks(rounds: int = 5, calls: int = 100_000) -> None:
    """Nanoseconds per call spent in the hooks of a one-request call, when not reporting."""
    from organik_async import Id, IdKind, RequestInfo, Telemetry
    from organik_async._http import Answer, Route
    from organik_async._redact import Redactor
    from organik_async._telemetry import Instrumentation

    inst = Instrumentation(
        Telemetry(),
        base_url="https://organikapi.com",
        redactor=Redactor("0" * 32),
        limit=lambda: 8,
        is_refusal=lambda _: False,
    )
    route = Route("https://organikapi.com/v2/k/detailedreport/json/", "***", "json", "json")
    info = RequestInfo(route.shown, "json", "json", 1)
    ids: dict[IdKind, list[Id]] = {"gsm_track_ids": [1]}
    answer = Answer(200, {}, b"{}")

    def one_call() -> None:
        trace = inst.call("detailed_report", ids)
        with trace.span() as call:
            observed = inst.request(info, ids, 0)
            with observed.attempt(1, "aiohttp") as seen:
                seen.prepared(route)
                seen.ended(answer, [], 0.001)
            call.finish(rows=0, batches=1, retries=0, refusals=0, failures=[], error=lambda: None)

    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            one_call()
        print(f"  {1e9 * (time.perf_counter() - started) / calls:,.0f} ns per call")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry", add_help=False)
    parser.add_argument("--otel", choices=["api", "sdk"])
    parser.add_argument("--hooks", action="store_true")
    args, rest = parser.parse_known_args()
    if args.otel is not None:
        set_up(args.otel)
    print(f"OpenTelemetry: {args.otel or 'not imported'}")
    if args.hooks:
        hooks()
        return 0
    sys.argv = ["python -m benchmarks.percall", *rest]
    return percall.main()


if __name__ == "__main__":
    sys.exit(main())
