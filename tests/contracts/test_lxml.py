"""What the codec's lxml reader relies on from lxml (and libxml2), pinned with the version.

`_codec._LxmlReader` parses with the parser `_codec` configures (no DTD, no entity
expansion, no network, comments and processing instructions dropped, huge_tree
off) and rebuilds xmltodict's tree from ``tag``, ``text``, ``tail`` and ``len()``; it
declines, so that xmltodict reads and reports, whatever lxml refuses: malformed XML,
a DOCTYPE, an undefined entity, nesting past 256 levels. Two XPath queries count the
elements and look for attributes. Each assertion names the assumption and the version.
"""

from __future__ import annotations

from typing import Final

import pytest
from lxml import etree

from organik_async._codec import LXML_MIN_VERSION, _LxmlReader

V: Final = f"lxml {etree.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))})"


def fromstring(body: bytes) -> etree._Element:
    """``body`` inside the synthetic root, read by the codec's own parser."""
    parser, _, _ = _LxmlReader()._tools()
    return etree.fromstring(b"<organik-root>" + body + b"</organik-root>", parser)


def test_the_version_compares_with_the_minimum() -> None:
    version = etree.LXML_VERSION
    assert isinstance(version, tuple), f"{V}: etree.LXML_VERSION {version!r} is not a tuple"
    assert version >= LXML_MIN_VERSION, (
        f"{V}: etree.LXML_VERSION {etree.LXML_VERSION!r} is before "
        f"{LXML_MIN_VERSION}; _codec._lxml_reader compares them"
    )


def test_elements_carry_their_text_and_tail() -> None:
    root = fromstring(b"lead<a>1</a>\n<b/><c></c><d><![CDATA[]]></d><e>  </e>tail")
    got = (root.text, [(child.tag, child.text, child.tail) for child in root])
    expected = (
        "lead",
        [
            ("a", "1", "\n"),
            ("b", None, None),
            ("c", None, None),
            ("d", "", None),
            ("e", "  ", "tail"),
        ],
    )
    assert got == expected, (
        f"{V}: lxml reads tag, text and tail as {got!r}, not {expected!r}; "
        "_codec._lxml_value rebuilds xmltodict's tree from them"
    )


def test_comments_and_processing_instructions_are_dropped_and_their_text_joined() -> None:
    root = fromstring(b"x<!-- c -->y<?pi z?>w<b>1</b>t")
    got = (root.text, len(root), [child.tag for child in root], root[0].tail)
    assert got == ("xyw", 1, ["b"], "t"), (
        f"{V}: with remove_comments and remove_pis, lxml reads {got!r}; "
        "_codec._lxml_value expects only elements as children and the text around them joined"
    )


def test_text_is_read_as_utf8_with_references_resolved() -> None:
    root = fromstring("<g>ğüşİ &amp; &#233;</g>".encode())
    assert root[0].text == "ğüşİ & é", f"{V}: lxml reads UTF-8 text as {root[0].text!r}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<a></b>", id="mismatched-tag"),
        pytest.param(b"<!DOCTYPE x [<!ENTITY e 'boom'>]><a>&e;</a>", id="doctype"),
        pytest.param(b"<a>&e;</a>", id="undefined-entity"),
        pytest.param(b"<a>" * 1_000 + b"</a>" * 1_000, id="nested-1000-deep"),
    ],
)
def test_what_lxml_must_not_read_raises_an_lxml_error(body: bytes) -> None:
    try:
        fromstring(body)
    except etree.LxmlError:
        return
    raise AssertionError(
        f"{V}: lxml read {body[:40]!r}... without an LxmlError; _codec._LxmlReader declines "
        "what lxml refuses (so xmltodict reports it), and its recursion is bounded by "
        "libxml2's depth limit"
    )


def test_the_xpath_queries_count_elements_and_find_attributes() -> None:
    _, count_elements, has_attributes = _LxmlReader()._tools()
    plain = fromstring(b"<item><a>1</a><b/></item>")
    with_attribute = fromstring(b"<item><a x='1'>1</a></item>")
    got = (count_elements(plain), has_attributes(plain), has_attributes(with_attribute))
    assert got == (4.0, False, True), (
        f"{V}: count(//*) and boolean(//@*) give {got!r}; _codec._LxmlReader.read compares "
        "the count with the elements it read and declines a tree with attributes"
    )
