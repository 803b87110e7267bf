"""Request bodies out, rows in, for both wire formats.

JSON is the fast path: one ``msgspec.json.Decoder`` built at import turns the
whole envelope into Structs straight from the response bytes. XML goes through
``xmltodict`` (the provider's XML is not always a well-formed document, see
`decode_xml()`) and is then typed by the same msgspec machinery. When lxml
is installed (the ``lxml`` extra) it reads the answers on which the two parsers
agree, for much less CPU per row (libxml2 builds the tree in C; the performance
page has the figures); everything else, errors included, is still read by
xmltodict (see `_LxmlReader`).

Decoding here knows nothing of HTTP: it returns a `Decoded` (rows, or
the provider's error) or raises `BodyError` with a position and an
excerpt; the client adds the request context and turns it into a public error.
"""

from __future__ import annotations

import codecs
import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple
from xml.parsers.expat import ExpatError

import msgspec
import xmltodict

from ._models import ID_KINDS, DetailedReport, Format, Id, IdKind, canonical_id

if TYPE_CHECKING:
    from lxml import etree

__all__ = [
    "BodyError",
    "Decoded",
    "ProviderError",
    "XmlParser",
    "decode",
    "encode_request",
    "encode_rows_json",
    "encode_rows_xml",
    "xml_parser",
]

EXCERPT_CHARS: Final = 80


class BodyError(Exception):
    """A body that could not be decoded: what went wrong, where, and a slice."""

    def __init__(self, message: str, position: str, excerpt: str) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.excerpt = excerpt


class ProviderError(msgspec.Struct, frozen=True):
    """The ``error`` node of a ``result: false`` answer."""

    message: str | None = None
    number: str | None = None
    time: str | None = None
    code: int | None = None


class _WireError(msgspec.Struct, frozen=True):
    """``error`` as sent: ``number`` and ``time`` are documented as strings, but
    one sent as a number must still surface as the provider's error, not as a
    decoding error that hides it."""

    message: str | None = None
    number: str | int | None = None
    time: str | int | float | None = None
    code: int | None = None

    def public(self) -> ProviderError:
        return ProviderError(self.message, _text(self.number), _text(self.time), self.code)


def _text(value: str | float | None) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


class Decoded(msgspec.Struct, frozen=True):
    """A decoded answer: rows, or the provider's error (never both)."""

    rows: list[DetailedReport]
    error: ProviderError | None = None


# --- IDs and request bodies -------------------------------------------------------------

# Characters XML 1.0 cannot carry at all, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def encode_request(fmt: Format, ids: Mapping[IdKind, Sequence[Id]]) -> bytes:
    """The request body for ``ids``; kinds with no IDs are left out."""
    data = {kind: list(ids[kind]) for kind in ID_KINDS if ids.get(kind)}
    if fmt == "json":
        return msgspec.json.encode({"data": data})
    for kind, values in data.items():
        for value in values:
            if isinstance(value, str) and _XML_INVALID.search(value):
                raise ValueError(f"{kind} ID {value!r} contains a character XML cannot carry")
    text: str = xmltodict.unparse({"document": {"data": data}}, encoding="UTF-8")
    return _keep_cr(text).encode()


def _keep_cr(xml: str) -> str:
    """Write CRs as ``&#13;``: a parser normalises a raw CR (and CRLF) to LF.

    The markup xmltodict writes (unpretty) never holds a CR, so every CR in
    ``xml`` is in text content.
    """
    return xml.replace("\r", "&#13;")


# --- JSON responses ---------------------------------------------------------------------


class _Response(msgspec.Struct, frozen=True):
    result: bool
    data: list[DetailedReport] | None = None
    error: _WireError | None = None


class _Envelope(msgspec.Struct, frozen=True):
    response: _Response


# strict=False: the provider is inconsistent about numbers-as-strings, booleans as 0/1
# and dates with a space instead of "T"; lax mode accepts all of these.
_JSON_DECODER: Final = msgspec.json.Decoder(_Envelope, strict=False)
_JSON_ENCODER: Final = msgspec.json.Encoder()


_BOM: Final = b"\xef\xbb\xbf"


