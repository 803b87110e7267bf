"""The wire formats: request bodies out, answers in, for JSON and XML.

XML answers (every shape and quirk, with each parser) are in test_codec_xml.py;
what is particular to the lxml parser in test_codec_lxml.py.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organik_async import Format, IdKind, _codec
from organik_async._codec import (
    BodyError,
    ProviderError,
    decode,
    decode_json,
    decode_xml,
    encode_request,
    encode_rows_json,
    encode_rows_xml,
)
from tests.helpers.codec_cases import (
    DEEP,
    ISO_ROW_ERROR,
    SEED_ROWS,
    SEED_ROWS_NO_ERRORCODE,
    fixture,
)
from tests.helpers.provider import SEED_ROW, rows_answer

# --- the seed examples -------------------------------------------------------------------


# The provider documents, copied verbatim from shared/seeds so the suite needs
# nothing outside the repository; the digests pin the copies to the originals.
SEED_DIGESTS = {
    "000_3254615d2c902982.txt": "ad7624c082b2e806fa2799b15fe3db1da892d888aef61aefcd43acd17d9180e2",
    "001_63faeacc8acc608f.txt": "f150f1a6aa1e515648b54c83c55c8b8eecd48457b498d1e312dde8ad64110536",
}


def test_seed_copies_are_the_provider_documents() -> None:
    for name, digest in SEED_DIGESTS.items():
        assert hashlib.sha256(fixture(f"seeds/{name}")).hexdigest() == digest, name


def test_fixtures_are_the_seed_bodies_verbatim() -> None:
    seed0 = fixture("seeds/000_3254615d2c902982.txt").decode("utf-8")
    seed1 = fixture("seeds/001_63faeacc8acc608f.txt").decode("utf-8")
    for name, seed in [
        ("seed000_response.json", seed0),
        ("seed000_response.xml", seed0),
        ("seed000_request.xml", seed0),
        ("seed001_response.json", seed1),
        ("seed001_response.xml", seed1),
        ("seed001_request.xml", seed1),
    ]:
        assert fixture(name).decode("utf-8") in seed + "\n", name
    # The odd indentation is kept: tabs before "errorcode" in 000's JSON.
    assert b'\t\t\t\t\t\t\t\t"errorcode": 99' in fixture("seed000_response.json")


def test_seed_000_json_with_errorcode_decodes_to_the_seed_rows() -> None:
    decoded = decode_json(fixture("seed000_response.json"))
    assert decoded.error is None
    assert decoded.rows == SEED_ROWS


def test_seed_001_json_without_errorcode_decodes_to_the_same_rows() -> None:
    decoded = decode_json(fixture("seed001_response.json"))
    assert decoded.error is None
    assert decoded.rows == SEED_ROWS_NO_ERRORCODE


def test_seed_rows_have_the_documented_values() -> None:
    first, second, third = decode_json(fixture("seed000_response.json")).rows
    assert first.is_final
    assert not first.is_failed
    assert second.is_failed
    assert second.failure_reason == "Invalid number"
    assert second.is_foreign_gsm is True
    assert third.finish_date is None
    assert third.start_date > third.create_date  # a scheduled send


def test_decode_dispatches_on_the_format() -> None:
    assert decode("json", fixture("seed001_response.json")).rows == SEED_ROWS_NO_ERRORCODE
    assert decode("xml", fixture("seed001_response.xml")).rows == SEED_ROWS_NO_ERRORCODE
    with pytest.raises(BodyError):
        decode("xml", fixture("seed001_response.json"))
    with pytest.raises(BodyError):
        decode("json", fixture("seed001_response.xml"))


# --- JSON answers ------------------------------------------------------------------------


def test_json_is_decoded_in_one_pass_by_the_decoder_built_at_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(_codec._JSON_DECODER, msgspec.json.Decoder)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("decode_json must use the one prebuilt Decoder, in one pass")

    # No new Decoder per call, no generic decode to dicts, no second typing pass.
    monkeypatch.setattr(msgspec.json, "Decoder", forbidden)
    monkeypatch.setattr(msgspec.json, "decode", forbidden)
    monkeypatch.setattr(msgspec, "convert", forbidden)
    monkeypatch.setattr(json, "loads", forbidden)
    assert decode_json(fixture("seed000_response.json")).rows == SEED_ROWS


def test_json_result_true_without_data_is_zero_rows() -> None:
    assert decode_json(b'{"response": {"result": true}}').rows == []
    assert decode_json(b'{"response": {"result": true, "data": []}}').rows == []
    assert decode_json(b'{"response": {"result": true, "data": null}}').rows == []


def test_json_result_false_carries_the_provider_error() -> None:
    body = (
        b'{"response": {"result": false, "error": {"message": "Yetkisiz", '
        b'"number": "E99", "time": "2024-01-01 10:00:00", "code": 99}}}'
    )
    decoded = decode_json(body)
    assert decoded.rows == []
    assert decoded.error == ProviderError(
        message="Yetkisiz", number="E99", time="2024-01-01 10:00:00", code=99
    )


def test_json_result_false_with_numeric_number_and_time_still_reports_the_error() -> None:
    body = (
        b'{"response": {"result": false, '
        b'"error": {"number": 12, "time": 1700000000, "code": "93"}}}'
    )
    decoded = decode_json(body)
    assert decoded.error == ProviderError(number="12", time="1700000000", code=93)


def test_json_result_false_without_error_node_is_still_an_error() -> None:
    decoded = decode_json(b'{"response": {"result": false}}')
    assert decoded.error == ProviderError()


def test_json_lax_numbers_as_strings_are_accepted() -> None:
    body = msgspec.json.encode(
        {
            "response": {
                "result": "true",
                "data": [
                    {
                        "gsm": "905445359675",
                        "transaction_id": "14094857",
                        "gsm_track_id": 410471976,
                        "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
                        "create_date": "2016-11-02 11:47:38",
                        "start_date": "2016-11-02 11:47:38",
                        "finish_date": "2016-11-02 12:47:42",
                        "status": "2",
                        "sms_count": "1",
                        "credit_amount": "1",
                        "is_foreign_gsm": "0",
                        "errorcode": "0",
                    }
                ],
            }
        }
    )
    assert decode_json(body).rows == SEED_ROWS[:1]


def test_json_with_a_utf8_byte_order_mark_decodes() -> None:
    body = b"\xef\xbb\xbf" + fixture("seed000_response.json")
    assert decode_json(body).rows == SEED_ROWS


def test_json_invalid_syntax_names_the_byte_and_shows_an_excerpt() -> None:
    body = b'{"response": {"result": true, "data": [' + b" " * 100 + b"oops]}}"
    with pytest.raises(BodyError) as info:
        decode_json(body)
    offset = body.index(b"oops")
    assert info.value.position == f"byte {offset}"
    assert "oops" in info.value.excerpt
    assert len(info.value.excerpt) <= _codec.EXCERPT_CHARS
    assert "not valid JSON" in info.value.message


def test_json_wrong_shape_names_the_path_and_shows_the_field() -> None:
    body = fixture("seed001_response.json").replace(b'"gsm" : 61491570156', b'"gsm" : "x1"')
    with pytest.raises(BodyError) as info:
        decode_json(body)
    assert info.value.position == "$.response.data[1].gsm"
    assert '"gsm"' in info.value.excerpt
    assert "not the expected shape" in info.value.message


def test_json_missing_envelope_is_a_body_error_not_a_key_error() -> None:
    with pytest.raises(BodyError) as info:
        decode_json(b'{"data": []}')
    assert "response" in info.value.message
    with pytest.raises(BodyError):
        decode_json(b"")
    with pytest.raises(BodyError):
        decode_json(b"[]")


# --- XML answers -------------------------------------------------------------------------


# --- hostile answers: every one is rows or a BodyError, never a builtin exception ------


def json_row(**changes: object) -> dict[str, object]:
    return {**SEED_ROW, "is_foreign_gsm": False, **changes}


@pytest.mark.parametrize(
    "deep",
    [b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP],
    ids=["array", "object"],
)
@pytest.mark.parametrize("where", ["envelope", "row"])
def test_json_nested_past_the_recursion_limit_is_a_body_error_even_when_ignored(
    deep: bytes, where: str
) -> None:
    if where == "envelope":
        body = b'{"response": {"result": true, "junk": ' + deep + b', "data": []}}'
    else:
        body = rows_answer(json_row(junk="@")).replace(b'"@"', deep)
    with pytest.raises(BodyError) as info:
        decode_json(body)
    assert "nests too deeply" in info.value.message
    offset = body.index(deep[:40])
    assert info.value.position == f"byte {offset}"
    assert deep[:40].decode() in info.value.excerpt


def test_json_nested_a_little_inside_an_ignored_field_still_decodes() -> None:
    body = rows_answer(json_row(junk="@")).replace(b'"@"', b"[" * 200 + b"]" * 200)
    assert decode_json(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


def test_json_string_that_is_not_utf8_is_a_body_error_naming_the_byte() -> None:
    # A Turkish "ğ" sent as ISO-8859-9 (0xF0) where the row holds text.
    body = rows_answer(json_row(delivery_track_id="b627ff@")).replace(
        b"@", "ğ".encode("iso-8859-9")
    )
    with pytest.raises(BodyError) as info:
        decode_json(body)
    assert "not UTF-8" in info.value.message
    assert "0xF0" in info.value.message
    offset = body.index(b"\xf0")
    assert info.value.position == f"byte {offset}"
    assert "b627ff\ufffd" in info.value.excerpt


def test_json_provider_error_that_is_not_utf8_still_surfaces_as_the_provider_error() -> None:
    # The code is what matters (87: zero rows; 93: slow down); the text is read
    # as windows-1254, which has ISO-8859-9's Turkish letters at the same bytes.
    for encoding in ("iso-8859-9", "windows-1254"):
        error = {"message": ISO_ROW_ERROR, "number": "1", "time": "now", "code": 87}
        text = json.dumps({"response": {"result": False, "error": error}}, ensure_ascii=False)
        decoded = decode_json(text.encode(encoding))
        assert decoded.rows == []
        assert decoded.error == ProviderError(ISO_ROW_ERROR, "1", "now", 87)


class _DecoderRaising:
    """The JSON decoder as a msgspec release that reports bad UTF-8 with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.real = _codec._JSON_DECODER

    def decode(self, body: bytes) -> object:
        try:
            body.decode()
        except UnicodeDecodeError:
            raise self.error from None
        return self.real.decode(body)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(UnicodeDecodeError("utf-8", b"\xf0", 0, 1, "invalid"), id="msgspec<0.23"),
        pytest.param(msgspec.DecodeError("Invalid UTF-8 encoded string"), id="msgspec>=0.23"),
    ],
)
def test_json_not_utf8_is_read_the_same_whatever_msgspec_raises_for_it(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_codec, "_JSON_DECODER", _DecoderRaising(error))
    refusal = {"message": ISO_ROW_ERROR, "number": "1", "time": "now", "code": 93}
    text = json.dumps({"response": {"result": False, "error": refusal}}, ensure_ascii=False)
    decoded = decode_json(text.encode("iso-8859-9"))
    assert decoded.error == ProviderError(ISO_ROW_ERROR, "1", "now", 93)
    body = rows_answer(json_row(delivery_track_id="b627ff@")).replace(b"@", b"\xf0")
    with pytest.raises(BodyError) as info:
        decode_json(body)
    assert "not UTF-8" in info.value.message
    offset = body.index(b"\xf0")
    assert info.value.position == f"byte {offset}"


