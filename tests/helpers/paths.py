"""Where the tests find the repository's files: one place, whatever folder a test is in."""

from __future__ import annotations

from pathlib import Path
from typing import Final

TESTS: Final = Path(__file__).parent.parent
"""The test suite's own folder (``tests/``)."""
ROOT: Final = TESTS.parent
"""The repository's root: ``pyproject.toml``, ``README.md``, ``docs/``, ``examples/``."""
FIXTURES: Final = TESTS / "fixtures"
"""The provider's seed documents and the answers made from them."""
DOCS: Final = ROOT / "docs"
EXAMPLES: Final = ROOT / "examples"
