"""What the codec relies on from xmltodict (and expat under it), pinned with the version.

`_codec.decode_xml` parses the body inside a synthetic root with
``xmltodict.parse(force_list=("item",), strip_whitespace=False)`` and reads the
tree's shape: text-only elements are strings, empty ones ``None``, children a dict
(a repeated name a list), the text between them ``"#text"``, attributes ``"@name"``.
Malformed XML, a DOCTYPE and an undefined entity must be an ``ExpatError`` with a
line and column. Request bodies and the simulator's answers are written with
``xmltodict.unparse``. Each assertion names the assumption and the installed version.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Final
from xml.parsers.expat import ExpatError

import pytest
import xmltodict

V: Final = f"xmltodict {metadata.version('xmltodict')}"


def parse(body: bytes) -> Any:
    """``body`` parsed as `_codec._decode_xml` parses it, inside the synthetic root."""
    tree = xmltodict.parse(
        b"<organik-root>" + body + b"</organik-root>",
        force_list=("item",),
        strip_whitespace=False,
    )
    return tree.get("organik-root")


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        pytest.param(b"", None, id="empty-root-is-None"),
        pytest.param(b"<item>x</item>", {"item": ["x"]}, id="item-always-a-list"),
        pytest.param(
            b"<item><a>1</a><b/></item>\n<item><a> 2 </a></item>",
            {"item": [{"a": "1", "b": None}, {"a": " 2 "}], "#text": "\n"},
            id="items-text-kept-between",
        ),
        pytest.param(
            b"<response><result>0</result><error><code>87</code></error></response>",
            {"response": {"result": "0", "error": {"code": "87"}}},
            id="wrapper-and-error",
        ),
        pytest.param(b"<a>1</a><a>2</a>", {"a": ["1", "2"]}, id="repeated-name-a-list"),
        pytest.param(b"mixed<b>1</b>tail", {"b": "1", "#text": "mixedtail"}, id="mixed-text"),
        pytest.param(b"<x a='1'>t</x>", {"x": {"@a": "1", "#text": "t"}}, id="attributes"),
        pytest.param(
            b"<ns:y xmlns:ns='u'>v</ns:y>",
            {"ns:y": {"@xmlns:ns": "u", "#text": "v"}},
            id="namespace-prefix-kept",
        ),
        pytest.param(b"<b><![CDATA[]]></b>", {"b": None}, id="empty-cdata-is-None"),
        pytest.param(
            "<g>ğüşİ &amp; &#233;</g>".encode(), {"g": "ğüşİ & é"}, id="utf8-text-and-references"
        ),
    ],
)
def test_parse_makes_the_shapes_the_codec_reads(body: bytes, shape: Any) -> None:
    got = parse(body)
    assert got == shape, (
        f"{V}: xmltodict.parse reads {body!r} as {got!r}, not {shape!r}; "
        "_codec.decode_xml (and _LxmlReader, which rebuilds this tree) read that shape"
    )


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        pytest.param(b"<a></b>", b"</b>", id="mismatched-tag"),
        pytest.param(b"<!DOCTYPE x [<!ENTITY e 'boom'>]><a>&e;</a>", b"<!DOCTYPE", id="doctype"),
        pytest.param(b"<a>&e;</a>", b"&e;", id="undefined-entity"),
    ],
)
def test_xml_that_is_not_read_raises_expat_error_with_its_position(body: bytes, bad: bytes) -> None:
    wrapped = b"<organik-root>" + body + b"</organik-root>"
    try:
        parse(body)
    except ExpatError as exc:
        at = wrapped.index(bad)
        assert exc.lineno == 1, f"{V}: ExpatError puts {bad!r} on line {exc.lineno}, not 1"
        assert at <= exc.offset <= at + len(bad), (
            f"{V}: ExpatError's position (line {exc.lineno}, column {exc.offset}) is no longer "
            f"where {bad!r} starts (column {at}); _codec._xml_syntax_error excerpts there"
        )
        return
    raise AssertionError(
        f"{V}: xmltodict.parse read {body!r} without an ExpatError; _codec.decode_xml "
        "relies on it to refuse malformed XML, DTDs and entities"
    )


def test_unparse_writes_a_request_body() -> None:
    data = {"transaction_ids": [1, 2], "gsm_track_ids": ["a&b<"]}
    text = xmltodict.unparse({"document": {"data": data}}, encoding="UTF-8")
    assert text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<document><data>'
        "<transaction_ids>1</transaction_ids><transaction_ids>2</transaction_ids>"
        "<gsm_track_ids>a&amp;b&lt;</gsm_track_ids></data></document>"
    ), f"{V}: xmltodict.unparse writes a request body differently: {text!r}"


def test_unparse_writes_an_item_without_a_declaration_or_line_breaks() -> None:
    text = xmltodict.unparse({"item": {"a": None, "b": "x\r\ny", "c": "1"}}, full_document=False)
    assert text == "<item><a></a><b>x\r\ny</b><c>1</c></item>", (
        f"{V}: xmltodict.unparse(full_document=False) writes {text!r}; _codec.encode_rows_xml "
        "expects no declaration, None as an empty element, and CRs only in text (_keep_cr)"
    )
