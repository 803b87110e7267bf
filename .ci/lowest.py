"""The lowest versions pyproject.toml allows, pinned: CI's second pass tests the range it claims.

    python .ci/lowest.py write FILE    pin every dependency to its lower bound, in FILE
    python .ci/lowest.py check FILE    FILE is exactly those pins, and every package that
                                       this interpreter has installed from it is at its pin

Every runtime dependency and every dependency of every extra (read from
pyproject.toml, so an extra added later is pinned too) becomes ``name==X`` for its
``>=X`` (or ``~=X``, or ``==X``). A dependency with no lower bound is an error, and so is
one given two different lower bounds: each has one. ``UNPINNED`` names the test tools
left at their newest: their lowest versions say nothing about what a user gets.
``pip install -c FILE`` then installs exactly the lowest versions.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

UNPINNED: frozenset[str] = frozenset()
"""Test-only tools installed at their newest version in the lowest pass."""


class BoundError(Exception):
    """pyproject.toml declares a dependency that cannot be pinned to one lower bound."""


def lower_bound(requirement: Requirement) -> Version:
    """The lowest version ``requirement`` allows, which it must also accept."""
    bounds = [
        Version(spec.version)
        for spec in requirement.specifier
        if spec.operator in (">=", "~=", "==") and "*" not in spec.version
    ]
    if not bounds:
        raise BoundError(f"{requirement}: no lower bound (>=X); every dependency needs one")
    lowest = max(bounds)
    if not requirement.specifier.contains(lowest, prereleases=True):
        raise BoundError(f"{requirement}: its own specifier refuses its lower bound {lowest}")
    return lowest


def pins(pyproject: Path = PYPROJECT) -> list[str]:
    """One ``name==X`` line per dependency, sorted by name, markers kept."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = {"dependencies": project.get("dependencies", [])}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        declared[f"extra {extra!r}"] = requirements
    bounds: dict[str, tuple[Version, str, str]] = {}
    for where, requirements in declared.items():
        for text in requirements:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            if name == canonicalize_name(project["name"]):
                continue  # an extra that names other extras of the project itself
            if name in UNPINNED:
                continue
            bound = lower_bound(requirement)
            marker = f"; {requirement.marker}" if requirement.marker else ""
            seen = bounds.get(name)
            if seen is not None and (seen[0], seen[1]) != (bound, marker):
                raise BoundError(
                    f"{requirement.name}: lower bound {bound} in {where}, {seen[0]} in {seen[2]}; "
                    "give it the same one everywhere"
                )
            bounds[name] = (bound, marker, where)
    return [f"{name}=={bound}{marker}" for name, (bound, marker, _) in sorted(bounds.items())]


def check(path: Path) -> list[str]:
    """What is wrong with ``path`` and with this interpreter's packages (nothing: ``[]``)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = pins()
    problems = []
    if lines != expected:
        extra = sorted(set(lines) - set(expected))
        missing = sorted(set(expected) - set(lines))
        problems.append(f"{path} is not the lower bounds: extra {extra}, missing {missing}")
    for line in expected:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = Version(metadata.version(requirement.name))
        except metadata.PackageNotFoundError:
            continue  # an extra this pass does not install
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement.name} {installed} is installed, not {line}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    command, path = argv[0], Path(argv[1])
    try:
        if command == "write":
            path.write_text("".join(f"{line}\n" for line in pins()), encoding="utf-8")
            return 0
        problems = check(path)
    except BoundError as exc:
        print(f"lowest.py: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"lowest.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
