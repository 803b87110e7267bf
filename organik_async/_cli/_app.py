"""The command line: ``organik-report fetch | demo | summarize | merge``, parsed with click.

Every value is checked here, before anything is read or sent: a bad value is
a usage error naming its flag (exit 2). The API key comes only from
``ORGANIK_API_KEY``: there is no flag for it, so it never lands in a shell
history or a process list, and it is never echoed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import anyio
import click
import httpx
import msgspec

from organik_async import SharedLimits, __version__

from ._console import console as stderr_console
from ._console import log_handler, open_standard_fds, silence_stderr
from ._formats import FORMATS, OutputFormat, OutputProblem, RowDigest, RowReader, format_for
from ._inputs import (
    TURKISH_EXCEL_ENCODING,
    InputError,
    InputSet,
    Shard,
    Source,
    check_encoding,
    parse_delimiter,
    read_inputs,
)
from ._job import (
    EXIT_AUTH,
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    ClientOptions,
    Job,
    Ui,
    UntilFinal,
    run_job,
)
from ._merge import MergeInput, merge_outputs
from ._otel import exporting
from ._sink import PipeClosed, Tally
from ._summary import InputFile, Summary, render, status_rows, write_json

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "cli", "run"]

API_KEY_ENV = "ORGANIK_API_KEY"
BASE_URL_ENV = "ORGANIK_BASE_URL"
SHARED_LIMITS_ENV = "ORGANIK_SHARED_LIMITS"
DEMO_OUTPUT = "demo-report.jsonl"
F = TypeVar("F", bound=Callable[..., Any])


class _Terminated(BaseException):
    """SIGTERM outside the fetching (which handles it itself)."""


# --- Option types ---------------------------------------------------------------------------


def _check_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard | None:
    if value is None:
        return None
    try:
        return Shard.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_delimiter(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_delimiter(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_encoding(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_shared_limits(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    if not value:
        return value
    try:
        SharedLimits(value)
    except ValueError as exc:  # the message shows the URL with its password masked
        raise click.BadParameter(str(exc)) from None
    return value


def _check_base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(str(exc)) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(f"expected http(s)://host[:port][/path], got {value!r}")
    return value


def _check_http_backend(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "aiohttp":
        try:
            found = importlib.util.find_spec("aiohttp") is not None
        except ValueError:  # sys.modules["aiohttp"] is None: blocked
            found = False
        if not found:
            raise click.BadParameter(
                "aiohttp is not installed: the aiohttp extra, organik_async[aiohttp]"
            )
    return value


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


_ID_FILE = click.Path(dir_okay=False, allow_dash=True, exists=True)

_input_options = _options(
    click.option(
        "--transaction-ids",
        "transaction_files",
        multiple=True,
        type=_ID_FILE,
        metavar="FILE",
        help="Transaction IDs (digits), one per line, or a CSV column. Repeatable; '-' is stdin.",
    ),
    click.option(
        "--delivery-track-ids",
        "delivery_files",
        multiple=True,
        type=_ID_FILE,
        metavar="FILE",
        help="Delivery track IDs (your own IDs from sendsms). Repeatable; '-' is stdin.",
    ),
    click.option(
        "--gsm-track-ids",
        "gsm_files",
        multiple=True,
        type=_ID_FILE,
        metavar="FILE",
        help="GSM track IDs (digits, or digits-digits-digits). Repeatable; '-' is stdin.",
    ),
    click.option(
        "--ids",
        "kind_id_files",
        multiple=True,
        type=_ID_FILE,
        metavar="FILE",
        help="A CSV with 'kind' and 'id' columns, any kinds mixed: a failed file read back.",
    ),
    click.option(
        "--input-format",
        type=click.Choice(["auto", "lines", "csv"]),
        default="auto",
        show_default=True,
        help="How ID files are read: 'auto' reads *.csv as CSV, anything else as one ID a line.",
    ),
    click.option(
        "--column",
        metavar="NAME",
        help="The CSV column holding the IDs [default: transaction_id, delivery_track_id "
        "or gsm_track_id, after the option's kind].",
    ),
    click.option(
        "--delimiter",
        metavar="CHAR",
        callback=_check_delimiter,
        help="The CSV delimiter: a character, or comma, semicolon, tab, pipe [default: found "
        "from the header].",
    ),
    click.option(
        "--encoding",
        metavar="NAME",
        callback=_check_encoding,
        help=f"The input files' text encoding, such as {TURKISH_EXCEL_ENCODING} (what Excel "
        "saves on Turkish Windows) [default: UTF-8].",
    ),
    click.option(
        "--skip-bad-lines",
        is_flag=True,
        help="Leave out lines that are not a valid ID (counted and listed in the summary) "
        "instead of stopping before anything is sent.",
    ),
    click.option(
        "--allow-empty",
        is_flag=True,
        help="An input with no ID (a day with no sends) makes an empty output and exit 0, "
        "instead of exit 2.",
    ),
    click.option(
        "--shard",
        metavar="K/N",
        callback=_check_shard,
        help="Take only the K-th of N deterministic slices of the input (1 <= K <= N), so N "
        "machines split one job without coordination; each writes its own output.",
    ),
)


def _output_options(default_output: str) -> Callable[[F], F]:
    return _options(
        click.option(
            "-o",
            "--output",
            default=default_output,
            show_default=True,
            metavar="FILE",
            help="Where rows go ('-' is stdout), each row once, as they arrive.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            help="Output format [default: from the extension: .jsonl, .csv, .json; "
            "jsonl on stdout].",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue an interrupted or partly failed run with the same output: fetch "
            "only what is missing (the journal beside the output says what is there).",
        ),
        click.option(
            "--failed",
            "failed_file",
            metavar="FILE",
            help="Where failed IDs go, with their reasons [default: OUTPUT.failed.csv, or "
            "organik-report.failed.csv with stdout]. Removed when a run has no failures.",
        ),
    )


def _client_options(*, base_url: bool) -> Callable[[F], F]:
    options: list[Callable[[F], F]] = []
    if base_url:
        options.append(
            click.option(
                "--base-url",
                envvar=BASE_URL_ENV,
                metavar="URL",
                show_envvar=True,
                callback=_check_base_url,
                help="The API's base URL [default: https://organikapi.com].",
            )
        )
    options += [
        click.option(
            "--request-format",
            type=click.Choice(["json", "xml"]),
            default="json",
            show_default=True,
            help="The request body's format.",
        ),
        click.option(
            "--response-format",
            type=click.Choice(["json", "xml"]),
            help="The answer's format [default: the request's].",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            help="IDs per request, for every kind [default: 20 transaction or delivery track "
            "IDs, 250 GSM track IDs].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            help="Requests in flight at once [default: 8].",
        ),
        click.option(
            "--rate-limit",
            type=click.FloatRange(min=0, min_open=True),
            metavar="PER_SECOND",
            help="At most this many requests per second, retries included [default: no limit].",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            help="Retries of a failed request (transport errors, 408, 429, 5xx, provider codes "
            "84/93/94/95), with backoff [default: 3].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Timeout of each connect, read, write and pool wait [default: connect 10 s, "
            "read 180 s].",
        ),
        click.option(
            "--http-backend",
            type=click.Choice(["auto", "httpx", "aiohttp"]),
            default="auto",
            show_default=True,
            callback=_check_http_backend,
            help="What sends the requests: 'auto' is aiohttp when installed (it parses "
            "HTTP in C, for less CPU per row), else httpx.",
        ),
        click.option(
            "--shared-limits",
            envvar=SHARED_LIMITS_ENV,
            show_envvar=True,
            metavar="URL",
            callback=_check_shared_limits,
            help="Share one budget (requests in flight, their adaptive limit, --rate-limit) "
            "with every process that uses the same API key, through this Redis server "
            "(redis://, rediss:// or unix://) [default: each process its own].",
        ),
    ]
    return _options(*options)


_until_final_options = _options(
    click.option(
        "--until-final",
        is_flag=True,
        help="Write only final rows (delivered, invalid number, timed out); follow the "
        "pending ones by gsm_track_id and write each when it becomes final. Rows still "
        "pending at the deadline go to the failed file (exit 1). Cannot be resumed.",
    ),
    click.option(
        "--poll-interval",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="With --until-final: the first wait between rounds, doubling up to 15 minutes "
        "[default: 60].",
    ),
    click.option(
        "--deadline",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="With --until-final: stop following this long after the batches are done "
        "[default: 3600].",
    ),
)

_ui_options = _options(
    click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary."),
    click.option(
        "-v",
        "--verbose",
        count=True,
        help="The client's log lines on stderr: -v retries, -vv every request.",
    ),
    click.option(
        "--lang",
        type=click.Choice(["en", "tr"]),
        default="en",
        show_default=True,
        help="Language of the summary and the progress line (the descriptions of statuses "
        "and error codes are the provider's own words).",
    ),
    click.option(
        "--summary-json",
        type=click.Path(dir_okay=False, writable=True),
        metavar="FILE",
        help="Also write the summary as JSON.",
    ),
    click.option(
        "--otel",
        is_flag=True,
        help="Send OpenTelemetry spans and metrics where the standard OTEL_* variables say "
        "(OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT...; needs opentelemetry-sdk).",
    ),
)


# --- Commands ---------------------------------------------------------------------------


class _Command(click.Command):
    """A command listed in the group's ``--help`` by the whole first line of its help."""

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.short_help or not self.help:
            return super().get_short_help_str(limit)
        return self.help.strip().splitlines()[0]