def decode_json(body: bytes) -> Decoded:
    """Decode a JSON answer, in one pass, straight into Structs.

    A leading UTF-8 byte order mark (what a PHP file saved "with BOM" prints
    before anything else) is skipped; positions are then counted after it.
    Nesting deeper than Python's recursion limit allows (even inside a field
    that is ignored) is a `BodyError`, and so is text that is not
    UTF-8, except in the provider's error (see `_not_utf8()`).
    """
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        envelope = _JSON_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, body, "JSON") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # Decided by the bytes, not by the exception: msgspec before 0.23 raises
        # UnicodeDecodeError for text that is not UTF-8, 0.23 a DecodeError.
        offset = _first_not_utf8(body)
        if offset < len(body):
            return _not_utf8(body, offset, decode_json)
        raise _syntax_error(exc, body) from None
    except RecursionError:
        raise _too_deep(body) from None
    response = envelope.response
    if not response.result:
        return Decoded(rows=[], error=(response.error or _WireError()).public())
    return Decoded(rows=response.data or [])


def _validation_error(exc: msgspec.ValidationError, body: bytes, what: str) -> BodyError:
    text = str(exc)
    message, _, path = text.partition(" - at ")
    path = path.strip("`")
    if not path:
        path = "$"
    field = path.rsplit(".", 1)[-1].split("[", 1)[0]
    needle = f'"{field}"'.encode() if what == "JSON" else f"<{field}".encode()
    offset = body.find(needle) if field and field != "$" else 0
    return BodyError(
        f"{what} answer is not the expected shape: {message}", path, _excerpt(body, offset)
    )


_BYTE_POS = re.compile(r"\(byte (\d+)\)")


def _syntax_error(exc: Exception, body: bytes) -> BodyError:
    text = str(exc)
    match = _BYTE_POS.search(text)
    offset = int(match.group(1)) if match else len(body)
    return BodyError(f"answer is not valid JSON: {text}", f"byte {offset}", _excerpt(body, offset))


# Where a run of 32 openers starts: the excerpt of an answer nested too deeply.
_DEEP_JSON = re.compile(rb'(?:[\[{]\s*(?:"[^"\\]*"\s*:\s*)?){32}')


def _too_deep(body: bytes) -> BodyError:
    """msgspec follows nesting on Python's stack, also to skip an unknown field;
    past the recursion limit (about 1 000 levels) it cannot. No answer of the
    documented shape nests more than four levels."""
    match = _DEEP_JSON.search(body)
    offset = match.start() if match else 0
    return BodyError(
        "JSON answer nests too deeply to decode (deeper than Python's recursion limit)",
        f"byte {offset}",
        _excerpt(body, offset),
    )


def _first_not_utf8(body: bytes) -> int:
    """The offset where ``body`` stops being UTF-8; ``len(body)`` if it never does."""
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        return exc.start
    return len(body)


def _not_utf8(body: bytes, offset: int, decoder: Callable[[bytes], Decoded]) -> Decoded:
    """An answer whose text is not UTF-8 (a Turkish ``ğ`` sent as ISO-8859-9, say).

    Rows are never guessed at: a wrong guess would be silently wrong data, so
    such an answer is a `BodyError` naming the first byte that is not
    UTF-8. The one exception is the provider's own error (``result: false``):
    its code is ASCII and must not be hidden (87 is zero rows, 93 is "slow
    down"), so the body is read once more as windows-1254 (Turkish, with
    ISO-8859-9's letters at the same bytes) and a provider error found that
    way is returned, its message in that reading.
    """
    try:
        decoded: Decoded | None = decoder(body.decode("cp1254", "replace").encode())
    except BodyError:
        decoded = None
    if decoded is not None and decoded.error is not None:
        return decoded
    raise BodyError(
        f"answer is not UTF-8: the bytes from 0x{body[offset]:02X} on are not a UTF-8 "
        "character (JSON is always UTF-8; XML is unless its declaration names another "
        "encoding)",
        f"byte {offset}",
        _excerpt(body, offset),
    )


