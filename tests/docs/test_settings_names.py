"""Every setting has one name, the same everywhere it is written.

A client setting is named in the constructor of `OrganikClient`, in `SettingChanges`
(what `with_options` takes), in the `Settings` object that validates it, as a read-only
property of the client, in the table of docs/settings.md, in the member list of the API
reference (docs/api/client.md) and in the command line's table of client options
(docs/cli.md). A per-call option is named in `CallOptions` and in docs/settings.md. These
tests fail when a name is added, renamed or dropped in one place and not the others, and
name the places that disagree. Where a setting is deliberately not in a place (the key is
not a property: it is a secret), the sets below say so, and a new setting has to be put
in one of them on purpose.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re

from organik_async import CallOptions, OrganikClient, RetryPolicy, SettingChanges
from organik_async._cli._job import ClientOptions
from organik_async._options import Settings
from tests.helpers.paths import ROOT

SETTINGS_PAGE = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")

CONSTRUCTOR = [
    name for name in inspect.signature(OrganikClient.__init__).parameters if name != "self"
]
RETRY = list(RetryPolicy.__struct_fields__)
"""The five retry settings: constructor arguments, held together by the ``retry`` property."""

ABOUT_CONNECTIONS = {
    "api_key",
    "base_url",
    "rate_limit",
    "max_connections",
    "pool_size",
    "adaptive_concurrency",
    "http_client",
    "transport",
    "http_backend",
    "telemetry",
    "shared_limits",
}
"""Settings of the client's connections, shared budgets and reporting: a view shares its
client's sender, limits and instruments, so ``with_options`` cannot change them."""

NOT_PROPERTIES = {
    "api_key": "a secret: never shown back",
    "http_client": "an object lent to the client, not a setting of its own",
    "transport": "an object lent to the client, not a setting of its own",
    "max_connections": "not exposed yet",
    "pool_size": "not exposed yet",
    "adaptive_concurrency": "not exposed yet",
}
"""Constructor arguments that are not read back as a property, and why."""

OTHER_PROPERTIES = ["url", "is_closed", "with_raw_response"]
"""Properties of the client that are not settings (``with_raw_response`` is a cached one)."""


def _properties() -> list[str]:
    return [
        name
        for name, value in vars(OrganikClient).items()
        if isinstance(value, property | functools.cached_property) and not name.startswith("_")
    ]


def _public_methods() -> list[str]:
    return [
        name
        for name, value in vars(OrganikClient).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def _table_names(page: str, heading: str) -> list[str]:
    """The backticked names of the first column of the table under ``heading``."""
    section = page.split(heading, 1)[1]
    table = re.search(r"^\|.*\|\n\|[-|: ]+\|\n((?:\|.*\|\n?)+)", section, flags=re.M)
    assert table is not None, f"no table under {heading!r}"
    names: list[str] = []
    for row in table[1].splitlines():
        first = row.split("|")[1]
        names += re.findall(r"`([a-z_]+)`", first)
    return names


def _setting_properties() -> list[str]:
    """The settings read back as properties, in the constructor's order."""
    names = [name for name in CONSTRUCTOR if name not in NOT_PROPERTIES]
    first_retry = names.index(RETRY[0])
    names = [name for name in names if name not in RETRY]
    names.insert(first_retry, "retry")
    return names


def test_with_options_takes_the_settings_object_s_fields_and_the_retry_settings() -> None:
    assert set(SettingChanges.__annotations__) == set(Settings.__struct_fields__) | set(RETRY)


def test_the_constructor_takes_every_changeable_setting_and_those_about_connections() -> None:
    changeable = set(SettingChanges.__annotations__) - {"retry"}  # the five, one by one
    assert set(CONSTRUCTOR) - ABOUT_CONNECTIONS == changeable
    assert set(CONSTRUCTOR) >= ABOUT_CONNECTIONS


def test_every_setting_is_read_back_as_a_property_of_the_same_name() -> None:
    assert set(NOT_PROPERTIES) <= set(CONSTRUCTOR)
    assert sorted(_properties()) == sorted(_setting_properties() + OTHER_PROPERTIES)
    assert set(Settings.__struct_fields__) <= set(_properties())


def test_the_settings_page_lists_the_constructor_s_arguments_in_order() -> None:
    assert _table_names(SETTINGS_PAGE, "# Client settings") == CONSTRUCTOR


def test_the_settings_page_names_what_with_options_takes() -> None:
    section = SETTINGS_PAGE.split("## Changed settings for a view", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"`([a-z_]+)`", section)) - {"with_options"}
    assert named == set(SettingChanges.__annotations__)


def test_the_settings_page_lists_the_per_call_options() -> None:
    assert set(_table_names(SETTINGS_PAGE, "## Per-call options")) == set(
        CallOptions.__annotations__
    )


def test_the_api_reference_lists_the_settings_first_then_the_other_members() -> None:
    page = (ROOT / "docs" / "api" / "client.md").read_text(encoding="utf-8")
    entry = page.split("::: organik_async.OrganikClient\n", 1)[1].split("\n:::", 1)[0]
    members = re.findall(r"^ +- (\w+)$", entry, flags=re.M)
    settings = _setting_properties()
    assert members[: len(settings)] == settings
    assert sorted(members[len(settings) :]) == sorted(OTHER_PROPERTIES + _public_methods())


def test_the_command_line_s_table_names_the_settings_its_options_set() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = page.split("## Client options", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    rows = [row for row in section.splitlines() if row.startswith("|")][2:]  # no header
    for row in rows:
        cells = re.split(r"(?<!\\)\|", row)  # a cell may hold an escaped \|
        leading = re.match(r"\s*((?:`[a-z_]+`(?:, )?)+)", cells[2])
        assert leading is not None, row
        named |= set(re.findall(r"`([a-z_]+)`", leading[1]))
    every = ClientOptions(
        base_url="http://x", response_format="json", batch_size=1, concurrency=1,
        rate_limit=1, retries=1, timeout=1, shared_limits="redis://x",
    )  # fmt: skip
    unset = [f.name for f in dataclasses.fields(every) if getattr(every, f.name) is None]
    assert not unset, f"give every option a value here, so that none is missed: {unset}"
    set_by_options = set(every.kwargs())
    assert set_by_options <= set(CONSTRUCTOR)
    assert named == set_by_options | {"api_key"}  # the key: from the environment only