class _Group(click.Group):
    command_class = _Command


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"The API key is read from ${API_KEY_ENV} (MD5 of username + password); there is "
    "no flag for it. Exit codes: 0 every row fetched; 1 some IDs failed (see the failed "
    "file); 2 usage or input error, nothing sent; 3 authentication refused; 130 Ctrl-C and "
    "143 SIGTERM (output whole, resumable with --resume); 141 stdout closed.",
)
@click.version_option(
    __version__, "--version", prog_name="organik-report", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Fetch Organik SMS delivery reports (detailedreport) for many IDs, in batches."""


@cli.command()
@_input_options
@_output_options("-")
@_until_final_options
@_client_options(base_url=True)
@_ui_options
@click.pass_context
def fetch(ctx: click.Context, /, **options: Any) -> int:
    """The bulk job: every row for the IDs in the input files."""
    ui = _ui(options)
    sources = [
        *(Source("transaction_ids", p) for p in options["transaction_files"]),
        *(Source("delivery_track_ids", p) for p in options["delivery_files"]),
        *(Source("gsm_track_ids", p) for p in options["gsm_files"]),
        *(Source(None, p) for p in options["kind_id_files"]),
    ]
    if not sources:
        raise click.UsageError(
            "give IDs with --transaction-ids, --delivery-track-ids, --gsm-track-ids or --ids",
            ctx,
        )
    until = _until_final(options)
    output, fmt, failed = _resolve_output(options)
    if output is None and sys.stdout is None:  # started with standard output closed
        raise click.BadParameter(
            "standard output is closed: write the rows to a file with -o FILE",
            param_hint="'-o' / '--output'",
        )
    for flag in ("column", "delimiter"):
        if options[flag] and not any(_is_csv(s, options["input_format"]) for s in sources):
            raise click.UsageError(
                f"--{flag} applies to CSV inputs (*.csv or --input-format csv)", ctx
            )
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        ui.say(f"set {API_KEY_ENV} to your API key (MD5 of username + password); nothing sent")
        return EXIT_AUTH
    ui.secret = key
    try:
        inputs = read_inputs(
            sources,
            input_format=options["input_format"],
            column=options["column"],
            skip_bad_lines=options["skip_bad_lines"],
            shard=options["shard"],
            delimiter=options["delimiter"],
            encoding=options["encoding"],
            allow_empty=options["allow_empty"],
        )
        job = Job(
            command="fetch",
            inputs=inputs,
            output=output,
            fmt=fmt,
            failed_path=failed,
            resume=options["resume"],
            api_key=key,
            client=_client(options, options["base_url"]),
            rerun=_rerun(ctx),
            until_final=until,
        )
        with _client_logging(options["verbose"], ui), exporting(options["otel"]):
            return anyio.run(run_job, job, ui)
    except InputError as exc:
        ui.say(str(exc))
        return EXIT_USAGE


@cli.command()
@click.option(
    "--rows",
    type=click.IntRange(1, 5_000_000),
    default=200_000,
    show_default=True,
    help="Rows in the generated dataset.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the dataset.")
@_output_options(DEMO_OUTPUT)
@_client_options(base_url=False)
@_ui_options
@click.pass_context
def demo(ctx: click.Context, /, rows: int, seed: int, **options: Any) -> int:
    """The same job against the built-in simulator over real HTTP: no key, no network.

    It serves a generated dataset (with a few faults that the retries absorb),
    asks for every transaction ID and, to show rows kept unique across ID kinds,
    the GSM track IDs of the first transactions too.
    """
    from ._demo import run_demo

    ui = _ui(options)
    output, fmt, failed = _resolve_output(options)
    try:
        job = Job(
            command="demo",
            inputs=InputSet(),
            output=output,
            fmt=fmt,
            failed_path=failed,
            resume=options["resume"],
            api_key="",
            client=_client(options, None),
            rerun=_rerun(ctx),
        )
        with _client_logging(options["verbose"], ui), exporting(options["otel"]):
            return anyio.run(partial(run_demo, job, ui, rows=rows, seed=seed))
    except InputError as exc:
        ui.say(str(exc))
        return EXIT_USAGE


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="[default: from the extension]")
@click.option("--lang", type=click.Choice(["en", "tr"]), default="en", show_default=True)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the summary as JSON.",
)
def summarize(file: str, fmt: str | None, lang: str, summary_json: str | None) -> int:
    """The summary of an output file written by fetch or demo."""
    ui = Ui(stderr_console(), lang="tr" if lang == "tr" else "en")
    try:
        chosen = format_for(file, fmt)
        tally, notes = _read_back(Path(file), chosen)
    except InputError as exc:
        ui.say(str(exc))
        return EXIT_USAGE
    except OutputProblem as exc:
        ui.say(f"{file}:{exc.line}: {exc.reason}")
        return EXIT_USAGE
    by_status, codes = status_rows(tally, ui.lang)
    summary = Summary(
        command="summarize",
        outcome="summary",
        exit_code=EXIT_OK,
        output=file,
        format=chosen,
        rows_in_output=tally.rows,
        rows_this_run=tally.rows,
        by_status=by_status,
        error_codes=codes,
        notes=notes,
    )
    if summary_json:
        write_json(summary, Path(summary_json))
    render(summary, ui.console, ui.lang)
    return EXIT_OK


@cli.command(
    epilog="Exit codes: 0 merged; 1 the output could not be written (a full disk): it is left "
    "as it was; 2 usage or input error (an input missing, unreadable, not an output of "
    "fetch in its format, or ending with an incomplete row): nothing written; 130 Ctrl-C "
    "and 143 SIGTERM: nothing written; 141 stdout closed."
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Where the merged rows go ('-' is stdout). A file is replaced only when the whole "
    "merge has succeeded.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format [default: from the extension: .jsonl, .csv, .json; jsonl on stdout].",
)
@click.option(
    "--input-format",
    type=click.Choice(FORMATS),
    help="The format of every input [default: each file's from its extension].",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
@click.option(
    "--lang",
    type=click.Choice(["en", "tr"]),
    default="en",
    show_default=True,
    help="Language of the summary.",
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the summary as JSON.",
)
def merge(
    files: tuple[str, ...],
    output: str,
    fmt: str | None,
    input_format: str | None,
    quiet: bool,
    lang: str,
    summary_json: str | None,
) -> int:
    """Merge outputs of fetch (the shards of a job) into one, each gsm_track_id once.

    FILES are read in the order given, each in its format; every row is written
    once, by gsm_track_id, at the place of the copy kept. When copies differ, the
    one furthest along is kept: a final status, then the later finish_date, then
    the first read.
    """
    ui = Ui(stderr_console(), quiet=quiet, lang="tr" if lang == "tr" else "en")
    try:
        chosen = format_for(output, fmt)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    target: Path | None = None
    if output == "-":
        if sys.stdout is None:
            raise click.BadParameter(
                "standard output is closed: write the rows to a file with -o FILE",
                param_hint="'-o' / '--output'",
            )
    else:
        target = Path(output)
        _check_writable(target, "'-o' / '--output'")
    inputs: list[MergeInput] = []
    for name in files:
        try:
            read_as = format_for(name, input_format)
        except InputError:
            raise click.BadParameter(
                f"cannot tell the format of {name!r} from its extension (.jsonl, .csv or "
                ".json): pass --input-format jsonl|csv|json",
                param_hint="'FILES...'",
            ) from None
        inputs.append(MergeInput(Path(name), read_as, declared=input_format is not None))
    started = time.perf_counter()
    try:
        result = merge_outputs(inputs, target, chosen, stdout=lambda: sys.stdout.buffer)
    except InputError as exc:
        ui.say(str(exc))
        return EXIT_USAGE
    except PipeClosed:
        return EXIT_PIPE
    except OSError as exc:
        where = output if target is not None else "standard output"
        ui.say(f"cannot write {where}: {exc.strerror or exc}; nothing was replaced")
        return EXIT_FAILURES
    by_status, codes = status_rows(result.tally, ui.lang)
    notes: list[str] = []
    for failed in result.failed_files:
        notes.append(
            f"{failed} is there: its run left IDs unfetched, whose rows are not in this merge "
            "(finish that run with --resume, then merge again)"
        )
    if result.journal_removed is not None:
        notes.append(f"removed {result.journal_removed}: it described the file this merge replaced")
    summary = Summary(
        command="merge",
        outcome="complete",
        exit_code=EXIT_OK,
        output=output,
        format=chosen,
        rows_in_output=result.tally.rows,
        rows_this_run=result.tally.rows,
        duplicate_rows_skipped=result.duplicates,
        by_status=by_status,
        error_codes=codes,
        elapsed_seconds=round(time.perf_counter() - started, 3),
        rows_per_second=None,
        inputs=[
            InputFile(path=str(item.path), format=item.fmt, rows=item.rows, kept=item.kept)
            for item in result.inputs
        ],
        conflicts=result.conflicts,
        notes=notes,
    )
    if summary_json:
        try:
            write_json(summary, Path(summary_json))
        except OSError as exc:
            ui.say(f"cannot write the summary to {summary_json}: {exc.strerror or exc}")
    if not quiet:
        render(summary, ui.console, ui.lang)
    return EXIT_OK


def _read_back(path: Path, fmt: OutputFormat) -> tuple[Tally, list[str]]:
    tally = Tally()
    notes: list[str] = []
    with path.open("rb") as stream:
        reader = RowReader(stream, fmt)
        try:
            for digest, _ in reader:
                tally.count(digest.status, digest.errorcode)
        except OutputProblem:
            if fmt != "json":
                raise
            return _read_json_document(path), notes  # a JSON array laid out by another tool
    if reader.incomplete_tail or (fmt == "json" and not reader.closed):
        notes.append(
            f"{path} ends with an incomplete row: a run still going or interrupted "
            "(finish it with --resume); the summary covers the whole rows"
        )
    return tally, notes


def _read_json_document(path: Path) -> Tally:
    try:
        rows = msgspec.json.decode(path.read_bytes(), type=list[RowDigest])
    except msgspec.DecodeError as exc:
        raise OutputProblem(1, f"not a JSON array of report rows ({exc})") from None
    tally = Tally()
    for row in rows:
        tally.count(row.status, row.errorcode)
    return tally


# --- Helpers ------------------------------------------------------------------------------


def _ui(options: dict[str, Any]) -> Ui:
    """Messages on stderr; the bar only on a terminal that the rows are not going to."""
    console = stderr_console()
    summary_json = options.get("summary_json")
    rows_on_terminal = options["output"] == "-" and sys.stdout is not None and sys.stdout.isatty()
    return Ui(
        console,
        quiet=options["quiet"],
        progress=console.is_terminal and not console.is_dumb_terminal and not rows_on_terminal,
        lang="tr" if options["lang"] == "tr" else "en",
        summary_json=Path(summary_json) if summary_json else None,
    )


def _is_csv(source: Source, input_format: str) -> bool:
    if source.kind is None or input_format == "csv":
        return True
    return input_format == "auto" and source.path.lower().endswith(".csv")


def _resolve_output(options: dict[str, Any]) -> tuple[Path | None, OutputFormat, Path]:
    """The output (``None``: stdout), its format and the failed file; checked now."""
    name: str = options["output"]
    try:
        fmt = format_for(name, options["fmt"])
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    failed_name: str | None = options["failed_file"]
    if name == "-":
        if options["resume"]:
            raise click.BadParameter(
                "--resume needs an output file (-o FILE): stdout cannot be resumed",
                param_hint="'--resume'",
            )
        return None, fmt, Path(failed_name or "organik-report.failed.csv")
    output = Path(name)
    for path, hint in ((output, "'-o' / '--output'"), (Path(failed_name or name), "'--failed'")):
        _check_writable(path, hint)
    failed = Path(failed_name) if failed_name else output.with_name(output.name + ".failed.csv")
    return output, fmt, failed


def _check_writable(path: Path, hint: str) -> None:
    """A usage error naming ``hint`` unless ``path`` can be written (or created)."""
    folder = path.parent
    if path.is_dir():
        raise click.BadParameter(f"{str(path)!r} is a directory", param_hint=hint)
    if not folder.is_dir():
        raise click.BadParameter(f"no such directory: {str(folder)!r}", param_hint=hint)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"cannot write {str(path)!r}", param_hint=hint)


def _until_final(options: dict[str, Any]) -> UntilFinal | None:
    """``--until-final`` and its timings, checked: the timings alone are usage errors."""
    poll, deadline = options["poll_interval"], options["deadline"]
    if not options["until_final"]:
        for value, hint in ((poll, "'--poll-interval'"), (deadline, "'--deadline'")):
            if value is not None:
                raise click.BadParameter("applies only with --until-final", param_hint=hint)
        return None
    if options["resume"]:
        raise click.BadParameter(
            "an --until-final run cannot be resumed (its pending rows are kept in memory): "
            "run it again without --resume, or fetch the failed file with --ids",
            param_hint="'--resume'",
        )
    chosen = UntilFinal()
    return UntilFinal(
        poll_interval=chosen.poll_interval if poll is None else poll,
        deadline=chosen.deadline if deadline is None else deadline,
    )


def _client(options: dict[str, Any], base_url: str | None) -> ClientOptions:
    return ClientOptions(
        base_url=base_url,
        request_format=options["request_format"],
        response_format=options["response_format"],
        batch_size=options["batch_size"],
        concurrency=options["concurrency"],
        rate_limit=options["rate_limit"],
        retries=options["retries"],
        timeout=options["timeout"],
        http_backend=options["http_backend"],
        shared_limits=options["shared_limits"],
    )


def _rerun(ctx: click.Context) -> str:
    """The command line as given, with ``--resume``: what finishes the job."""
    args: list[str] = list((ctx.find_root().obj or {}).get("argv", []))
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["organik-report", *args])


class _Scrub(logging.Filter):
    def __init__(self, ui: Ui) -> None:
        super().__init__()
        self._ui = ui

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._ui.scrub(record.getMessage())
        record.args = None
        return True


@contextlib.contextmanager
def _client_logging(verbosity: int, ui: Ui) -> Iterator[None]:
    """``-v``: the client's INFO lines (retries); ``-vv``: DEBUG (every request) and httpx's."""
    if not verbosity:
        yield
        return
    handler = log_handler(ui.console)
    handler.addFilter(_Scrub(ui))
    levels = {"organik_async": logging.INFO if verbosity == 1 else logging.DEBUG}
    if verbosity > 1:
        levels["httpx"] = logging.INFO
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for name, level in saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(level)


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run the command; return its exit code."""
    args = list(argv)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    open_standard_fds()
    previous = signal.signal(signal.SIGTERM, terminate)
    console = stderr_console()
    try:
        result = cli.main(
            args, prog_name="organik-report", standalone_mode=False, obj={"argv": args}
        )
    except click.ClickException as exc:
        try:
            exc.show()
        except OSError:  # stderr's reader is gone: the exit code still says it
            silence_stderr()
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        console.print("organik-report: interrupted", highlight=False)
        return EXIT_SIGINT
    except _Terminated:
        console.print("organik-report: terminated", highlight=False)
        return EXIT_SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else EXIT_OK
