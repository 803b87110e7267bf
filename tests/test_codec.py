"""The wire formats: request bodies out, answers in, for JSON and XML."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seed_rows import SEED_ROW

from organik_async import DetailedReport, Format, IdKind, _codec
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
from organik_async._models import canonical_id

FIXTURES = Path(__file__).parent / "fixtures"

# The rows of the seed documents' examples, written out by hand from the seeds.
SEED_ROWS = [
    DetailedReport(
        gsm=905445359675,
        transaction_id=14094857,
        gsm_track_id=410471976,
        delivery_track_id="b627ffe79fc148e8ea7425222c4ed8",
        create_date=datetime(2016, 11, 2, 11, 47, 38),
        start_date=datetime(2016, 11, 2, 11, 47, 38),
        finish_date=datetime(2016, 11, 2, 12, 47, 42),
        status=2,
        sms_count=1,
        credit_amount=1,
        is_foreign_gsm=False,
        errorcode=0,
    ),
    DetailedReport(
        gsm=61491570156,
        transaction_id=14094857,
        gsm_track_id=410471979,
        delivery_track_id="b627ffe79fc148e8ea7425222c4ed8",
        create_date=datetime(2016, 11, 2, 11, 47, 38),
        start_date=datetime(2016, 11, 2, 11, 47, 38),
        finish_date=datetime(2016, 11, 2, 13, 47, 45),
        status=4,
        sms_count=1,
        credit_amount=0,
        is_foreign_gsm=True,
        errorcode=99,
    ),
    DetailedReport(
        gsm=905445359675,
        transaction_id=16334701,
        gsm_track_id=474057742,
        delivery_track_id="6959792d54f3c7510bcbb6303a67a4",
        create_date=datetime(2017, 2, 2, 11, 36, 9),
        start_date=datetime(2017, 2, 28, 0, 0, 0),
        finish_date=None,
        status=0,
        sms_count=0,
        credit_amount=0,
        is_foreign_gsm=False,
        errorcode=0,
    ),
]
# What a document without ``errorcode`` (001, and every XML example) describes.
SEED_ROWS_NO_ERRORCODE = [msgspec.structs.replace(r, errorcode=0) for r in SEED_ROWS]

XML_DECL = b'<?xml version="1.0" encoding="UTF-8" ?>\n'


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def xml_item(**changes: str | None) -> str:
    """One provider-style ``<item>`` (the seed's first row), pretty-printed."""
    fields: dict[str, str | None] = {
        "gsm": "905445359675",
        "transaction_id": "14094857",
        "gsm_track_id": "410471976",
        "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",
        "create_date": "2016-11-02 11:47:38",
        "start_date": "2016-11-02 11:47:38",
        "finish_date": "2016-11-02 12:47:42",
        "status": "2",
        "sms_count": "1",
        "credit_amount": "1",
        "is_foreign_gsm": "0",
    }
    fields.update(changes)
    lines = ["<item>"]
    for name, value in fields.items():
        lines.append(f"   <{name} />" if value is None else f"   <{name}>{value}</{name}>")
    lines.append("</item>")
    return "\n".join(lines)


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


@pytest.mark.parametrize("name", ["seed000_response.xml", "seed001_response.xml"])
def test_seed_xml_bare_items_decode_to_the_same_rows(name: str) -> None:
    decoded = decode_xml(fixture(name))
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


def test_xml_with_a_utf8_byte_order_mark_decodes() -> None:
    body = b"\xef\xbb\xbf" + fixture("seed001_response.xml")
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE


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


def test_xml_single_item_is_one_row() -> None:
    body = XML_DECL + xml_item().encode()
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        XML_DECL,
        b'<?xml version="1.0" encoding="UTF-8"?>',
        XML_DECL + b"\n\n",
    ],
    ids=["empty", "whitespace", "declaration", "declaration-no-newline", "declaration-blank"],
)
def test_xml_without_items_is_zero_rows(body: bytes) -> None:
    decoded = decode_xml(body)
    assert decoded.rows == []
    assert decoded.error is None


