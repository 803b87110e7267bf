"""A FastAPI service in front of the Organik API: one shared client, errors as HTTP answers.

One ``OrganikClient`` is opened in the app's lifespan and shared by every
request, so all of them draw on one connection limit and one rate budget.
Rows go out as JSON encoded by msgspec, and provider trouble becomes the
answer a caller can act on (``organik_async.http_error_answer``): rate limited
→ 503 with ``Retry-After``; a bad key or a provider refusal → 502, with
neither the key nor the provider's text; too slow → 504; the caller's own bad
input → 422.

    GET  /reports/{transaction_id}
    POST /reports   {"transaction_ids": [...], "delivery_track_ids": [...],
                     "gsm_track_ids": [...]}

Both answer ``{"rows": [...]}``. Try it against the built-in simulator (no
key needed), then ``curl`` the URLs it prints::

    python examples/web_service.py --port 8000

Against the real API, with ``ORGANIK_API_KEY`` set::

    uvicorn web_service:app --app-dir examples

The client reports to OpenTelemetry by itself once a tracer or meter provider is set.
``--otel`` sets one up that prints spans and metrics to stderr (the console exporters,
``pip install opentelemetry-sdk``); docs/telemetry.md shows how to send them to a
collector instead::

    python examples/web_service.py --port 8000 --otel
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypedDict

import msgspec
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from organik_async import DetailedReport, OrganikClient, OrganikError, http_error_answer

logger = logging.getLogger("web_service")

REQUEST_BUDGET = 30.0
"""Seconds a request may spend waiting for the provider, retries included."""
REFUSAL_PATIENCE = 5.0
"""Seconds a request waits out the provider's "slow down" before passing it on
to its caller as a 503 with ``Retry-After`` (a worker would wait much longer)."""
MAX_IDS = 1_000
"""IDs one POST may ask for: a bigger job belongs in a worker, not a web request."""


class ReportQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /reports``: IDs of any of the three kinds."""

    transaction_ids: list[int] = []
    delivery_track_ids: list[str] = []
    gsm_track_ids: list[int | str] = []

    def __post_init__(self) -> None:
        count = len(self.transaction_ids) + len(self.delivery_track_ids)
        count += len(self.gsm_track_ids)
        if count == 0:
            raise ValueError("give at least one ID")
        if count > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} IDs per request, got {count}")


class Rows(msgspec.Struct, frozen=True):
    """What both routes answer."""

    rows: list[DetailedReport]


class State(TypedDict):
    organik: OrganikClient


_decoder = msgspec.json.Decoder(ReportQuery)
_encoder = msgspec.json.Encoder()


def organik(request: Request) -> OrganikClient:
    """The shared client, opened by the lifespan."""
    client: OrganikClient = request.state.organik
    return client


Client = Annotated[OrganikClient, Depends(organik)]


async def fetch_rows(
    client: OrganikClient, query: ReportQuery, budget: float
) -> list[DetailedReport]:
    """The rows for ``query``, within ``budget`` seconds, retries included."""
    return await client.detailed_report(
        transaction_ids=query.transaction_ids,
        delivery_track_ids=query.delivery_track_ids,
        gsm_track_ids=query.gsm_track_ids,
        timeout=budget,
    )


def create_app(
    client_factory: Callable[[], OrganikClient] = OrganikClient,
    *,
    request_budget: float = REQUEST_BUDGET,
) -> FastAPI:
    """The app; ``client_factory`` makes the one client it shares (read from the
    environment by default), called when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with client_factory() as client:
            yield {"organik": client.with_options(pushback_timeout=REFUSAL_PATIENCE)}

    app = FastAPI(title="Delivery reports", lifespan=lifespan)

    async def answer(client: OrganikClient, query: ReportQuery) -> Response:
        try:
            rows = await fetch_rows(client, query, request_budget)
        except (OrganikError, TimeoutError, ValueError, TypeError) as exc:
            return error_response(exc)
        return Response(_encoder.encode(Rows(rows)), media_type="application/json")

    @app.get("/reports/{transaction_id}")
    async def report(transaction_id: int, client: Client) -> Response:
        """Every row of one send task (one transaction)."""
        return await answer(client, ReportQuery(transaction_ids=[transaction_id]))

    @app.post("/reports")
    async def reports(request: Request, client: Client) -> Response:
        """The rows for a list of IDs (``ReportQuery``), at most ``MAX_IDS``."""
        try:
            query = _decoder.decode(await request.body())
        except msgspec.DecodeError as exc:  # not JSON, or not a ReportQuery: a 422
            return error_response(exc)
        return await answer(client, query)

    return app


def error_response(exc: Exception) -> JSONResponse:
    """The HTTP answer for ``exc``; the full (redacted) error goes to the log only."""
    result = http_error_answer(exc)
    if result.status_code >= 500:
        logger.warning("report failed with %d: %s", result.status_code, exc)
    return JSONResponse(
        {"detail": result.detail}, status_code=result.status_code, headers=result.headers
    )


app = create_app()
"""For ``uvicorn web_service:app``: the client reads ``ORGANIK_API_KEY``."""


def export_to_console() -> Callable[[], None]:
    """Global tracer and meter providers printing to stderr; returns what flushes them."""
    import sys

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": "web_service"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr), 5_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

    def flush() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return flush


def main() -> None:
    parser = argparse.ArgumentParser(description="The report service, against the simulator.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rows", type=int, default=10_000, help="rows the simulator holds")
    parser.add_argument(
        "--otel", action="store_true", help="print OpenTelemetry spans and metrics to stderr"
    )
    args = parser.parse_args()
    flush = export_to_console() if args.otel else None
    from organik_async.testing import Dataset, FakeOrganikAPI  # the demo's provider only

    fake = FakeOrganikAPI(Dataset.generate(args.rows, seed=1))
    demo = create_app(lambda: fake.client(rate_limit=50, max_connections=8))
    server = uvicorn.Server(uvicorn.Config(demo, log_level="warning"))
    # Our own socket, so that --port 0 (any free port) can be shown before serving.
    # IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    url = "http://{}:{}".format(*sock.getsockname())
    ids = fake.dataset.transaction_ids[:3]
    body = msgspec.json.encode({"transaction_ids": ids}).decode()
    print(f"serving on {url}; try:", flush=True)
    print(f"  curl {url}/reports/{ids[0]}")
    print(f"  curl -d '{body}' {url}/reports", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly, then re-raises it
        server.run(sockets=[sock])
    if flush is not None:
        flush()


if __name__ == "__main__":
    main()
