"""OpenTelemetry: what a client reports, to the SDK's in-memory exporters, on both loops.

One span per call with one child span per HTTP attempt (the HTTP client conventions'
attributes, and ``organik.*`` ones), follow rounds as calls beneath the follow's span,
the metrics the docs list, trace context sent only when asked, nothing at all when off,
and never the key in anything exported, however the wire echoes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from organik_async import (
    BulkReportError,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    SyncOrganikClient,
    Telemetry,
)
from organik_async._telemetry import DURATION_BUCKETS, ENABLED_ENV
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, ManualClock
from tests.helpers.provider import KEY

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

DATASET = Dataset.generate(1_000, seed=5, in_progress_share=0.3, not_started_share=0.1)
GSM = list(DATASET.gsm_track_ids())
TX = DATASET.transaction_ids


@dataclass
class Exported:
    """What the SDK's in-memory exporters hold."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    setting: Telemetry

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = self.spans.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for resource in [] if data is None else data.resource_metrics:
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name == metric:
                        found += [(dict(p.attributes or {}), p) for p in each.data.data_points]
        return found

    def total(self, metric: str, **attributes: Any) -> float:
        return sum(  # type: ignore[no-any-return]
            p.value
            for attrs, p in self.points(metric)
            if all(attrs.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def exported() -> Iterator[Exported]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    setting = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Exported(spans, reader, setting)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


# --- what is reported -----------------------------------------------------------------------


async def test_a_call_is_one_span_with_a_client_span_per_http_attempt(exported: Exported) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.provider_error(93, on_requests={1})])
    async with fake.client(telemetry=exported.setting, batch_sizes=10, max_concurrency=1) as client:
        rows = await client.detailed_report(gsm_track_ids=GSM[:30])
    [call] = exported.finished("organik.detailed_report")
    attempts = exported.finished("POST")
    assert call.kind is SpanKind.INTERNAL
    assert {parent_of(a) for a in attempts} == {span_id(call)}
    assert sorted(
        (a.attributes["organik.batch.index"], a.attributes["organik.attempt"])  # type: ignore[index]
        for a in attempts
    ) == [(0, 1), (0, 2), (1, 1), (2, 1)]
    refused = next(a for a in attempts if a.attributes["organik.outcome"] == "refused")  # type: ignore[index]
    assert refused.kind is SpanKind.CLIENT
    assert refused.status.status_code is StatusCode.ERROR
    assert dict(refused.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "organik.test",
        "server.port": 80,
        "url.full": "http://organik.test/v2/***/detailedreport/json/",
        "http.response.status_code": 200,
        "error.type": "organik_async.RateLimitError",
        "organik.provider.code": 93,
        "organik.outcome": "refused",
        "organik.id.kind": "gsm_track_ids",
        "organik.id.count": 10,
        "organik.batch.index": 0,
        "organik.attempt": 1,
        "organik.backend": "httpx",
    }
    assert call.attributes is not None
    assert {k: v for k, v in call.attributes.items() if k.startswith("organik.")} == {
        "organik.operation": "detailed_report",
        "organik.id.kinds": ("gsm_track_ids",),
        "organik.id.count": 30,
        "organik.rows": len(rows),
        "organik.batches": 3,
        "organik.batches.failed": 0,
        "organik.retries": 0,  # a refusal is not a retry: it is counted as one
        "organik.refusals": 1,
        "organik.ids.failed": 0,
    }
    [retry] = call.events
    assert retry.name == "organik.retry"
    assert dict(retry.attributes or {})["error.type"] == "organik_async.RateLimitError"

    assert exported.total("organik.client.requests", **{"organik.outcome": "answered"}) == 3
    assert exported.total("organik.client.requests", **{"organik.outcome": "refused"}) == 1
    assert exported.total("organik.client.refusals") == 1
    assert exported.total("organik.client.retries") == 0
    assert exported.total("organik.client.rows") == len(rows)
    [(_, duration)] = exported.points("http.client.request.duration")[:1]
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS
    assert sum(p.count for _, p in exported.points("http.client.request.duration")) == 4
    assert sum(p.sum for _, p in exported.points("http.client.response.body.size")) > 0
    [(gauge_attributes, gauge)] = exported.points("organik.client.concurrency.limit")
    assert gauge.value >= 1
    assert set(gauge_attributes) == {"organik.client.id", "server.address"}


