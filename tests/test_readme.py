"""The README's examples are the code our tests run, not a copy that drifts."""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import organik_async

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_simulator_example_is_the_test_that_runs_in_our_suite() -> None:
    (example,) = [b for b in python_blocks() if "test_delivered_numbers_survives" in b]
    source = (ROOT / "tests" / "test_simulator_client.py").read_text(encoding="utf-8")
    body = example[example.index("async def delivered_numbers") :].strip()
    assert body in source


def test_every_public_name_the_readme_uses_exists() -> None:
    names = re.findall(r"(?<![.\w])([A-Z][A-Za-z]+Error|OrganikClient)\b", README)
    ours = {name for name in names if not hasattr(builtins, name) or name == "TimeoutError"}
    assert ours <= set(organik_async.__all__)
