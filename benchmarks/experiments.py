"""Micro-experiments behind ``benchmarks/PROFILE.md``: ``python -m benchmarks.experiments``.

Each experiment isolates one suspect of the end-to-end profile and times the
way the client does it today against a proposed way, on this machine's one
pinned core, in CPU time (``time.process_time``), median of interleaved
rounds. "Today" is a copy of the client's logic as of the profile (commit
05f3818), written out here so the experiment keeps running while the core is
being refactored; the proposals are sketches, not the library's code. ``ids``
and ``rows`` also run the library's own code (``organik_async._bulk``, private
names), against copies of it as of c0e80bf, before issue 11's change to it.

``ids``        per-ID bookkeeping: validate twice and canonicalise twice (05f3818),
               a Python call per ID (c0e80bf), the library's loop per chunk now;
               alone and with each batch's rows deduplicated
``rows``       dedupe of rows by ``gsm_track_id``: a set of its own (c0e80bf), the
               library's ``_Dedupe`` now, asked by transaction and by GSM track ID
``url``        building a request: URL string parsed per request, against an
               ``httpx.URL`` and ``httpx.Headers`` built once
``scopes``     the price of one anyio cancel scope, and of the async context
               managers around one request
``read``       reading a 500-row body: ``aiter_bytes`` chunk loop (today) against
               ``aread()`` and ``aiter_raw()`` (over TCP, the simulator), on httpx's
               transport and on the aiohttp one
``xml``        xmltodict against the standard library's ElementTree (and lxml, when
               it is installed), same body
``intsets``    the memory of a million track IDs remembered by dedupe: a Python set
               against a dict of 64-bit masks and (when installed) a roaring bitmap,
               for three spreads of IDs, each in a fresh process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import importlib.util
import itertools
import multiprocessing
import random
import statistics
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any, Final, cast

import anyio
import httpx
import msgspec
import xmltodict
from httpx_aiohttp import AiohttpTransport

from organik_async import BatchSizes, DetailedReport
from organik_async._bulk import BulkOptions, _Batcher, _Dedupe, check_sources
from organik_async._models import canonical_id, validate_id
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CLIENT_CPU, SimulatorServer, can_pin, markdown_table, pin_to, rss_bytes
from .decode import bodies, xml_items

Id = int | str
Result = tuple[str, list[tuple[str, float, str]]]
"""An experiment's title and its lines: (variant, figure, unit)."""


def _cpu(variants: dict[str, Callable[[], object]], rounds: int = 7) -> dict[str, float]:
    """Median CPU seconds of each variant's call, the variants taking turns round after
    round (one warm call each first), so a busy phase of the machine hits them all."""
    for function in variants.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            gc.collect()
            started = time.process_time()
            variants[name]()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) for name, values in times.items()}


# --- per-ID bookkeeping -----------------------------------------------------------------


def _validate_id(value: object, field: str) -> Id:  # as in _codec today
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{field} must contain only int or str IDs, got {type(value).__name__}")
    return value


def _canonical_id(value: int | str) -> int | str:  # as in _codec today
    if isinstance(value, int):
        return value
    digits = value.removeprefix("-")
    if digits.isascii() and digits.isdigit() and str(int(value)) == value:
        return int(value)
    return value


def _today_ids(ids: Sequence[Id], size: int) -> int:
    """check_sources validates the whole list; the batcher validates and canonicalises
    each ID again while cutting batches (dedupe on)."""
    for value in ids:
        _validate_id(value, "gsm_track_ids")
    seen: set[Id] = set()
    iterator = iter(ids)
    batches = 0
    while True:
        chunk = list(_islice(iterator, size))
        if not chunk:
            return batches
        batch: list[Id] = []
        for value in chunk:
            valid = _validate_id(value, "gsm_track_ids")
            key = _canonical_id(valid)
            if key in seen:
                continue
            seen.add(key)
            batch.append(valid)
        batches += 1


def _islice(iterator: Iterator[Id], n: int) -> Iterator[Id]:
    for _ in range(n):
        try:
            yield next(iterator)
        except StopIteration:
            return


