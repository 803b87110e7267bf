"""What organik_async relies on from msgspec, pinned so that a release changing it names itself.

`_codec.decode_json` decodes an answer in one pass with a lax ``msgspec.json.Decoder``
and turns msgspec's errors into a position and an excerpt: it parses the ``(byte N)``
of a syntax error and the `` - at `$.path` `` of a validation error, and catches the
exception types below. The XML path types xmltodict's strings with ``msgspec.convert``
in lax mode. `_options` checks settings in ``__post_init__``, which
``msgspec.structs.replace`` must run. Each assertion names the assumption and the
installed version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
import pytest

from organik_async import DetailedReport, RetryPolicy
from organik_async._codec import _BYTE_POS, _JSON_DECODER

V: Final = f"msgspec {msgspec.__version__}"
ROW: Final[dict[str, Any]] = {
    "gsm": 905445359675,
    "transaction_id": 14094857,
    "gsm_track_id": 410471976,
    "create_date": "2016-11-02 11:47:38",
    "start_date": "2016-11-02 11:47:38",
    "status": 2,
    "sms_count": 1,
    "credit_amount": 1,
    "is_foreign_gsm": 0,
}


def envelope(row: dict[str, Any]) -> bytes:
    return msgspec.json.encode({"response": {"result": True, "data": [row]}})


def raised(body: bytes) -> BaseException:
    try:
        _JSON_DECODER.decode(body)
    except (Exception, RecursionError) as exc:
        return exc
    raise AssertionError(f"{V}: decoded {body[:60]!r}... without an error")


def test_text_that_is_not_utf8_raises_decode_error_or_unicode_decode_error() -> None:
    body = envelope({**ROW, "delivery_track_id": "ok"}).replace(b'"ok"', b'"\xf0k"')
    exc = raised(body)
    assert isinstance(exc, msgspec.DecodeError | UnicodeDecodeError), (
        f"{V}: text that is not UTF-8 raised {type(exc).__name__}; _codec.decode_json "
        "catches msgspec.DecodeError and UnicodeDecodeError and then reads the bytes"
    )
    assert not isinstance(exc, msgspec.ValidationError), (
        f"{V}: text that is not UTF-8 raised a ValidationError; _codec.decode_json would "
        "report it as a wrong shape instead of reading the bytes"
    )


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        pytest.param(b'{"response": x}', b"x", id="invalid-character"),
        pytest.param(b'{"response"  {}}', b"{}}", id="missing-colon"),
        pytest.param(b'{"response": {"result": true}} junk', b"junk", id="trailing-characters"),
    ],
)
def test_a_syntax_error_names_its_byte_position(body: bytes, bad: bytes) -> None:
    offset = body.index(bad)
    exc = raised(body)
    assert type(exc) is msgspec.DecodeError, (
        f"{V}: malformed JSON raised {type(exc).__name__}, not msgspec.DecodeError; "
        "_codec.decode_json reports a syntax error only for a DecodeError"
    )
    match = _BYTE_POS.search(str(exc))
    assert match is not None, (
        f"{V}: DecodeError messages no longer carry '(byte N)' ({exc}); "
        "_codec._syntax_error parses it"
    )
    # The offset of the bad byte, or of the next one (msgspec's "trailing characters").
    assert offset <= int(match.group(1)) <= offset + 1, (
        f"{V}: DecodeError's '(byte N)' is no longer where the JSON goes wrong "
        f"({exc}, expected byte {offset}); _codec._syntax_error excerpts the body there"
    )


@pytest.mark.parametrize(
    ("decode", "path"),
    [
        pytest.param(
            lambda: _JSON_DECODER.decode(envelope({**ROW, "status": "two"})),
            "$.response.data[0].status",
            id="json",
        ),
        pytest.param(
            lambda: msgspec.convert([{**ROW, "status": "two"}], list[DetailedReport], strict=False),
            "$[0].status",
            id="convert-list",
        ),
        pytest.param(
            lambda: msgspec.convert({**ROW, "status": "two"}, DetailedReport, strict=False),
            "$.status",
            id="convert-object",
        ),
    ],
)
def test_a_validation_error_names_the_path_after_at(decode: Any, path: str) -> None:
    try:
        decode()
    except msgspec.ValidationError as exc:
        error = exc
    else:
        raise AssertionError(f"{V}: a str where an int belongs raised no ValidationError")
    _, at, shown = str(error).partition(" - at ")
    assert at, (
        f"{V}: ValidationError messages no longer end in ' - at `$.path`' ({error}); "
        "_codec._validation_error splits them there"
    )
    assert shown == f"`{path}`", (
        f"{V}: ValidationError names the path {shown!r}, not `{path}`; "
        "_codec._validation_error strips the backticks and finds the field in the body"
    )


def test_nesting_past_the_recursion_limit_raises_recursion_error() -> None:
    # Inside a field the decoder skips: msgspec still follows it on Python's stack.
    deep = b"[" * 5_000 + b"]" * 5_000
    body = envelope({**ROW, "ignored": 0}).replace(b"0}]", deep + b"}]")
    exc = raised(body)
    assert isinstance(exc, RecursionError), (
        f"{V}: nesting 5 000 levels deep raised {type(exc).__name__} ({exc}), "
        "not RecursionError; _codec.decode_json turns a RecursionError into a BodyError"
    )


def test_lax_mode_reads_the_providers_loose_json() -> None:
    loose = {
        **ROW,
        "gsm": "905445359675",  # numbers as strings
        "gsm_track_id": "00410471976",  # a string ID stays a string
        "finish_date": "2016-11-02 12:47:42",  # a space instead of "T"
        "is_foreign_gsm": 1,  # booleans as 0/1
        "errorcode": "0",
        "unknown_field": {"kept": False},  # ignored
    }
    try:
        (row,) = _JSON_DECODER.decode(envelope(loose)).response.data or []
    except msgspec.ValidationError as exc:
        raise AssertionError(
            f"{V}: a lax Decoder (strict=False) refuses the provider's loose JSON ({exc}); "
            "_codec._JSON_DECODER relies on lax mode's coercions"
        ) from None
    expected = (905445359675, "00410471976", datetime(2016, 11, 2, 12, 47, 42), True, 0)
    got = (row.gsm, row.gsm_track_id, row.finish_date, row.is_foreign_gsm, row.errorcode)
    assert got == expected, f"{V}: lax mode coerces the provider's loose JSON differently: {got}"


def test_lax_convert_reads_xml_text() -> None:
    text: dict[str, str | None] = {key: str(value) for key, value in ROW.items()}
    text |= {"is_foreign_gsm": "false", "finish_date": None, "gsm_track_id": "410471976"}
    try:
        (row,) = msgspec.convert([text], list[DetailedReport], strict=False)
    except msgspec.ValidationError as exc:
        raise AssertionError(
            f"{V}: msgspec.convert(strict=False) refuses XML's text values ({exc}); "
            "_codec._type_items types xmltodict's strings that way"
        ) from None
    got = (row.gsm, row.status, row.create_date, row.is_foreign_gsm, row.gsm_track_id)
    expected = (905445359675, 2, datetime(2016, 11, 2, 11, 47, 38), False, "410471976")
    assert got == expected, f"{V}: msgspec.convert(strict=False) types XML's text differently"
    for text_value, boolean in (("0", False), ("1", True), ("true", True), ("false", False)):
        converted = msgspec.convert(text_value, bool, strict=False)
        assert converted is boolean, f"{V}: lax mode reads {text_value!r} as {converted!r}"


def test_replace_runs_post_init() -> None:
    try:
        msgspec.structs.replace(RetryPolicy(), max_retries=-1)
    except ValueError:
        return
    raise AssertionError(
        f"{V}: msgspec.structs.replace does not run __post_init__; _options.Settings.evolve "
        "relies on it to check every setting given to the client, its views and its calls"
    )
