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
"""

from __future__ import annotations

import argparse
import sys

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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry", add_help=False)
    parser.add_argument("--otel", choices=["api", "sdk"], required=True)
    args, rest = parser.parse_known_args()
    set_up(args.otel)
    print(f"OpenTelemetry: {args.otel}")
    sys.argv = ["python -m benchmarks.percall", *rest]
    return percall.main()


if __name__ == "__main__":
    sys.exit(main())