class _AcceptPerId:
    """The batcher as of c0e80bf (before issue 11's bookkeeping change): lists validated
    whole by ``check_sources``, then a Python call (``_accept``) per ID."""

    def __init__(self) -> None:
        self._seen: dict[str, set[Id]] = {"gsm_track_ids": set()}
        self._validated = frozenset({"gsm_track_ids"})

    def batches(self, ids: Sequence[Id], size: int) -> list[tuple[Id, ...]]:
        for value in ids:  # check_sources, as then
            validate_id(value, "gsm_track_ids")
        iterator = iter(ids)
        batches: list[tuple[Id, ...]] = []
        while True:
            chunk = list(itertools.islice(iterator, size))
            if not chunk:
                return batches
            batch: list[Id] = []
            for value in chunk:
                self._accept("gsm_track_ids", value, batch)
            batches.append(tuple(batch))

    def _accept(self, kind: str, value: object, ids: list[Id]) -> None:
        valid = cast(Id, value) if kind in self._validated else validate_id(value, kind)
        key = valid if type(valid) is int else canonical_id(valid)
        seen = self._seen[kind]
        if key in seen:
            return
        seen.add(key)
        ids.append(valid)


def _unseen(rows: list[DetailedReport], seen: set[Id]) -> Iterator[DetailedReport]:
    """Row dedupe as of c0e80bf: a set of its own, of every gsm_track_id yielded."""
    for row in rows:
        key = row.gsm_track_id
        if type(key) is not int:
            key = canonical_id(key)
        if key not in seen:
            seen.add(key)
            yield row


def _before(ids: Sequence[Id], rows: Sequence[list[DetailedReport]] | None, size: int) -> int:
    """c0e80bf: the IDs cut into batches; then, if ``rows`` are given, each batch's rows."""
    batches = _AcceptPerId().batches(ids, size)
    if rows is None:
        return len(batches)
    seen: set[Id] = set()
    return sum(1 for batch in rows for _ in _unseen(batch, seen))


def _library(ids: Sequence[Id], rows: Sequence[list[DetailedReport]] | None, size: int) -> int:
    """The library's own code: ``check_sources``, ``_Batcher`` (read under its lock, in an
    event loop: ``anyio.run`` is included, ~0.02 µs/ID) and, if ``rows`` are given, each
    batch's rows through ``_Dedupe.new_rows`` right after the batch, as a call does."""
    sources = check_sources({"gsm_track_ids": ids})
    options = BulkOptions(batch_sizes=BatchSizes(gsm_track_ids=size), max_concurrency=1)
    dedupe = _Dedupe()
    batcher = _Batcher(sources, options, dedupe)

    async def run() -> int:
        count = 0
        while (batch := await batcher.next_batch()) is not None:
            count += 1 if rows is None else len(dedupe.new_rows(rows[batch.index]))
        return count

    return anyio.run(run)


def experiment_ids(n: int = 200_000) -> Result:
    lines = []
    for share, ids_are in ((0.0, "ints"), (0.1, "a tenth strings")):
        dataset = list(Dataset.generate(n, string_track_id_share=share))
        ids: list[Id] = [row.gsm_track_id for row in dataset]
        rows = [dataset[i : i + 500] for i in range(0, n, 500)]
        t = _cpu(
            {
                "05f3818": partial(_today_ids, ids, 500),
                "before": partial(_before, ids, None, 500),
                "now": partial(_library, ids, None, 500),
                "before+rows": partial(_before, ids, rows, 500),
                "now+rows": partial(_library, ids, rows, 500),
            }
        )
        lines += [
            (f"{ids_are}: {variant}", t[name] / n * 1e6, "µs/ID")
            for name, variant in (
                ("05f3818", "05f3818 (the profile's), validate x2"),
                ("before", "c0e80bf, a Python call per ID"),
                ("now", "library now, a loop per chunk"),
                ("before+rows", "c0e80bf, IDs and their rows (two sets)"),
                ("now+rows", "library now, IDs and their rows (one set)"),
            )
        ]
    return (
        f"Per-ID bookkeeping, {n:,} GSM track IDs in a list, batches of 500, dedupe on",
        lines,
    )


# --- row dedupe ---------------------------------------------------------------------------


def _rows_before(batches: Iterable[list[DetailedReport]]) -> int:
    seen: set[Id] = set()
    return sum(1 for rows in batches for _ in _unseen(rows, seen))


def _rows_now(batches: Iterable[list[DetailedReport]], waiting: Iterable[Id] | None) -> int:
    """The library's ``_Dedupe`` over ``batches``; ``waiting``: the GSM track IDs read."""
    dedupe = _Dedupe() if waiting is None else _waiting(waiting)
    return sum(len(dedupe.new_rows(rows)) for rows in batches)


def _waiting(ids: Iterable[Id]) -> _Dedupe:
    """A ``_Dedupe`` whose batcher has read ``ids`` as GSM track IDs."""
    dedupe = _Dedupe()
    dedupe.unanswered.update(canonical_id(i) for i in ids)
    return dedupe


