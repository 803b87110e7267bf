"""What the throttles and the pool set rely on from anyio, pinned with the version.

`_pool.PoolSet` queues requests in one ``CapacityLimiter``, fairly (first come, first
served); `_ratelimit.AdaptiveLimit` is a ``CapacityLimiter`` whose ``total_tokens`` it
lowers on pushback, below what is borrowed, and raises as answers come back. Both try
``*_nowait`` first and wait only on ``WouldBlock``. `_bulk` makes its streams with
``create_memory_object_stream[T](0)``. Every test runs on asyncio and on trio.
"""

from __future__ import annotations

from importlib import metadata
from typing import Final

import anyio
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V: Final = f"anyio {metadata.version('anyio')}"


class Borrower:
    """A hashable borrower, as `_ratelimit.Permit` is."""


def would_block(limiter: anyio.CapacityLimiter, borrower: object) -> bool:
    """Whether ``borrower`` would wait for a token (it is given back at once if not)."""
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except anyio.WouldBlock:
        return True
    except Exception as exc:
        raise AssertionError(
            f"{V}: a full CapacityLimiter raised {type(exc).__module__}.{type(exc).__name__} "
            "from acquire_on_behalf_of_nowait, not anyio.WouldBlock; _pool and _ratelimit "
            "wait only on anyio.WouldBlock"
        ) from None
    limiter.release_on_behalf_of(borrower)
    return False


async def test_a_full_limiter_says_would_block() -> None:
    limiter = anyio.CapacityLimiter(1)
    limiter.acquire_nowait()
    assert would_block(limiter, Borrower()), (
        f"{V}: a full CapacityLimiter no longer raises WouldBlock from *_nowait; "
        "_pool and _ratelimit wait only then"
    )
    limiter.release()


async def test_lowering_the_total_below_what_is_borrowed_holds_new_borrowers() -> None:
    limiter = anyio.CapacityLimiter(4)
    borrowers = [Borrower() for _ in range(4)]
    for borrower in borrowers:
        limiter.acquire_on_behalf_of_nowait(borrower)
    limiter.total_tokens = 2  # pushback: half, with four in flight
    assert limiter.borrowed_tokens == 4, f"{V}: lowering total_tokens took tokens back"
    for borrower in borrowers[:2]:
        limiter.release_on_behalf_of(borrower)
    assert would_block(limiter, Borrower()), (
        f"{V}: a CapacityLimiter lent a token with 2 borrowed of 2; "
        "_ratelimit.AdaptiveLimit lowers total_tokens below what is borrowed"
    )
    limiter.release_on_behalf_of(borrowers[2])
    assert not would_block(limiter, Borrower()), f"{V}: 1 borrowed of 2, and no token lent"
    limiter.release_on_behalf_of(borrowers[3])


async def test_raising_the_total_lets_waiters_in_first_come_first_served() -> None:
    limiter = anyio.CapacityLimiter(1)
    first = Borrower()
    limiter.acquire_on_behalf_of_nowait(first)
    order: list[int] = []

    async def wait(number: int) -> None:
        await limiter.acquire_on_behalf_of(Borrower())
        order.append(number)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in range(4):
                tg.start_soon(wait, number)
                await anyio.wait_all_tasks_blocked()
            limiter.total_tokens = 3  # two more: the two that came first
            await anyio.wait_all_tasks_blocked()
            # A set: trio runs the tasks it wakes together in any order.
            assert set(order) == {0, 1}, (
                f"{V}: raising total_tokens let {sorted(order)} in, not the first two waiters; "
                "_pool.PoolSet queues requests fairly in a CapacityLimiter"
            )
            limiter.total_tokens = 5
    assert sorted(order) == [0, 1, 2, 3], f"{V}: CapacityLimiter let in only {sorted(order)}"


async def test_a_memory_object_stream_is_made_for_a_type() -> None:
    send, receive = anyio.create_memory_object_stream[int](0)
    async with send, receive, anyio.create_task_group() as tg:
        tg.start_soon(send.send, 7)
        assert await receive.receive() == 7, f"{V}: create_memory_object_stream[int](0)"
