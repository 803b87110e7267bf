"""The README is the front page the documentation renders, not a copy that drifts.

``README.md`` is ``docs/README.template.md`` with the pieces it shares with the site
(``docs/snippets/``) filled in by ``docs/render_readme.py``; its code blocks are run by
``tests/docs/test_docs_examples.py``.
"""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import organik_async
from tests.helpers.paths import ROOT, TESTS

README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
)
DEMO_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test,cli]'"
    " && .venv/bin/organik-report demo"
)


def test_the_readme_is_what_its_template_renders_to() -> None:
    done = subprocess.run(
        [sys.executable, "docs/render_readme.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_stale_readme_is_reported_with_the_command_that_renders_it(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(README.replace("## A first query", "## A first querry"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "docs/render_readme.py", "--check", "--readme", str(stale)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "run `python docs/render_readme.py`" in done.stderr
    assert "querry" in stale.read_text(encoding="utf-8")  # --check changes nothing


def test_the_readme_is_a_front_page() -> None:
    assert README.count("\n") <= 200
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings == [
        "Install",
        "A first query",
        "The command line",
        "Set-up on a new machine",
        "Documentation",
    ]


def test_the_set_up_commands_are_kept_exactly() -> None:
    setup = README.split("## Set-up on a new machine", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```sh\n(.*?)\n```", setup, flags=re.S) == [TEST_COMMAND, DEMO_COMMAND]


def test_the_first_query_runs_against_the_simulator() -> None:
    first = README.split("## A first query", 1)[1].split("\n## ", 1)[0]
    simulator, provider = re.findall(r"```python\n(.*?)```", first, flags=re.S)
    assert "FakeOrganikAPI()" in simulator
    assert "OrganikClient()" in provider


def test_every_link_of_the_readme_leads_to_a_file_of_the_repository() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"https?://", link)]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing


def test_the_readme_shows_no_benchmark_figure() -> None:
    figures = re.findall(r"\d[\d.,]*\s*(?:µs|ms|MiB|MB|×|x faster|rows/s|req/s)", README)
    assert not figures


def test_every_public_name_the_readme_uses_exists() -> None:
    names = re.findall(r"(?<![.\w])([A-Z][A-Za-z]+Error|OrganikClient)\b", README)
    ours = {name for name in names if not hasattr(builtins, name) or name == "TimeoutError"}
    assert ours
    assert ours <= set(organik_async.__all__)


def test_the_simulator_example_is_the_test_that_runs_in_our_suite() -> None:
    page = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    (example,) = [b for b in blocks if "test_delivered_numbers_survives" in b]
    source = (TESTS / "simulator" / "test_simulator_client.py").read_text(encoding="utf-8")
    body = example[example.index("async def delivered_numbers") :].strip()
    assert body in source
