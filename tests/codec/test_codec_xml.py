"""XML answers in: every shape, quirk and attack, read once with each parser.

Each test here runs with xmltodict (the default) and with lxml (the ``lxml``
extra), through the autouse ``xml_parser`` fixture: the rows, and the errors with
their positions and excerpts, must be the same. What is particular to lxml (when
it reads an answer itself and when it leaves it to xmltodict, and the property
test that the two agree) is in test_codec_lxml.py.
"""

from __future__ import annotations

import re

import pytest

from organik_async._codec import BodyError, ProviderError, XmlParser, decode_xml
from organik_async._models import canonical_id
from tests.helpers.codec_cases import (
    DEEP,
    ISO_ROW_ERROR,
    SEED_ROWS_NO_ERRORCODE,
    XML_DECL,
    fixture,
    xml_item,
)
from tests.helpers.xml_parsers import XML_PARSERS, use_xml_parser


@pytest.fixture(params=XML_PARSERS, autouse=True)
def xml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> XmlParser:
    parser: XmlParser = request.param
    return use_xml_parser(monkeypatch, parser)


# --- the seed examples -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seed000_response.xml", "seed001_response.xml"])
def test_seed_xml_bare_items_decode_to_the_same_rows(name: str) -> None:
    decoded = decode_xml(fixture(name))
    assert decoded.error is None
    assert decoded.rows == SEED_ROWS_NO_ERRORCODE


def test_xml_with_a_utf8_byte_order_mark_decodes() -> None:
    body = b"\xef\xbb\xbf" + fixture("seed001_response.xml")
    assert decode_xml(body).rows == SEED_ROWS_NO_ERRORCODE


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


@pytest.mark.slow
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
