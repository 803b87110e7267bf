"""Sessions: tests (every installed Python 3.11-3.13), fast, lint, typecheck, docs, bench."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ALL_PYTHONS = ["3.11", "3.12", "3.13"]


def _runs(command: str) -> bool:
    """Whether ``command --version`` works (a pyenv shim of an inactive version fails)."""
    path = shutil.which(command)
    if path is None:
        return False
    done = subprocess.run([path, "--version"], capture_output=True, check=False)
    return done.returncode == 0


def _installed(version: str) -> bool:
    """Find ``python<version>`` on PATH or in pyenv's versions, and put it on PATH."""
    command = f"python{version}"
    if _runs(command):
        return True
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted(root.glob(f"versions/{version}.*/bin/{command}"), reverse=True):
        os.environ["PATH"] = f"{candidate.parent}{os.pathsep}{os.environ['PATH']}"
        return _runs(command)
    return False


# Every interpreter this machine has: a missing one is not a failure.
PYTHONS = [v for v in ALL_PYTHONS if _installed(v)] or ALL_PYTHONS[:1]


LINTED = [
    "organik_async",
    "tests",
    "benchmarks",
    "examples",
    "noxfile.py",
    "docs/check_in_browser.py",  # the docs' own scripts (not "docs": its Markdown is prose)
    "docs/render_readme.py",
]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite, on asyncio and trio."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def fast(session: nox.Session) -> None:
    """The fast subset of the tests (``-m "not slow"``): every module, in under a minute."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the layers contract (import-linter)."""
    session.install("-e", ".", "ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("lint-imports")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, its tests, examples and benchmarks."""
    session.install("-e", ".[test,dev,bench]")  # bench: the benchmarks' own imports
    session.run("mypy", "--strict", *LINTED)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """The documentation site, built with warnings as errors (its code blocks run in tests)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """The benchmark suite (decode, e2e, overhead, simulator, fanout, memory, tuning, percall).

    ``nox -s bench`` runs every part and writes benchmarks/results/ (each part's JSON,
    then the tables made from them); ``nox -s bench -- e2e`` runs one part; ``-- --quick``
    a smoke run that writes nothing; ``-- report`` only makes the tables again.
    """
    session.install("-e", ".[test,bench]")
    session.run("nice", "python", "-m", "benchmarks", *session.posargs, external=True)