def experiment_rows(n: int = 200_000) -> Result:
    lines = []
    for share, ids_are in ((0.0, "ints"), (0.1, "a tenth strings")):
        dataset = list(Dataset.generate(n, string_track_id_share=share))
        batches = [dataset[i : i + 500] for i in range(0, n, 500)]
        ids = [row.gsm_track_id for row in dataset]
        t = _cpu(
            {
                "before": partial(_rows_before, batches),
                "by transaction": partial(_rows_now, batches, None),
                "waiting": partial(_waiting, ids),
                "by gsm": partial(_rows_now, batches, ids),
            }
        )
        # The rows alone: reading the IDs is the batcher's cost (experiment ids).
        by_gsm = t["by gsm"] - t["waiting"]
        lines += [
            (f"{ids_are}: c0e80bf, a set of its own", t["before"] / n * 1e6, "µs/row"),
            (f"{ids_are}: now, by transaction ID", t["by transaction"] / n * 1e6, "µs/row"),
            (f"{ids_are}: now, by GSM track ID", by_gsm / n * 1e6, "µs/row"),
        ]
    return (f"Row dedupe by gsm_track_id, {n:,} rows in batches of 500", lines)


# --- building a request -----------------------------------------------------------------


def experiment_url(n: int = 20_000) -> Result:
    client = httpx.AsyncClient()
    url_text = f"http://127.0.0.1:8080/v2/{DEMO_API_KEY}/detailedreport/json/"
    headers_dict = {"Content-Type": "application/json", "Accept": "application/json"}
    url = httpx.URL(url_text)
    headers = httpx.Headers(headers_dict)
    body = b'{"data":{"gsm_track_ids":[1,2,3]}}'

    def today() -> None:
        for _ in range(n):
            client.build_request("POST", url_text, content=body, headers=headers_dict)

    def prebuilt() -> None:
        for _ in range(n):
            client.build_request("POST", url, content=body, headers=headers)

    def parse_only() -> None:
        for _ in range(n):
            httpx.URL(url_text)

    t = _cpu({"today": today, "prebuilt": prebuilt, "parse": parse_only})
    t_today, t_pre, t_parse = t["today"], t["prebuilt"], t["parse"]
    return (
        "Building one request (client.build_request), no network",
        [
            ("today: URL str + headers dict", t_today / n * 1e6, "µs/request"),
            ("httpx.URL + httpx.Headers built once", t_pre / n * 1e6, "µs/request"),
            ("of which: httpx.URL(str) alone", t_parse / n * 1e6, "µs/request"),
        ],
    )


# --- cancel scopes and context managers ---------------------------------------------------


