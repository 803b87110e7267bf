"""http_error_answer: every error of the tree, and the caller's own, as a safe HTTP answer."""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import organik_async
from organik_async import (
    AnsweredError,
    APIError,
    AuthenticationError,
    BatchFailure,
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
    DecodeError,
    EndpointUnreachableError,
    HTTPErrorAnswer,
    HTTPStatusError,
    OrganikError,
    RateLimitError,
    RequestInfo,
    ResponseTooLargeError,
    StillPendingError,
    TimeoutExpiredError,
    TransportError,
    http_error_answer,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault
from tests.helpers.provider import KEY

INFO = RequestInfo(f"https://organikapi.com/v2/{KEY}/detailedreport/json/", "json", "json", 20)
SECRET_TEXT = f"provider said: key {KEY} is not allowed from 10.0.0.1"


def every_error_class(root: type[OrganikError] = OrganikError) -> Iterator[type[OrganikError]]:
    yield root
    for sub in root.__subclasses__():
        if sub.__module__ == "organik_async":  # public classes say they live there
            yield from every_error_class(sub)


def example(cls: type[OrganikError]) -> OrganikError:
    """An instance of ``cls`` whose every text field carries the key and provider text."""
    if issubclass(cls, APIError):
        return cls(
            SECRET_TEXT,
            code=93 if cls is RateLimitError else 95,
            number=KEY,
            error_message=SECRET_TEXT,
            status_code=200,
            body=SECRET_TEXT.encode(),
            request=INFO,
            attempts=4,
        )
    if issubclass(cls, AnsweredError):
        return cls(SECRET_TEXT, status_code=500, body=SECRET_TEXT.encode(), request=INFO)
    if issubclass(cls, TransportError):
        return cls(SECRET_TEXT, cause=SECRET_TEXT, request=INFO)
    if issubclass(cls, DecodeError):
        return cls(SECRET_TEXT, position="$.response.data[3]", excerpt=SECRET_TEXT, request=INFO)
    if issubclass(cls, BulkReportError):
        failure = BatchFailure(0, "transaction_ids", (1, 2), "failed", example(APIError))
        return cls(SECRET_TEXT, failures=[failure])
    if issubclass(cls, StillPendingError):
        return cls(SECRET_TEXT)
    return cls(SECRET_TEXT, request=INFO)


EXPECTED_STATUS: dict[type[OrganikError], int] = {
    OrganikError: 502,
    ClientClosedError: 503,
    AnsweredError: 502,
    APIError: 502,
    AuthenticationError: 502,
    RateLimitError: 503,
    HTTPStatusError: 502,
    TransportError: 502,
    TimeoutExpiredError: 504,
    DecodeError: 502,
    ResponseTooLargeError: 502,
    BulkReportError: 502,
    ClosedDuringCallError: 503,  # the service is shutting down: try again elsewhere
    EndpointUnreachableError: 502,
    StillPendingError: 504,
}


def test_every_error_class_of_the_tree_has_a_deliberate_answer() -> None:
    assert set(every_error_class()) == set(EXPECTED_STATUS)


@pytest.mark.parametrize("cls", list(EXPECTED_STATUS), ids=lambda cls: cls.__name__)
def test_each_error_maps_to_its_status_with_no_key_and_no_provider_text(
    cls: type[OrganikError],
) -> None:
    answer = http_error_answer(example(cls))
    assert answer.status_code == EXPECTED_STATUS[cls]
    shown = answer.detail + repr(answer.headers) + msgspec.json.encode(answer).decode()
    assert KEY not in shown
    assert "provider said" not in shown
    assert "10.0.0.1" not in shown
    assert set(answer.headers) == ({"Retry-After"} if cls is RateLimitError else set())


def test_a_provider_refusal_names_its_code_and_the_codes_documented_meaning() -> None:
    answer = http_error_answer(APIError(SECRET_TEXT, code=95, error_message=SECRET_TEXT))
    assert answer == HTTPErrorAnswer(
        status_code=502, detail="the SMS provider refused the request (code 95: server fault)"
    )
    unknown = http_error_answer(APIError("x", code=4242))
    assert unknown.detail == "the SMS provider refused the request (code 4242)"
    bare = http_error_answer(APIError("x"))
    assert bare.detail == "the SMS provider refused the request"


def test_a_bad_key_is_a_502_that_blames_the_services_credentials() -> None:
    answer = http_error_answer(AuthenticationError(SECRET_TEXT, code=99))
    assert answer.status_code == 502
    assert answer.detail == "the SMS provider refused this service's credentials"


def test_an_http_error_of_the_provider_names_only_its_status() -> None:
    answer = http_error_answer(HTTPStatusError(SECRET_TEXT, status_code=503, body=b"<html>"))
    assert answer == HTTPErrorAnswer(status_code=502, detail="the SMS provider answered HTTP 503")


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(2.0, "2"), (2.1, "3"), (0.2, "1"), (0.0, "1"), (3600.0, "3600"), (None, "5")],
)
def test_rate_limited_is_503_with_retry_after_in_whole_seconds_rounded_up(
    retry_after: float | None, header: str
) -> None:
    error = RateLimitError("slow down", code=93)
    error.retry_after = retry_after
    answer = http_error_answer(error)
    assert answer.status_code == 503
    assert answer.headers == {"Retry-After": header}


