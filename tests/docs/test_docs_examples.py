"""Every ```python block of the README and the documentation site runs, so neither drifts.

Blocks are collected from ``README.md`` and ``docs/**/*.md`` (shell, console, text and
TOML blocks are not Python and are left alone); a block shown in several places (a
piece of ``docs/snippets/`` is in the README and in a page) runs once, under the first
file that shows it. Each runs in a fresh namespace:

* a block that ends in ``anyio.run(main)`` (or defines everything itself) runs as a
  script;
* a block with a top-level ``await`` / ``async with`` is a fragment of an app: it runs
  inside an event loop with the names such fragments lean on already defined (see
  `fragment_names`), ``client`` being an ``OrganikClient()`` built from the
  environment, exactly as the README's users build it: ``ORGANIK_API_KEY`` is the
  simulator's ``DEMO_API_KEY`` and ``ORGANIK_BASE_URL`` a simulator served over TCP
  with `organik_async.testing.serve`;
* what a block only defines (a FastAPI app, an error handler, a test function, a
  client) is then used, by the checks in `PROOFS`, so that defining it is not
  all that is proven.

A block that is only ``--8<-- "examples/…"`` includes an example program in the site;
those programs are run by their own tests (``tests/examples/``), which this
module checks exist.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest

import organik_async
from organik_async import DetailedReport, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI
from tests.helpers.paths import ROOT, TESTS
from tests.helpers.served import served_from_thread

SOURCES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "README.template.md"),
]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')
BLOCK_SECONDS = 20


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(language: str) -> list[Block]:
    found: list[Block] = []
    seen: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["lang"] != language:
                continue
            indent = match["indent"]
            lines = match["body"].splitlines()
            code = "\n".join(line.removeprefix(indent) for line in lines) + "\n"
            line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
            if code not in seen:
                seen.add(code)
                found.append(Block(path, line, code))
    return found


ALL = _blocks("python")
INCLUDES = [b for b in ALL if SNIPPET.match(b.code.strip())]
RUNNABLE = [b for b in ALL if b not in INCLUDES]


# --- the simulator the fragments talk to -------------------------------------------------


@dataclass
class Served:
    fake: FakeOrganikAPI
    base_url: str
    rows: list[DetailedReport]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """A simulator over TCP for the module, and the environment pointing at it."""
    fake = FakeOrganikAPI(Dataset.generate(3_000, seed=12))
    with ExitStack() as stack:
        base_url = stack.enter_context(served_from_thread(fake))
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("ORGANIK_API_KEY", DEMO_API_KEY)
        patch.setenv("ORGANIK_BASE_URL", base_url)
        ids = fake.dataset.transaction_ids[:3]
        rows = fake.dataset.expected(transaction_ids=ids)
        yield Served(fake, base_url, rows)
        organik_async.set_testing(False)


def fragment_names(served: Served) -> dict[str, Any]:
    """What the README's fragments use without defining: what came before them in an app."""
    ids = served.fake.dataset.transaction_ids[:5]

    def ids_from_file() -> Iterator[int]:
        yield from ids

    return {
        "fake": FakeOrganikAPI(Dataset.generate(500, seed=3)),
        "ids": ids,
        "transaction_ids": ids,
        "rows": served.rows,
        "row": served.rows[0],
        "out": io.BytesIO(),
        "ids_from_file": ids_from_file,
    }


# --- checks of what a block defines ------------------------------------------------------


async def _fastapi_app(ns: dict[str, Any], served: Served) -> None:
    """The lifespan opens the shared client; the route answers from the simulator."""
    app = ns["app"]
    transaction_id = served.fake.dataset.transaction_ids[0]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            answer = await http.get(f"/report/{transaction_id}")
    assert answer.status_code == 200
    expected = served.fake.dataset.expected(transaction_ids=[transaction_id])
    assert [r["gsm"] for r in answer.json()] == [r.gsm for r in expected]


async def _error_answer(ns: dict[str, Any], served: Served) -> None:
    """Good IDs give rows; a float ID (the caller's bad input) gives a 422."""
    async with OrganikClient() as client:
        ok = await ns["report"](client, served.fake.dataset.transaction_ids[:1])
        bad = await ns["report"](client, [1.5])
    assert ok.status_code == 200
    assert bad.status_code == 422


async def _aiohttp_client(ns: dict[str, Any], served: Served) -> None:
    """The client built on the aiohttp transport fetches the simulator's rows."""
    ids = served.fake.dataset.transaction_ids[:3]
    async with ns["client"] as client:
        rows = await client.detailed_report(transaction_ids=ids)
    assert rows == served.fake.dataset.expected(transaction_ids=ids)


PROOFS: dict[str, Callable[[dict[str, Any], Served], Any]] = {
    "app = FastAPI(lifespan=lifespan)": _fastapi_app,
    "answer = http_error_answer(exc)": _error_answer,
    "AiohttpTransport()": _aiohttp_client,
}


def _is_fragment(code: Any) -> bool:
    """Whether the block awaits at top level: a piece of an async function."""
    return bool(code.co_flags & inspect.CO_COROUTINE)


def _is_program(source: str) -> bool:
    """Whether the block is a whole program (it runs its own event loop)."""
    return "anyio.run(" in source or "trio.run(" in source


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_code_block_runs(block: Block, served: Served) -> None:
    organik_async.set_testing(True)  # retries happen, their waits do not
    code = compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    module = types.ModuleType("__docs_example__")  # dataclasses and msgspec look it up
    sys.modules[module.__name__] = module
    ns: dict[str, Any] = module.__dict__
    try:
        if _is_fragment(code) or not _is_program(block.code):
            ns.update(fragment_names(served))
        if _is_fragment(code):

            async def run_fragment() -> None:
                with anyio.fail_after(BLOCK_SECONDS):
                    async with OrganikClient() as client:
                        ns["client"] = client
                        await eval(code, ns)

            anyio.run(run_fragment)
        else:
            exec(code, ns)
        for marker, proof in PROOFS.items():
            if marker in block.code:
                anyio.run(proof, ns, served)
        for name, value in list(ns.items()):
            if name.startswith("test_") and inspect.iscoroutinefunction(value):
                anyio.run(value)  # a test the block shows: it passes
    finally:
        sys.modules.pop(module.__name__, None)
        for value in ns.values():
            if isinstance(value, OrganikClient) and not value.is_closed:
                anyio.run(value.aclose)


def test_every_included_example_is_a_program_the_suite_runs() -> None:
    tests = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))
    assert INCLUDES, "the guides include the example programs"
    for block in INCLUDES:
        match = SNIPPET.match(block.code.strip())
        assert match is not None
        path = ROOT / match["path"]
        assert path.is_file(), block.name
        assert path.parent.name == "examples", block.name
        assert path.stem in tests.replace(path.name, path.stem), f"{path.name} is not tested"


def test_the_readme_and_the_docs_have_python_blocks_to_run() -> None:
    assert {b.path.name for b in RUNNABLE} >= {"README.md", "settings.md", "concurrency.md"}
    assert len(RUNNABLE) >= 20


def test_the_api_reference_documents_every_public_name() -> None:
    import organik_async.testing

    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    shown = set(re.findall(r"^::: ([\w.]+)$", pages, flags=re.M))
    public = {f"organik_async.{name}" for name in organik_async.__all__}
    public |= {f"organik_async.testing.{name}" for name in organik_async.testing.__all__}
    assert public <= shown