def test_json_not_utf8_in_a_result_true_answer_never_passes_as_an_error() -> None:
    body = rows_answer(json_row(delivery_track_id="@")).replace(b'"@"', b'"\xfd"')
    with pytest.raises(BodyError, match="not UTF-8"):
        decode_json(body)


def test_json_not_utf8_inside_an_ignored_field_loses_no_row() -> None:
    body = rows_answer(json_row(operator="@")).replace(b"@", b"T\xfcrk Telekom")
    assert decode_json(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


def test_json_gsm_track_id_over_the_int_limit_is_a_body_error_as_a_number_kept_as_a_string() -> (
    None
):
    huge = "9" * 5_000
    with pytest.raises(BodyError, match="out of range"):
        decode_json(rows_answer(json_row(gsm_track_id="@")).replace(b'"@"', huge.encode()))
    [row] = decode_json(rows_answer(json_row(gsm_track_id=huge))).rows
    assert row.gsm_track_id == huge


# Pieces of real answers, so that generated bodies get past the first byte.
_PIECES = [
    fixture("seed000_response.json"),
    fixture("seed001_response.xml"),
    b'{"response": {"result": false, "error": {"code": 87}}}',
    b"<response><result>0</result><error><code>93</code></error></response>",
    b'<?xml version="1.0" encoding="ISO-8859-9"?>',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"[[[[{{{{",
    b"\xf0\xfd\xc0\x80\xed\xa0\x80",
    b"9" * 5_000,
]
_BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=20)), max_size=6).map(b"".join),
    st.tuples(st.sampled_from(_PIECES), st.integers(0, 3_000), st.binary(max_size=8)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    ),
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(fmt=st.sampled_from(["json", "xml"]), body=_BODIES)
def test_any_bytes_decode_to_rows_or_an_error_or_a_body_error(fmt: Format, body: bytes) -> None:
    try:
        decoded = decode(fmt, body)
    except BodyError as exc:
        assert exc.message
        assert exc.position
    else:
        assert decoded.error is None or decoded.rows == []


