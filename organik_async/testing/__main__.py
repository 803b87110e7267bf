"""``python -m organik_async.testing serve|bench``: the simulator as a process.

Benchmarks run the server in its own process so that it does not share a
CPU (or a GIL) with the client being measured. The command prints the base
URL on stdout once the server accepts connections, serves until SIGINT or
SIGTERM, then prints its stats as JSON on stderr. Once ready it also says, on
stderr, the shell line that points ``organik-report`` at it: the base URL, and
with the default key, a command that computes the demo key (the key itself is
never printed).

The dataset is deterministic: a client process that calls
``Dataset.generate(rows, seed=seed)`` with the same arguments knows every ID
the server has without asking it. ``bench`` uses that to measure the
simulator's own throughput (see `_bench`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from collections.abc import Sequence

import anyio

from .._models import Format
from ._app import FakeOrganikAPI
from ._bench import run_bench
from ._clock import Delay, check_delay
from ._data import Dataset
from ._faults import Fault
from ._keys import DEMO_API_KEY, redact_key
from ._server import serve


def _seconds(text: str) -> Delay:
    try:
        low, _, high = text.partition(":")
        return check_delay((float(low), float(high)) if high else float(low), "seconds")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _latency(text: str) -> Fault:
    return Fault.latency(_seconds(text))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _format_list(text: str) -> tuple[Format, ...]:
    formats: list[Format] = []
    for name in text.lower().split(","):
        if name == "json":
            formats.append("json")
        elif name == "xml":
            formats.append("xml")
        elif name not in ("", "none"):
            raise argparse.ArgumentTypeError(f"expected json, xml, json,xml or none: {text!r}")
    return tuple(formats)


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m organik_async.testing",
        description="A simulator of the Organik API's detailedreport request.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "serve",
        help="serve the simulator over HTTP until SIGINT/SIGTERM",
        description="Serve the simulator; print its base URL on stdout when it is ready.",
    )
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: a free one)")
    run.add_argument("--rows", type=int, default=10_000, help="rows to generate (default 10000)")
    run.add_argument("--seed", type=int, default=0, help="seed of the dataset and of the faults")
    run.add_argument(
        "--string-track-id-share",
        type=float,
        default=0.0,
        help="share of gsm_track_ids in sendsms's string form (default 0: all integers)",
    )
    run.add_argument(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help="an accepted API key, 32 characters (repeatable; default: the demo key)",
    )
    run.add_argument(
        "--latency",
        type=_latency,
        metavar="SECONDS[:MAX]",
        help="added latency per request, fixed or uniform in a range",
    )
    run.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="SPEC",
        help="a fault, e.g. status:503@2,3  provider:93%%0.1  rate-limit:2%%0.05  "
        "truncate@4  malformed%%0.01  trickle:128:0.05  disconnect%%0.02 (repeatable)",
    )
    run.add_argument("--max-ids", type=int, help="refuse requests with more IDs (code 96)")
    run.add_argument(
        "--max-concurrent",
        type=_positive,
        metavar="N",
        help="answer a request that arrives while N are being handled with code 93",
    )
    xml = run.add_mutually_exclusive_group()
    xml.add_argument(
        "--bare-xml",
        dest="xml_wrapped",
        action="store_false",
        help="answer XML rows as bare top-level <item>s, as the seed page shows them "
        "(default: <response><result>1</result><data><item>...)",
    )
    xml.add_argument(
        "--xml-wrapped",
        dest="xml_wrapped",
        action="store_true",
        help="answer XML wrapped in <response><result>1</result><data> (the default)",
    )
    run.set_defaults(xml_wrapped=True)
    run.add_argument(
        "--errorcode-in",
        type=_format_list,
        default=("json",),
        metavar="FORMATS",
        help="formats whose rows carry errorcode: json (default), xml, json,xml or none",
    )
    run.add_argument(
        "--finalize-after",
        type=_seconds,
        metavar="SECONDS[:MAX]",
        help="pending rows become final this long after the server starts "
        "(fixed, or uniform in a range, per row; default: never)",
    )
    run.add_argument(
        "--warm",
        type=_format_list,
        default=("json",),
        metavar="FORMATS",
        help="encode every row before serving: json (default), xml, json,xml or none",
    )
    run.add_argument("--log-level", default="warning", help="uvicorn's log level")
    bench = commands.add_parser(
        "bench",
        help="measure the simulator's own rows/s over TCP",
        description="Serve the rows in a separate process and fetch them all with a raw "
        "httpx client that reads the bytes without decoding them.",
    )
    bench.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1000000)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--format", choices=["json", "xml"], default="json", help="answer format")
    bench.add_argument(
        "--kind",
        choices=["transaction", "gsm"],
        default="transaction",
        help="ask by transaction_ids (whole sends) or gsm_track_ids (one row each)",
    )
    bench.add_argument("--batch", type=int, default=20, help="IDs per request (default 20)")
    bench.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> FakeOrganikAPI:
    """The app the command line describes."""
    dataset = Dataset.generate(
        args.rows, seed=args.seed, string_track_id_share=args.string_track_id_share
    )
    faults = ([args.latency] if args.latency else []) + list(args.fault)
    return FakeOrganikAPI(
        dataset,
        api_keys=args.keys or (DEMO_API_KEY,),
        faults=faults,
        seed=args.seed,
        max_ids_per_request=args.max_ids,
        max_concurrent_requests=args.max_concurrent,
        xml_wrapped=args.xml_wrapped,
        errorcode_in=args.errorcode_in,
        finalize_after=args.finalize_after,
    )


def usage_hint(url: str, demo_key: bool) -> str:
    """How to point ``organik-report`` or a client at the server: the shell line that sets
    the environment (the demo key is computed by the line, never printed)."""
    line = f"export ORGANIK_BASE_URL={url}"
    if not demo_key:
        return f"{line} and ORGANIK_API_KEY to one of the keys given with --key"
    program = "from organik_async.testing import DEMO_API_KEY; print(DEMO_API_KEY)"
    key = f"$({shlex.quote(sys.executable)} -c {shlex.quote(program)})"
    return f'{line} ORGANIK_API_KEY="{key}"'


async def _serve(fake: FakeOrganikAPI, args: argparse.Namespace) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve(fake, host=args.host, port=args.port, log_level=args.log_level) as url:
            print(url, flush=True)
            hint = usage_hint(url, demo_key=not args.keys)
            print(f"organik fake: to use it: {hint}", file=sys.stderr, flush=True)
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "bench":
        print(run_bench(args).describe(args))
        return 0
    try:
        fake = build(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.warm:
        fake.warm(args.warm)
    keys = ", ".join(redact_key(key) for key in (args.keys or (DEMO_API_KEY,)))
    print(
        f"organik fake: {fake.dataset!r}, seed {args.seed}, keys [{keys}], "
        f"{len(fake.faults)} faults",
        file=sys.stderr,
        flush=True,
    )
    anyio.run(_serve, fake, args)
    print(json.dumps(fake.stats.as_dict()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