def test_the_default_retry_after_can_be_chosen() -> None:
    answer = http_error_answer(RateLimitError("slow down"), default_retry_after=30)
    assert answer.headers == {"Retry-After": "30"}


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none())
def test_retry_after_is_always_a_positive_whole_number_of_seconds(
    retry_after: float | None,
) -> None:
    error = RateLimitError("slow down")
    error.retry_after = retry_after
    header = http_error_answer(error).headers["Retry-After"]
    assert header.isdigit()
    assert int(header) >= 1
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 1:
        assert int(header) == math.ceil(retry_after)


@given(st.text(), st.binary(), st.integers() | st.none())
def test_no_text_of_the_provider_reaches_the_answer(
    message: str, body: bytes, code: int | None
) -> None:
    marker = "\x00MARK\x00"
    for cls in (APIError, AuthenticationError, RateLimitError):
        error = cls(
            marker + message,
            code=code,
            number=marker,
            error_message=marker + message,
            body=marker.encode() + body,
        )
        answer = http_error_answer(error)
        assert marker not in answer.detail
        assert all(marker not in value for value in answer.headers.values())


class Query(msgspec.Struct):
    ids: list[int]


def test_the_callers_bad_input_is_a_422_that_says_what_was_wrong() -> None:
    answer = http_error_answer(ValueError("batch size for gsm_track_ids must be >= 1"))
    assert answer == HTTPErrorAnswer(
        status_code=422, detail="batch size for gsm_track_ids must be >= 1"
    )
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"ids": ["x"]}', type=Query)
    assert http_error_answer(caught.value) == HTTPErrorAnswer(
        status_code=422, detail="Expected `int`, got `str` - at `$.ids[0]`"
    )
    assert http_error_answer(ValueError()).detail == "invalid input"
    long = http_error_answer(TypeError("x" * 1000)).detail
    assert len(long) == 300
    assert long.endswith("…")


def test_a_builtin_timeout_such_as_a_request_budget_is_a_504() -> None:
    answer = http_error_answer(builtins.TimeoutError())
    assert answer == HTTPErrorAnswer(
        status_code=504, detail="the SMS provider did not answer in time"
    )


def test_anything_else_is_a_500_that_tells_nothing() -> None:
    for exc in (RuntimeError(SECRET_TEXT), KeyError(SECRET_TEXT), OSError(SECRET_TEXT)):
        assert http_error_answer(exc) == HTTPErrorAnswer(status_code=500, detail="internal error")


def failed(index: int, error: OrganikError | None, outcome: str = "failed") -> BatchFailure:
    return BatchFailure(index, "transaction_ids", (index,), outcome, error)  # type: ignore[arg-type]


def limited(retry_after: float | None) -> RateLimitError:
    error = RateLimitError("slow down", code=93)
    error.retry_after = retry_after
    return error


def test_a_bulk_failure_answers_rate_limited_first_with_the_longest_wait() -> None:
    error = BulkReportError(
        "3 of 9 failed",
        failures=[
            failed(0, TimeoutExpiredError("t")),
            failed(1, limited(2)),
            failed(2, limited(7.5)),
            failed(3, DecodeError("d")),
        ],
    )
    answer = http_error_answer(error)
    assert answer.status_code == 503
    assert answer.headers == {"Retry-After": "8"}
    assert answer.detail == (
        "4 requests to the SMS provider failed: "
        "the SMS provider is rate limiting this service; retry later"
    )