# --- request bodies ----------------------------------------------------------------------

IDS: dict[IdKind, list[int | str]] = {
    "transaction_ids": [14094857, 16334701],
    "delivery_track_ids": ["b627ffe79fc148e8ea7425222c4ed8"],
    "gsm_track_ids": [410471976, "16502030-4730-63032793"],
}


def test_json_request_body_is_the_spec_document() -> None:
    body = encode_request("json", IDS)
    assert json.loads(body) == {"data": IDS}
    assert list(json.loads(body)["data"]) == list(IDS)  # documented order


def test_json_request_leaves_out_kinds_without_ids() -> None:
    body = encode_request(
        "json", {"transaction_ids": [], "delivery_track_ids": ["x"], "gsm_track_ids": []}
    )
    assert json.loads(body) == {"data": {"delivery_track_ids": ["x"]}}
    assert json.loads(encode_request("json", {"gsm_track_ids": [5]})) == {
        "data": {"gsm_track_ids": [5]}
    }


def test_xml_request_body_is_the_spec_document() -> None:
    body = encode_request("xml", IDS)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "document"
    [data] = list(root)
    assert data.tag == "data"
    assert [(child.tag, child.text) for child in data] == [
        ("transaction_ids", "14094857"),
        ("transaction_ids", "16334701"),
        ("delivery_track_ids", "b627ffe79fc148e8ea7425222c4ed8"),
        ("gsm_track_ids", "410471976"),
        ("gsm_track_ids", "16502030-4730-63032793"),
    ]


