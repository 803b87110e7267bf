"""Running a test with each XML parser: xmltodict (the default) and lxml (the extra).

A module whose tests read XML answers defines a fixture with :func:`use_xml_parser`
(``params=XML_PARSERS``), so that each test runs once per parser; lxml is in the
``test`` extra, and a missing lxml fails the lxml runs rather than skipping them.
"""

from __future__ import annotations

from typing import Final

import pytest

from organik_async import _codec
from organik_async._codec import XmlParser

XML_PARSERS: Final[tuple[XmlParser, ...]] = ("xmltodict", "lxml")


def use_xml_parser(monkeypatch: pytest.MonkeyPatch, parser: XmlParser) -> XmlParser:
    """Make every XML answer read with ``parser`` until the test ends."""
    reader = _codec._lxml_reader() if parser == "lxml" else None
    if parser == "lxml" and reader is None:
        raise RuntimeError("lxml 5 or later is not installed: pip install -e '.[test]'")
    monkeypatch.setattr(_codec, "_lxml_reader", lambda: reader)
    assert _codec.xml_parser() == parser
    return parser