def test_xml_items_without_declaration_decode() -> None:
    body = (xml_item() + "\n" + xml_item(gsm_track_id="410471979")).encode()
    rows = decode_xml(body).rows
    assert [r.gsm_track_id for r in rows] == [410471976, 410471979]


@pytest.mark.parametrize("sep", ["", "\n", "\n  "], ids=["compact", "newlines", "indented"])
def test_xml_wrapped_response_with_result_and_data_decodes(sep: str) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"{sep}<response>{sep}<result>1</result>{sep}<data>{sep}"
        f"{xml_item()}{sep}{xml_item(gsm_track_id='16502030-4730-63032793')}"
        f"{sep}</data>{sep}</response>{sep}"
    ).encode()
    decoded = decode_xml(body)
    assert decoded.error is None
    assert [r.gsm_track_id for r in decoded.rows] == [410471976, "16502030-4730-63032793"]


@pytest.mark.parametrize("sep", ["", "\n"], ids=["compact", "newlines"])
def test_xml_document_wrapper_decodes(sep: str) -> None:
    body = f"<?xml version='1.0'?>{sep}<document>{sep}{xml_item()}{sep}</document>{sep}".encode()
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


@pytest.mark.parametrize(
    "inner",
    ["<result>1</result>", "<result>1</result><data/>", "<result>1</result><data>\n</data>"],
)
def test_xml_wrapped_result_1_without_items_is_zero_rows(inner: str) -> None:
    decoded = decode_xml(f"<?xml version='1.0'?>\n<response>\n{inner}\n</response>\n".encode())
    assert decoded.rows == []
    assert decoded.error is None


@pytest.mark.parametrize("sep", ["", "\n", "\n    "], ids=["compact", "newlines", "indented"])
def test_xml_result_0_carries_the_provider_error(sep: str) -> None:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>{sep}<response>{sep}<result>0</result>{sep}'
        f"<error>{sep}<message>Yetkisiz erişim</message>{sep}<number>E99</number>{sep}"
        f"<time>2024-01-01 10:00:00</time>{sep}<code>99</code>{sep}</error>{sep}</response>{sep}"
    ).encode()
    decoded = decode_xml(body)
    assert decoded.rows == []
    assert decoded.error == ProviderError(
        message="Yetkisiz erişim", number="E99", time="2024-01-01 10:00:00", code=99
    )


def test_xml_result_0_with_empty_error_nodes() -> None:
    body = (
        b"<response><result>0</result>"
        b"<error><message/><number/><time/><code>87</code></error></response>"
    )
    assert decode_xml(body).error == ProviderError(code=87)


def test_xml_result_0_with_padded_code() -> None:
    body = b"<response><result> 0 </result><error><code>\n 93 \n</code></error></response>"
    assert decode_xml(body).error == ProviderError(code=93)


def test_xml_result_that_is_not_0_or_1_is_a_body_error() -> None:
    with pytest.raises(BodyError) as info:
        decode_xml(b"<response><result>maybe</result></response>")
    assert info.value.position == "<result>"
    assert "maybe" in info.value.excerpt
    assert "maybe" not in info.value.message  # the body is quoted in the excerpt only


def test_xml_empty_finish_date_is_none() -> None:
    for item in [xml_item(finish_date=None), xml_item(finish_date="")]:
        [row] = decode_xml(XML_DECL + item.encode()).rows
        assert row.finish_date is None


def test_xml_values_padded_with_whitespace_are_read() -> None:
    item = xml_item(gsm="\n  905445359675\n", status=" 2 ", gsm_track_id=" 410471976 ")
    assert decode_xml(item.encode()).rows == SEED_ROWS_NO_ERRORCODE[:1]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("410471976", 410471976),
        ("16502030-4730-63032793", "16502030-4730-63032793"),
        ("007", "007"),
    ],
)
def test_xml_gsm_track_id_is_an_int_only_when_it_is_one(text: str, value: int | str) -> None:
    [row] = decode_xml(xml_item(gsm_track_id=text).encode()).rows
    assert row.gsm_track_id == value
    assert type(row.gsm_track_id) is type(value)


