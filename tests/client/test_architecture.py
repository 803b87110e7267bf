"""The house: one settings object, views that share pools, one code table, one API surface.

These pin the promises of the package's structure: settings are validated the
same way wherever they are given and cannot drift after construction;
``with_options`` views share pools, rate budget and lifecycle; every provider
code behaves as :data:`PROVIDER_CODES` says; the public surface is complete,
sorted, and reports ``organik_async`` as its module.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import anyio
import httpx
import pytest

import organik_async
from organik_async import (
    API_ERROR_CODES,
    PROVIDER_CODES,
    AnsweredError,
    APIError,
    AuthenticationError,
    BatchSizes,
    BulkReportError,
    HTTPStatusError,
    IdArguments,
    OrganikClient,
    RateLimitError,
    RetryPolicy,
    instant_retries,
    is_testing,
    set_testing,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault
from tests.helpers.provider import KEY, SEED_ROW, error_answer, rows_answer

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_waits")]

DATASET = Dataset.generate(400, seed=7, max_transaction_rows=20)
TX = DATASET.transaction_ids


class Recorder:
    """A MockTransport handler that answers from a list, then with rows."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return (
            self.answers.pop(0)
            if self.answers
            else httpx.Response(200, content=rows_answer(SEED_ROW))
        )


# --- settings: validated once, read-only ------------------------------------------------

SETTINGS = [
    "request_format",
    "response_format",
    "timeout",
    "retry",
    "max_response_bytes",
    "batch_sizes",
    "max_concurrency",
    "rate_limit",
    "base_url",
]


@pytest.mark.parametrize("name", SETTINGS)
def test_settings_are_read_only_after_construction(name: str) -> None:
    client = OrganikClient(KEY)
    before = getattr(client, name)
    with pytest.raises(AttributeError):
        setattr(client, name, before)
    assert getattr(client, name) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", -3),
        ("max_concurrency", True),
        ("batch_sizes", 0),
        ("batch_sizes", BatchSizes),  # the class, not an instance
        ("max_response_bytes", 0),
        ("max_retries", -1),
        ("backoff_base", float("nan")),
        ("request_format", "yaml"),
        ("response_format", "JSON"),
        ("timeout", -1.0),
    ],
)
async def test_a_bad_setting_is_refused_the_same_way_everywhere(option: str, value: Any) -> None:
    handler = Recorder()
    changes: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=option):
        OrganikClient(KEY, **changes)
    client = OrganikClient(KEY, transport=httpx.MockTransport(handler))
    with pytest.raises(ValueError, match=option):
        client.with_options(**changes)
    if option in ("max_concurrency", "batch_sizes"):  # also per call
        with pytest.raises(ValueError, match=option):
            await client.detailed_report(transaction_ids=[1, 2], **changes)
    assert handler.requests == []


async def test_a_per_call_override_is_used_never_silently_dropped() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client(batch_sizes=20) as client:
        await client.detailed_report(transaction_ids=TX[:12], batch_sizes=5)
    assert fake.stats.ids_per_request == {5: 2, 2: 1}


async def test_an_unknown_per_call_option_is_a_type_error_naming_it() -> None:
    client = OrganikClient(KEY)
    with pytest.raises(TypeError, match="max_concurency"):
        await client.detailed_report(transaction_ids=[1], max_concurency=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="colour"):
        client.with_options(colour="blue")  # type: ignore[call-arg]


# --- with_options views -----------------------------------------------------------------


async def test_with_options_changes_settings_and_shares_pools_and_lifecycle() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        view = client.with_options(max_retries=7, batch_sizes=3, request_format="xml")
        assert view.retry == RetryPolicy(max_retries=7)
        assert view.batch_sizes == BatchSizes.coerce(3)
        assert (view.request_format, view.response_format) == ("xml", "xml")
        assert (client.request_format, client.retry.max_retries) == ("json", 3)
        assert view._requester is client._requester  # one set of pools and one state
        rows = await view.detailed_report(transaction_ids=TX[:3])
        assert rows == fake.expected(transaction_ids=TX[:3], response_format="xml")
    assert view.is_closed  # closing the client closed its view


