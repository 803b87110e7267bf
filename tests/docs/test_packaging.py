"""The install page, the changelog and the licence say what pyproject.toml says.

pyproject.toml holds each dependency's lower bound, the Python versions, the version and
the licence; docs/install.md is where a user reads the supported ranges, CHANGELOG.md
what this version changed, LICENSE the licence's text. The lowest-versions pass of CI
(``.ci/lowest.py``) installs exactly the bounds the install page shows.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Callable
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.paths import ROOT

PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
    "project"
]
INSTALL = re.sub(  # the page as a reader sees it: its included snippets expanded
    r'^--8<-- "([^"]+)"$',
    lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"),
    (ROOT / "docs" / "install.md").read_text(encoding="utf-8"),
    flags=re.M,
)


def ci_pins() -> list[str]:
    """The constraints CI's lowest-versions pass installs (``.ci/lowest.py``)."""
    spec = importlib.util.spec_from_file_location("lowest", ROOT / ".ci" / "lowest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins: Callable[[], list[str]] = module.pins
    return pins()


def test_the_install_page_gives_every_dependency_the_lower_bound_ci_installs() -> None:
    rows = re.findall(r"^\| ([A-Za-z][\w.-]*) \| (\d[\w.]*) \|", INSTALL, flags=re.M)
    shown = {canonicalize_name(name): version for name, version in rows}
    pinned = {}
    for line in ci_pins():
        requirement = Requirement(line)
        (version,) = [spec.version for spec in requirement.specifier]
        pinned[canonicalize_name(requirement.name)] = version
    assert shown == pinned


def test_the_install_page_names_the_python_versions_the_classifiers_do() -> None:
    versions = [
        classifier.rsplit(" :: ", 1)[1]
        for classifier in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    listed = ", ".join(versions[:-1]) + f" and {versions[-1]}"
    assert f"Python {listed}." in INSTALL
    assert PROJECT["requires-python"] == f">={versions[0]}"


def test_the_changelog_starts_with_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.M)
    assert releases[:2] == ["Unreleased", PROJECT["version"]]


def test_the_licence_is_mit_in_the_metadata_and_the_file() -> None:
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "organik_async developers" in text.splitlines()[2]
    assert not any("License ::" in classifier for classifier in PROJECT["classifiers"])