def test_xml_errorcode_when_present_is_read() -> None:
    item = xml_item(status="4", errorcode="99")
    [row] = decode_xml(item.encode()).rows
    assert row.errorcode == 99
    assert row.failure_reason == "Invalid number"


def test_xml_unknown_elements_and_attributes_in_an_item_are_ignored() -> None:
    item = xml_item().replace("<item>", '<item id="7">\n   <operator>Turkcell</operator>')
    assert decode_xml(item.encode()).rows == SEED_ROWS_NO_ERRORCODE[:1]


def test_xml_unknown_status_and_errorcode_are_kept() -> None:
    [row] = decode_xml(xml_item(status="42", errorcode="777").encode()).rows
    assert (row.status, row.errorcode) == (42, 777)


def test_xml_invalid_syntax_names_line_and_column_with_an_excerpt() -> None:
    body = XML_DECL + b"<item>\n   <gsm>905445359675</gsm>\n   <status>2</stat>\n</item>\n"
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert re.fullmatch(r"line 4, column \d+", info.value.position)  # the declaration is line 1
    assert "not valid XML" in info.value.message
    assert "</stat>" in info.value.excerpt


def test_xml_item_of_the_wrong_shape_names_the_item_and_field() -> None:
    body = XML_DECL + (xml_item() + "\n" + xml_item(gsm="not-a-number")).encode()
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert info.value.position == "item[1].gsm"
    assert "<gsm" in info.value.excerpt


def test_xml_item_missing_a_required_field_is_a_body_error() -> None:
    item = re.sub(r"\s*<status>.*</status>", "", xml_item())
    with pytest.raises(BodyError) as info:
        decode_xml(item.encode())
    assert "status" in info.value.message


def test_xml_html_error_page_is_a_body_error_not_zero_rows() -> None:
    body = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert info.value.position == "document root"
    assert "<html>" not in info.value.message  # the body is quoted in the excerpt only
    assert "502 Bad Gateway" in info.value.excerpt


def test_xml_data_holding_text_is_a_body_error() -> None:
    with pytest.raises(BodyError):
        decode_xml(b"<response><result>1</result><data>oops</data></response>")


# --- hostile answers: every one is rows or a BodyError, never a builtin exception ------

ISO_ROW_ERROR = "Kayıt bulunamadı: ğüşöçİ"  # "no records found", with every Turkish letter
DEEP = 5_000  # far past Python's recursion limit (1 000)


def json_row(**changes: object) -> dict[str, object]:
    return {**SEED_ROW, "is_foreign_gsm": False, **changes}


def json_answer(*rows: dict[str, object]) -> bytes:
    return json.dumps({"response": {"result": True, "data": list(rows)}}).encode()


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
        body = json_answer(json_row(junk="@")).replace(b'"@"', deep)
    with pytest.raises(BodyError) as info:
        decode_json(body)
    assert "nests too deeply" in info.value.message
    offset = body.index(deep[:40])
    assert info.value.position == f"byte {offset}"
    assert deep[:40].decode() in info.value.excerpt