async def test_failed_ids_and_the_error_are_on_the_calls_span(exported: Exported) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(500, on_requests={2})])
    async with fake.client(
        telemetry=exported.setting, batch_sizes=5, max_concurrency=1, max_retries=0
    ) as client:
        with pytest.raises(BulkReportError):
            await client.detailed_report(gsm_track_ids=GSM[:15])
        with pytest.raises(HTTPStatusError):
            fake.faults = [Fault.status(503)]
            await client.detailed_report(transaction_ids=TX[:2])
    bulk, single = exported.finished("organik.detailed_report")
    assert bulk.attributes is not None
    assert bulk.attributes["organik.ids.failed"] == 5
    assert bulk.attributes["error.type"] == "organik_async.BulkReportError"
    assert single.attributes is not None
    assert single.attributes["error.type"] == "503"  # a bare error answer: its status
    assert single.status.status_code is StatusCode.ERROR
    assert exported.total("organik.client.ids.failed") == 5 + 2


async def test_streams_and_follow_rounds_are_spans(exported: Exported) -> None:
    clock = ManualClock()
    fake = FakeOrganikAPI(DATASET, finalize_after=(60, 600), clock=clock)
    async with fake.client(telemetry=exported.setting, batch_sizes=4) as client:
        async with client.iter_detailed_report(transaction_ids=TX[:8]) as rows:
            async for _ in rows:
                pass
        async with client.iter_batches(gsm_track_ids=iter(GSM[:8])) as batches:
            async for _ in batches:
                break  # left early: the call's span says it was cancelled, not failed
        async with anyio.create_task_group() as tg:

            async def drive_the_clock() -> None:
                while True:
                    await anyio.sleep(0.005)
                    clock.advance(60)

            tg.start_soon(drive_the_clock)
            async with client.follow_until_final(
                transaction_ids=TX[:5], poll_interval=0.01, max_poll_interval=0.01
            ) as followed:
                async for _ in followed:
                    pass
            tg.cancel_scope.cancel()
    [stream] = exported.finished("organik.iter_detailed_report")
    [batches_span] = exported.finished("organik.iter_batches")
    [follow] = exported.finished("organik.follow_until_final")
    rounds = exported.finished("organik.detailed_report")
    assert stream.attributes is not None
    assert batches_span.attributes is not None
    assert stream.attributes["organik.batches"] == 2
    assert "organik.id.count" not in batches_span.attributes  # a lazy input: not known at start
    assert batches_span.attributes.get("organik.cancelled") is True
    assert batches_span.status.status_code is StatusCode.UNSET
    assert follow.attributes is not None
    assert follow.attributes["organik.follow.rounds"] == len(rounds) == followed.rounds > 1
    assert {parent_of(r) for r in rounds} == {span_id(follow)}
    for attempt in exported.finished("POST"):
        assert parent_of(attempt) in {span_id(s) for s in [stream, batches_span, *rounds]}


async def test_trace_context_is_sent_only_when_asked(exported: Exported) -> None:
    fake = FakeOrganikAPI(DATASET)
    seen: list[str | None] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return await fake.transport().handle_async_request(request)

    for propagate in (False, True):
        setting = Telemetry(
            propagate=propagate,
            tracer_provider=exported.setting.tracer_provider,
            meter_provider=exported.setting.meter_provider,
        )
        async with fake.client(telemetry=setting, transport=httpx.MockTransport(handler)) as c:
            await c.detailed_report(transaction_ids=TX[:1])
    assert seen[0] is None
    assert seen[1] is not None
    sent_from = exported.finished("POST")[1]
    assert sent_from.context is not None
    assert seen[1].split("-")[2] == f"{sent_from.context.span_id:016x}"


