"""What every benchmark shares: CPU pinning, the simulator's server process,
CPU and memory readings, rounds taken in turns, Markdown tables, and the results files.

The server always runs in its own process (``python -m organik_async.testing
serve``) pinned to one CPU, and the client being measured on the other, so
the two never share a core or a GIL. The machine may also run other work
(other sessions, CI): `CpuMeter` reports the CPU time spent by
everything *else* during a measurement, so a reader can tell a clean figure
from a disturbed one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from statistics import median
from types import TracebackType
from typing import IO, Any, Final, Self, TypeVar

import msgspec

T = TypeVar("T")

CLIENT_CPU: Final = 0
SERVER_CPU: Final = 1
MIB: Final = 1024 * 1024
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


# --- CPUs -------------------------------------------------------------------------------


def can_pin() -> bool:
    """Pinning needs Linux's affinity calls and the two CPUs the benchmarks use."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    return {CLIENT_CPU, SERVER_CPU} <= os.sched_getaffinity(0)


def pin_to(cpu: int) -> None:
    """Pin this process (and the threads and children it starts later) to ``cpu``."""
    os.sched_setaffinity(0, {cpu})


_STARTING_CPUS: Final = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
"""The CPUs this process could use before anything pinned it."""


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Let this thread, and the threads it starts meanwhile, use every CPU it started with.

    For a part whose server runs in a thread of this process (``tuning``): pinned
    with the client, it would share one core where it was measured on two.
    """
    if _STARTING_CPUS is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _STARTING_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from ``/proc`` (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """user + nice + system CPU time of the whole machine, all CPUs added (``/proc/stat``).

    irq/softirq time is left out: loopback traffic is processed in softirq
    context and, with IRQ time accounting, charged to nobody's process, so
    counting it would flag our own network load as "other processes". Steal
    (the host running someone else) is left out too: it is noise, but not
    another process of this machine.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (values[0] + values[1] + values[2]) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """CPU seconds over one measured interval, split by who spent them."""

    wall: float
    client: float
    server: float
    others: float
    """Everything else on the machine: a large value means a disturbed figure."""

    def share(self, seconds: float) -> float:
        """CPU seconds as a fraction of one core over the interval."""
        return seconds / self.wall if self.wall > 0 else 0.0


class CpuMeter:
    """Measures an interval's wall time and who used the CPUs during it.

    This process's CPU time comes from ``time.process_time`` (nanosecond
    resolution); the server's from ``/proc`` (10 ms ticks, enough for the
    shares of a core that the tables show).
    """

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        return (
            time.perf_counter(),
            time.process_time(),
            process_cpu_seconds(self._server_pid),
            machine_busy_seconds(),
        )

    def stop(self) -> CpuUsage:
        end = self._sample()
        wall, client, server, busy = (b - a for a, b in zip(self._start, end, strict=True))
        return CpuUsage(wall, client, server, max(0.0, busy - client - server))


# --- answers ---------------------------------------------------------------------------


def report_path(fmt: str = "json") -> str:
    """The report endpoint's path for the simulator's demo key (``fmt`` both ways)."""
    from organik_async.testing import DEMO_API_KEY

    return f"/v2/{DEMO_API_KEY}/detailedreport/{fmt}/"


# --- memory -----------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size right now."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


def peak_rss_bytes() -> int:
    """The largest resident set size this process's memory has had (``VmHWM``).

    This is the high-water mark of the address space the process got at
    ``exec``, so it starts afresh in a new child. ``ru_maxrss`` does not: Linux
    carries the parent's resident size over ``fork``/``exec`` into the child's
    ``ru_maxrss``, so a child started by a big parent reports the parent's size
    (see `max_rss_bytes`).
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return max_rss_bytes()


def max_rss_bytes() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the simulator's server process -------------------------------------------------------


class SimulatorServer:
    """``python -m organik_async.testing serve`` in a child process, pinned to its own CPU.

    Entering starts it on a free port (``--port 0``) and waits until it prints
    its URL, which it does once it accepts connections (a big dataset is
    generated and encoded first: a million rows take a few seconds). Leaving
    sends SIGTERM and keeps the stats the server prints as it exits
    (`stats`), so a benchmark can check that the server saw what the
    client sent.
    """

    def __init__(
        self,
        rows: int,
        *,
        seed: int = 0,
        latency: float = 0.0,
        pin: bool = True,
        startup_timeout: float = 180.0,
    ) -> None:
        self.rows = rows
        self.seed = seed
        self.latency = latency
        self._pin = pin
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.url = ""
        self.startup_seconds = 0.0
        self.stats: dict[str, Any] = {}

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "organik_async.testing", "serve", "--port", "0",
            "--rows", str(self.rows), "--seed", str(self.seed), "--warm", "json",
        ]  # fmt: skip
        if self.latency > 0:
            command += ["--latency", repr(self.latency)]
        return command

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def __enter__(self) -> Self:
        started = time.perf_counter()
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")
        pin = self._pin
        self._process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            # The child pins itself before exec, so every thread it starts
            # (uvicorn runs in one) stays on the server's CPU.
            preexec_fn=(lambda: pin_to(SERVER_CPU)) if pin else None,
        )
        try:
            self.url = self._wait_for_url()
        except BaseException:
            self._stop()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def _wait_for_url(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], self._startup_timeout)
        line = self._process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            raise RuntimeError(
                f"the simulator did not start within {self._startup_timeout:.0f}s: "
                f"{self._stderr_text()[-2000:]!r}"
            )
        return line

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        self.stats = self._parse_stats(self._stderr_text())
        if self._stderr is not None:
            self._stderr.close()

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    @staticmethod
    def _parse_stats(text: str) -> dict[str, Any]:
        lines = text.strip().splitlines()
        if not lines or not lines[-1].startswith("{"):
            return {}
        with contextlib.suppress(ValueError):
            stats: dict[str, Any] = json.loads(lines[-1])
            return stats
        return {}


# --- reporting --------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def machine_facts(pinned: bool) -> dict[str, Any]:
    """What a results file records about where and with what it was measured."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "pinned": pinned,
        "versions": {name: _version(name) for name in PACKAGES},
    }


