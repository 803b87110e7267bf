"""The lxml parser (the ``lxml`` extra): the same rows and errors as xmltodict, faster.

lxml reads an XML answer only where it provably reads it as xmltodict does, and
declines the rest, which xmltodict then reads (see ``_codec._LxmlReader``). Here:
a property test that for generated answers, valid and hostile, both paths give
the same rows or the same error (message, position and excerpt), and that it
catches a deliberately broken lxml path; that lxml does read the provider's
shapes itself (else the agreement would prove nothing); what it declines; that
``import organik_async`` does not import lxml; and that without lxml the client
reads XML with xmltodict.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import organik_async
from organik_async import _codec
from organik_async._codec import BodyError, Decoded, encode_rows_xml
from tests.helpers.codec_cases import SEED_ROWS, XML_DECL, fixture, xml_item

# --- comparing the two paths -------------------------------------------------------------


class Spy(_codec._LxmlReader):
    """The lxml reader, noting whether it read each body it was given or declined it."""

    def __init__(self) -> None:
        super().__init__()
        self.read_by_lxml: list[bool] = []

    def read(self, wrapped: bytes) -> _codec._Tree | None:
        tree = super().read(wrapped)
        self.read_by_lxml.append(tree is not None)
        return tree


Outcome = tuple[str, str]


def outcome(body: bytes, reader: _codec._LxmlReader | None) -> Outcome:
    """What decoding ``body`` gives, as text that shows every value and its type."""
    try:
        decoded: Decoded = _codec._decode_xml(body, reader)
    except BodyError as exc:
        return "BodyError", repr((exc.message, exc.position, exc.excerpt))
    return "Decoded", repr((decoded.rows, decoded.error))


def assert_same(body: bytes, reader: _codec._LxmlReader) -> None:
    by_xmltodict = outcome(body, None)
    by_lxml = outcome(body, reader)
    assert by_lxml == by_xmltodict, body


# --- generated answers, valid and hostile ------------------------------------------------

FIELDS: Final = (
    *("gsm", "transaction_id", "gsm_track_id", "delivery_track_id", "create_date"),
    *("start_date", "finish_date", "status", "sms_count", "credit_amount", "is_foreign_gsm"),
)
GOOD: Final[dict[str, list[str]]] = {
    "gsm": ["905445359675", "61491570156"],
    "transaction_id": ["14094857", "16334701"],
    "gsm_track_id": ["410471976", "16502030-4730-63032793", "007", "-5", "9" * 40],
    "delivery_track_id": ["b627ffe79fc148e8ea7425222c4ed8", " padded ", "ğ-İ", "a&amp;b&#13;"],
    "create_date": ["2016-11-02 11:47:38", "2016-11-02T11:47:38"],
    "start_date": ["2017-02-28 00:00:00"],
    "finish_date": ["2016-11-02 12:47:42", ""],
    "status": ["2", "4", "0", "42"],
    "sms_count": ["1", "0"],
    "credit_amount": ["1", "0"],
    "is_foreign_gsm": ["0", "1", "true"],
    "errorcode": ["99", "0"],
}
# Text pieces: padding, entities, CDATA, comments, PIs, the characters parsers disagree
# on, and what is not XML at all.
PIECES: Final = [
    *(" ", "\n   ", "\t", "\r\n", "\r", "", "x", "7", "ğüşİ", "😀", "\ufeff", "\x7f", "\x85"),
    *("&amp;", "&lt;b&gt;", "&#13;", "&#x1F600;", "&#xFFFE;", "&#0;", "&lol;", "&", "<", "]]>"),
    *("<![CDATA[]]>", "<![CDATA[ 5 ]]>", "<![CDATA[<item>]]>", "<!-- c -->", "<!---->"),
    *("<?pi x?>", "<?xml version='1.0'?>", "\x00", "\x0b", "\ud800"),
]
# Names only XML 1.0's fifth edition allows (libxml2 takes them, expat refuses), other
# non-ASCII ones, prefixes (bound or not), near misses of the answer's names.
ODD_NAMES: Final = (
    *("a\u200c", "\u2070a", "a\U00010000", "\u0132a", "\u00b7a", "ü", "xml:a", "x:a", "a:"),
    *(":a", "xmlfoo", "Item", "organik-root", "a.b", "_"),
)
NAMES: Final = (
    *FIELDS,
    *("errorcode", "item", "data", "result", "error", "response", "document", "message"),
    *("code", "number", "time", "junk", *ODD_NAMES),
)
ATTRIBUTES: Final = [
    *("", "", "", "", "", ' id="7"', " id='&lt;'", ' id="1" id="2"', ' xmlns="urn:x"'),
    *(' xmlns:x="urn:x"', ' xml:lang="tr"', ' x:y="1"', ' a="\u200c"', " =", ' id="7'),
]


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (a middle value: Hypothesis favours the ends)."""
    return st.integers(0, n - 1).map(lambda drawn: drawn == n // 2)


texts = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=3).map("".join)
attributes = st.sampled_from(ATTRIBUTES)