def _excerpt(body: bytes, offset: int) -> str:
    start = max(0, offset - EXCERPT_CHARS // 2)
    return body[start : start + EXCERPT_CHARS].decode("utf-8", "replace")


# --- XML responses ----------------------------------------------------------------------

_DECLARATION = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<\?xml[^>]*\?>")
_ROOT_OPEN: Final = b"<organik-root>"
_ROOT_CLOSE: Final = b"</organik-root>"
_WRAPPERS: Final = ("response", "document")
# What an answer holds under its root or wrapper; anything else (an HTML error
# page, say) is not an answer at all, and must not pass for "zero rows".
_ANSWER_NODES: Final = frozenset({"result", "data", "item", "error"})
# Text fields whose whitespace is data; everything else is stripped before typing.
_VERBATIM: Final = frozenset({"delivery_track_id"})


_ENCODING = re.compile(rb"""\sencoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# XML's EncName, at most as long as the longest IANA charset name (40). Only such a
# name is looked up: Python caches every name it was asked for, found or not.
_ENC_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9._-]{0,39}")
# Encodings whose declaration is not written in ASCII bytes, told by how the
# document starts (XML 1.0, appendix F). UTF-32's little-endian mark starts
# like UTF-16's, so it is tried first.
_WIDE_STARTS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
# Python's text codecs that are not character sets; punycode also decodes in
# quadratic time (160 kB: 14 s), so a declaration naming it must not be obeyed.
_NOT_CHARSETS: Final = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"}
)


def _as_utf8(body: bytes) -> bytes:
    """``body`` in UTF-8, decoded from the encoding its start or declaration names.

    A UTF-8 answer (no declared encoding, or UTF-8) is returned as is. Any
    character set Python knows is honoured: ISO-8859-9 and windows-1254, the
    Turkish ones, say. A UTF-16 or UTF-32 declaration written in single bytes
    contradicts itself; the bytes win and are read as UTF-8 (what .NET's
    ``StringWriter`` produces).
    """
    for start, codec in _WIDE_STARTS:
        if body.startswith(start):
            return _transcode(body, 0, codec)
    match = _DECLARATION.match(body)
    found = _ENCODING.search(match.group()) if match else None
    if match is None or found is None:
        return body
    name = (found.group(1) if found.group(1) is not None else found.group(2)).strip()
    try:
        codec = codecs.lookup(name.decode()).name if _ENC_NAME.fullmatch(name) else ""
    except LookupError:
        codec = ""
    if codec == "utf-8" or codec.startswith(("utf-16", "utf-32")):
        return body
    if not codec or codec in _NOT_CHARSETS:
        raise _unknown_encoding(body, match.start())
    return body[: match.end()] + _transcode(body, match.end(), codec)


def _transcode(body: bytes, start: int, codec: str) -> bytes:
    try:
        return body[start:].decode(codec).encode()
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise BodyError(
            f"XML answer is not valid {codec}, the encoding it declares: {exc.reason}",
            f"byte {offset}",
            _excerpt(body, offset),
        ) from None
    except (LookupError, UnicodeError):  # not a text encoding (base64), or no position
        raise _unknown_encoding(body, 0) from None


def _unknown_encoding(body: bytes, offset: int) -> BodyError:
    return BodyError(
        "XML declaration names an encoding that is not a character set Python knows",
        "XML declaration",
        _excerpt(body, offset),
    )


def decode_xml(body: bytes) -> Decoded:
    """Decode an XML answer in any shape the provider is known to send.

    The provider's own example is a series of top-level ``<item>``s with no
    root element, which no XML parser accepts as a document; the body is
    therefore parsed inside a synthetic root, after its declaration. Accepted
    under that root: bare ``<item>``s (one, many or none), or one wrapper
    (``<response>`` / ``<document>``) holding ``result``, ``data``/``item``s
    and ``error``.

    The text is read in the encoding its declaration (or byte order mark)
    names, UTF-8 if none (see `_as_utf8()`). A document type declaration
    is refused, so no entity is ever expanded.

    The parser is lxml when it is installed, xmltodict otherwise (see
    [`xml_parser()`][organik_async.xml_parser]); the rows, and the errors, are the same either way.
    """
    return _decode_xml(body, _lxml_reader())


def _decode_xml(body: bytes, reader: _LxmlReader | None) -> Decoded:
    """`decode_xml()`, lxml reading what ``reader`` takes, xmltodict the rest."""
    body = _as_utf8(body)
    match = _DECLARATION.match(body)
    skipped = match.end() if match else 0
    wrapped = _ROOT_OPEN + body[skipped:] + _ROOT_CLOSE
    tree = reader.read(wrapped) if reader is not None else None
    if tree is None:
        try:
            parsed = xmltodict.parse(wrapped, force_list=("item",), strip_whitespace=False)
        except ExpatError as exc:
            offset = _first_not_utf8(body)
            if offset < len(body):
                return _not_utf8(body, offset, functools.partial(_decode_xml, reader=reader))
            raise _xml_syntax_error(exc, body, skipped) from None
        tree = _Tree(parsed.get("organik-root"), items_cleaned=False)
    where = "document root"
    node = _children(tree.root, where, body)
    for wrapper in _WRAPPERS:
        if set(node) == {wrapper}:
            where = f"<{wrapper}>"
            node = _children(node[wrapper], where, body)
            break
    if node and not _ANSWER_NODES & node.keys():
        # The element's name goes in the excerpt only: a message never quotes
        # the body, whose text may echo the key (the client redacts excerpts).
        name = next(iter(node))
        raise BodyError(
            "XML answer is not the expected shape: none of <result>, <data>, <item>, "
            "<error> where the answer should be",
            where,
            _excerpt(body, max(0, body.find(f"<{name}".encode()))),
        )
    if "result" in node and not _xml_bool(node["result"], body):
        return Decoded(rows=[], error=_xml_error(node.get("error"), body))
    if "data" in node:
        items = _children(node["data"], "<data>", body).get("item", [])
    else:
        items = node.get("item", [])
    return Decoded(rows=_type_items(items, body, cleaned=tree.items_cleaned))


def _children(node: Any, where: str, body: bytes) -> dict[str, Any]:
    """The child elements of ``node``; the text between them and attributes dropped."""
    if node is None or (isinstance(node, str) and not node.strip()):
        return {}
    if not isinstance(node, dict):
        what = "appears more than once" if isinstance(node, list) else "holds text"
        tag = where.strip("<>").encode()
        raise BodyError(
            f"XML answer is not the expected shape: {where} {what}",
            where,
            _excerpt(body, max(0, body.find(b"<" + tag))),
        )
    return {key: value for key, value in node.items() if not key.startswith(("#", "@"))}


def _xml_error(node: Any, body: bytes) -> ProviderError:
    fields = {
        key: value.strip() if isinstance(value, str) else value
        for key, value in _children(node, "<error>", body).items()
    }
    try:
        return msgspec.convert(fields, _WireError, strict=False).public()
    except msgspec.ValidationError as exc:
        error = _validation_error(exc, body, "XML")
        error.position = error.position.replace("$", "<error>", 1)
        raise error from None


def _xml_bool(value: Any, body: bytes) -> bool:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in {"1", "true"}:
        return True
    if text in {"0", "false"}:
        return False
    raise BodyError(
        "XML answer is not the expected shape: <result> is not 0, 1, true or false",
        "<result>",
        _excerpt(body, max(0, body.find(b"<result"))),
    )


def _type_items(items: list[Any], body: bytes, *, cleaned: bool) -> list[DetailedReport]:
    """Rows of ``items``: xmltodict's values of the ``<item>``s, which
    `_clean_item()` cleans first unless that was done (``cleaned``)."""
    if not cleaned:
        items = [_clean_item(item) for item in items]
    try:
        return msgspec.convert(items, list[DetailedReport], strict=False)
    except msgspec.ValidationError as exc:
        error = _validation_error(exc, body, "XML")
        error.position = error.position.replace("$[", "item[", 1)
        raise error from None


def _clean_item(item: Any) -> Any:
    if not isinstance(item, dict):
        return item  # msgspec reports the wrong shape, with its position
    cleaned: dict[str, Any] = {}
    for key, value in item.items():
        if key.startswith(("#", "@")):
            continue  # inter-element whitespace, attributes
        if isinstance(value, str) and key not in _VERBATIM:
            value = value.strip()
            if key == "gsm_track_id":
                value = canonical_id(value)
        cleaned[key] = value
    return cleaned


def _xml_syntax_error(exc: ExpatError, body: bytes, skipped: int) -> BodyError:
    line, column = exc.lineno, exc.offset
    if line == 1:
        column = max(0, column - len(_ROOT_OPEN)) + skipped
    lines = body.splitlines()
    if line - 1 < len(lines):
        offset = sum(len(x) + 1 for x in lines[: line - 1]) + column
    else:
        offset = len(body)
    doctype = body.find(b"<!DOCTYPE")
    if 0 <= doctype <= offset:  # invalid inside the synthetic root: never read or expanded
        return BodyError(
            "XML answer carries a document type declaration (<!DOCTYPE>); "
            "DTDs and entities are refused, never expanded",
            f"byte {doctype}",
            _excerpt(body, doctype),
        )
    return BodyError(
        f"answer is not valid XML: {exc.args[0] if exc.args else exc}",
        f"line {line}, column {column}",
        _excerpt(body, offset),
    )


# --- lxml, where it reads an answer as xmltodict does ---------------------------------

XmlParser = Literal["lxml", "xmltodict"]
"""What reads XML answers (see [`xml_parser()`][organik_async.xml_parser])."""

LXML_MIN_VERSION: Final = (5, 0)
"""An older lxml is left alone: xmltodict reads every answer."""


def xml_parser() -> XmlParser:
    """Which parser reads XML answers.

    Rows and errors are the same with either; lxml reads an answer for less CPU per row
    (see [Performance](../performance.md#decoding-no-network)). The first call (or the
    first XML answer) imports lxml: ``import organik_async`` never does.

    Returns:
        ``"lxml"`` when lxml 5 or later can be imported (the ``lxml`` extra), else
            ``"xmltodict"``.
    """
    return "xmltodict" if _lxml_reader() is None else "lxml"


@functools.cache
def _lxml_reader() -> _LxmlReader | None:
    """The lxml reader, made on first use, so that ``import organik_async`` never
    imports lxml; ``None`` when lxml is missing or older than 5."""
    try:
        from lxml import etree
    except ImportError:
        return None
    if etree.LXML_VERSION < LXML_MIN_VERSION:
        return None
    return _LxmlReader()


class _Tree(NamedTuple):
    """What a parser made of the synthetic root: the value xmltodict gives it."""

    root: Any
    items_cleaned: bool
    """Whether the ``<item>``s' values are already as `_clean_item()` makes them."""


class _NotLikeXmltodict(Exception):
    """lxml would read this answer differently from xmltodict: xmltodict reads it."""


# Namespaces: lxml names an element "{uri}name", xmltodict "prefix:name", and drops
# the declarations xmltodict keeps as attributes; xml: is bound without a declaration.
_NAMESPACE_MARKUP: Final = (b"xmlns", b"<xml:")
# Element names that are not ASCII: XML 1.0's fifth edition (libxml2) allows names
# that its fourth (expat, under xmltodict) refuses. Each match stops at the next
# "<" or ">", so the search is linear however hostile the body.
_NON_ASCII_MARKUP = re.compile(rb"<[^<>]*[\x80-\xff]")


class _LxmlReader:
    """Reads an answer with lxml into exactly the tree xmltodict makes, or declines.

    lxml (libxml2) and xmltodict (expat) agree on well-formed XML without
    attributes or namespaces whose element names are ASCII; there xmltodict's
    tree (``force_list=("item",)``, whitespace kept) is rebuilt from lxml's:
    an element without children is its text (``None`` if empty), one with
    children a dict of them (a name seen twice: a list; ``item``: always a
    list) plus ``"#text"``, the text between them. ``<item>``s come out
    already as `_clean_item()` makes them.

    Everything else is declined (``None``) and read by xmltodict: a body lxml
    refuses (so every syntax, encoding and DOCTYPE error is xmltodict's, with
    its position), attributes, ``xmlns`` or the ``xml:`` prefix, names that
    are not ASCII, nesting past libxml2's 256 levels, and an ``<item>`` whose
    fields repeat, hold elements or hold an ``<item>``. No entity is expanded
    (there is no DTD to declare one), nothing is fetched, huge_tree is off.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _tools(self) -> tuple[etree.XMLParser, etree.XPath, etree.XPath]:
        """This thread's parser and XPath queries (neither is shared between threads)."""
        tools: tuple[etree.XMLParser, etree.XPath, etree.XPath] | None = getattr(
            self._local, "tools", None
        )
        if tools is None:
            from lxml import etree

            parser = etree.XMLParser(
                encoding="utf-8",
                resolve_entities=False,
                load_dtd=False,
                no_network=True,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
                collect_ids=False,
            )
            tools = (parser, etree.XPath("count(//*)"), etree.XPath("boolean(//@*)"))
            self._local.tools = tools
        return tools

    def read(self, wrapped: bytes) -> _Tree | None:
        """The tree of ``wrapped`` (the body inside the synthetic root), or ``None``."""
        if any(markup in wrapped for markup in _NAMESPACE_MARKUP):
            return None
        if not wrapped.isascii() and _NON_ASCII_MARKUP.search(wrapped):
            return None
        from lxml import etree

        parser, count_elements, has_attributes = self._tools()
        try:
            root = etree.fromstring(wrapped, parser)
        except etree.LxmlError:
            return None
        # An attribute needs a "=": only then is the tree searched for one.
        if b"=" in wrapped and has_attributes(root):
            return None
        seen = [0]
        try:
            value = _lxml_value(root, seen)
        except (_NotLikeXmltodict, RecursionError):
            return None
        # Every element was accounted for: no field of an <item> holds an element.
        if seen[0] != count_elements(root):
            return None
        return _Tree(value, items_cleaned=True)


def _lxml_value(element: etree._Element, seen: list[int]) -> Any:
    """xmltodict's value of ``element`` (no attributes); ``seen[0]`` counts the
    elements read. Recursion is bounded by libxml2's 256 levels."""
    seen[0] += 1
    if not len(element):
        return element.text or None  # an empty CDATA section is "" to lxml
    node: dict[str, Any] = {}
    text = [element.text or ""]
    for child in element:
        tag = child.tag
        value = _lxml_item(child, seen) if tag == "item" else _lxml_value(child, seen)
        if tag not in node:
            node[tag] = [value] if tag == "item" else value
        elif isinstance(node[tag], list):
            node[tag].append(value)
        else:
            node[tag] = [node[tag], value]
        text.append(child.tail or "")
    joined = "".join(text)
    if joined:
        node["#text"] = joined
    return node


def _lxml_item(item: etree._Element, seen: list[int]) -> Any:
    """An ``<item>`` as `_clean_item()` makes xmltodict's value of it. Its
    fields are counted as elements whether or not they hold any: the caller's
    count of every element tells."""
    size = len(item)
    seen[0] += 1 + size
    if not size:
        return item.text or None
    fields: dict[str, Any] = {}
    for child in item:
        key, text = child.tag, child.text
        value: Id | None = text
        if not text:
            value = None  # an empty CDATA section is "" to lxml
        elif key not in _VERBATIM:
            value = text.strip()
            if key == "gsm_track_id":
                value = canonical_id(value)
        fields[key] = value
    if len(fields) != size or "item" in fields:
        raise _NotLikeXmltodict  # a repeated field is a list to xmltodict
    return fields


def decode(fmt: Format, body: bytes) -> Decoded:
    """Decode an answer in ``fmt``."""
    return decode_json(body) if fmt == "json" else decode_xml(body)


# --- Rows out (round trips, the simulator, the CLI's writers) ---------------------------


def encode_rows_json(rows: Iterable[DetailedReport]) -> bytes:
    """The JSON envelope of a successful answer carrying ``rows``."""
    return _JSON_ENCODER.encode({"response": {"result": True, "data": list(rows)}})


def encode_rows_xml(rows: Iterable[DetailedReport]) -> bytes:
    """Rows as the provider's XML: bare top-level ``<item>``s after the declaration.

    Raises ``ValueError`` for a row whose text holds a character XML 1.0
    cannot carry at all (``"\\x00"``, say), rather than writing a body no
    parser would read.
    """
    parts = [b'<?xml version="1.0" encoding="UTF-8" ?>\n']
    for row in rows:
        fields = {name: _xml_text(name, value) for name, value in _fields(row)}
        item: str = xmltodict.unparse({"item": fields}, full_document=False)
        parts.append(_keep_cr(item).encode() + b"\n")
    return b"".join(parts)


def _fields(row: DetailedReport) -> Iterable[tuple[str, Any]]:
    return msgspec.structs.asdict(row).items()


def _xml_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        # isoformat, not strftime: strftime writes year 999 as "999", which no
        # parser reads back; the provider's "YYYY-MM-DD HH:MM:SS" is the same text.
        return value.isoformat(sep=" ")
    text = str(value)
    if _XML_INVALID.search(text):
        raise ValueError(f"{name} {text!r} contains a character XML cannot carry")
    return text