async def test_nothing_is_reported_when_turned_off(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrganikAPI(DATASET)
    off = Telemetry(
        enabled=False,
        tracer_provider=exported.setting.tracer_provider,
        meter_provider=exported.setting.meter_provider,
    )
    async with fake.client(telemetry=off) as client:
        await client.detailed_report(transaction_ids=TX[:1])
    monkeypatch.setenv(ENABLED_ENV, "false")
    async with fake.client(telemetry=exported.setting) as client:
        await client.detailed_report(transaction_ids=TX[:1])
    assert exported.finished() == []
    assert exported.points("organik.client.requests") == []
    with pytest.raises(ValueError, match="telemetry must be a bool or a Telemetry"):
        fake.client(telemetry="yes")


# --- the key -------------------------------------------------------------------------------


def echoing(key: str) -> Callable[[httpx.Request], httpx.Response]:
    """Answers that carry the key back: in a body, a header, a redirect, a provider message."""
    answers = [
        lambda: httpx.Response(500, headers={"x-echo": key}, text=f"no such {key}"),
        lambda: httpx.Response(302, headers={"location": f"http://elsewhere/{key.upper()}"}),
        lambda: httpx.Response(
            200,
            content=msgspec.json.encode(
                {
                    "response": {
                        "result": False,
                        "error": {
                            "message": f"refused {key[4:20]}",
                            "number": key,
                            "time": "2024-01-01 10:00:00",
                            "code": 1,
                        },
                    }
                }
            ),
        ),
        lambda: httpx.Response(200, content=b"{not json " + key.encode()),
    ]
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return answers[(count - 1) % len(answers)]()

    return handler


async def test_nothing_exported_holds_the_key(exported: Exported) -> None:
    async with OrganikClient(
        KEY,
        base_url="http://organik.test",
        transport=httpx.MockTransport(echoing(KEY)),
        telemetry=Telemetry(
            propagate=True,
            tracer_provider=exported.setting.tracer_provider,
            meter_provider=exported.setting.meter_provider,
        ),
    ) as client:
        for ids in ([1, 2], [3], [4], [5]):
            with pytest.raises(OrganikError):
                await client.with_options(max_retries=0).detailed_report(transaction_ids=ids)
        with pytest.raises(BulkReportError):
            await client.detailed_report(transaction_ids=list(range(40)), batch_sizes=10)
    text = []
    spans = exported.finished()
    for span in spans:
        text += [span.name, str(span.status.description), json.dumps(dict(span.attributes or {}))]
        text += [e.name + json.dumps(dict(e.attributes or {})) for e in span.events]
        text.append(json.dumps(dict(span.resource.attributes)))
    data = exported.reader.get_metrics_data()
    assert data is not None
    text.append(data.to_json())
    shown = "\n".join(text).lower()
    assert len(spans) > 10
    assert "***" in shown  # the masks show the echoes were there
    key = KEY.lower()
    assert [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in shown] == []


# --- how it turns itself on, and the blocking client -------------------------------------

NO_PROVIDER = """
import sys, anyio
from organik_async.testing import FakeOrganikAPI
async def main():
    fake = FakeOrganikAPI()
    async with fake.client() as client:
        await client.detailed_report(transaction_ids=fake.dataset.transaction_ids[:1])
anyio.run(main)
print(sorted(m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v))
"""

GLOBAL_PROVIDER = """
import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from organik_async.testing import FakeOrganikAPI
fake = FakeOrganikAPI()
client = fake.client()  # made before the application sets its provider up
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
async def main():
    async with client:
        await client.detailed_report(transaction_ids=fake.dataset.transaction_ids[:1])
anyio.run(main)
print(sorted(span.name for span in exporter.get_finished_spans()))
"""


def run_python(code: str, *prelude: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(prelude) + code],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_without_a_provider_opentelemetry_is_not_even_imported() -> None:
    assert run_python(NO_PROVIDER) == "[]"


@pytest.mark.slow
def test_with_the_api_imported_and_no_provider_set_nothing_is_reported() -> None:
    imported = "import opentelemetry.trace, opentelemetry.metrics"
    shown = run_python(
        NO_PROVIDER + "print(_telemetry._providers_set)\n",
        imported,
        "from organik_async import _telemetry",
    )
    assert shown.splitlines()[-1] == "False"


@pytest.mark.slow
def test_without_opentelemetry_installed_calls_work() -> None:
    blocked = "import sys; sys.modules['opentelemetry'] = None"  # as if not installed
    assert run_python(NO_PROVIDER, blocked) == "[]"


@pytest.mark.slow
def test_a_global_provider_set_by_the_application_turns_it_on() -> None:
    assert run_python(GLOBAL_PROVIDER) == "['POST', 'organik.detailed_report']"


def test_a_blocking_calls_span_is_a_child_of_the_callers(exported: Exported) -> None:
    fake = FakeOrganikAPI(DATASET)
    assert exported.setting.tracer_provider is not None
    tracer = exported.setting.tracer_provider.get_tracer("a Django view")
    with SyncOrganikClient(
        fake.api_key,
        base_url="http://organik.test",
        transport=fake.transport(),
        telemetry=exported.setting,
    ) as client:
        for caller in range(2):
            with tracer.start_as_current_span(f"view {caller}"):
                if caller == 0:
                    client.detailed_report(transaction_ids=TX[:1])
                else:
                    list(client.iter_detailed_report(transaction_ids=TX[:1]))
    views = {s.name: span_id(s) for s in exported.finished() if s.name.startswith("view")}
    [call] = exported.finished("organik.detailed_report")
    [stream] = exported.finished("organik.iter_detailed_report")
    assert parent_of(call) == views["view 0"]
    assert parent_of(stream) == views["view 1"]
    assert threading.active_count() >= 1
