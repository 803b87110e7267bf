"""``organik-report``: the bulk job as a command an operator can trust.

``organik-report fetch`` reads IDs from files (checked before anything is
sent), fetches their rows in concurrent batches with the public client, and
writes each row once, as it arrives, to JSON lines, CSV or JSON; failed IDs
go to a file it reads back; a journal beside the output makes any run
resumable. ``demo`` runs the same job against the built-in simulator,
``summarize`` reads an output back, and ``merge`` makes one output of several
(a job's shards), each row once. docs/cli.md describes the command.

The command's libraries (click, rich; uvicorn for the demo) come with the
``cli`` extra. This module imports none of them: without the extra,
`main()` says what to install and exits 2, before anything is read or
sent.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_EXTRA = ("click", "rich")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``organik-report`` with ``argv`` (default: the process's) and return its exit code."""
    missing = []
    for name in _EXTRA:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(
            f"organik-report needs {' and '.join(missing)}: the cli extra, organik_async[cli]",
            file=sys.stderr,
        )
        return 2
    from ._app import run

    return run(sys.argv[1:] if argv is None else argv)
