"""``organik-report``: a bulk detailed report from a file of IDs, with a progress bar.

Rows are written as they arrive (JSON lines or CSV); IDs whose batch failed
are written to a failures file in the same format the command reads, so
``organik-report failed.tsv`` retries exactly them. ``--demo`` runs the whole
job against the built-in simulator served over real HTTP, no key needed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import msgspec

from ._client import API_KEY_ENV, DEFAULT_BATCH_SIZES, OrganikClient
from ._exceptions import AuthenticationError, BatchFailure, BulkReportError, OrganikError
from ._models import BatchSizes, DetailedReport, Progress

__all__ = ["main"]

KINDS = {
    "transaction": "transaction_ids",
    "delivery": "delivery_track_ids",
    "gsm": "gsm_track_ids",
}
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_AUTH = 0, 1, 2, 3
FIELDS = list(DetailedReport.__struct_fields__)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="organik-report",
        description="Fetch Organik detailed delivery reports for many IDs, in batches.",
        epilog=f"The API key is read from ${API_KEY_ENV} (never from the command line).",
    )
    parser.add_argument(
        "ids",
        nargs="?",
        help="file of IDs, one per line ('-' for stdin); a line may be 'kind<TAB>id' "
        "as in a failures file",
    )
    parser.add_argument("--kind", choices=sorted(KINDS), default="transaction")
    parser.add_argument("-o", "--output", default="-", help="rows go here ('-': stdout)")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument(
        "--failures",
        help="IDs that failed go here (default: OUTPUT.failed.tsv, or organik-failed.tsv)",
    )
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, help="IDs per request, for every kind")
    parser.add_argument("--rate-limit", type=float, help="requests per second")
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--request-format", choices=["json", "xml"], default="json")
    parser.add_argument("--response-format", choices=["json", "xml"])
    parser.add_argument("--base-url", help="the API's base URL")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    demo = parser.add_argument_group("demo (the built-in simulator over real HTTP)")
    demo.add_argument("--demo", action="store_true", help="no key or IDs file needed")
    demo.add_argument("--demo-rows", type=int, default=200_000)
    demo.add_argument("--demo-seed", type=int, default=1)
    demo.add_argument("--demo-latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args(argv)
    if not args.demo and not args.ids:
        parser.error("give a file of IDs (or '-' for stdin), or --demo")
    return args


def read_ids(stream: IO[str], default_kind: str) -> Iterator[tuple[bool, str, int | str]]:
    """Lazily, ``(tagged, kind, id)`` per line; blank lines and ``#`` comments skipped.

    A line is an ID, or ``kind<TAB>id[<TAB>...]`` (tagged) as in a failures file.
    Digits-only IDs become ints; anything else stays a string.
    """
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        tagged = "\t" in text
        kind, value = text.split("\t")[:2] if tagged else (default_kind, text)
        if kind not in KINDS.values():
            raise ValueError(f"line {number}: unknown ID kind {kind!r}")
        value = value.strip()
        yield tagged, kind, int(value) if value.isdigit() else value


def load_ids(stream: IO[str], default_kind: str) -> Mapping[str, Iterable[int | str]]:
    """The IDs of a file, as keyword arguments for the client.

    A plain file (one ID per line, one kind) is read lazily, as batches need
    it: a file of ten million lines is never in memory. A tagged file (a
    failures file) may mix kinds, so it is grouped by kind first.
    """
    lines = read_ids(stream, default_kind)
    first = next(lines, None)
    if first is None:
        return {}
    if not first[0]:
        rest = (value for _, _, value in lines)
        return {default_kind: itertools.chain([first[2]], rest)}
    grouped: dict[str, list[int | str]] = {}
    for _, kind, value in itertools.chain([first], lines):
        grouped.setdefault(kind, []).append(value)
    return grouped


class RowWriter:
    """Writes rows as JSON lines or CSV as they arrive."""

    def __init__(self, out: IO[bytes], fmt: str) -> None:
        self._out = out
        self._encoder = msgspec.json.Encoder()
        self._csv: Any = None
        if fmt == "csv":
            self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            self._csv = csv.writer(self._text)
            self._csv.writerow(FIELDS)

    def write(self, rows: Sequence[DetailedReport]) -> None:
        if self._csv is not None:
            self._csv.writerows([_csv_row(row) for row in rows])
            return
        buffer = bytearray()
        for row in rows:
            self._encoder.encode_into(row, buffer, -1)
            buffer += b"\n"
        self._out.write(buffer)

    def close(self) -> None:
        if self._csv is not None:
            self._text.detach()
        self._out.flush()


def _csv_row(row: DetailedReport) -> list[object]:
    values = msgspec.structs.astuple(row)
    return ["" if v is None else (int(v) if isinstance(v, bool) else v) for v in values]


def write_failures(path: Path, failures: Sequence[BatchFailure]) -> int:
    """One ``kind<TAB>id<TAB>outcome<TAB>error`` line per ID; the command reads it back."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for failure in failures:
            reason = type(failure.error).__name__ if failure.error else ""
            for value in failure.ids:
                out.write(f"{failure.kind}\t{value}\t{failure.outcome}\t{reason}\n")
                count += 1
    return count


