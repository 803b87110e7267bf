"""A caller's own time budget ends a call with nothing of the key left in any frame.

A call cancelled from outside (``anyio.fail_after``, ``asyncio.timeout``,
``asyncio.wait_for``, ``trio.fail_after``) ends with the caller's exception,
whose traceback runs down through the client into the HTTP library that was
waiting. Error trackers such as Sentry record each frame's locals; the
library's frames hold the URL, and so the key. Each budget, on every backend,
at each stage a request can wait in (for the answer's head, for its body),
must leave no run of the key in the traceback formatted with its locals, nor
in a Sentry-style walk of every frame of it and of its chained exceptions.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType

import anyio
import pytest

from organik_async import HttpBackend
from tests.helpers.paths import TESTS
from tests.helpers.secrets import chain, key_runs
from tests.helpers.wire import HANG, SILENT, answer, client, wire_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TEST_CODE = str(TESTS)  # this suite's own files, helpers included
BUDGET = 0.3


Budget = Callable[[Awaitable[object]], Awaitable[object]]


def budgets(anyio_backend: str) -> dict[str, Budget]:
    """Every way a caller bounds a call in time on this event loop."""

    def under(scope: Callable[[], AbstractContextManager[object]]) -> Budget:
        async def run(call: Awaitable[object]) -> object:
            with scope():
                return await call

        return run

    if anyio_backend == "trio":
        import trio

        return {
            "anyio.fail_after": under(lambda: anyio.fail_after(BUDGET)),
            "trio.fail_after": under(lambda: trio.fail_after(BUDGET)),
        }

    async def asyncio_timeout(call: Awaitable[object]) -> object:
        async with asyncio.timeout(BUDGET):
            return await call

    async def wait_for(call: Awaitable[object]) -> object:
        return await asyncio.wait_for(call, BUDGET)

    return {
        "anyio.fail_after": under(lambda: anyio.fail_after(BUDGET)),
        "asyncio.timeout": asyncio_timeout,
        "asyncio.wait_for": wait_for,
    }


def library_frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    """The traceback's entries, but this suite's own (which hold the key, as an
    application's do)."""
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(TEST_CODE):
            yield tb
        tb = tb.tb_next


def shown_with_locals(error: BaseException) -> list[str]:
    """What an error tracker records: each exception's text, and the repr of every
    local of every frame of every exception in the chain (as Sentry walks them)."""
    shown: list[str] = []
    for current in chain(error):
        shown += [str(current), repr(current)]
        for entry in library_frames(current.__traceback__):
            frame = entry.tb_frame
            for name, value in frame.f_locals.items():
                try:
                    text = repr(value)
                except Exception as exc:  # a half-built object: trackers show the failure
                    text = f"<repr failed: {type(exc).__name__}>"
                shown.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name} {name}={text}")
    return shown


def formatted_with_locals(error: BaseException) -> str:
    summary = traceback.TracebackException(
        type(error), error, error.__traceback__, capture_locals=True
    )
    todo = [summary]
    while todo:
        current = todo.pop()
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if not frame.filename.startswith(TEST_CODE)]
        )
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += list(current.exceptions or ())
    return "".join(summary.format())


def library_names(error: BaseException) -> set[str]:
    """Which libraries' frames the traceback passes through."""
    names = set()
    for current in chain(error):
        for entry in library_frames(current.__traceback__):
            path = entry.tb_frame.f_code.co_filename
            names |= {name for name in ("httpx", "httpcore", "aiohttp") if f"/{name}/" in path}
    return names


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["waiting for the head", "reading the body"])
async def test_a_callers_time_budget_leaves_no_key_in_any_frame(
    anyio_backend: str, http_backend: HttpBackend, stage: str
) -> None:
    stall = SILENT if stage == "waiting for the head" else HANG
    for name, budget in budgets(anyio_backend).items():
        # The first call is answered (the backend is imported, a connection open),
        # the second stalls until the budget runs out.
        reply = lambda n: answer() if n == 1 else stall  # noqa: E731
        async with wire_server(reply) as wire, client(wire.url, http_backend) as c:
            with anyio.fail_after(10):
                await c.detailed_report(transaction_ids=[1])
                with pytest.raises(BaseException) as caught:  # noqa: PT011 - each budget's own
                    await budget(c.detailed_report(transaction_ids=[1]))
        error = caught.value
        assert isinstance(error, TimeoutError) or type(error).__name__ == "TooSlowError", name
        assert len(wire.heads) == 2, name  # the request was on the wire when the budget ran out
        # The library's frames are there (the traceback is whole), their locals are not.
        assert library_names(error), f"{name}: no library frame in the traceback"
        found = [text for text in shown_with_locals(error) if key_runs(text)]
        assert not found, f"{name}: the key is in a frame's locals:\n" + "\n".join(found[:5])
        assert not key_runs(formatted_with_locals(error)), name