def test_json_nested_a_little_inside_an_ignored_field_still_decodes() -> None:
    body = json_answer(json_row(junk="@")).replace(b'"@"', b"[" * 200 + b"]" * 200)
    assert decode_json(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


@pytest.mark.parametrize(
    ("element", "outcome"),
    [
        ("result", "body error"),
        ("data", "zero rows"),
        ("error", "provider error"),
        ("message", "body error"),
        ("status", "body error"),
        ("operator", "one row"),
        ("root", "body error"),
    ],
)
def test_xml_nested_far_past_the_recursion_limit_is_read_without_recursion(
    element: str, outcome: str
) -> None:
    deep = "<a>" * DEEP + "x" + "</a>" * DEEP
    body = {
        "result": f"<response><result>{deep}</result></response>",
        "data": f"<response><result>1</result><data>{deep}</data></response>",
        "error": f"<response><result>0</result><error>{deep}</error></response>",
        "message": f"<response><result>0</result><error><message>{deep}</message></error>"
        "</response>",
        "status": xml_item(status=deep),
        "operator": xml_item().replace("<item>", f"<item><operator>{deep}</operator>"),
        "root": deep,
    }[element].encode()
    if outcome == "body error":
        with pytest.raises(BodyError) as info:
            decode_xml(body)
        assert "<a>" not in info.value.message
    elif outcome == "provider error":
        assert decode_xml(body).error == ProviderError()
    else:
        rows = decode_xml(body).rows
        assert rows == (SEED_ROWS_NO_ERRORCODE[:1] if outcome == "one row" else [])


def test_json_string_that_is_not_utf8_is_a_body_error_naming_the_byte() -> None:
    # A Turkish "ğ" sent as ISO-8859-9 (0xF0) where the row holds text.
    body = json_answer(json_row(delivery_track_id="b627ff@")).replace(
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


def test_json_not_utf8_in_a_result_true_answer_never_passes_as_an_error() -> None:
    body = json_answer(json_row(delivery_track_id="@")).replace(b'"@"', b'"\xfd"')
    with pytest.raises(BodyError, match="not UTF-8"):
        decode_json(body)


def test_json_not_utf8_inside_an_ignored_field_loses_no_row() -> None:
    body = json_answer(json_row(operator="@")).replace(b"@", b"T\xfcrk Telekom")
    assert decode_json(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


def test_xml_without_a_declared_encoding_that_is_not_utf8_is_a_body_error() -> None:
    body = xml_item(delivery_track_id="b627ffğ").encode("iso-8859-9")
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert "not UTF-8" in info.value.message
    offset = body.index(b"\xf0")
    assert info.value.position == f"byte {offset}"


def test_xml_provider_error_that_is_not_utf8_still_surfaces_as_the_provider_error() -> None:
    body = (
        f"<response><result>0</result><error><message>{ISO_ROW_ERROR}</message>"
        "<code>87</code></error></response>"
    ).encode("iso-8859-9")
    assert decode_xml(body).error == ProviderError(message=ISO_ROW_ERROR, code=87)


def test_xml_gsm_track_id_over_the_int_string_limit_stays_a_string() -> None:
    huge = "9" * 5_000  # Python refuses int() of more than 4 300 digits
    [row] = decode_xml(xml_item(gsm_track_id=huge).encode()).rows
    assert row.gsm_track_id == huge
    assert canonical_id(huge) == huge
    assert canonical_id("9" * 4_300) == int("9" * 4_300)


def test_json_gsm_track_id_over_the_int_limit_is_a_body_error_as_a_number_kept_as_a_string() -> (
    None
):
    huge = "9" * 5_000
    with pytest.raises(BodyError, match="out of range"):
        decode_json(json_answer(json_row(gsm_track_id="@")).replace(b'"@"', huge.encode()))
    [row] = decode_json(json_answer(json_row(gsm_track_id=huge))).rows
    assert row.gsm_track_id == huge


@pytest.mark.parametrize(
    ("name", "python_codec"),
    [
        ("ISO-8859-9", "iso-8859-9"),
        ("iso-8859-9", "iso-8859-9"),
        ("windows-1254", "cp1254"),
        ("Windows-1254", "cp1254"),
        ("latin5", "iso-8859-9"),
        ("ISO-8859-1", "latin-1"),
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        (" ISO-8859-9 ", "iso-8859-9"),
    ],
)
@pytest.mark.parametrize("quote", ['"', "'"])
def test_xml_declared_encoding_is_honoured(name: str, python_codec: str, quote: str) -> None:
    decl = f"<?xml version={quote}1.0{quote} encoding={quote}{name}{quote} ?>\n"
    text = ISO_ROW_ERROR if python_codec != "latin-1" else "Kayit bulunamadi: üöç"
    answer = f"<response><result>0</result><error><message>{text}</message><code>1</code></error>"
    body = (decl + answer + "</response>").encode(python_codec)
    assert decode_xml(body).error == ProviderError(message=text, code=1)
    rows_body = (decl + xml_item(delivery_track_id="ğ-İ-ş")).encode(python_codec, "replace")
    [row] = decode_xml(rows_body).rows
    assert row.delivery_track_id == "ğ-İ-ş".encode(python_codec, "replace").decode(python_codec)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_xml_in_utf16_or_utf32_is_read_from_its_start(codec: str) -> None:
    body = ('<?xml version="1.0" encoding="UTF-16"?>\n' + xml_item()).encode(codec)
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


def test_xml_declaring_utf16_in_single_bytes_is_read_as_the_utf8_it_is() -> None:
    # What .NET's StringWriter sends: the declaration says UTF-16, the bytes are UTF-8.
    body = b'<?xml version="1.0" encoding="utf-16"?>\n' + xml_item().encode()
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE[:1]


@pytest.mark.parametrize(
    "name",
    [
        *["bogus-9", "", "base64", "rot13", "zlib", "punycode", "idna", "undefined"],
        *["x\x00y", "..os", "9" * 41, "latin-1" + "x" * 40, "utf 8"],
    ],
)
def test_xml_declaring_an_encoding_that_is_no_character_set_is_a_body_error(name: str) -> None:
    body = f'<?xml version="1.0" encoding="{name}"?>\n{xml_item()}'.encode()
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert info.value.message == (
        "XML declaration names an encoding that is not a character set Python knows"
    )
    assert info.value.position == "XML declaration"
    assert f'encoding="{name}"' in info.value.excerpt


def test_xml_bytes_invalid_in_the_declared_encoding_is_a_body_error_naming_the_byte() -> None:
    decl = b'<?xml version="1.0" encoding="windows-1254"?>'
    body = decl + xml_item(delivery_track_id="@").encode().replace(b"@", b"\x81")
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert "not valid cp1254" in info.value.message
    offset = body.index(b"\x81")
    assert info.value.position == f"byte {offset}"


LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
        for n in range(1, 10)
    )
    + "]>"
)


@pytest.mark.parametrize(
    "doctype",
    [
        LAUGHS,
        '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>',
        '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">',
    ],
    ids=["billion-laughs", "external-entity", "parameter-entity", "external-dtd"],
)
@pytest.mark.parametrize("declaration", [XML_DECL, b""], ids=["declared", "bare"])
def test_xml_with_a_dtd_is_refused_never_expanded(doctype: str, declaration: bytes) -> None:
    body = declaration + (doctype + xml_item(gsm="&lol9;&xxe;")).encode()
    with pytest.raises(BodyError) as info:
        decode_xml(body)
    assert "<!DOCTYPE" in info.value.message
    assert info.value.position == f"byte {len(declaration)}"


def test_xml_reference_to_an_undeclared_entity_is_a_body_error() -> None:
    with pytest.raises(BodyError, match="undefined entity"):
        decode_xml(xml_item(gsm="&lol;").encode())


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


def test_messages_never_quote_the_body_only_excerpts_do() -> None:
    """The client redacts excerpts; a message quoting the body could show the key."""
    secret = "deadbeefcafef00ddeadbeefcafef00d"
    bodies = [
        f"<response><result>{secret}</result></response>",
        f"<{secret}>x</{secret}>",
        f"<response><{secret}/></response>",
        f'<?xml version="1.0" encoding="{secret}"?><item/>',
        xml_item(gsm=secret),
    ]
    for body in bodies:
        with pytest.raises(BodyError) as info:
            decode_xml(body.encode())
        assert secret not in info.value.message + info.value.position, body
        assert secret in info.value.excerpt, body


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