def element(name: str, attrs: str, content: str | None) -> str:
    return f"<{name}{attrs}/>" if content is None else f"<{name}{attrs}>{content}</{name}>"


trees = st.recursive(
    st.builds(element, st.sampled_from(NAMES), attributes, st.none() | texts),
    lambda inner: st.builds(
        element,
        st.sampled_from(NAMES),
        attributes,
        st.lists(inner | texts, max_size=4).map("".join),
    ),
    max_leaves=12,
)


# Rows to start from: every field with a good value (GOOD's first, or its others).
ERROR_VALUES: Final = ("87", " 93 ", "E1", "", "<![CDATA[]]>", "<![CDATA[ 99 ]]>", None)
BASE_ROWS: Final = [
    {name: values[n % len(values)] for name, values in GOOD.items() if name in FIELDS}
    for n in range(5)
]
OPTIONAL: Final = ("delivery_track_id", "finish_date")
CHANGES: Final = (
    *("pad", "cdata", "comment", "empty", "closed", "text", "element", "attribute"),
    *("drop", "repeat", "unknown", "errorcode"),
    *("pad", "cdata", "comment", "unknown", "errorcode"),  # harmless ones, more often
)


@dataclass
class Field:
    """One element of an ``<item>`` being generated."""

    name: str
    value: str | None
    attributes: str = ""

    def xml(self) -> str:
        return element(self.name, self.attributes, self.value)


@st.composite
def items(draw: st.DrawFn) -> str:
    """One ``<item>``: a good row with a few changes (padding, CDATA, comments, empty or
    closed fields, any text, an element in a field, attributes, a field missing or
    repeated, an unknown element, oddly named or not)."""
    fields = [Field(name, value) for name, value in draw(st.sampled_from(BASE_ROWS)).items()]
    for kind in draw(st.lists(st.sampled_from(CHANGES), max_size=3)):
        if kind in ("empty", "closed"):  # most often where the row stays valid
            name = draw(st.sampled_from([*OPTIONAL, *OPTIONAL, *FIELDS]))
            where = next((n for n, field in enumerate(fields) if field.name == name), 0)
        else:
            where = draw(st.integers(0, 11))
        if not fields:
            break
        field = fields[where % len(fields)]
        value = field.value or ""
        if kind == "pad":
            field.value = draw(st.sampled_from([" ", "\n   ", "\t"])) + value + " "
        elif kind == "cdata":
            field.value = f"<![CDATA[{value}]]>"
        elif kind == "comment":
            field.value = value[:1] + "<!-- c -->" + value[1:]
        elif kind == "empty":
            field.value = draw(st.sampled_from(["", "<![CDATA[]]>", "<!---->"]))
        elif kind == "closed":
            field.value = None
        elif kind == "text":
            field.value = draw(texts)
        elif kind == "element":
            field.value = value + draw(st.sampled_from(["<b>1</b>", "<b/>"]) | trees)
        elif kind == "attribute":
            field.attributes = draw(attributes)
        elif kind == "drop":
            fields.remove(field)
        elif kind == "repeat":
            fields.insert(where, Field(field.name, field.value, field.attributes))
        elif kind == "unknown":
            fields.insert(where, Field(draw(st.sampled_from(ODD_NAMES)), draw(texts)))
        else:
            fields.insert(where, Field("errorcode", draw(st.sampled_from(["99", " 0 ", "x"]))))
    separator = draw(st.sampled_from(["", "\n   ", " "]))
    inner = separator.join(field.xml() for field in fields)
    attrs = draw(attributes) if draw(one_in(10)) else ""
    return f"<item{attrs}>{separator}{inner}{separator}</item>"


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """An XML answer: bare items, a wrapper, an error, or any tree; then perhaps a
    declaration in some encoding, a DOCTYPE, deep nesting, or bytes cut or added."""
    separator = draw(st.sampled_from(["", "\n"]))
    some = draw(st.sampled_from([0, 1, 1]))
    rows = separator.join(draw(st.lists(items(), min_size=some, max_size=3)))
    shape = draw(st.integers(0, 6))
    if shape == 0:
        text = rows
    elif shape == 1:
        result = draw(st.sampled_from(["1", " 1 ", "true", "2", "<![CDATA[1]]>", "1<!---->"]))
        text = f"<response><result>{result}</result><data>{separator}{rows}</data></response>"
    elif shape == 2:
        text = f"<document>{separator}{rows}{separator}</document>"
    elif shape == 3:
        error = "".join(
            element(name, "", draw(st.sampled_from(ERROR_VALUES) | texts))
            for name in draw(st.lists(st.sampled_from(["message", "number", "time", "code"])))
        )
        text = f"<response><result>0</result>{separator}<error>{error}</error></response>"
    elif shape == 4:
        text = draw(trees) + rows
    elif shape == 5:
        text = rows + draw(trees)
    else:  # not an answer: where its first element starts decides the error's excerpt
        padding = draw(st.sampled_from(["", "\n" * 45, " " * 90]))
        text = padding + element(draw(st.sampled_from(ODD_NAMES)), "", draw(texts))
    if draw(one_in(20)):
        text = "<!DOCTYPE x [<!ENTITY e 'v'>]>" + text
    if draw(one_in(20)):  # past libxml2's 256 levels
        depth = draw(st.sampled_from([200, 300]))
        text = "<response><data>" + "<a>" * depth + "x" + "</a>" * depth + "</data></response>"
    encoding = draw(st.sampled_from(["", "", "UTF-8", "ISO-8859-9", "windows-1254", "UTF-16"]))
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>\n' if encoding else ""
    errors = "surrogatepass" if encoding in ("", "UTF-8", "UTF-16") else "xmlcharrefreplace"
    body = (declaration + text).encode(encoding or "utf-8", errors)
    if draw(one_in(6)):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=3)) + body[cut + draw(st.integers(0, 2)) :]
    return body