def test_xml_request_has_the_shape_of_the_seed_examples() -> None:
    ours = ET.fromstring(
        encode_request(
            "xml",
            {
                "transaction_ids": [1, 2, 3],
                "delivery_track_ids": [4, 5, 6],
                "gsm_track_ids": [7, 8, 9],
            },
        )
    )
    for name in ["seed000_request.xml", "seed001_request.xml"]:
        # The seeds indent the declaration; a parser wants it first.
        seed = ET.fromstring(fixture(name).strip())
        assert [(e.tag, len(list(e))) for e in seed.iter()] == [
            (e.tag, len(list(e))) for e in ours.iter()
        ]


def test_xml_request_leaves_out_kinds_without_ids() -> None:
    body = encode_request(
        "xml", {"transaction_ids": [7], "delivery_track_ids": [], "gsm_track_ids": []}
    )
    data = ET.fromstring(body).find("data")
    assert data is not None
    assert [child.tag for child in data] == ["transaction_ids"]


@pytest.mark.parametrize(
    "hostile",
    [
        "a<b&c</delivery_track_ids>",
        "</delivery_track_ids></data><data><transaction_ids>1",
        "]]><![CDATA[x",
        "<?xml version='1.0'?>",
        "\"quotes' & 'apostrophes\"",
        "line\nbreak\tand tab",
        "carriage\rreturn\r\nand CRLF",
        "  padded  ",
        "Türkçe İYS ğüşöç 😀",
    ],
)
def test_xml_request_escapes_every_id_never_injects(hostile: str) -> None:
    body = encode_request("xml", {"delivery_track_ids": [hostile, "next"]})
    root = ET.fromstring(body)  # well formed
    data = root.find("data")
    assert data is not None
    assert [(child.tag, child.text) for child in data] == [
        ("delivery_track_ids", hostile),
        ("delivery_track_ids", "next"),
    ]


@pytest.mark.parametrize("bad", ["nul\x00", "bell\x07", "\ufffe", "esc\x1b["])
def test_xml_request_refuses_ids_xml_cannot_carry(bad: str) -> None:
    with pytest.raises(ValueError, match="delivery_track_ids"):
        encode_request("xml", {"delivery_track_ids": [bad]})
    # JSON can carry them.
    assert json.loads(encode_request("json", {"delivery_track_ids": [bad]})) == {
        "data": {"delivery_track_ids": [bad]}
    }


# --- rows out ----------------------------------------------------------------------------


def test_encode_rows_json_is_the_success_envelope() -> None:
    body = encode_rows_json(SEED_ROWS)
    assert json.loads(body)["response"]["result"] is True
    assert decode_json(body).rows == SEED_ROWS


def test_encode_rows_xml_is_bare_items_like_the_provider() -> None:
    body = encode_rows_xml(SEED_ROWS)
    assert body.startswith(b"<?xml")
    assert body.count(b"<item>") == 3
    assert b"<create_date>2016-11-02 11:47:38</create_date>" in body
    assert decode_xml(body).rows == SEED_ROWS


def test_encode_rows_xml_writes_four_digit_years() -> None:
    row = msgspec.structs.replace(SEED_ROWS[0], create_date=datetime(999, 1, 2, 3, 4, 5))
    body = encode_rows_xml([row])
    assert b"<create_date>0999-01-02 03:04:05</create_date>" in body
    assert decode_xml(body).rows == [row]


def test_encode_rows_xml_refuses_text_xml_cannot_carry() -> None:
    row = msgspec.structs.replace(SEED_ROWS[0], delivery_track_id="a\x00b")
    with pytest.raises(ValueError, match="delivery_track_id"):
        encode_rows_xml([row])
