"""How does httpx throughput scale with the number of requests in flight?

Background: each time a request enters or leaves an httpcore 1.0.x pool,
``AsyncConnectionPool._assign_requests_to_connections`` walks every
connection (a ``poll()`` syscall per idle one via ``has_expired``, and for
each idle one another full pass: ``len([c.is_idle() for c in connections])``)
and then scans all connections once per queued request, so the cost per
request grows with the square of the connections + waiters in one pool
(encode/httpx#3215, encode/httpcore#1035).
A bulk engine that simply raises ``max_concurrency`` on one ``AsyncClient``
gets *slower*.  This script measures the candidate designs side by side:

``default``      one ``httpx.AsyncClient()`` with default limits (100 conns)
``limits``       one ``httpx.AsyncClient`` with max_connections = C
``pools<P>``     ceil(C/P) clients of ceil(C/K) connections each; worker *i*
                 always uses pool ``i % K``; a per-pool semaphore equal to
                 that pool's max_connections guarantees no pool ever has
                 requests queued inside httpcore, plus a global semaphore C
``pools<P>-ll``  same pools, but every request goes to the least-loaded pool
                 (for a task-per-request engine rather than a worker-per-slot one)
``aiohttp``      ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport(
                 limits=Limits(max_connections=C)))`` (asyncio only)
``aiohttp-raw``  a hand-written aiohttp ``ClientSession`` loop, not httpx at
                 all: the reference ceiling for client + server (asyncio only)

Each point: C workers POST in a loop; after ``--warmup`` seconds the requests
*completed* in each of ``--windows`` back-to-back windows of ``--duration``
seconds are counted; req/s is the median window, p50/p99 are over all of them.
The client's CPU time per request is reported too: it is much less distorted
than req/s when something else competes for the 2 cores.  Points where other
processes used > 20 % of a core are marked †; points where nobody was busy
although client or server should be saturated (host stall) are marked ‡;
``--wait-quiet 60`` waits for an idle machine before each point.  The server is uvicorn
(h11, asyncio loop) with a raw ASGI app returning one fixed answer, optionally
after ``asyncio.sleep(--latency ms)``; it runs in a separate process pinned to
CPU 1 while this process is pinned to CPU 0. Requests and answers have the
API's real shapes: ``POST /v2/<key>/detailedreport/json/`` with
``{"data": {"gsm_track_ids": [...]}}`` (``--ids`` IDs), answered by the
simulator's own JSON envelope of as many rows (encoded once, in-process, by
``organik_async.testing``), so only the pool design varies between points, not
the server's work. Pinning, CPU accounting, the quiet-machine wait and the
machine's description come from ``benchmarks/_common.py``.

Quick run:  python -m benchmarks.pool_scaling --windows 1 --duration 1 --levels 1,64 \
                --strategies default,pools8 --latency 0 --backend asyncio
Full run (~7.5 min): python -m benchmarks.pool_scaling   (--repeat 3 for more confidence)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import (
    CLIENT_CPU,
    DISTURBED,
    SERVER_CPU,
    Log,
    answer_bodies,
    can_pin,
    machine_busy_seconds,
    machine_lines,
    median,
    pin_to,
    process_cpu_seconds,
    wait_until_quiet,
)

if TYPE_CHECKING:
    import httpx


ASYNCIO_ONLY = {"aiohttp", "aiohttp-raw"}
DEFAULT_STRATEGIES = "default,limits,pools2,pools4,pools8,aiohttp,aiohttp-raw"
DEFAULT_LEVELS = "1,8,16,32,64,128"

REQUEST_HEADERS = {"content-type": "application/json"}
REQUEST_BODY: list[bytes] = [b""]
"""The one request body every point sends (set by main from ``--ids``)."""
PATH = f"/v2/{DEMO_API_KEY}/detailedreport/json/"


def request_body(ids: int) -> bytes:
    """The API's request body for the first ``ids`` GSM track IDs of a dataset."""
    track_ids = list(Dataset.generate(ids).gsm_track_ids())
    return msgspec.json.encode({"data": {"gsm_track_ids": track_ids}})


def response_body(ids: int) -> bytes:
    """The simulator's answer to :func:`request_body`: the JSON envelope, ``ids`` rows."""
    return answer_bodies(ids)["json"]


# --------------------------------------------------------------------------
# Server (separate process)
# --------------------------------------------------------------------------


