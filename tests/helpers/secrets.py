"""How the tests look for the key in what the client shows: runs of its characters, in
any case, in a text or anywhere an error links to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from tests.helpers.provider import KEY

RUN: Final = 8
"""No run of this many consecutive characters of the key may show, in any case."""


def key_runs(text: str, key: str = KEY) -> list[str]:
    """Every run of `RUN` characters of ``key`` found in ``text``, in any case."""
    lowered = text.lower()
    key = key.lower()
    return [key[i : i + RUN] for i in range(len(key) - RUN + 1) if key[i : i + RUN] in lowered]


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, its causes and contexts, and the members of any group, once each."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)
