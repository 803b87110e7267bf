"""Reading a request the way the provider does: the URL, then the body.

Each refusal is a `ProviderRefusal` carrying the provider's API error
code (see the spec's table), so the app answers it in the provider's error
envelope, worded as the provider words it. The parser accepts what the
provider's own sample clients send: IDs as numbers or strings, XML text padded
with spaces, a lone ID instead of a list, empty strings for the kinds not
asked about (``[""]``), format segments in any letter case, and whatever
``Content-Type`` (the format is the URL's). It is strict where the spec is: a
bool, float, object or list where an ID belongs is code 96.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from xml.parsers.expat import ExpatError

import msgspec
import xmltodict

from .._models import Format
from ._data import IdKey, normalize_id
from ._wire import error_message

__all__ = [
    "ID_FIELDS",
    "ProviderRefusal",
    "Query",
    "Route",
    "check_route",
    "parse_body",
    "parse_route",
]

REQUEST_NAME: Final = "detailedreport"
ID_FIELDS: Final = ("transaction_ids", "delivery_track_ids", "gsm_track_ids")
_FORMATS: Final[tuple[Format, ...]] = ("json", "xml")


class ProviderRefusal(Exception):
    """The provider's ``result: false`` answer: an API error code and its message.

    ``detail`` is the simulator's own explanation, for a human reading the
    answer's ``X-Simulator-Detail`` header; the provider's message has none.
    """

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.message = error_message(code)
        self.detail = detail
        super().__init__(f"{self.message} {detail}".strip())


class Route(NamedTuple):
    """The parts of ``/v2/{api_key}/{request_name}/{request_type}/{response_type}/``."""

    api_key: str
    request_name: str
    request_format: str
    response_format: str

    def answer_format(self) -> Format:
        """The format to answer in, even for a refusal of a bad type segment."""
        for candidate in (self.response_format, self.request_format):
            if candidate in _FORMATS:
                return "xml" if candidate == "xml" else "json"
        return "json"


def parse_route(path: str) -> Route | None:
    """Split an API path; ``None`` when it is not ``/v2/...`` at all (HTTP 404).

    Both type segments are optional: the request type defaults to JSON and
    the response type to the request type. They are read in any letter case
    (``/JSON/``), and a trailing slash is optional too.
    """
    parts = path.strip("/").split("/")
    if len(parts) < 3 or len(parts) > 5 or parts[0] != "v2":
        return None
    request_format = parts[3].lower() if len(parts) > 3 else "json"
    response_format = parts[4].lower() if len(parts) > 4 else request_format
    return Route(parts[1], parts[2], request_format, response_format)


def check_route(route: Route) -> tuple[Format, Format]:
    """The request and response formats, or the refusal for a bad name/type.

    The key is checked by the caller first, as the provider authenticates
    before it routes.
    """
    if route.request_name != REQUEST_NAME:
        raise ProviderRefusal(88, "this simulator serves detailedreport only")
    if route.request_format not in _FORMATS:
        raise ProviderRefusal(92, "the request type must be json or xml")
    if route.response_format not in _FORMATS:
        raise ProviderRefusal(91, "the response type must be json or xml")
    request: Format = "xml" if route.request_format == "xml" else "json"
    response: Format = "xml" if route.response_format == "xml" else "json"
    return request, response


@dataclass(frozen=True, slots=True)
class Query:
    """The IDs of one request, normalised for lookup."""

    transaction_ids: list[IdKey]
    delivery_track_ids: list[str]
    gsm_track_ids: list[IdKey]

    @property
    def id_count(self) -> int:
        """How many IDs the request carried, duplicates included (empty strings not)."""
        return len(self.transaction_ids) + len(self.delivery_track_ids) + len(self.gsm_track_ids)


def parse_body(body: bytes, fmt: Format) -> Query:
    """The IDs of a JSON or XML body; refusals 97 (not JSON/XML) and 96 (bad shape)."""
    data = _json_data(body) if fmt == "json" else _xml_data(body)
    values = {field: _as_list(data.get(field)) for field in ID_FIELDS}
    for field, items in values.items():
        for position, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, int | str):
                kind = "null" if item is None else type(item).__name__
                raise ProviderRefusal(
                    96, f"{field}[{position}] must be a number or a string, got {kind}"
                )
    # The JS and ASP samples send the kinds they do not ask about as [""]: no ID.
    deliveries = (str(item).strip() for item in values["delivery_track_ids"])
    return Query(
        transaction_ids=_keys(values["transaction_ids"]),
        delivery_track_ids=[text for text in deliveries if text],
        gsm_track_ids=_keys(values["gsm_track_ids"]),
    )


def _keys(items: list[int | str]) -> list[IdKey]:
    return [normalize_id(item) for item in items if not isinstance(item, str) or item.strip()]


def _as_list(value: Any) -> list[Any]:
    # A missing or empty field is no IDs; a lone value is one ID (an XML body
    # with one element of a kind decodes to a scalar, and lenient clients do
    # the same in JSON).
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _json_data(body: bytes) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProviderRefusal(97, f"the body is not valid JSON ({exc})") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise ProviderRefusal(96, 'the body must be a JSON object with a "data" object')
    return data


def _xml_data(body: bytes) -> dict[str, Any]:
    try:
        # Leading whitespace is forgiven: the seeds' own example body is indented.
        document = xmltodict.parse(body.lstrip(), force_list=ID_FIELDS, disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise ProviderRefusal(97, f"the body is not valid XML ({exc})") from None
    if not isinstance(document, dict) or len(document) != 1:
        raise ProviderRefusal(97, "the body is not valid XML")
    ((root_name, root),) = document.items()
    if root_name == "data":
        data = root
    elif isinstance(root, dict) and "data" in root:
        data = root["data"]
    else:
        raise ProviderRefusal(96, "the body must be a <document> with a <data> element")
    if data is None:  # <data/>: no IDs at all
        return {}
    if not isinstance(data, dict):
        raise ProviderRefusal(96, "<data> must contain ID elements")
    # An empty element (<gsm_track_ids/>) carries no ID; skip it.
    return {
        key: [item for item in value if item is not None] if isinstance(value, list) else value
        for key, value in data.items()
    }