def _exit_with_parent(parent: int) -> None:
    """The server must not outlive a killed benchmark (fork: no atexit runs)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _server_main(
    sock: socket.socket, latency_s: float, body: bytes, pin: bool, parent: int
) -> None:
    _exit_with_parent(parent)
    if pin:
        pin_to(SERVER_CPU)
    import asyncio

    import uvicorn

    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    payload = {"type": "http.response.body", "body": body}

    async def app(scope: Any, receive: Any, send: Any) -> None:  # raw ASGI, no framework
        if scope["type"] != "http":
            return
        more = True
        while more:  # drain the request body
            message = await receive()
            more = message.get("more_body", False)
        if latency_s:
            await asyncio.sleep(latency_s)
        await send(start)
        await send(payload)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        timeout_keep_alive=60,
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[sock])


class EchoServer:
    """uvicorn in a forked child on a pre-bound listening socket (no port race)."""

    def __init__(self, latency_ms: float, body: bytes, pin: bool) -> None:
        self.latency_ms = latency_ms
        self.body = body
        self.pin = pin
        self.proc: Any = None  # a fork-context Process
        self.port = 0

    def __enter__(self) -> EchoServer:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
        # sockets whose proto is IPPROTO_TCP; with proto 0 Nagle + delayed ACK
        # add ~40 ms to every response (uvicorn writes headers and body apart).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        self.port = sock.getsockname()[1]
        ctx = multiprocessing.get_context("fork")
        self.proc = ctx.Process(
            target=_server_main,
            args=(sock, self.latency_ms / 1000.0, self.body, self.pin, os.getpid()),
            daemon=True,
        )
        self.proc.start()
        sock.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        req = (
            b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n"
            b"connection: close\r\n\r\n{}"
        )
        while time.monotonic() < deadline:
            assert self.proc is not None
            if not self.proc.is_alive():
                raise RuntimeError("server process died during start-up")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(req)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout:.0f} s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.proc = None


# --------------------------------------------------------------------------
# Client strategies.  Each yields ``do(i)``: perform one POST for worker i.
# --------------------------------------------------------------------------

Do = Callable[[int], Awaitable[None]]
TIMEOUT = 60.0  # generous, so slow strategies show up as latency, not errors


def _httpx_client(max_conns: int | None = None, **kw: Any) -> httpx.AsyncClient:
    import httpx

    if max_conns is not None:
        kw["limits"] = httpx.Limits(max_connections=max_conns, max_keepalive_connections=max_conns)
    return httpx.AsyncClient(timeout=TIMEOUT, **kw)


async def _post(client: httpx.AsyncClient, url: str) -> None:
    r = await client.post(url, content=REQUEST_BODY[0], headers=REQUEST_HEADERS)
    if r.status_code != 200 or len(r.content) < 100:
        raise RuntimeError(f"bad response {r.status_code}")


@contextlib.asynccontextmanager
async def strategy(name: str, c: int, url: str) -> AsyncIterator[Do]:
    if name == "default":
        async with _httpx_client() as client:

            async def do(i: int) -> None:
                await _post(client, url)

            yield do

    elif name == "limits":
        async with _httpx_client(c) as client:

            async def do(i: int) -> None:
                await _post(client, url)

            yield do

    elif name.startswith("pools"):
        import anyio

        spec = name[len("pools") :]
        least_loaded = spec.endswith("-ll")
        per_pool = int(spec.removesuffix("-ll"))
        k = math.ceil(c / per_pool)
        size = math.ceil(c / k)
        overall = anyio.Semaphore(c)
        sems = [anyio.Semaphore(size) for _ in range(k)]
        rotate = itertools.count()
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(_httpx_client(size)) for _ in range(k)]

            if least_loaded:

                async def do(i: int) -> None:
                    async with overall:
                        # Most free slots wins; rotate the starting point so
                        # ties spread evenly.  No await between the choice and
                        # the acquire, so the choice cannot go stale.
                        start = next(rotate) % k
                        j = max(
                            (sems[(start + n) % k].value, -n, (start + n) % k) for n in range(k)
                        )[2]
                        async with sems[j]:
                            await _post(clients[j], url)

            else:

                async def do(i: int) -> None:
                    j = i % k
                    async with overall, sems[j]:
                        await _post(clients[j], url)

            yield do

    elif name == "aiohttp":
        import httpx
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(
            limits=httpx.Limits(max_connections=c, max_keepalive_connections=c)
        )
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:

            async def do(i: int) -> None:
                await _post(client, url)

            yield do

    elif name == "aiohttp-raw":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=c)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        ) as session:

            async def do(i: int) -> None:
                async with session.post(url, data=REQUEST_BODY[0], headers=REQUEST_HEADERS) as r:
                    data = await r.read()
                    if r.status != 200 or len(data) < 100:
                        raise RuntimeError(f"bad response {r.status}")

            yield do

    else:
        raise SystemExit(f"unknown strategy {name!r}")


# --------------------------------------------------------------------------
# One measurement point
# --------------------------------------------------------------------------


@dataclass
class Point:
    backend: str
    latency_ms: float
    strategy: str
    concurrency: int
    window_rps: list[float] = field(default_factory=list)  # one rate per sub-window
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds
    errors: int = 0
    client_cpu_s: float = 0.0  # CPU seconds used by this process during the windows
    server_cpu_s: float = 0.0
    others_cpu_s: float = 0.0  # every other process on the machine
    measured_s: float = 0.0  # wall seconds of the windows
    cut_short: int = 0  # runs whose in-flight requests outlived --grace
    first_error: str = ""

    # ---- derived ----
    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:  # median sub-window rate: robust to a noisy second
        return median(self.window_rps) if self.window_rps else float("nan")

    def pct_ms(self, q: float) -> float:
        return 1000 * _pct(sorted(self.latencies), q)

    @property
    def client_us_per_req(self) -> float:
        return 1e6 * self.client_cpu_s / self.completed if self.completed else float("nan")

    @property
    def client_cpu_pct(self) -> float:
        return 100 * self.client_cpu_s / self.measured_s if self.measured_s else float("nan")

    @property
    def server_cpu_pct(self) -> float:
        return 100 * self.server_cpu_s / self.measured_s if self.measured_s else float("nan")

    @property
    def others_cpu_pct(self) -> float:
        return 100 * self.others_cpu_s / self.measured_s if self.measured_s else float("nan")

    @property
    def disturbed(self) -> bool:
        """Other processes used a noticeable share of a core meanwhile: on a
        2-core machine they share a CPU with the client or the server."""
        return self.others_cpu_pct > DISTURBED_PCT

    @property
    def stalled(self) -> bool:
        """With no server latency and C >= 8 one side should be CPU-bound; if
        neither process nor anyone else was busy, the host (not the code) held
        us back, e.g. slow wake-ups of an idle vCPU."""
        return (
            not self.disturbed
            and self.latency_ms == 0
            and self.concurrency >= 8
            and max(self.client_cpu_pct, self.server_cpu_pct) < 85
        )

    @property
    def mark(self) -> str:
        return " †" if self.disturbed else " ‡" if self.stalled else ""

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "latency_ms": self.latency_ms,
            "strategy": self.strategy,
            "concurrency": self.concurrency,
            "rps_median": self.rps,
            "rps_min": min(self.window_rps, default=float("nan")),
            "rps_max": max(self.window_rps, default=float("nan")),
            "window_rps": self.window_rps,
            "completed": self.completed,
            "errors": self.errors,
            "p50_ms": self.pct_ms(0.50),
            "p99_ms": self.pct_ms(0.99),
            "max_ms": self.pct_ms(1.0),
            "client_cpu_pct": self.client_cpu_pct,
            "server_cpu_pct": self.server_cpu_pct,
            "client_us_per_req": self.client_us_per_req,
            "cut_short": self.cut_short,
            "others_cpu_pct": self.others_cpu_pct,
            "disturbed": self.disturbed,
            "stalled": self.stalled,
            "first_error": self.first_error,
        }


DISTURBED_PCT = round(DISTURBED * 100)


def _pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    idx = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[idx]


async def _measure(point: Point, url: str, args: argparse.Namespace, server_pid: int) -> None:
    """Warm up once, then ``--windows`` back-to-back windows of ``--duration`` s."""
    import anyio

    c = point.concurrency
    n_win = args.windows
    win = args.duration
    counts = [0] * n_win
    latencies: list[float] = []
    errors = 0
    first_error = ""

    def cpu_now() -> tuple[float, float, float, float]:
        return (
            time.process_time(),
            process_cpu_seconds(server_pid),
            machine_busy_seconds(),
            time.perf_counter(),
        )

    async with strategy(point.strategy, c, url) as do:
        await do(0)  # sanity check before timing anything
        now = time.perf_counter
        t_start = now() + args.warmup
        t_end = t_start + n_win * win
        cpu: list[tuple[float, float, float, float]] = []

        async def worker(i: int) -> None:
            nonlocal errors, first_error
            while True:
                t0 = now()
                if t0 >= t_end:
                    return
                try:
                    await do(i)
                    ok = True
                except Exception as exc:
                    ok = False
                    if not first_error:
                        first_error = f"{type(exc).__name__}: {exc}"[:200]
                t1 = now()
                if t_start <= t1 < t_end:
                    if ok:
                        latencies.append(t1 - t0)
                        counts[min(n_win - 1, int((t1 - t_start) / win))] += 1
                    else:
                        errors += 1

        async def cpu_monitor() -> None:
            await anyio.sleep(max(0.0, t_start - now()))
            cpu.append(cpu_now())
            await anyio.sleep(max(0.0, t_end - now()))
            cpu.append(cpu_now())

        with anyio.move_on_after(args.warmup + n_win * win + args.grace) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cpu_monitor)
                for i in range(c):
                    tg.start_soon(worker, i)
        point.cut_short += int(scope.cancelled_caught)

    point.window_rps.extend(n / win for n in counts)
    point.latencies.extend(latencies)
    point.errors += errors
    point.first_error = point.first_error or first_error
    if len(cpu) == 2:
        (a_me, a_srv, a_busy, a_t), (b_me, b_srv, b_busy, b_t) = cpu
        point.client_cpu_s += b_me - a_me
        point.server_cpu_s += b_srv - a_srv
        point.others_cpu_s += max(0.0, (b_busy - a_busy) - (b_me - a_me) - (b_srv - a_srv))
        point.measured_s += b_t - a_t


def run_point(point: Point, url: str, args: argparse.Namespace, server_pid: int) -> None:
    import anyio

    gc.collect()
    anyio.run(_measure, point, url, args, server_pid, backend=point.backend)


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def _fmt(x: float, nd: int = 0) -> str:
    return "-" if x != x else f"{x:,.{nd}f}"


def scenario_tables(points: list[Point], levels: list[int]) -> str:
    out = []
    strategies = list(dict.fromkeys(p.strategy for p in points))
    by = {(p.strategy, p.concurrency): p for p in points}
    head = "| strategy | " + " | ".join(f"C={c}" for c in levels) + " |"
    sep = "|---|" + "---:|" * len(levels)
    tables: tuple[tuple[str, Callable[[Point], str]], ...] = (
        ("req/s (median of the sub-windows)", lambda p: _fmt(p.rps)),
        ("p99 latency, ms", lambda p: _fmt(p.pct_ms(0.99), 1)),
        (
            "client CPU per request, µs (much less sensitive to other load than req/s)",
            lambda p: _fmt(p.client_us_per_req),
        ),
    )
    for title, cell_of in tables:
        out.append(f"\n{title}:\n")
        out.append(head)
        out.append(sep)
        for s in strategies:
            cells = []
            for c in levels:
                p = by.get((s, c))
                if p is None:
                    cells.append("")
                    continue
                cell = cell_of(p)
                if p.errors:
                    cell += f" ({p.errors} err)"
                if p.cut_short:
                    cell += " (cut)"
                cells.append(cell + p.mark)
            out.append(f"| {s} | " + " | ".join(cells) + " |")
    if any(p.disturbed for p in points):
        out.append(
            f"\n† other processes used more than {DISTURBED_PCT} % of a core during this point: "
            "its req/s and latency are disturbed (µs/request much less so); rerun when quiet."
        )
    if any(p.stalled for p in points):
        out.append(
            "\n‡ nobody reached 85 % CPU although client or server should be saturated: "
            "the host stalled this point; trust the µs/request figure, rerun for req/s."
        )
    return "\n".join(out)


def detail_table(points: list[Point]) -> str:
    nan = float("nan")
    rows = [
        "| backend | latency | strategy | C | req/s median | req/s min–max "
        "| p50 ms | p99 ms | max ms "
        "| errors | client CPU % | server CPU % | others CPU % | client µs/req |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        rows.append(
            f"| {p.backend} | {p.latency_ms:g} ms | {p.strategy} | {p.concurrency} "
            f"| {_fmt(p.rps)}{p.mark} "
            f"| {_fmt(min(p.window_rps, default=nan))}–{_fmt(max(p.window_rps, default=nan))} "
            f"| {_fmt(p.pct_ms(0.5), 1)} | {_fmt(p.pct_ms(0.99), 1)} | {_fmt(p.pct_ms(1.0), 1)} "
            f"| {p.errors} | "
            f"{_fmt(p.client_cpu_pct)} | {_fmt(p.server_cpu_pct)} | {_fmt(p.others_cpu_pct)} | "
            f"{_fmt(p.client_us_per_req)} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--duration", type=float, default=0.8, help="seconds per measured sub-window (default 0.8)"
    )
    ap.add_argument(
        "--windows",
        type=int,
        default=3,
        help="sub-windows per point; req/s is their median (default 3)",
    )
    ap.add_argument(
        "--warmup", type=float, default=0.5, help="warm-up seconds per point (default 0.5)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each scenario's sweep N times, interleaved (default 1)",
    )
    ap.add_argument(
        "--grace", type=float, default=10.0, help="max seconds to let in-flight requests finish"
    )
    ap.add_argument(
        "--levels", default=DEFAULT_LEVELS, help=f"concurrency levels (default {DEFAULT_LEVELS})"
    )
    ap.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help=f"comma list (default {DEFAULT_STRATEGIES}); also pools<P> and pools<P>-ll for any P",
    )
    ap.add_argument(
        "--latency", default="0,20", help="server latencies in ms, comma list (default 0,20)"
    )
    ap.add_argument(
        "--backend", default="asyncio,trio", help="asyncio, trio or both (default both)"
    )
    ap.add_argument(
        "--ids",
        type=int,
        default=20,
        help="GSM track IDs per request, so rows per answer (default 20, ~6 KB answers)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin client/server to CPUs 0/1")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each point wait up to this long until other processes are idle (default 0)",
    )
    ap.add_argument("--json", metavar="PATH", help="also write every point as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = [int(x) for x in args.levels.split(",") if x]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    latencies = [float(x) for x in args.latency.split(",") if x]
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    for b in backends:
        if b not in ("asyncio", "trio"):
            raise SystemExit(f"unknown backend {b!r}")

    pin = not args.no_pin
    if pin and not can_pin():
        print("warning: fewer than 2 usable CPUs, not pinning", file=sys.stderr)
        pin = False
    if pin:
        pin_to(CLIENT_CPU)
    log = Log()

    print("# httpx pool scaling benchmark\n")
    REQUEST_BODY[:] = [request_body(args.ids)]
    answer = response_body(args.ids)
    print("\n".join(machine_lines(pin)))
    print(
        f"- client pinned to CPU {CLIENT_CPU}, "
        f"server (uvicorn, separate process) to CPU {SERVER_CPU}: "
        f"{'yes' if pin else 'no'}\n"
        f"- per point: {args.warmup:g} s warm-up, then {args.windows} × {args.duration:g} s windows"
        f"{f'; sweep repeated {args.repeat}× (interleaved)' if args.repeat > 1 else ''}; "
        f"{args.ids} IDs per request, answers of {len(answer)} B; C workers POST in a loop; "
        f"req/s = median over windows of (requests completed in the window / window)"
    )
    sys.stdout.flush()

    all_points: list[Point] = []
    t0 = time.monotonic()
    for latency in latencies:
        with EchoServer(latency, answer, pin) as server:
            assert server.proc is not None
            assert server.proc.pid is not None
            for backend in backends:
                grid = [
                    (s, c)
                    for s in strategies
                    if not (backend != "asyncio" and s in ASYNCIO_ONLY)
                    for c in levels
                ]
                if not grid:
                    continue
                points = {key: Point(backend, latency, *key) for key in grid}
                for rep in range(args.repeat):
                    order = grid if rep % 2 == 0 else grid[::-1]
                    for key in order:
                        p = points[key]
                        if args.wait_quiet > 0:
                            wait_until_quiet(args.wait_quiet, log)
                        try:
                            run_point(p, server.url, args, server.proc.pid)
                        except Exception as exc:
                            p.first_error = f"{type(exc).__name__}: {exc}"[:200]
                            p.errors += 1
                        print(
                            f"[{time.monotonic() - t0:6.1f}s] {backend:7} {latency:g}ms "
                            f"{p.strategy:12} "
                            f"C={p.concurrency:<4} {p.rps:7.0f} req/s (windows "
                            f"{'/'.join(f'{r:.0f}' for r in p.window_rps[-args.windows :])})  "
                            f"p99 {p.pct_ms(0.99):7.1f} ms  client {p.client_cpu_pct:3.0f}% "
                            f"{p.client_us_per_req:5.0f} µs/req  server {p.server_cpu_pct:3.0f}%  "
                            f"others {p.others_cpu_pct:3.0f}%{p.mark}"
                            + (f"  errors {p.errors} ({p.first_error})" if p.errors else "")
                            + ("  CUT SHORT" if p.cut_short else ""),
                            file=sys.stderr,
                            flush=True,
                        )
                done = list(points.values())
                all_points.extend(done)
                ideal = ""
                if latency:
                    ideal = (
                        " (latency-bound ideal C / latency: "
                        + ", ".join(f"{c}→{c / (latency / 1000):,.0f}" for c in levels)
                        + " req/s)"
                    )
                print(f"\n## {backend}, server latency {latency:g} ms{ideal}")
                print(scenario_tables(done, levels))
                sys.stdout.flush()

    print("\n## All points\n")
    print(detail_table(all_points))
    print(f"\ntotal wall time {time.monotonic() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([p.summary() for p in all_points], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
