"""One answer and the exchange it is sent in: what faults act on.

An `Answer` is complete (status, headers, body, and what the stats
should record) before anything is sent. A fault changes it, or sends it in
its own way, through the `Exchange` of the request, which knows how
the provider words a refusal in this request's format and counts every byte
and status that leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._models import Format
from ._asgi import Send
from ._stats import Outcome, Stats

__all__ = ["Answer", "Exchange"]

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer, before any fault touches its delivery."""

    status: int
    content_type: bytes
    body: bytes
    outcome: Outcome
    rows: int = 0
    api_code: int | None = None
    headers: Headers = ()


class Exchange:
    """One request being answered: the format it is answered in, and the way out.

    ``refuse(code, status)`` builds the provider's ``result: false`` answer
    for this request (its number, the clock's time, its format).
    """

    __slots__ = ("_refuse", "_send", "_stats", "fmt", "number")

    def __init__(
        self,
        number: int,
        fmt: Format,
        send: Send,
        stats: Stats,
        refuse: Callable[[int, int], Answer],
    ) -> None:
        self.number = number
        self.fmt = fmt
        self._send = send
        self._stats = stats
        self._refuse = refuse

    def refusal(self, code: int, status: int = 200) -> Answer:
        """The provider's error envelope with API code ``code``, sent with ``status``."""
        return self._refuse(code, status)

    async def start(self, answer: Answer, body_length: int) -> None:
        """Send the status line and headers, announcing ``body_length`` bytes."""
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(body_length).encode()),
            *answer.headers,
        ]
        await self._send(
            {"type": "http.response.start", "status": answer.status, "headers": headers}
        )
        self._stats.http_statuses[answer.status] += 1
        if answer.api_code is not None:
            self._stats.api_error_codes[answer.api_code] += 1
        self._stats.rows_served += answer.rows

    async def body(self, chunk: bytes, *, more: bool = False) -> None:
        """Send part of the body (the last part unless ``more``)."""
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
        self._stats.bytes_served += len(chunk)

    async def send_whole(self, answer: Answer) -> Outcome:
        """Send the answer as it is, in one piece."""
        await self.start(answer, len(answer.body))
        await self.body(answer.body)
        return answer.outcome