async def test_a_view_in_another_format_asks_and_decodes_in_that_format() -> None:
    """Was half-honoured: URL and headers cached, body new, answer decoded wrongly."""
    fake = FakeOrganikAPI(DATASET)
    async with fake.client() as client:
        xml = client.with_options(request_format="xml", response_format="json")
        rows = await xml.detailed_report(transaction_ids=TX[:2])
        assert rows == fake.dataset.expected(transaction_ids=TX[:2])
        assert xml.url.endswith("/detailedreport/xml/json/")
        assert client.url.endswith("/detailedreport/json/")


@pytest.mark.slow
async def test_views_share_one_rate_budget() -> None:
    fake = FakeOrganikAPI(DATASET)
    async with fake.client(rate_limit=40, batch_sizes=1) as client:
        other = client.with_options(max_retries=0)
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.detailed_report(transaction_ids=TX[:5]))
            tg.start_soon(lambda: other.detailed_report(transaction_ids=TX[5:10]))
        elapsed = anyio.current_time() - started
    assert elapsed >= 9 / 40  # ten requests through one budget of 40/s


# --- one table of provider codes --------------------------------------------------------


@pytest.mark.parametrize("code", sorted(PROVIDER_CODES))
async def test_every_provider_code_behaves_as_the_table_says(code: int) -> None:
    entry = PROVIDER_CODES[code]
    handler = Recorder(httpx.Response(200, content=error_answer(code)))
    client = OrganikClient(KEY, transport=httpx.MockTransport(handler), max_retries=1)
    with anyio.fail_after(5):
        if entry.no_records:
            assert await client.detailed_report(transaction_ids=[1]) == []
            return
        if entry.retryable:  # the second attempt gets rows
            assert len(await client.detailed_report(transaction_ids=[1])) == 1
            assert len(handler.requests) == 2
            return
        with pytest.raises(APIError) as info:
            await client.detailed_report(transaction_ids=[1])
    assert type(info.value) is entry.error
    assert info.value.description == entry.english == API_ERROR_CODES[code]
    assert entry.english in str(info.value)
    assert len(handler.requests) == 1


def test_the_code_table_carries_english_turkish_and_the_providers_wording() -> None:
    assert PROVIDER_CODES[99].message == "Authorization error."
    assert PROVIDER_CODES[93].turkish.startswith("API'ye aynı anda")
    assert {c for c, e in PROVIDER_CODES.items() if e.error is AuthenticationError} == {
        89,
        90,
        98,
        99,
    }
    assert {c for c, e in PROVIDER_CODES.items() if e.retryable} == {84, 93, 94, 95}
    assert [c for c, e in PROVIDER_CODES.items() if e.no_records] == [87]
    assert PROVIDER_CODES[93].error is RateLimitError


# --- errors take every field in their constructor ---------------------------------------


def test_errors_take_retry_after_and_every_field_in_their_constructor() -> None:
    error = RateLimitError("slow down", code=93, status_code=200, retry_after=3.0, attempts=2)
    assert (error.retry_after, error.code, error.attempts) == (3.0, 93, 2)
    status = HTTPStatusError("HTTP 503", status_code=503, retry_after=1.5)
    assert status.retry_after == 1.5
    assert RetryPolicy().delay_for(status, 1) == 1.5
    for cls in (AnsweredError, APIError, HTTPStatusError):
        assert "retry_after" in typing.get_type_hints(cls)
    assert isinstance(error, AnsweredError)
    assert isinstance(status, AnsweredError)


# --- the public test switch -------------------------------------------------------------