@dataclass
class ProgressBar:
    """A tqdm bar over batches, with rows, retries and failures alongside."""

    enabled: bool
    _bar: Any = None

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(unit="batch", dynamic_ncols=True, file=sys.stderr)
        bar = self._bar
        if progress.batches_total is not None:
            bar.total = progress.batches_total
        bar.update(progress.batches_done - bar.n)
        bar.set_postfix(
            rows=progress.rows, retries=progress.retries, failed=progress.failures, refresh=False
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.asynccontextmanager
async def _demo_target(args: argparse.Namespace) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """Serve a generated dataset over real HTTP; yield client settings and its IDs."""
    from .testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve

    dataset = Dataset.generate(rows=args.demo_rows, seed=args.demo_seed)
    faults = [Fault.latency(args.demo_latency)] if args.demo_latency else []
    fake = FakeOrganikAPI(dataset, faults=faults, seed=args.demo_seed)
    async with serve(fake) as base_url:
        settings = {"api_key": DEMO_API_KEY, "base_url": base_url}
        yield settings, {"transaction_ids": dataset.transaction_ids}


@contextlib.asynccontextmanager
async def _file_target(
    args: argparse.Namespace, source: IO[str]
) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    settings: dict[str, Any] = {}
    if args.base_url:
        settings["base_url"] = args.base_url
    yield settings, load_ids(source, KINDS[args.kind])


async def run(args: argparse.Namespace, source: IO[str] | None, out: IO[bytes]) -> int:
    """The job. Files are opened by :func:`main`; reading IDs and writing rows
    are plain blocking calls on local files, which are short next to a request."""
    target = _file_target(args, source) if source is not None else _demo_target(args)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(show)
    failures_path = Path(
        args.failures
        or (f"{args.output}.failed.tsv" if args.output != "-" else "organik-failed.tsv")
    )
    writer = RowWriter(out, args.format)
    started = time.perf_counter()
    rows = batches = 0
    code = EXIT_OK
    try:
        async with (
            target as (settings, ids),
            OrganikClient(
                request_format=args.request_format,
                response_format=args.response_format,
                max_retries=args.max_retries,
                max_concurrency=args.max_concurrency,
                batch_sizes=BatchSizes.coerce(args.batch_size or DEFAULT_BATCH_SIZES),
                rate_limit=args.rate_limit,
                **settings,
            ) as client,
        ):
            try:
                async with client.iter_batches(**ids, on_progress=bar) as results:
                    async for result in results:
                        writer.write(result.rows)
                        rows += len(result.rows)
                        batches += 1
            except BulkReportError as exc:
                count = write_failures(failures_path, exc.failures)
                _say(f"{len(exc.failures)} batches failed: {count} IDs -> {failures_path}")
                code = EXIT_FAILURES
    except AuthenticationError as exc:
        _say(f"authentication failed: {exc}")
        code = EXIT_AUTH
    except OrganikError as exc:
        _say(f"failed: {exc}")
        code = EXIT_FAILURES
    finally:
        bar.close()
        writer.close()
    elapsed = time.perf_counter() - started
    _say(f"{rows} rows from {batches} requests in {elapsed:.1f}s ({rows / elapsed:,.0f} rows/s)")
    return code


def _say(text: str) -> None:
    print(f"organik-report: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.demo and not os.environ.get(API_KEY_ENV):
        _say(f"set {API_KEY_ENV} to your API key (MD5 of username + password)")
        return EXIT_AUTH
    try:
        with contextlib.ExitStack() as stack:
            source = None
            if not args.demo:
                source = sys.stdin if args.ids == "-" else stack.enter_context(open(args.ids))
            out = sys.stdout.buffer
            if args.output != "-":
                out = stack.enter_context(open(args.output, "wb"))
            return anyio.run(run, args, source, out)
    except (OSError, ValueError) as exc:
        _say(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
