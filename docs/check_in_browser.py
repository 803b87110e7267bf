"""Open the built documentation site in headless Chromium, as a reader would, and check it.

The API reference is made from docstrings and the diagrams are drawn by JavaScript, so
what a reader sees is only known in a browser. This script builds the site (or takes a
built one), serves it on 127.0.0.1, opens every API reference page and every page with
a diagram in headless Chromium (Debian's ``chromium``, driven by playwright), saves a
full-page screenshot of each, and fails when a page:

* shows a raw reST role (``:meth:``, ``:class:``, ...) or a reST ``::`` marker as text;
* shows a diagram as its Mermaid source instead of an SVG;
* has a signature or a code block wider than its box (cut off at the page edge, or
  scrolled sideways);
* asks for anything that is not on 127.0.0.1 (the site must render offline).

    python docs/check_in_browser.py                  # build, serve, check, screenshot
    python docs/check_in_browser.py --site site      # check an already built site

Screenshots go to ``docs-screenshots/`` (git-ignored). Exit status 0 when every page
passes, 1 otherwise, each failure said on stderr.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Route, ViewportSize, sync_playwright
from playwright.sync_api import Error as PlaywrightError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
RAW_ROLE = re.compile(r":(?:py:)?(?:meth|class|attr|func|mod|exc|data|obj|ref|const):`?")
MERMAID_SOURCE = re.compile(r"^\s*(?:flowchart|graph|sequenceDiagram|classDiagram)\b", re.M)

# Material for MkDocs draws each diagram into a closed shadow root; opened, the SVG can
# be found. This runs in the page before any of its scripts.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, Object.assign({}, init, { mode: "open" }));
};
"""

# Text a reader sees outside code blocks: one entry per paragraph, list item or cell.
PROSE_TEXT = """
() => Array.from(document.querySelectorAll(
  ".md-content p, .md-content li, .md-content td, .md-content dd, .md-content dt, "
  + ".md-content h1, .md-content h2, .md-content h3, .md-content h4, .md-content h5"
)).filter(e => !e.closest("pre")).map(e => e.innerText)
"""

# Signatures and code blocks wider than the box that shows them (a reader would have to
# scroll sideways to see their end): [text, width needed, width shown].
OVERFLOWING_CODE = """
() => {
  const content = document.querySelector(".md-content").getBoundingClientRect();
  const found = [];
  for (const sig of document.querySelectorAll(".md-content .highlight, .doc-signature")) {
    // Material scrolls a code block inside its <code>: measure every box in turn.
    for (const box of [sig, ...sig.querySelectorAll("pre, code")]) {
      const rect = box.getBoundingClientRect();
      if (box.scrollWidth > box.clientWidth + 1 || rect.right > content.right + 1) {
        found.push([sig.innerText.slice(0, 80), box.scrollWidth, box.clientWidth]);
        break;
      }
    }
  }
  return found;
}
"""


@dataclass
class Report:
    """What the checks found, page by page."""

    failures: list[str] = field(default_factory=list)
    pages: int = 0

    def fail(self, page: str, message: str) -> None:
        self.failures.append(f"{page}: {message}")


def pages_to_check(docs: Path = DOCS) -> list[str]:
    """Site paths of the API reference pages and of every page with a Mermaid diagram."""
    sources = sorted((docs / "api").glob("*.md"))
    sources += [
        p
        for p in sorted(docs.rglob("*.md"))
        if "```mermaid" in p.read_text(encoding="utf-8") and p not in sources
    ]
    paths = []
    for source in sources:
        relative = source.relative_to(docs).with_suffix("")
        paths.append("" if relative.name == "index" else f"{relative.as_posix()}/")
    return paths


def build(site: Path) -> None:
    """``mkdocs build --strict`` into ``site``."""
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """The built site over HTTP on a free port of 127.0.0.1, for the block's duration."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def check_page(page: Page, name: str, report: Report) -> None:
    """The checks of one loaded page."""
    for text in page.evaluate(PROSE_TEXT):
        if RAW_ROLE.search(text):
            report.fail(name, f"a raw reST role as text: {text[:100]!r}")
        if text.rstrip().endswith("::"):
            report.fail(name, f"a reST '::' marker as text: {text[-100:]!r}")
    for diagram in page.locator(".mermaid").all():
        if diagram.locator("svg").count() == 0:
            report.fail(name, "a Mermaid diagram was not drawn (no SVG)")
    visible = page.locator(".md-content").inner_text()
    if MERMAID_SOURCE.search(visible):
        report.fail(name, "Mermaid source shown as text")
    for text, needed, shown in page.evaluate(OVERFLOWING_CODE):
        report.fail(
            name, f"a signature or code block is cut off ({needed} px in {shown} px): {text!r}"
        )


def visit(context: BrowserContext, url: str, name: str, screenshots: Path, report: Report) -> None:
    """Load one page as a reader would, screenshot it whole, and check it."""
    page = context.new_page()
    errors: list[str] = []

    def script_error(error: PlaywrightError) -> None:
        errors.append(error.message)

    page.on("pageerror", script_error)
    try:
        page.goto(url, wait_until="networkidle")
        if page.locator(".mermaid").count():
            page.wait_for_selector(".mermaid svg", timeout=15_000, state="attached")
        page.wait_for_timeout(300)  # let the last diagram settle before the picture
        shot = screenshots / f"{name.strip('/').replace('/', '-')}.png"
        page.screenshot(path=shot, full_page=True)
        check_page(page, name, report)
    except PlaywrightError as exc:
        report.fail(name, f"could not be shown: {exc.message}")
    finally:
        page.close()
    for error in errors:
        report.fail(name, f"a script error: {error}")
    report.pages += 1


def check_site(site: Path, screenshots: Path, chromium: str = CHROMIUM) -> Report:
    """Open each page to check in headless Chromium; screenshot it; report what fails."""
    report = Report()
    screenshots.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []

    def local_only(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with serve(site) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(OPEN_SHADOW_ROOTS)
            context.route("**/*", local_only)
            for path in pages_to_check():
                name = path or "index"
                visit(context, base_url + path, name, screenshots, report)
                for url in outside:
                    report.fail(name, f"asked for something not on this machine: {url}")
                outside.clear()
        finally:
            browser.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--site", type=Path, help="a built site (default: build one)")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs-screenshots")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser (default {CHROMIUM})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        site = args.site
        if site is None:
            site = Path(scratch) / "site"
            build(site)
        report = check_site(site, args.screenshots, args.chromium)
    for failure in report.failures:
        print(f"check_in_browser: {failure}", file=sys.stderr)
    verdict = f"{len(report.failures)} failures" if report.failures else "all passed"
    print(
        f"check_in_browser: {report.pages} pages checked, {verdict}; "
        f"screenshots in {args.screenshots}",
        file=sys.stderr,
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
