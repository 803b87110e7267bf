"""The benchmark tables are made from the results files, and nothing shows stale figures.

Every ``benchmarks/results/<part>.json`` has a ``<part>.md`` beside it, made from it
alone by ``python -m benchmarks.report``; the performance page includes each of them
and quotes no figure of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

sys.path.insert(0, str(ROOT))

from benchmarks import report

RESULTS = ROOT / "benchmarks" / "results"
PARTS = sorted(path.stem for path in RESULTS.glob("*.json"))
PERFORMANCE = ROOT / "docs" / "performance.md"


def _document(part: str) -> dict[str, object]:
    document: dict[str, object] = json.loads((RESULTS / f"{part}.json").read_text("utf-8"))
    return document


def test_there_are_results_to_show() -> None:
    assert {"decode", "e2e", "overhead", "fanout", "memory", "simulator", "tuning"} <= set(PARTS)


@pytest.mark.parametrize("part", PARTS)
def test_each_table_is_up_to_date_with_its_results_file(part: str) -> None:
    table = RESULTS / f"{part}.md"
    text = table.read_text("utf-8") if table.exists() else ""
    assert text == report.render(_document(part)), (
        f"benchmarks/results/{part}.md is out of date with {part}.json: run `{report.COMMAND}`"
    )


def test_a_changed_figure_makes_its_table_stale_until_the_tables_are_made_again(
    tmp_path: Path,
) -> None:
    shutil.copy(RESULTS / "e2e.json", tmp_path)
    shutil.copy(RESULTS / "e2e.md", tmp_path)
    assert report.stale(tmp_path) == []
    document = json.loads((tmp_path / "e2e.json").read_text("utf-8"))
    document["figures"]["points"][0]["walls"] = [
        w / 2 for w in document["figures"]["points"][0]["walls"]
    ]
    (tmp_path / "e2e.json").write_text(json.dumps(document), "utf-8")
    assert report.stale(tmp_path) == [tmp_path / "e2e.md"]
    report.write(tmp_path, chart=False)
    assert report.stale(tmp_path) == []


@pytest.mark.parametrize("part", PARTS)
def test_each_table_names_the_machine_and_the_versions_it_was_measured_with(part: str) -> None:
    document = _document(part)
    machine = document["machine"]
    assert isinstance(machine, dict)
    text = report.render(document)
    assert f"{machine['cpu_count']} cores ({machine['cpu_model']})" in text
    assert f"{machine['memory_gib']} GiB RAM" in text
    assert f"with `{machine['command']}`" in text
    for package, version in machine["versions"].items():
        if version != "-":
            assert f"{package} {version}" in text


@pytest.mark.parametrize("part", PARTS)
def test_each_table_gives_cpu_time_beside_wall_clock_rates(part: str) -> None:
    text = report.render(_document(part))
    headers = [line for line in text.splitlines() if line.startswith("| ")]
    if any("rows/s" in line or "wall" in line for line in headers) and part != "memory":
        assert any("CPU" in line for line in headers), part


def test_the_performance_page_includes_every_table_and_the_chart() -> None:
    page = PERFORMANCE.read_text("utf-8")
    included = set(re.findall(r'--8<-- "benchmarks/results/([\w.]+)"', page))
    assert {f"{part}.md" for part in PARTS} | {report.CHART} <= included


def test_the_performance_page_quotes_no_figure_of_its_own() -> None:
    page = PERFORMANCE.read_text("utf-8")
    prose = re.sub(r"```.*?```", "", page, flags=re.DOTALL)
    assert not re.search(r"\d\s*(µs|ms\b|rows/s|MiB|MB\b|%|×)", prose), re.findall(
        r".{30}\d\s*(?:µs|ms\b|rows/s|MiB|MB\b|%|×).{10}", prose
    )
