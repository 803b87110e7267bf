"""The simulator (or any ASGI app) over real TCP for a test that is not async itself.

`organik_async.testing.serve` is an async context manager; tests of the command line,
of processes and of the blocking client enter it from a blocking portal's thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread

from organik_async.testing import serve


@contextmanager
def served_from_thread(app: Any, **options: Any) -> Iterator[str]:
    """``app`` served on 127.0.0.1 from a thread of the test's own: its base URL."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(app, **options)) as base_url,
    ):
        yield base_url