PACKAGES: Final = (
    "organik_async", "httpx", "httpcore", "anyio", "msgspec", "xmltodict", "uvicorn", "h11",
    "aiohttp", "httpx-aiohttp", "orjson", "pydantic", "matplotlib", "lxml",
)  # fmt: skip
"""The packages whose versions a results file records."""


def describe_machine(facts: Mapping[str, Any]) -> list[str]:
    """Two sentences on a results file's machine and versions (or this run's)."""
    date = facts["date"].replace("T", " ").replace("+00:00", " UTC")
    pinning = (
        f"client pinned to CPU {CLIENT_CPU}, the simulator's process to CPU {SERVER_CPU}"
        if facts["pinned"]
        else "not pinned to CPUs"
    )
    load = ", ".join(f"{v:.2f}" for v in facts["load_average_at_start"])
    versions = ", ".join(f"{k} {v}" for k, v in facts["versions"].items() if v != "-")
    return [
        f"Measured {date} with `{facts['command']}` on {facts['cpu_count']} cores "
        f"({facts['cpu_model']}), {facts['memory_gib']} GiB RAM, {facts['system']}, "
        f"Python {facts['python']}; load average at start {load}; {pinning}.",
        f"Versions: {versions}.",
    ]


def command_line() -> str:
    """The command that is running, as a reader would type it."""
    return "python -m benchmarks" + "".join(f" {a}" for a in sys.argv[1:])


RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"


def write_results(part: str, figures: Any, facts: Mapping[str, Any]) -> Path:
    """``benchmarks/results/<part>.json``: the machine, the versions, the command and the
    figures. The tables are made from these files alone (``benchmarks/report.py``)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    document = {"part": part, "machine": dict(facts), "figures": msgspec.to_builtins(figures)}
    path = RESULTS_DIR / f"{part}.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=1) + b"\n")
    return path


def spread(values: Sequence[float]) -> float:
    """Half the range of ``values``, relative to their median (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    middle = median(values)
    return (max(values) - min(values)) / 2 / middle if middle else 0.0


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def mark(ok: bool) -> str:
    """How a target's line starts in the reports."""
    return "MET:" if ok else "NOT MET:"


def percent(fraction: float) -> str:
    return f"{fraction:.0%}"


DISTURBED: Final = 0.2
"""Other processes using more than this share of a core make a timing suspect."""
DISTURBED_NOTE: Final = (
    "† other processes on the machine used more than "
    f"{DISTURBED:.0%} of a core during this measurement: its timings are disturbed."
)


def others_cell(share: float) -> str:
    """The others' CPU share, flagged when it is large enough to disturb a timing."""
    return percent(share) + (" †" if share > DISTURBED else "")


def wait_until_quiet(max_wait: float, log: Log) -> float:
    """Wait (up to ``max_wait`` s) until the rest of the machine is nearly idle.

    Other sessions or CI jobs may share the machine, and a benchmark pinned to
    a CPU another process also uses measures that process as much as our
    code. Returns the others' share of a core over the last second sampled.
    """
    deadline = time.perf_counter() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        share = machine_busy_seconds() - before
        if share < DISTURBED / 2 or time.perf_counter() >= deadline:
            if max_wait > 0:
                log(f"other processes use {share:.0%} of a core")
            return share
        log(f"waiting for a quiet machine (others use {share:.0%} of a core)")


def in_turns(
    cases: Sequence[T], rounds: int, before_round: Callable[[], object] = lambda: None
) -> Iterator[tuple[int, T]]:
    """``(round, case)``: every case once a round, in reverse order every other round, so
    a slow phase of the shared machine falls on all of them alike; ``before_round`` is
    called before each round (the suite's ``--wait-quiet`` waits there)."""
    for round_ in range(rounds):
        before_round()
        for case in cases if round_ % 2 == 0 else cases[::-1]:
            yield round_, case


def failure_text(exc: BaseException) -> str:
    """What a table says of a method that failed (its timings stop there)."""
    return f"{type(exc).__name__}: {exc}"[:300]


def mib(size: float) -> str:
    return f"{size / MIB:,.1f}"


class Log:
    """Progress lines, timed from the start, on stderr (the tables go to stdout)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def __call__(self, text: str) -> None:
        print(f"[{time.perf_counter() - self._started:6.1f}s] {text}", file=sys.stderr, flush=True)
