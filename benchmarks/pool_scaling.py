#!/usr/bin/env python3
"""How does httpx throughput scale with the number of requests in flight?

Background: httpcore's connection pool re-runs its request-to-connection
assignment over *every* connection and *every* queued request each time a
request starts or finishes, so the cost per request grows with the number of
connections + waiters in one pool (encode/httpx#3215, encode/httpcore#1035).
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

Each point: C workers POST in a loop; after ``--warmup`` seconds the
requests *completed* during the next ``--duration`` seconds are counted
(req/s) and their latency is recorded (p50/p99).  The server is uvicorn
(h11, asyncio loop) with a raw ASGI app returning a fixed ~5 KB JSON body,
optionally after ``asyncio.sleep(--latency ms)``; it runs in a separate
process pinned to CPU 1 while this process is pinned to CPU 0.

Quick run:  python benchmarks/pool_scaling.py --duration 1 --levels 1,64 \
                --strategies default,pools8 --latency 0 --backend asyncio
Full run (~7 min): python benchmarks/pool_scaling.py
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
import platform
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field

CLIENT_CPU = 0
SERVER_CPU = 1

ASYNCIO_ONLY = {"aiohttp", "aiohttp-raw"}
DEFAULT_STRATEGIES = "default,limits,pools4,pools8,aiohttp,aiohttp-raw"
DEFAULT_LEVELS = "1,8,16,32,64,128"

REQUEST_BODY = json.dumps(
    {
        "username": "bench",
        "password": "secret",
        "msgids": ["4f1c2e7a-%04d" % i for i in range(6)],
    }
).encode()
REQUEST_HEADERS = {"content-type": "application/json"}


def make_response_body(size: int) -> bytes:
    """A JSON body of roughly ``size`` bytes (a list of delivery reports)."""
    reports = []
    for i in itertools.count():
        reports.append(
            {
                "msgid": f"4f1c2e7a-{i:04d}",
                "recipient": f"+3069{i:08d}",
                "status": "DELIVERED",
                "error": None,
                "submitted": "2024-05-01T12:00:00Z",
                "done": "2024-05-01T12:00:03Z",
            }
        )
        body = json.dumps({"reports": reports}).encode()
        if len(body) >= size:
            return body
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Server (separate process)
# --------------------------------------------------------------------------


def _server_main(sock: socket.socket, latency_s: float, body_size: int, pin: bool) -> None:
    if pin:
        os.sched_setaffinity(0, {SERVER_CPU})
    import asyncio

    import uvicorn

    body = make_response_body(body_size)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    payload = {"type": "http.response.body", "body": body}

    async def app(scope, receive, send):  # raw ASGI, no framework
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

    def __init__(self, latency_ms: float, body_size: int, pin: bool) -> None:
        self.latency_ms = latency_ms
        self.body_size = body_size
        self.pin = pin
        self.proc: multiprocessing.Process | None = None
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
            args=(sock, self.latency_ms / 1000.0, self.body_size, self.pin),
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
        raise RuntimeError("server did not answer within %.0f s" % timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/reports"

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


def _httpx_client(max_conns: int | None = None, **kw):
    import httpx

    if max_conns is not None:
        kw["limits"] = httpx.Limits(max_connections=max_conns, max_keepalive_connections=max_conns)
    return httpx.AsyncClient(timeout=TIMEOUT, **kw)


async def _post(client, url: str) -> None:
    r = await client.post(url, content=REQUEST_BODY, headers=REQUEST_HEADERS)
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
                async with session.post(url, data=REQUEST_BODY, headers=REQUEST_HEADERS) as r:
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
    rps: float = 0.0
    completed: int = 0
    errors: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    client_cpu: float = float("nan")  # % of one core, during the window
    server_cpu: float = float("nan")
    cut_short: bool = False  # workers still busy after the grace period
    first_error: str = ""
    extra: dict = field(default_factory=dict)


def _pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    idx = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[idx]


async def _measure(point: Point, url: str, warmup: float, duration: float, grace: float, server_pid: int) -> None:
    import anyio
    import psutil

    me = psutil.Process()
    srv = psutil.Process(server_pid)
    c = point.concurrency
    latencies: list[float] = []
    errors = 0
    first_error = ""

    async with strategy(point.strategy, c, url) as do:
        await do(0)  # sanity check before timing anything
        now = time.perf_counter
        t_start = now() + warmup
        t_end = t_start + duration
        cpu: dict[str, float] = {}

        async def worker(i: int) -> None:
            nonlocal errors, first_error
            while True:
                t0 = now()
                if t0 >= t_end:
                    return
                try:
                    await do(i)
                    ok = True
                except Exception as exc:  # noqa: BLE001 - count, don't die
                    ok = False
                    if not first_error:
                        first_error = f"{type(exc).__name__}: {exc}"[:200]
                t1 = now()
                if t_start <= t1 < t_end:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        async def cpu_monitor() -> None:
            await anyio.sleep(max(0.0, t_start - now()))
            a_me, a_srv, a_t = sum(me.cpu_times()[:2]), sum(srv.cpu_times()[:2]), now()
            await anyio.sleep(max(0.0, t_end - now()))
            b_me, b_srv, b_t = sum(me.cpu_times()[:2]), sum(srv.cpu_times()[:2]), now()
            cpu["client"] = 100 * (b_me - a_me) / (b_t - a_t)
            cpu["server"] = 100 * (b_srv - a_srv) / (b_t - a_t)

        with anyio.move_on_after(warmup + duration + grace) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cpu_monitor)
                for i in range(c):
                    tg.start_soon(worker, i)
        point.cut_short = scope.cancelled_caught

    latencies.sort()
    point.completed = len(latencies)
    point.errors = errors
    point.first_error = first_error
    point.rps = len(latencies) / duration
    point.p50_ms = 1000 * _pct(latencies, 0.50)
    point.p99_ms = 1000 * _pct(latencies, 0.99)
    point.max_ms = 1000 * latencies[-1] if latencies else float("nan")
    point.client_cpu = cpu.get("client", float("nan"))
    point.server_cpu = cpu.get("server", float("nan"))


def run_point(point: Point, url: str, args: argparse.Namespace, server_pid: int) -> None:
    import anyio

    gc.collect()
    anyio.run(
        _measure, point, url, args.warmup, args.duration, args.grace, server_pid, backend=point.backend
    )


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def machine_info() -> str:
    import importlib.metadata as md

    import psutil

    def v(p: str) -> str:
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return "-"

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return (
        f"- machine: {psutil.cpu_count(logical=True)} logical cores ({cpu_model or platform.processor()}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        f"httpx {v('httpx')}, httpcore {v('httpcore')}, anyio {v('anyio')}, trio {v('trio')}, "
        f"aiohttp {v('aiohttp')}, httpx-aiohttp {v('httpx-aiohttp')}, uvicorn {v('uvicorn')} "
        f"(h11 {v('h11')}, asyncio loop)"
    )


def _fmt(x: float, nd: int = 0) -> str:
    return "-" if x != x else f"{x:,.{nd}f}"


def scenario_tables(points: list[Point], levels: list[int]) -> str:
    out = []
    strategies = list(dict.fromkeys(p.strategy for p in points))
    by = {(p.strategy, p.concurrency): p for p in points}
    head = "| strategy | " + " | ".join(f"C={c}" for c in levels) + " |"
    sep = "|---|" + "---:|" * len(levels)
    for title, key, nd in (("req/s", "rps", 0), ("p99 latency, ms", "p99_ms", 1)):
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
                cell = _fmt(getattr(p, key), nd)
                if p.errors:
                    cell += f" ({p.errors} err)"
                if p.cut_short:
                    cell += " (cut)"
                cells.append(cell)
            out.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def detail_table(points: list[Point]) -> str:
    rows = [
        "| backend | latency | strategy | C | req/s | p50 ms | p99 ms | max ms | errors | client CPU % | server CPU % |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        rows.append(
            f"| {p.backend} | {p.latency_ms:g} ms | {p.strategy} | {p.concurrency} | {_fmt(p.rps)} | "
            f"{_fmt(p.p50_ms, 1)} | {_fmt(p.p99_ms, 1)} | {_fmt(p.max_ms, 1)} | {p.errors} | "
            f"{_fmt(p.client_cpu)} | {_fmt(p.server_cpu)} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=2.5, help="measured seconds per point (default 2.5)")
    ap.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per point (default 0.5)")
    ap.add_argument("--grace", type=float, default=10.0, help="max seconds to let in-flight requests finish")
    ap.add_argument("--levels", default=DEFAULT_LEVELS, help=f"concurrency levels (default {DEFAULT_LEVELS})")
    ap.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help=f"comma list (default {DEFAULT_STRATEGIES}); also pools<P> and pools<P>-ll for any P",
    )
    ap.add_argument("--latency", default="0,20", help="server latencies in ms, comma list (default 0,20)")
    ap.add_argument("--backend", default="asyncio,trio", help="asyncio, trio or both (default both)")
    ap.add_argument("--body-size", type=int, default=5000, help="response body bytes (default 5000)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin client/server to CPUs 0/1")
    ap.add_argument("--json", metavar="PATH", help="also write every point as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    latencies = [float(x) for x in args.latency.split(",") if x]
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    for b in backends:
        if b not in ("asyncio", "trio"):
            raise SystemExit(f"unknown backend {b!r}")

    pin = not args.no_pin
    if pin and (not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2):
        print("warning: fewer than 2 usable CPUs, not pinning", file=sys.stderr)
        pin = False
    if pin:
        os.sched_setaffinity(0, {CLIENT_CPU})

    print("# httpx pool scaling benchmark\n")
    print(machine_info())
    print(
        f"- client pinned to CPU {CLIENT_CPU}, server (uvicorn, separate process) to CPU {SERVER_CPU}: "
        f"{'yes' if pin else 'no'}\n"
        f"- {args.warmup:g} s warm-up + {args.duration:g} s measured per point; "
        f"response body {len(make_response_body(args.body_size))} B; "
        f"C workers POST in a loop; req/s = requests completed in the window / window"
    )
    sys.stdout.flush()

    all_points: list[Point] = []
    t0 = time.monotonic()
    for latency in latencies:
        with EchoServer(latency, args.body_size, pin) as server:
            assert server.proc is not None and server.proc.pid is not None
            for backend in backends:
                points = []
                for strat in strategies:
                    if backend != "asyncio" and strat in ASYNCIO_ONLY:
                        continue
                    for c in levels:
                        p = Point(backend, latency, strat, c)
                        try:
                            run_point(p, server.url, args, server.proc.pid)
                        except Exception as exc:  # noqa: BLE001
                            p.first_error = f"{type(exc).__name__}: {exc}"[:200]
                            p.errors = -1
                        points.append(p)
                        print(
                            f"[{time.monotonic() - t0:6.1f}s] {backend:7} {latency:g}ms {strat:12} C={c:<4} "
                            f"{p.rps:8.0f} req/s  p50 {p.p50_ms:7.1f}  p99 {p.p99_ms:7.1f} ms  "
                            f"cpu client {p.client_cpu:4.0f}% server {p.server_cpu:4.0f}%"
                            + (f"  errors {p.errors} ({p.first_error})" if p.errors else "")
                            + ("  CUT SHORT" if p.cut_short else ""),
                            file=sys.stderr,
                            flush=True,
                        )
                if not points:
                    continue
                all_points.extend(points)
                ideal = ""
                if latency:
                    ideal = " — latency-bound ideal is C / latency: " + ", ".join(
                        f"{c}→{c / (latency / 1000):,.0f}" for c in levels
                    )
                print(f"\n## {backend}, server latency {latency:g} ms{ideal}")
                print(scenario_tables(points, levels))
                sys.stdout.flush()

    print("\n## All points\n")
    print(detail_table(all_points))
    print(f"\ntotal wall time {time.monotonic() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(p) for p in all_points], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