def test_a_bulk_failure_answers_timed_out_before_a_failing_provider() -> None:
    error = BulkReportError(
        "x",
        failures=[
            failed(0, HTTPStatusError("h", status_code=500)),
            failed(1, TimeoutExpiredError("t")),
        ],
    )
    assert http_error_answer(error).status_code == 504
    only_provider = BulkReportError("x", failures=[failed(0, DecodeError("d"))])
    answer = http_error_answer(only_provider)
    assert answer == HTTPErrorAnswer(
        status_code=502,
        detail="1 request to the SMS provider failed: the SMS provider's answer was unreadable",
    )


def test_a_bulk_failure_without_an_error_is_a_502() -> None:
    error = BulkReportError("x", failures=[failed(0, None, "not_attempted")])
    assert http_error_answer(error) == HTTPErrorAnswer(
        status_code=502, detail="1 request to the SMS provider failed"
    )
    assert http_error_answer(BulkReportError("x")).status_code == 502


def test_the_answer_is_frozen_and_its_headers_are_its_own() -> None:
    first = http_error_answer(limited(1))
    first.headers["Retry-After"] = "999"
    assert http_error_answer(limited(1)).headers == {"Retry-After": "1"}
    with pytest.raises(AttributeError):
        first.status_code = 200  # type: ignore[misc]


def test_it_is_public() -> None:
    assert {"HTTPErrorAnswer", "http_error_answer"} <= set(organik_async.__all__)


# --- Errors the real client raises, against the simulator -------------------------------


async def answer_for(fake: FakeOrganikAPI, ids: object, **client: object) -> HTTPErrorAnswer:
    client.setdefault("backoff_base", 0)
    async with fake.client(**client) as organik:
        with anyio.fail_after(10):
            try:
                await organik.detailed_report(transaction_ids=ids)  # type: ignore[arg-type]
            except (OrganikError, builtins.TimeoutError, ValueError, TypeError) as exc:
                return http_error_answer(exc)
    raise AssertionError("the call did not fail")


@pytest.mark.anyio
async def test_real_client_errors_map_as_documented() -> None:
    data = Dataset.generate(300, seed=5)
    ids = data.transaction_ids[:3]
    wrong_key = FakeOrganikAPI(data, api_keys=["f" * 32])
    assert (await answer_for(wrong_key, ids, api_key=KEY)).status_code == 502

    limited_fake = FakeOrganikAPI(data, faults=[Fault.rate_limited(retry_after=2)])
    answer = await answer_for(limited_fake, ids, pushback_timeout=1)  # 2 s asked, 1 s patience
    assert (answer.status_code, answer.headers) == (503, {"Retry-After": "2"})

    refusing = FakeOrganikAPI(data, faults=[Fault.provider_error(95)])
    answer = await answer_for(refusing, ids, max_retries=0)
    assert answer.detail == "the SMS provider refused the request (code 95: server fault)"

    for fault in (Fault.malformed(), Fault.status(500), Fault.disconnect()):
        broken = FakeOrganikAPI(data, faults=[fault])
        assert (await answer_for(broken, ids, max_retries=0)).status_code == 502
    assert (await answer_for(FakeOrganikAPI(data), ids, max_response_bytes=10)).status_code == 502

    one_of_two_limited = FakeOrganikAPI(data, faults=[Fault.rate_limited(1, on_requests={2})])
    answer = await answer_for(
        one_of_two_limited, data.transaction_ids[:2], batch_sizes=1, pushback_timeout=0.5
    )
    assert answer.status_code == 503  # BulkReportError: one of two batches rate limited

    fine = FakeOrganikAPI(data)
    assert (await answer_for(fine, [1.5])).status_code == 422
    assert (await answer_for(fine, 5)).status_code == 422


@pytest.mark.anyio
async def test_a_request_budget_running_out_and_a_closed_client_map_as_documented() -> None:
    fake = FakeOrganikAPI(Dataset.generate(300, seed=5), faults=[Fault.latency(5.0)])
    organik = fake.client()
    async with organik:
        with pytest.raises(builtins.TimeoutError) as budget:
            with anyio.fail_after(0.05):
                await organik.detailed_report(transaction_ids=fake.dataset.transaction_ids[:1])
    assert http_error_answer(budget.value).status_code == 504
    with pytest.raises(ClientClosedError) as closed:
        await organik.detailed_report(transaction_ids=[1])
    assert http_error_answer(closed.value) == HTTPErrorAnswer(
        status_code=503, detail="the service is shutting down"
    )
