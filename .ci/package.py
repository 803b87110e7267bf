"""The release a user installs: what the sdist and the wheel hold, and the wheel at work.

    python .ci/package.py check DIST      the wheel in DIST holds every file of the package
                                          (the simulator's included), py.typed and the
                                          licence, with this version's metadata; the sdist
                                          holds every file a rebuild and the tests read
    python .ci/package.py readme-example  run by the interpreter the wheel was installed
                                          in, outside the checkout: every Python example
                                          of the README, as written

The README's examples ask for transaction IDs the simulator's default dataset holds: the
first runs the simulator in its own process, the others reach it over TCP through
``ORGANIK_BASE_URL`` as they would reach the provider. Each row an example prints is
checked against the simulator's data.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "organik_async"


def tracked(*paths: str) -> set[str]:
    """The files git tracks under ``paths`` (POSIX, relative to the checkout)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return {name for name in listed.split("\0") if name}


def check_wheel(wheel: Path, version: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"{PACKAGE}-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode() if f"{info}/METADATA" in names else ""
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    problems = []
    package = {name for name in names if name.startswith(f"{PACKAGE}/")}
    expected = tracked(PACKAGE)
    if missing := sorted(expected - package):
        problems.append(f"{wheel.name} lacks files of the package: {missing}")
    if stray := sorted(package - expected):
        problems.append(f"{wheel.name} holds files git does not track: {stray}")
    for needed in (f"{PACKAGE}/py.typed", f"{PACKAGE}/testing/__init__.py"):
        if needed not in names:
            problems.append(f"{wheel.name} lacks {needed}")
    if f"{info}/licenses/LICENSE" not in names:
        problems.append(f"{wheel.name} lacks {info}/licenses/LICENSE")
    for field in (f"Version: {version}", "License-Expression: MIT", "License-File: LICENSE"):
        if field not in metadata.splitlines():
            problems.append(f"{wheel.name}'s METADATA lacks {field!r}")
    if "organik-report = organik_async._cli:main" not in entry_points:
        problems.append(f"{wheel.name} does not install the organik-report command")
    return problems


def check_sdist(sdist: Path, version: str) -> list[str]:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    roots = include["hatch"]["build"]["targets"]["sdist"]["include"]
    top = f"{PACKAGE}-{version}"
    with tarfile.open(sdist) as archive:
        paths = [PurePosixPath(member.name) for member in archive.getmembers() if member.isfile()]
    names = {str(PurePosixPath(*path.parts[1:])) for path in paths if path.parts[0] == top}
    problems = []
    if len(names) != len(paths):
        problems.append(f"{sdist.name} holds files outside {top}/")
    expected = tracked(*roots)
    for needed in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if needed not in expected:
            problems.append(f"the sdist's include names no {needed}, which a rebuild reads")
    if missing := sorted(expected - names):
        problems.append(f"{sdist.name} lacks {missing}")
    if "PKG-INFO" not in names:
        problems.append(f"{sdist.name} has no PKG-INFO")
    return problems


def check(dist: Path) -> int:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    wheel_name = f"{PACKAGE}-{version}-py3-none-any.whl"
    sdist_name = f"{PACKAGE}-{version}.tar.gz"
    if [p.name for p in wheels] != [wheel_name] or [p.name for p in sdists] != [sdist_name]:
        print(f"package.py: expected {wheel_name} and {sdist_name} in {dist}", file=sys.stderr)
        return 1
    problems = check_wheel(wheels[0], version) + check_sdist(sdists[0], version)
    for problem in problems:
        print(f"package.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


def readme_example() -> int:
    """Every Python example of the README, against the simulator, from the installed wheel."""
    import anyio.from_thread

    import organik_async
    from organik_async.testing import DEMO_API_KEY, FakeOrganikAPI, serve

    where = Path(organik_async.__file__).resolve()
    if not where.is_relative_to(Path(sys.prefix).resolve()):
        print(f"package.py: organik_async imported from {where}, not the wheel", file=sys.stderr)
        return 1
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, flags=re.M | re.S)
    if not blocks:
        print("package.py: the README has no Python example", file=sys.stderr)
        return 1
    fake = FakeOrganikAPI()  # the dataset the README's examples are written against
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(fake)) as base_url,
    ):
        os.environ.update(ORGANIK_API_KEY=DEMO_API_KEY, ORGANIK_BASE_URL=base_url)
        for number, code in enumerate(blocks, 1):
            asked = re.findall(r"^\s*ids = \[([\d, ]+)\]", code, flags=re.M)
            if len(asked) != 1:
                print(
                    f"package.py: the README's example {number} has no `ids = [...]`",
                    file=sys.stderr,
                )
                return 1
            ids = [int(part) for part in asked[0].split(",")]
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(
                    compile(code, f"README.md, example {number}", "exec"), {"__name__": "__main__"}
                )
            lines = printed.getvalue().splitlines()
            rows = fake.dataset.expected(transaction_ids=ids)
            shown = sorted(line.split()[0] for line in lines)
            if not rows or shown != sorted(str(row.gsm) for row in rows):
                print(
                    f"package.py: the README's example {number} printed {lines}, not {rows}",
                    file=sys.stderr,
                )
                return 1
            print(f"the README's example {number} printed the simulator's {len(rows)} rows")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) == 2:
        return check(Path(argv[1]))
    if argv == ["readme-example"]:
        return readme_example()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