async def test_set_testing_makes_retry_waits_instant_and_can_be_undone() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "30"})

    handler = Recorder(slow(httpx.Request("POST", "http://x")))
    client = OrganikClient(KEY, transport=httpx.MockTransport(handler))
    set_testing(True)
    try:
        assert is_testing()
        with anyio.fail_after(2):  # a real wait would be 30 s
            await client.detailed_report(transaction_ids=[1])
    finally:
        set_testing(False)
    assert len(handler.requests) == 2


async def test_instant_retries_records_the_waits_it_skipped(no_waits: list[float]) -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "7"}))
    client = OrganikClient(KEY, transport=httpx.MockTransport(handler))
    with instant_retries() as inner, anyio.fail_after(2):
        await client.detailed_report(transaction_ids=[1])
    assert inner == [7.0]
    assert no_waits == [7.0]  # nested blocks each hear every skipped wait


# --- typed records ------------------------------------------------------------------------


async def test_failed_ids_go_straight_back_into_a_call() -> None:
    """Also a type check: CI runs mypy --strict over this file."""
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(500, on_requests=[2])])
    async with fake.client(batch_sizes=5, max_concurrency=1, max_retries=0) as client:
        with pytest.raises(BulkReportError) as info:
            await client.detailed_report(transaction_ids=TX[:15])
        ids: IdArguments = info.value.failed_id_arguments
        assert ids == {"transaction_ids": list(TX[5:10])}
        again = await client.detailed_report(**ids)
    assert again == fake.dataset.expected(transaction_ids=TX[5:10])


# --- the public surface -----------------------------------------------------------------


def test_all_is_sorted_and_names_every_public_object() -> None:
    names = organik_async.__all__
    assert names == sorted(names, key=_ruff_order)
    public = {
        name
        for name, value in vars(organik_async).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(names)
    assert all(hasattr(organik_async, name) for name in names)


def _ruff_order(name: str) -> tuple[int, str]:
    """RUF022's order: SCREAMING_CASE, then CamelCase, then the rest."""
    if name.isupper() or re.fullmatch(r"[A-Z0-9_]+", name):
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_public_classes_and_functions_report_the_package_as_their_module() -> None:
    for name in organik_async.__all__:
        value = getattr(organik_async, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "organik_async", name
    assert repr(organik_async.DecodeError) == "<class 'organik_async.DecodeError'>"


def test_version_comes_from_the_package_metadata() -> None:
    assert organik_async.__version__ == metadata.version("organik_async")


CONSTRUCTED_INSIDE = {
    organik_async.FollowStream,
    organik_async.RawResponse,
    organik_async.RawResponses,
    organik_async.ReportStream,
    organik_async.SyncRawResponses,
    organik_async.SyncReportStream,
    organik_async.SyncFollowStream,
}
"""Public classes only the client builds: their constructors are not public API."""


def test_every_type_in_a_public_signature_is_exported() -> None:
    exported = {id(getattr(organik_async, name)) for name in organik_async.__all__}
    missing: set[str] = set()
    for name in organik_async.__all__:
        value = getattr(organik_async, name)
        targets = [value]
        if inspect.isclass(value):
            targets = [getattr(value, a) for a in vars(value) if not a.startswith("_")]
            if value not in CONSTRUCTED_INSIDE:
                targets.append(value.__init__)
        for target in targets:
            if not callable(target):
                continue
            try:
                hints = typing.get_type_hints(target, include_extras=True)
            except (TypeError, NameError):
                continue
            for hint in hints.values():
                for found in _ours(hint):
                    if id(found) not in exported:
                        missing.add(f"{name}: {found.__qualname__}")
    assert not missing


def _ours(hint: Any) -> Iterator[Any]:
    """Every class of organik_async inside a type hint."""
    if inspect.isclass(hint) and hint.__module__.startswith("organik_async"):
        yield hint
    for arg in typing.get_args(hint):
        yield from _ours(arg)
    if typing.is_typeddict(hint):
        yield hint
