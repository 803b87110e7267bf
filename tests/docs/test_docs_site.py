"""The built documentation site reads as finished, without a browser.

The site is built once for the module (``mkdocs build --strict`` into a temporary
directory), and its HTML is read as a reader would see it: no reST role or ``::`` marker
shown as text (mkdocstrings reads docstrings as Markdown), signatures formatted to fit
the page, every diagram drawn by the copy of Mermaid served with the site, nothing
loaded from another host. ``docs/check_in_browser.py`` makes the same checks in
headless Chromium, with screenshots; this is the part that needs no browser.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest

from tests.helpers.paths import ROOT

RAW_ROLE = re.compile(r":(?:py:)?(?:meth|class|attr|func|mod|exc|data|obj|ref|const):")
PROSE = (
    "//div[contains(@class, 'md-content')]//*[self::p or self::li or self::td or self::dd"
    " or self::dt or self::h1 or self::h2 or self::h3 or self::h4 or self::h5]"
    "[not(ancestor::pre)]"
)


LINE_LENGTH = int(re.findall(r"^ +line_length: (\d+)$", (ROOT / "mkdocs.yml").read_text(), re.M)[0])
"""The width mkdocstrings formats signatures to (its option in mkdocs.yml)."""
pytestmark = [
    pytest.mark.timeout(300),  # the first test waits for the site to be built
    pytest.mark.slow,  # building the site takes seconds
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built from this checkout with warnings as errors."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    return out


def pages(site: Path) -> Iterator[tuple[str, lxml.html.HtmlElement]]:
    for path in sorted(site.rglob("*.html")):
        if path.parent.name == "search" or "assets" in path.parts:
            continue
        yield str(path.relative_to(site)), lxml.html.parse(str(path)).getroot()


def test_no_page_shows_a_restructuredtext_role_or_marker(site: Path) -> None:
    shown = []
    for name, page in pages(site):
        for element in page.xpath(PROSE):
            text = element.text_content()
            if RAW_ROLE.search(text) or text.rstrip().endswith("::"):
                shown.append(f"{name}: {text.strip()[:100]!r}")
    assert not shown, "\n".join(shown)
    assert len(list(pages(site))) >= 20


def test_signatures_and_code_of_the_reference_fit_the_page(site: Path) -> None:
    too_long = []
    signatures = 0
    for name, page in pages(site):
        reference = name.startswith("api/")
        for block in page.xpath("//div[contains(@class, 'md-content')]//pre"):
            is_signature = bool(block.xpath("ancestor::div[contains(@class, 'doc-signature')]"))
            signatures += is_signature
            if not (is_signature or reference):
                continue
            for line in block.text_content().splitlines():
                if len(line) > LINE_LENGTH:
                    too_long.append(f"{name}: {line!r}")
    assert not too_long, "\n".join(too_long)
    assert signatures >= 100


def test_the_detailed_report_method_shows_its_parameters(site: Path) -> None:
    page = lxml.html.parse(str(site / "api" / "client" / "index.html")).getroot()
    (method,) = page.xpath("//div[*[@id='organik_async.OrganikClient.detailed_report']]")
    text = method.text_content()
    for parameter in ("transaction_ids", "delivery_track_ids", "gsm_track_ids", "options"):
        assert re.search(rf"\b{parameter}\b", text.split("Parameters", 1)[-1]), parameter
    for section in ("Parameters", "Returns", "Raises"):
        assert section in text


def test_diagrams_are_drawn_by_the_mermaid_served_with_the_site(site: Path) -> None:
    diagrams = 0
    for name, page in pages(site):
        if not page.xpath("//pre[contains(@class, 'mermaid')]"):
            continue
        diagrams += 1
        scripts = page.xpath("//script/@src")
        local = [s for s in scripts if s.endswith("assets/mermaid/mermaid.min.js")]
        assert local, f"{name} does not load the site's own mermaid.min.js"
        assert (site / "assets" / "mermaid" / "mermaid.min.js").stat().st_size > 1_000_000
    assert diagrams >= 1


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    remote = []
    for name, page in pages(site):
        for url in page.xpath("//script/@src | //link[@rel='stylesheet']/@href | //img/@src"):
            if re.match(r"(https?:)?//", url):
                remote.append(f"{name}: {url}")
    assert not remote, "\n".join(remote)
