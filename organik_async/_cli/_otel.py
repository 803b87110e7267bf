"""``--otel``: a run's spans and metrics, sent where the standard ``OTEL_*`` variables say.

The client reports to OpenTelemetry by itself once an application has set a provider up
(under ``opentelemetry-instrument organik-report ...`` it has). ``--otel`` sets the SDK
up for a plain run, as that wrapper would: the exporters named by ``OTEL_TRACES_EXPORTER``
and ``OTEL_METRICS_EXPORTER`` (``otlp`` by default, ``console``, ``none``, or any
installed exporter's name), each configured by its own variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``...), and the resource by ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (service ``organik-report`` unless they name one). The
console exporters write to stderr: stdout may carry the rows. Everything is flushed when
the run ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

import click

__all__ = ["exporting"]

_INSTALL = (
    "install organik_async with its otel extra (organik_async[otel]), and "
    "opentelemetry-sdk and opentelemetry-exporter-otlp"
)


@contextmanager
def exporting(enabled: bool) -> Iterator[None]:
    """With ``enabled``, the SDK's providers set up for the block, flushed and shut after it."""
    if not enabled:
        yield
        return
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise click.UsageError(f"--otel needs the OpenTelemetry SDK: {_INSTALL}") from None
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "organik-report"}))
    span_exporter = _exporter("traces")
    metric_exporter = _exporter("metrics")
    tracer_provider = TracerProvider(resource=resource)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    readers = [] if metric_exporter is None else [PeriodicExportingMetricReader(metric_exporter)]
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _exporter(signal: str) -> Any:
    """The exporter ``OTEL_<SIGNAL>_EXPORTER`` names (``None`` for ``none``)."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    name = (os.environ.get(variable) or "otlp").split(",")[0].strip()
    if name == "none":
        return None
    if name == "console":  # to stderr: stdout may carry the rows
        if signal == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter(out=sys.stderr)
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    found = list(entry_points(group=f"opentelemetry_{signal}_exporter", name=name))
    if not found:
        raise click.UsageError(
            f"--otel: no OpenTelemetry {signal} exporter named {name!r} ({variable}); "
            f"for OTLP: {_INSTALL}"
        )
    return found[0].load()()
