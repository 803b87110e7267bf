"""The answer as it came: status, headers and body of a successful request.

Debugging with the provider needs what was on the wire, not only the rows it
decoded to. openai-python's convention is ``client.with_raw_response.<method>(...)``
returning the HTTP response with a ``parse()`` for what the plain method returns;
[`RawResponse`][organik_async.RawResponse] is ours. It holds copies made when the
answer arrived, with the API key masked in every header and in the body (a provider
or a proxy may echo the URL), so it is safe to log, print or attach to a ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from ._exceptions import RequestInfo
from ._models import DetailedReport
from ._redact import Redactor

__all__ = ["RawResponse", "masked_headers"]


class RawResponse:
    """A successful answer as it came, the API key masked;
    [`parse()`][organik_async.RawResponse.parse] gives the rows the plain call returns.

    ```python
    raw = await client.with_raw_response.detailed_report(
        transaction_ids=[20230000001]
    )
    print(raw.status_code, raw.headers.get("content-type"), raw.text)
    rows = raw.parse()
    ```

    Returned by ``client.with_raw_response.detailed_report(...)``
    ([`RawResponses`][organik_async.RawResponses]); never built by hand.
    """

    __slots__ = (
        "_rows",
        "attempts",
        "content",
        "elapsed",
        "headers",
        "method",
        "request",
        "status_code",
        "url",
    )

    status_code: int
    """The HTTP status."""
    headers: httpx.Headers
    """The answer's headers (case-insensitive, repeated ones kept), the key masked."""
    content: bytes
    """The body, decompressed, the key masked."""
    url: str
    """The request's URL, the key masked."""
    method: str
    """``"POST"``."""
    attempts: int
    """The attempts the request took (1 unless it was retried)."""
    elapsed: float
    """Seconds the successful attempt took, from sending to the last byte."""
    request: RequestInfo
    """What was asked (URL, formats, number of IDs)."""

    def __init__(
        self,
        *,
        status_code: int,
        headers: httpx.Headers,
        content: bytes,
        request: RequestInfo,
        attempts: int,
        elapsed: float,
        rows: list[DetailedReport],
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request = request
        self.url = request.url
        self.method = "POST"
        self.attempts = attempts
        self.elapsed = elapsed
        self._rows = rows

    @property
    def text(self) -> str:
        """The body as text (UTF-8, as the provider sends; undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def parse(self) -> list[DetailedReport]:
        """The rows, as [`detailed_report()`][organik_async.OrganikClient.detailed_report]
        returns them for the same call.

        Returns:
            The rows, in answer order, each ``gsm_track_id`` once (unless ``dedupe=False``).
        """
        return list(self._rows)

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code}] {len(self.content)} bytes from {self.url}>"


def masked_headers(headers: Mapping[str, str], redactor: Redactor) -> httpx.Headers:
    """A copy of ``headers`` (httpx's or aiohttp's) with the key masked in names and values,
    repeated headers kept."""
    multi = getattr(headers, "multi_items", None)
    pairs: Iterable[tuple[str, str]] = multi() if callable(multi) else headers.items()
    return httpx.Headers([(redactor.text(k), redactor.text(v)) for k, v in pairs])
