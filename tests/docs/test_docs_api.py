"""The API reference is complete: what mkdocstrings shows is documented, section by section.

The reference pages are the docstrings, read by griffe as mkdocstrings reads them
(Google style). For every public name of ``organik_async`` and ``organik_async.testing``:

* each public function and method (and each constructor, shown with its class) has a
  summary, an *Args* entry for every parameter, *Returns* (or *Yields*) unless it returns
  ``None``, and *Raises* where it raises;
* each public attribute of a public class (a field of a Struct, a key of a TypedDict, a
  property, an attribute set by the constructor, an enum member) has a description;
* no docstring uses a reST role or a ``::`` literal-block marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import griffe
import pytest

import organik_async
import organik_async.testing
from tests.helpers.paths import ROOT

RAW_ROLE = re.compile(r":(?:py:)?(?:meth|class|attr|func|mod|exc|data|obj|ref|const):`")

# Methods that raise through the helpers they call (no `raise` of their own to find).
RAISE_THROUGH_HELPERS = {
    "organik_async.OrganikClient.detailed_report",
    "organik_async.OrganikClient.iter_detailed_report",
    "organik_async.OrganikClient.iter_batches",
    "organik_async.OrganikClient.follow_until_final",
    "organik_async.OrganikClient.with_options",
}

# Classes users get from a method, never build: their reference hides the constructor
# (merge_init_into_class: false in docs/api/*.md) and says where they come from.
INTERNAL_CONSTRUCTORS = {
    "organik_async.ReportStream",
    "organik_async.FollowStream",
    "organik_async.RawResponses",
    "organik_async.RawResponse",
    "organik_async.SyncReportStream",
    "organik_async.SyncFollowStream",
    "organik_async.SyncRawResponses",
}


def _load() -> griffe.Module:
    package = griffe.load("organik_async", search_paths=[str(ROOT)], docstring_parser="google")
    assert isinstance(package, griffe.Module)
    return package


PACKAGE = _load()


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object:
    target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    assert isinstance(target, griffe.Object)
    return target


def public_objects() -> Iterator[tuple[str, griffe.Object]]:
    """Each public name, as ``organik_async.Name``, with what griffe found for it."""
    for module, names in (
        (PACKAGE, organik_async.__all__),
        (PACKAGE["testing"], organik_async.testing.__all__),
    ):
        for name in names:
            yield f"{module.path}.{name}", _target(module[name])


def public_members(cls: griffe.Class) -> Iterator[tuple[str, griffe.Object]]:
    """The members the reference shows: public ones defined in the class, and its constructor."""
    for name, member in cls.members.items():
        if isinstance(member, griffe.Alias):
            continue
        if name.startswith("_") and name != "__init__":
            continue
        yield name, member


def functions() -> Iterator[tuple[str, griffe.Function]]:
    for path, obj in public_objects():
        if isinstance(obj, griffe.Function):
            yield path, obj
        elif isinstance(obj, griffe.Class):
            for name, member in public_members(obj):
                if isinstance(member, griffe.Function) and "property" not in member.labels:
                    yield f"{path}.{name}", member


def attributes() -> Iterator[tuple[str, griffe.Object]]:
    for path, obj in public_objects():
        if isinstance(obj, griffe.Class):
            for name, member in public_members(obj):
                if isinstance(member, griffe.Attribute) or "property" in member.labels:
                    yield f"{path}.{name}", member


def sections(obj: griffe.Object) -> dict[str, list[griffe.DocstringSection]]:
    found: dict[str, list[griffe.DocstringSection]] = {}
    if obj.docstring is not None:
        for section in obj.docstring.parse("google"):
            found.setdefault(section.kind.value, []).append(section)
    return found


def _parameters(function: griffe.Function) -> list[str]:
    return [p.name for p in function.parameters if p.name not in ("self", "cls")]


def _documented_parameters(found: dict[str, list[griffe.DocstringSection]]) -> list[str]:
    names = []
    for section in found.get("parameters", []):
        names += [p.name.lstrip("*") for p in section.value]
    for section in found.get("other parameters", []):
        names += [p.name.lstrip("*") for p in section.value]
    return names


def _returns_none(function: griffe.Function) -> bool:
    return function.returns is None or str(function.returns) == "None"


def _raises(function: griffe.Function) -> bool:
    source = "\n".join(function.lines)
    return re.search(r"^\s+raise \w", source, flags=re.M) is not None


def _check_items(path: str, found: dict[str, list[griffe.DocstringSection]]) -> None:
    """Sections parsed as written: a continuation line not indented starts a new item."""
    for kind in ("returns", "yields"):
        for section in found.get(kind, []):
            assert len(section.value) == 1, f"{path}: {kind} read as {len(section.value)} items"
    for section in found.get("raises", []):
        for item in section.value:
            name = str(item.annotation)
            assert re.fullmatch(r"([a-z_]\w*\.)*[A-Z]\w*", name), f"{path}: Raises {name!r}"


FUNCTIONS = dict(functions())
ATTRIBUTES = dict(attributes())


def test_the_reference_finds_what_it_documents() -> None:
    assert "organik_async.OrganikClient.detailed_report" in FUNCTIONS
    assert "organik_async.OrganikClient.__init__" in FUNCTIONS
    assert "organik_async.DetailedReport.gsm_track_id" in ATTRIBUTES
    assert "organik_async.OrganikClient.max_concurrency" in ATTRIBUTES
    assert "organik_async.testing.Stats.peak_in_flight" in ATTRIBUTES


@pytest.mark.parametrize("path", sorted(dict(public_objects())))
def test_every_public_name_has_a_docstring(path: str) -> None:
    obj = dict(public_objects())[path]
    assert obj.docstring is not None, f"{path}: no docstring"
    assert obj.docstring.value.strip()


@pytest.mark.parametrize("path", sorted(FUNCTIONS))
def test_every_public_function_has_its_sections(path: str) -> None:
    function = FUNCTIONS[path]
    parameters = _parameters(function)
    if function.name == "__init__" and isinstance(function.parent, griffe.Class):
        if path.rsplit(".", 1)[0] in INTERNAL_CONSTRUCTORS:
            return  # the reference does not show it (see INTERNAL_CONSTRUCTORS)
        # Merged into its class's documentation: the class's docstring may hold the Args,
        # and a parameter named as a documented attribute is documented by it.
        found = {**sections(function.parent), **sections(function)}
        documented = set(_documented_parameters(found))
        for name in parameters:
            attribute = function.parent.all_members.get(name)
            if attribute is not None and attribute.docstring is not None:
                documented.add(name)
        assert documented >= set(parameters), f"{path}: Args"
        assert documented <= set(parameters), f"{path}: Args of no parameter"
        if _raises(function):
            assert "raises" in found, f"{path}: no Raises"
        _check_items(path, found)
        return
    assert function.docstring is not None, f"{path}: no docstring"
    found = sections(function)
    assert sorted(_documented_parameters(found)) == sorted(parameters), f"{path}: Args"
    if function.name != "__init__" and not _returns_none(function):
        assert "returns" in found or "yields" in found, f"{path}: no Returns"
    _check_items(path, found)
    if _raises(function) or path in RAISE_THROUGH_HELPERS:
        assert "raises" in found, f"{path}: no Raises"


@pytest.mark.parametrize("path", sorted(ATTRIBUTES))
def test_every_public_attribute_has_a_description(path: str) -> None:
    attribute = ATTRIBUTES[path]
    assert attribute.docstring is not None, f"{path}: no description"
    assert attribute.docstring.value.strip()


def test_no_docstring_uses_a_restructuredtext_role() -> None:
    found = []

    def visit(obj: griffe.Object) -> None:
        if obj.docstring is not None:
            text = obj.docstring.value
            if RAW_ROLE.search(text) or re.search(r"::\s*$", text, flags=re.M):
                found.append(obj.path)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                visit(member)

    visit(PACKAGE)
    assert not found


def test_the_reference_hides_the_constructors_users_never_call() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    for path in INTERNAL_CONSTRUCTORS:
        entry = re.search(rf"^::: {re.escape(path)}\n((?:    .*\n)*)", pages, flags=re.M)
        assert entry is not None, path
        assert "merge_init_into_class: false" in entry[1], path


# --- the blocking client mirrors the async one ---------------------------------------------

SYNC_ARGS_DIFFER = {
    "shared_limits": "when the budget is shared: inside `async with` for the async client, "
    "from the first call until close() for the blocking one",
}
"""Constructor arguments the blocking client documents in words of its own, and why."""


def _class_sections(name: str, kind: str) -> list[tuple[str, str]]:
    cls = _target(PACKAGE[name])
    return [
        (str(item.name if kind == "parameters" else item.annotation), item.description)
        for section in sections(cls).get(kind, [])
        for item in section.value
    ]


def _reference_members(page: str, name: str) -> list[str]:
    text = (ROOT / "docs" / "api" / page).read_text(encoding="utf-8")
    entry = text.split(f"::: organik_async.{name}\n", 1)[1].split("\n:::", 1)[0]
    return re.findall(r"^ +- (\w+)$", entry, flags=re.M)


def test_the_blocking_client_documents_the_async_client_s_arguments() -> None:
    blocking = dict(_class_sections("SyncOrganikClient", "parameters"))
    async_ = dict(_class_sections("OrganikClient", "parameters"))
    assert list(blocking) == list(async_)
    differ = {name for name in async_ if blocking[name] != async_[name]}
    assert differ == set(SYNC_ARGS_DIFFER)
    assert _class_sections("SyncOrganikClient", "raises") == _class_sections(
        "OrganikClient", "raises"
    )


def test_the_blocking_client_s_settings_are_described_as_the_async_client_s() -> None:
    blocking = _target(PACKAGE["SyncOrganikClient"])
    async_ = _target(PACKAGE["OrganikClient"])
    constructor = _target(async_["__init__"])
    assert isinstance(constructor, griffe.Function)
    for name in _parameters(constructor):
        member = async_.members.get(name)
        if member is None or "property" not in member.labels:
            continue  # not read back (the key, the objects lent to the client)
        assert member.docstring is not None
        assert blocking[name].docstring is not None, name
        assert blocking[name].docstring.value == member.docstring.value, name


def test_the_blocking_client_s_reference_lists_the_async_client_s_members() -> None:
    async_ = _reference_members("client.md", "OrganikClient")
    assert _reference_members("sync.md", "SyncOrganikClient") == [
        "close" if name == "aclose" else name for name in async_
    ]
