"""README.md is rendered from docs/README.template.md, so it shares the site's words.

The README is the repository's front page. What it shares with the documentation site
(what the package is, how to install it, a first query, the command line, the set-up
commands) lives once, in ``docs/snippets/``, and is included with pymdownx.snippets'
``--8<-- "docs/snippets/…"`` lines, in the site's pages and in the template alike. This
script expands the template with that same extension, configured as ``mkdocs.yml``
configures it, so the README shows what the site shows:

    python docs/render_readme.py           # rewrite README.md
    python docs/render_readme.py --check   # exit 1, saying so, if README.md is stale

``tests/docs/test_readme.py`` runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import markdown  # type: ignore[import-untyped]  # no stubs in the docs extra

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docs" / "README.template.md"
README = ROOT / "README.md"
COMMAND = "python docs/render_readme.py"
HEADER = (
    f"<!-- Rendered from docs/README.template.md and docs/snippets/ by `{COMMAND}`:"
    " edit those, not this file. -->\n"
)


def render(template: Path = TEMPLATE) -> str:
    """The README's text: the template with every ``--8<--`` line replaced by its file."""
    md = markdown.Markdown(
        extensions=["pymdownx.snippets"],
        extension_configs={"pymdownx.snippets": {"base_path": [str(ROOT)], "check_paths": True}},
    )
    lines = md.preprocessors["snippet"].run(template.read_text(encoding="utf-8").splitlines())
    return HEADER + "\n".join(_single_blank_lines(lines)).rstrip("\n") + "\n"


def _single_blank_lines(lines: list[str]) -> list[str]:
    """One blank line where an included file's last line meets the template's blank line
    (inside a code block, lines stay as they are)."""
    kept: list[str] = []
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and not line.strip() and kept and not kept[-1].strip():
            continue
        kept.append(line)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render README.md from its template.")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the README is stale"
    )
    parser.add_argument("--readme", type=Path, default=README, help="default: README.md")
    args = parser.parse_args(argv)
    readme: Path = args.readme
    text = render()
    current = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if args.check:
        if current != text:
            print(
                f"{readme.name} is not what docs/README.template.md renders to: "
                f"run `{COMMAND}` and commit the result",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != text:
        readme.write_text(text, encoding="utf-8")
        print(f"{readme} rewritten ({text.count(chr(10))} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