def experiment_scopes(n: int = 50_000) -> Result:
    async def scopes() -> float:
        started = time.process_time()
        for _ in range(n):
            with anyio.CancelScope():  # noqa: ASYNC100 (the scope's own price is measured)
                pass
        return time.process_time() - started

    async def limiter() -> float:
        lim = anyio.CapacityLimiter(128)
        started = time.process_time()
        for _ in range(n):
            async with lim:
                pass
        return time.process_time() - started

    async def lock() -> float:
        lk = anyio.Lock()
        started = time.process_time()
        for _ in range(n):
            async with lk:
                pass
        return time.process_time() - started

    @contextlib.asynccontextmanager
    async def acm() -> AsyncIterator[None]:
        yield

    async def generator_cm() -> float:
        started = time.process_time()
        for _ in range(n):
            async with acm():
                pass
        return time.process_time() - started

    async def task_group() -> float:
        started = time.process_time()
        for _ in range(n // 10):
            async with anyio.create_task_group():
                pass
        return (time.process_time() - started) * 10

    lines = []
    for label, probe in (
        ("anyio.CancelScope() enter + exit", scopes),
        ("anyio.CapacityLimiter acquire + release (uncontended)", limiter),
        ("anyio.Lock acquire + release (uncontended)", lock),
        ("@asynccontextmanager enter + exit", generator_cm),
        ("anyio task group, empty, enter + exit", task_group),
    ):
        seconds = statistics.median(asyncio.run(probe()) for _ in range(5))
        lines.append((label, seconds / n * 1e6, "µs each"))
    return ("The price of one scope or context manager, asyncio, uncontended", lines)


# --- reading the body ----------------------------------------------------------------------


async def _reads(
    url: str, ids: Sequence[Id], requests: int, rounds: int, transport: str
) -> dict[str, float]:
    path = f"/v2/{DEMO_API_KEY}/detailedreport/json/"
    bodies_ = [
        msgspec.json.encode({"data": {"gsm_track_ids": list(ids[i * 500 : (i + 1) * 500])}})
        for i in range(requests)
    ]
    headers = {"Content-Type": "application/json"}
    cpu: dict[str, list[float]] = {"aiter_bytes": [], "aread": [], "aiter_raw": []}
    async with httpx.AsyncClient(
        base_url=url,
        timeout=60,
        transport=AiohttpTransport() if transport == "aiohttp" else None,
    ) as http:

        async def chunks(body: bytes) -> int:
            async with http.stream("POST", path, content=body, headers=headers) as response:
                parts = [chunk async for chunk in response.aiter_bytes()]
                return len(b"".join(parts))

        async def aread(body: bytes) -> int:
            async with http.stream("POST", path, content=body, headers=headers) as response:
                return len(await response.aread())

        async def raw(body: bytes) -> int:
            async with http.stream("POST", path, content=body, headers=headers) as response:
                parts = [chunk async for chunk in response.aiter_raw()]
                return len(b"".join(parts))

        styles = {"aiter_bytes": chunks, "aread": aread, "aiter_raw": raw}
        for body in bodies_[:5]:
            await aread(body)
        for round_ in range(rounds):
            for name in list(styles) if round_ % 2 == 0 else list(styles)[::-1]:
                read = styles[name]
                started = time.process_time()
                for body in bodies_:
                    await read(body)
                cpu[name].append((time.process_time() - started) / requests)
    return {name: statistics.median(values) for name, values in cpu.items()}


def experiment_read(pin: bool, requests: int = 200, rounds: int = 5) -> Result:
    rows = requests * 500
    ids: list[Id] = list(Dataset.generate(rows).gsm_track_ids())
    lines = []
    with SimulatorServer(rows, pin=pin) as server:
        for transport in ("httpx", "aiohttp"):
            cpu = asyncio.run(_reads(server.url, ids, requests, rounds, transport))
            lines += [
                (f"{transport}: today, aiter_bytes() chunk loop + join", cpu["aiter_bytes"]),
                (f"{transport}: aread()", cpu["aread"]),
                (f"{transport}: aiter_raw() + join (no decoder layer)", cpu["aiter_raw"]),
            ]
    return (
        "Reading a 500-row answer (~150 KB) through httpx over TCP, one connection: "
        "CPU of the whole request",
        [(label, seconds * 1e6, "µs/request") for label, seconds in lines],
    )


# --- XML ------------------------------------------------------------------------------------


_FIELDS: Final = frozenset(DetailedReport.__struct_fields__)


def _etree_items(body: bytes) -> list[dict[str, Any]]:
    """The same dicts of strings as xmltodict, from the C ElementTree parser."""
    root = ElementTree.fromstring(body)
    items = []
    for item in root.iter("item"):
        items.append({child.tag: child.text for child in item})
    return items


def _lxml() -> Any:
    """lxml's etree if installed (not a dependency of anything here), else None."""
    try:
        return importlib.import_module("lxml.etree")
    except ImportError:
        return None


def experiment_xml(rows: int = 10_000) -> Result:
    payload = bodies(rows)["xml"]
    if payload.startswith(b"<?xml"):
        payload = payload[payload.index(b"?>") + 2 :]
    rooted = b"<root>" + payload + b"</root>"
    convert = msgspec.convert

    def with_xmltodict() -> None:
        tree = xmltodict.parse(rooted, force_list=("item",), strip_whitespace=False)
        convert(
            [{k: v for k, v in i.items() if k in _FIELDS} for i in xml_items(tree)],
            list[DetailedReport],
            strict=False,
        )

    def with_etree() -> None:
        convert(_etree_items(rooted), list[DetailedReport], strict=False)

    def parse_xmltodict() -> None:
        xmltodict.parse(rooted, force_list=("item",), strip_whitespace=False)

    def parse_etree() -> None:
        _etree_items(rooted)

    variants: dict[str, Callable[[], object]] = {
        "xmltodict": parse_xmltodict,
        "etree": parse_etree,
        "xmltodict+convert": with_xmltodict,
        "etree+convert": with_etree,
    }
    lxml = _lxml()
    if lxml is not None:

        def with_lxml() -> None:
            root = lxml.fromstring(rooted)
            items = [{child.tag: child.text for child in item} for item in root.iter("item")]
            convert(items, list[DetailedReport], strict=False)

        variants["lxml+convert"] = with_lxml
    t = _cpu(variants, rounds=3)
    return (
        f"XML answer of {rows:,} rows: parse to dicts, then type with msgspec.convert",
        [
            ("xmltodict.parse", t["xmltodict"] / rows * 1e6, "µs/row"),
            ("ElementTree.fromstring + dict per item", t["etree"] / rows * 1e6, "µs/row"),
            ("xmltodict + msgspec.convert", t["xmltodict+convert"] / rows * 1e6, "µs/row"),
            ("ElementTree + msgspec.convert", t["etree+convert"] / rows * 1e6, "µs/row"),
        ]
        + (
            [("lxml.etree + msgspec.convert", t["lxml+convert"] / rows * 1e6, "µs/row")]
            if "lxml+convert" in t
            else []
        ),
    )


# --- a compact set of track IDs -----------------------------------------------------------


def _track_ids(pattern: str, n: int) -> Iterator[int]:
    """``n`` track IDs, made as they are read (each int held by nothing but the set)."""
    if pattern == "simulator":
        for value in Dataset.generate(n).gsm_track_ids():
            yield int(value)
        return
    rng = random.Random(11)
    if pattern == "random":  # no order at all: IDs drawn from 2**40
        for _ in range(n):
            yield _FIRST_TRACK + rng.getrandbits(40)
        return
    track = _FIRST_TRACK  # rising, 4,000 apart on average: a customer sending one
    for _ in range(n):  # message in 4,000 of the provider's
        track += rng.randint(1, 7_999)
        yield track


_FIRST_TRACK: Final = 410_471_976
INTSET_PATTERNS: Final = {
    "simulator": "the simulator's (rising, 1-3 apart in a transaction)",
    "gaps": "rising, 4,000 apart on average",
    "random": "random over 2**40",
}


class _Masks:
    """By hand: a dict of 64-bit masks, one per 64 consecutive IDs."""

    __slots__ = ("masks",)

    def __init__(self) -> None:
        self.masks: dict[int, int] = {}

    def __contains__(self, key: int) -> bool:
        return bool(self.masks.get(key >> 6, 0) >> (key & 63) & 1)

    def add(self, key: int) -> None:
        self.masks[key >> 6] = self.masks.get(key >> 6, 0) | 1 << (key & 63)


def _new_intset(kind: str) -> Any:
    if kind == "set":
        return set()
    if kind == "masks":
        return _Masks()
    return importlib.import_module("pyroaring").BitMap64()


def _intset_child(kind: str, pattern: str, n: int) -> tuple[float, float]:
    """In a fresh process: MiB of resident memory and CPU µs per ID to remember ``n``
    IDs (each checked, then added, as dedupe does); the IDs' own making subtracted."""
    started = time.process_time()
    for _ in _track_ids(pattern, n):
        pass
    making = time.process_time() - started
    gc.collect()
    ids = _new_intset(kind)
    before = rss_bytes()
    started = time.process_time()
    for key in _track_ids(pattern, n):
        if key not in ids:
            ids.add(key)
    cpu = time.process_time() - started - making
    return (rss_bytes() - before) / 2**20, cpu / n * 1e6


def experiment_intsets(n: int = 1_000_000) -> Result:
    kinds = {"set": "Python set (the library's)", "masks": "dict of 64-bit masks (by hand)"}
    if importlib.util.find_spec("pyroaring") is not None:
        kinds["roaring"] = "pyroaring.BitMap64 (installed for the experiment only)"
    lines = []
    spawn = multiprocessing.get_context("spawn")
    for pattern, described in INTSET_PATTERNS.items():
        for kind, name in kinds.items():
            with ProcessPoolExecutor(1, mp_context=spawn) as child:
                mib, us = child.submit(_intset_child, kind, pattern, n).result()
            lines += [
                (f"{described}: {name}", mib, "MiB"),
                (f"{described}: {name}", us, "µs/ID"),
            ]
    return (f"Remembering {n:,} track IDs: resident memory, and CPU per check + add", lines)


EXPERIMENTS: Final = ("ids", "rows", "url", "scopes", "read", "xml", "intsets")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(EXPERIMENTS)} (default all)")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    pin = not args.no_pin and can_pin()
    if pin:
        pin_to(CLIENT_CPU)
    runs: dict[str, Callable[[], Result]] = {
        "ids": experiment_ids,
        "rows": experiment_rows,
        "url": experiment_url,
        "scopes": experiment_scopes,
        "read": lambda: experiment_read(pin),
        "xml": experiment_xml,
        "intsets": experiment_intsets,
    }
    for name in args.names or EXPERIMENTS:
        title, lines = runs[name]()
        table = markdown_table(
            ["variant", "figure", "unit"],
            [[v, f"{f:.3f}" if f < 10 else f"{f:,.0f}", u] for v, f, u in lines],
        )
        print(f"### {title}\n\n{table}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
