"""Decoding, no network: what turning an answer's bytes into rows costs, and the limit.

``python -m benchmarks decode``. The bodies are real answers of the simulator
(fetched once, in-process, for 500 and 100 000 rows by GSM track ID), so they
have the provider's shapes: dates with a space, ``null`` finish dates, the
simulator's default track IDs. Each decoder turns a whole body into rows:

* **organik_async JSON**: the client's own path (``_codec.decode_json``:
  envelope, error check, rows as frozen ``DetailedReport`` Structs);
* **msgspec Structs, bare**: one ``msgspec.json.Decoder`` of an envelope of the
  same Structs, nothing else: the limit for typed rows;
* ``json.loads`` and ``orjson.loads``: dicts, untyped, unvalidated;
* **pydantic v2**: the same envelope as ``BaseModel``s, ``model_validate_json``
  (pydantic's fastest path), lax like ours;
* **organik_async XML**, twice: the client's XML path (``_codec.decode_xml``)
  read by xmltodict (the default) and by lxml (the ``lxml`` extra, which
  ``decode_xml`` uses when it is installed), then typed by msgspec; against
  **bare xmltodict.parse** and **bare lxml** (``lxml.etree.fromstring`` and a
  dict per ``<item>``) of the same body (dicts of strings, untyped).

Client CPU time (``time.process_time``) per call is what is measured, so a
busy machine slows the figures less than it would wall time; the decoders take
turns, round after round, and each figure is the median round.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any, Final

import anyio
import httpx
import msgspec
import orjson
import pydantic
import xmltodict
from lxml import etree

from organik_async import DetailedReport, Format

# Private on purpose: this part measures the client's decoders alone, on bytes, and no
# public API decodes an answer without sending a request (the request path calls these,
# through _codec.decode, on every answer); _decode_xml takes the parser to use, where
# decode_xml picks lxml when it is installed. Everything else here uses the public API.
from organik_async._codec import _decode_xml, _lxml_reader, decode_json
from organik_async.testing import Dataset, FakeOrganikAPI

from ._common import Log, report_path
from ._methods import ENVELOPE_DECODER

DEFAULT_SIZES: Final = (500, 100_000)
MIN_ROUND_SECONDS: Final = 0.02
"""A round repeats a call until it has used this much CPU, so a small body is
timed over many calls rather than one (process_time is coarse on some hosts)."""


# --- the decoders -----------------------------------------------------------------------


class _PydanticRow(pydantic.BaseModel):
    """`DetailedReport` as a pydantic user would write it (`_check_mirror` keeps the two
    in step)."""

    model_config = pydantic.ConfigDict(frozen=True)

    gsm: int
    transaction_id: int
    gsm_track_id: int | str
    delivery_track_id: str | None = None
    create_date: datetime
    start_date: datetime
    finish_date: datetime | None = None
    status: int
    sms_count: int
    credit_amount: int
    is_foreign_gsm: bool
    errorcode: int = 0


class _PydanticResponse(pydantic.BaseModel):
    result: bool
    data: list[_PydanticRow] | None = None


class _PydanticEnvelope(pydantic.BaseModel):
    response: _PydanticResponse


def _ours_json(body: bytes) -> int:
    return len(decode_json(body).rows)


def _check_mirror() -> None:
    ours = [f.name for f in msgspec.structs.fields(DetailedReport)]
    if list(_PydanticRow.model_fields) != ours:
        raise RuntimeError(f"the pydantic row's fields are not DetailedReport's: {ours}")


def _msgspec(body: bytes) -> int:
    return len(ENVELOPE_DECODER.decode(body).response.data)


def _json_loads(body: bytes) -> int:
    return len(json.loads(body)["response"]["data"])


def _orjson_loads(body: bytes) -> int:
    return len(orjson.loads(body)["response"]["data"])


def _pydantic(body: bytes) -> int:
    return len(_PydanticEnvelope.model_validate_json(body).response.data or ())


def _ours_xml(body: bytes) -> int:
    return len(_decode_xml(body, None).rows)


_LXML_READER: Final = _lxml_reader()


def _ours_xml_lxml(body: bytes) -> int:
    if _LXML_READER is None:
        raise RuntimeError("lxml 5 or later is not installed: pip install -e '.[bench]'")
    return len(_decode_xml(body, _LXML_READER).rows)


def _xml_items(tree: dict[str, Any]) -> Any:
    """The ``<item>``s of a parsed answer, bare (the provider's example) or wrapped in
    ``<response><result>1</result><data>`` (what the simulator answers by default)."""
    root = tree["root"]
    if "response" in root:
        root = root["response"]["data"]
    return root["item"]


def _xmltodict_bare(body: bytes) -> int:
    # The provider's XML may have no root element (bare top-level <item>s), which
    # no parser accepts: the body is given one, as the client does (see _rooted).
    items = _xml_items(xmltodict.parse(body))
    return len(items) if isinstance(items, list) else 1


def _lxml_bare(body: bytes) -> int:
    # The same rooted body as bare xmltodict gets; a dict of strings per <item>.
    root = etree.fromstring(body)
    return len([{field.tag: field.text for field in item} for item in root.iter("item")])


@dataclass(frozen=True, slots=True)
class Decoder:
    key: str
    """What the results file and the ratios know it by."""
    name: str
    fmt: Format
    decode: Callable[[bytes], int]
    typed: str
    """What the rows come out as."""


DECODERS: Final = (
    Decoder("ours_json", "organik_async JSON (decode_json)", "json", _ours_json, "frozen Structs"),
    Decoder(
        "msgspec", "msgspec Structs, bare decoder (the limit)", "json", _msgspec, "frozen Structs"
    ),
    Decoder("orjson", "orjson.loads", "json", _orjson_loads, "dicts, untyped"),
    Decoder("json", "json.loads", "json", _json_loads, "dicts, untyped"),
    Decoder("pydantic", "pydantic v2 (model_validate_json)", "json", _pydantic, "frozen models"),
    Decoder(
        "ours_xml", "organik_async XML, xmltodict (the default)", "xml", _ours_xml, "frozen Structs"
    ),
    Decoder("xmltodict", "xmltodict.parse, bare", "xml", _xmltodict_bare, "dicts of strings"),
    Decoder(
        "ours_xml_lxml",
        "organik_async XML, lxml (the lxml extra)",
        "xml",
        _ours_xml_lxml,
        "frozen Structs",
    ),
    Decoder(
        "lxml", "lxml.etree.fromstring + dict per item, bare", "xml", _lxml_bare, "dicts of strings"
    ),
)
ROOTED: Final = frozenset({"xmltodict", "lxml"})
"""The bare parsers get the body inside a root element, as the client parses it."""


# --- the bodies ---------------------------------------------------------------------------


def _rooted(xml: bytes) -> bytes:
    """The XML body inside a root element, its declaration dropped."""
    if xml.startswith(b"<?xml"):
        xml = xml[xml.index(b"?>") + 2 :]
    return b"<root>" + xml + b"</root>"


async def _fetch_answer(fake: FakeOrganikAPI, ids: list[int | str], fmt: Format) -> bytes:
    body: bytes
    if fmt == "json":
        body = msgspec.json.encode({"data": {"gsm_track_ids": ids}})
    else:
        body = xmltodict.unparse({"document": {"data": {"gsm_track_ids": ids}}}).encode()
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://sim") as http:
        response = await http.post(report_path(fmt), content=body)
        response.raise_for_status()
        return response.content


def bodies(rows: int) -> dict[Format, bytes]:
    """The simulator's JSON and XML answers for the first ``rows`` GSM track IDs of
    ``Dataset.generate(rows)``: the exact bytes it serves, fetched in-process."""
    fake = FakeOrganikAPI(Dataset.generate(rows))
    ids = list(fake.dataset.gsm_track_ids())
    formats: tuple[Format, ...] = ("json", "xml")
    return {fmt: anyio.run(_fetch_answer, fake, ids, fmt) for fmt in formats}


# --- measuring --------------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    """One decoder on one body: CPU µs per row, one value per round."""

    key: str
    decoder: str
    fmt: Format
    rows: int
    body_bytes: int
    typed: str
    us_per_row: list[float] = field(default_factory=list)


def _time_round(decode: Callable[[bytes], int], body: bytes, rows: int) -> float:
    """CPU µs per row over one round (as many calls as fill MIN_ROUND_SECONDS)."""
    gc.collect()
    calls = 0
    started = time.process_time()
    while True:
        got = decode(body)
        calls += 1
        used = time.process_time() - started
        if used >= MIN_ROUND_SECONDS:
            break
    if got != rows:
        raise RuntimeError(f"decoded {got} rows, expected {rows}")
    return used / calls / rows * 1e6


def run_decode(sizes: Sequence[int], rounds: int, log: Log) -> list[Figure]:
    """Every decoder on each size's bodies; ``rounds`` rounds (at most 3 for bodies of
    10 000 rows or more, where one XML call alone takes seconds)."""
    _check_mirror()
    figures: list[Figure] = []
    for rows in sizes:
        payload = bodies(rows)
        payload_for: dict[str, bytes] = {
            d.key: _rooted(payload["xml"]) if d.key in ROOTED else payload[d.fmt] for d in DECODERS
        }
        these = [Figure(d.key, d.name, d.fmt, rows, len(payload[d.fmt]), d.typed) for d in DECODERS]
        for decoder in DECODERS:
            decoder.decode(payload_for[decoder.key])  # warm (imports, caches)
        for round_ in range(rounds if rows < 10_000 else min(rounds, 3)):
            order = list(zip(DECODERS, these, strict=True))
            for decoder, figure in order if round_ % 2 == 0 else order[::-1]:
                figure.us_per_row.append(
                    _time_round(decoder.decode, payload_for[decoder.key], rows)
                )
        for figure in these:
            log(f"  {rows:>7,} rows  {figure.decoder:<44} {median(figure.us_per_row):7.3f} µs/row")
        figures += these
    return figures


def run_decode_part(sizes: Sequence[int], rounds: int, log: Log) -> dict[str, Any]:
    """The figures the results file keeps: every decoder on every body, and the libxml2
    under lxml (its speed is libxml2's)."""
    return {
        "decoders": run_decode(sizes, rounds, log),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
    }