def same_by_both(reader: _codec._LxmlReader, examples: int, **more: Any) -> Callable[[], None]:
    """A property test: for ``examples`` generated answers, ``reader`` and xmltodict
    give the same outcome."""

    @settings(max_examples=examples, deadline=None, **more)
    @given(body=answers())
    def same(body: bytes) -> None:
        assert_same(body, reader)

    return same


@pytest.mark.slow
def test_lxml_and_xmltodict_read_every_generated_answer_the_same() -> None:
    spy = Spy()
    same_by_both(spy, 600)()
    # Neither side is vacuous: lxml read a good share itself, and declined some.
    read = sum(spy.read_by_lxml)
    assert 150 < read < len(spy.read_by_lxml) - 150, (read, len(spy.read_by_lxml))


# --- the property test catches a broken lxml path ----------------------------------------


_READ_ITEM: Final = _codec._lxml_item


def _item_uncleaned(item: Any, seen: list[int]) -> Any:
    """Reads an ``<item>`` as it should, but leaves its values as lxml has them (the
    padding kept, a ``gsm_track_id`` of digits a string)."""
    fields = _READ_ITEM(item, seen)
    if isinstance(fields, dict):
        fields.update({child.tag: child.text for child in item if child.text})
    return fields


def _item_keeps_empty_cdata(item: Any, seen: list[int]) -> Any:
    """Reads an ``<item>`` as it should, but an empty CDATA section stays ``""``."""
    fields = _READ_ITEM(item, seen)
    if isinstance(fields, dict):
        fields.update({child.tag: "" for child in item if child.text == ""})
    return fields


_READ_VALUE: Final = _codec._lxml_value


def _value_keeps_empty_cdata(element: Any, seen: list[int]) -> Any:
    """Reads elements as it should, but a leaf's empty CDATA section stays ``""``."""
    if len(element):
        return _READ_VALUE(element, seen)
    seen[0] += 1
    return element.text


class _CountsNoGrandchildren(_codec._LxmlReader):
    """Does not see an element inside an item's field: its count leaves those out."""

    def _tools(self) -> Any:
        from lxml import etree

        parser, _, attributes = super()._tools()
        return parser, etree.XPath("count(//*[not(parent::*/parent::item)])"), attributes


class _SeesNoAttributes(_codec._LxmlReader):
    def _tools(self) -> Any:
        from lxml import etree

        parser, count, _ = super()._tools()
        return parser, count, etree.XPath("false()")


BROKEN: Final[dict[str, tuple[type[_codec._LxmlReader], dict[str, Any]]]] = {
    "values not cleaned": (_codec._LxmlReader, {"_lxml_item": _item_uncleaned}),
    "empty CDATA kept as '' in a field": (
        _codec._LxmlReader,
        {"_lxml_item": _item_keeps_empty_cdata},
    ),
    "empty CDATA kept as '' elsewhere": (
        _codec._LxmlReader,
        {"_lxml_value": _value_keeps_empty_cdata},
    ),
    "the xml: prefix read": (_codec._LxmlReader, {"_NAMESPACE_MARKUP": (b"xmlns",)}),
    "namespace declarations read": (_codec._LxmlReader, {"_NAMESPACE_MARKUP": (b"<xml:",)}),
    "names libxml2 alone takes": (_codec._LxmlReader, {"_NON_ASCII_MARKUP": re.compile(b"^$x")}),
    "an element in a field missed": (_CountsNoGrandchildren, {}),
    "attributes missed": (_SeesNoAttributes, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("broken", list(BROKEN))
def test_the_property_test_catches_a_broken_lxml_path(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader_class, patches = BROKEN[broken]
    for name, value in patches.items():
        monkeypatch.setattr(_codec, name, value)
    check = same_by_both(
        reader_class(), 3_000, derandomize=True, database=None, phases=[Phase.generate]
    )
    with pytest.raises(AssertionError):
        check()


# --- lxml reads the provider's answers itself ---------------------------------------------

TURKISH_ERROR: Final = (
    '<?xml version="1.0" encoding="ISO-8859-9"?>\n<response><result>0</result><error>'
    "<message>Kayıt bulunamadı: ğüşöçİ</message><number>E1</number><time>now</time>"
    "<code>87</code></error></response>"
).encode("iso-8859-9")
PROVIDER_SHAPES: Final = {
    "seed 000, bare items": fixture("seed000_response.xml"),
    "seed 001, bare items": fixture("seed001_response.xml"),
    "encode_rows_xml": encode_rows_xml(SEED_ROWS),
    "one item, no declaration": xml_item().encode(),
    "wrapped": XML_DECL
    + f"<response><result>1</result>\n<data>\n{xml_item()}\n".encode()
    + f"{xml_item()}\n</data></response>\n".encode(),
    "document": f"<document>{xml_item()}</document>".encode(),
    "zero rows, wrapped": b"<response><result>1</result><data/></response>",
    "zero rows, empty": b"",
    "provider error": b"<response><result>0</result><error><code>93</code></error></response>",
    "provider error in ISO-8859-9": TURKISH_ERROR,
    "UTF-16": ('<?xml version="1.0" encoding="UTF-16"?>\n' + xml_item()).encode("utf-16"),
    "a row in windows-1254": (
        '<?xml version="1.0" encoding="windows-1254"?>' + xml_item(delivery_track_id="ğşı")
    ).encode("cp1254"),
    "padded values, CDATA, comments": xml_item(
        gsm=" 905445359675\n", status="<![CDATA[2]]>", finish_date="<!-- none -->"
    ).encode(),
    "the wrong shape": xml_item(gsm="not-a-number").encode(),
    "an HTML page": b"<html><body>502 Bad Gateway</body></html>",
}


@pytest.mark.parametrize("body", PROVIDER_SHAPES.values(), ids=PROVIDER_SHAPES)
def test_lxml_reads_every_shape_the_provider_sends_itself(body: bytes) -> None:
    spy = Spy()
    assert outcome(body, spy) == outcome(body, None)
    assert spy.read_by_lxml == [True]


def test_lxml_reads_the_simulators_answers_itself() -> None:
    from organik_async.testing import Dataset, FakeOrganikAPI

    fake = FakeOrganikAPI(Dataset.generate(300, seed=5))
    expected = fake.expected(transaction_ids=fake.dataset.transaction_ids, response_format="xml")
    body = encode_rows_xml(expected)
    spy = Spy()
    decoded = _codec._decode_xml(body, spy)
    assert decoded.rows == expected
    assert spy.read_by_lxml == [True]


DECLINED: Final = {
    "not well formed": xml_item().replace("</status>", "</stat>"),
    "a DOCTYPE": "<!DOCTYPE x [<!ENTITY e 'v'>]>" + xml_item(gsm="&e;"),
    "an undeclared entity": xml_item(gsm="&lol;"),
    "not UTF-8": "<item><gsm>\udcf0</gsm></item>",
    "an attribute": xml_item().replace("<item>", '<item id="7">'),
    "an attribute on a field": xml_item().replace("<status>", "<status unit='x'>"),
    "a namespace": "<x:item xmlns:x='urn:x'><x:gsm>1</x:gsm></x:item>",
    "a default namespace": xml_item().replace("<item>", "<item xmlns=''>"),
    "the xml: prefix": xml_item().replace("<item>", "<item><xml:a>1</xml:a>"),
    "a name only libxml2 takes": xml_item().replace("<item>", "<item><a\u200c>1</a\u200c>"),
    "a name neither takes": xml_item().replace("<item>", "<item><\u00b7a>1</\u00b7a>"),
    "a repeated field": xml_item().replace("<item>", "<item><status>2</status>"),
    "an element in a field": xml_item(status="2<b>x</b>"),
    "an item in an item": xml_item().replace("<item>", "<item><item/>"),
    "nesting past 256 levels": "<response><data>"
    + "<a>" * 300
    + "</a>" * 300
    + "</data></response>",
}


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED)
def test_lxml_declines_what_it_could_read_differently_and_xmltodict_reads_it(text: str) -> None:
    body = text.encode("utf-8", "surrogateescape")
    spy = Spy()
    assert outcome(body, spy) == outcome(body, None)
    assert spy.read_by_lxml[0] is False  # (not UTF-8: the error it may hold is read again)


def test_nesting_within_libxml2s_limit_is_read_by_lxml_the_same() -> None:
    body = ("<response><data>" + "<a>" * 250 + "x" + "</a>" * 250 + "</data></response>").encode()
    spy = Spy()
    assert outcome(body, spy) == outcome(body, None) == ("Decoded", repr(([], None)))
    assert spy.read_by_lxml == [True]


# --- which parser, and when lxml is imported ----------------------------------------------


def test_xml_parser_says_lxml_when_it_is_installed() -> None:
    assert organik_async.xml_parser() == "lxml"


def run(program: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.slow
def test_importing_organik_async_does_not_import_lxml_the_first_xml_answer_does() -> None:
    out = run(
        """
        import sys
        import organik_async
        from organik_async import _codec
        print("lxml" in sys.modules)
        _codec.decode_json(b'{"response": {"result": true}}')
        print("lxml" in sys.modules)
        _codec.decode_xml(b"<response><result>1</result></response>")
        print("lxml.etree" in sys.modules, organik_async.xml_parser())
        """
    )
    assert out.split() == ["False", "False", "True", "lxml"]


@pytest.mark.slow
def test_without_lxml_the_client_reads_xml_answers_with_xmltodict() -> None:
    out = run(
        """
        import sys
        sys.modules["lxml"] = None  # as if it were not installed
        import anyio
        import organik_async
        from organik_async.testing import Dataset, FakeOrganikAPI

        async def main() -> None:
            fake = FakeOrganikAPI(Dataset.generate(50, seed=2))
            ids = fake.dataset.transaction_ids
            async with fake.client(request_format="xml") as client:
                rows = await client.detailed_report(transaction_ids=ids)
            expected = fake.expected(transaction_ids=ids, response_format="xml")
            same = sorted(map(repr, rows)) == sorted(map(repr, expected))
            print(organik_async.xml_parser(), len(rows), same)

        anyio.run(main)
        """
    )
    assert out.split() == ["xmltodict", "50", "True"]


def test_an_lxml_older_than_5_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from lxml import etree

    monkeypatch.setattr(etree, "LXML_VERSION", (4, 9, 4, 0))
    _codec._lxml_reader.cache_clear()
    try:
        assert organik_async.xml_parser() == "xmltodict"
    finally:
        monkeypatch.undo()
        _codec._lxml_reader.cache_clear()
    assert organik_async.xml_parser() == "lxml"


def test_threads_read_at_once_each_with_its_own_parser() -> None:
    bodies = [encode_rows_xml(SEED_ROWS[: n % 3 + 1]) for n in range(8)]
    reader = _codec._LxmlReader()
    results: dict[int, list[Decoded]] = {}
    parsers: dict[int, object] = {}

    def work(n: int) -> None:
        parsers[n] = reader._tools()[0]
        results[n] = [_codec._decode_xml(body, reader) for body in bodies for _ in range(20)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = [_codec._decode_xml(body, None) for body in bodies for _ in range(20)]
    assert all(results[n] == expected for n in range(4))
    assert len({id(parser) for parser in parsers.values()}) == 4
