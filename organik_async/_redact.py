"""Masking the API key by its value, wherever it could show.

The provider puts the key in the URL path, so it travels with every request
and can come back in places nobody planned: a proxy's error page, an echoing
server, an exception's message. Masking by *position* (the path segment after
``/v2/``) fails as soon as the URL is not the one we expected (a base URL
ending in ``/v2``), so everything shown goes through one `Redactor`
built once per client, which masks the key's *value*: any run of
`MIN_RUN` or more consecutive characters of the key, in any letter case,
becomes ``***``. Half a key, an upper-cased key, a key cut at an excerpt's edge
are all caught.

`Secret` holds the key itself: its ``repr`` is masked, so a traceback
formatted with ``capture_locals=True`` does not show it. `install_log_filter()`
puts one filter on the ``organik_async``, ``httpx``, ``httpcore`` and ``aiohttp`` loggers that
applies every live client's redactor to each record they emit.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Final

__all__ = ["MASK", "MIN_RUN", "Redactor", "Secret", "install_log_filter"]

MASK: Final = "***"
MIN_RUN: Final = 8
"""The shortest run of the key's characters that is masked (a 32-character key
has 25 such windows; a run of 8 hex digits occurs by chance about once in 4 GB)."""

# A logger's filters see only the records logged on it, not its children's, so
# httpcore's child loggers are named one by one.
_LOGGERS: Final = (
    "organik_async",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
)


class Secret(str):
    """A string that never shows itself in a ``repr`` (tracebacks with locals)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{MASK}'"


class Redactor:
    """Masks every run of ``MIN_RUN`` or more characters of ``secret``, any case."""

    __slots__ = ("__weakref__", "_bytes", "_length", "_lower", "_text")

    def __init__(self, secret: str) -> None:
        lower = secret.lower()
        self._lower = lower
        self._length = len(secret)
        if len(lower) < MIN_RUN:
            windows = [lower] if lower else []
        else:
            windows = sorted({lower[i : i + MIN_RUN] for i in range(len(lower) - MIN_RUN + 1)})
        pattern = "|".join(re.escape(window) for window in windows) or r"(?!)"
        self._text = re.compile(pattern, re.IGNORECASE)
        # Bytes go through latin-1 (one byte, one character), so offsets agree.
        self._bytes = re.compile(pattern.encode("latin-1", "replace"), re.IGNORECASE)

    def text(self, value: str) -> str:
        """``value`` with every run of the key's characters replaced by ``***``."""
        if not self._length:
            return value
        match = self._text.search(value)
        if match is None:
            return value
        parts: list[str] = []
        end = 0
        while match is not None:
            start = match.start()
            stop = start + self._run(value, start)
            parts.append(value[end:start])
            parts.append(MASK)
            end = stop
            match = self._text.search(value, end)
        parts.append(value[end:])
        return "".join(parts)

    def bytes(self, value: bytes) -> bytes:
        """`text()` for raw bytes (an echoed body)."""
        if not self._length or self._bytes.search(value) is None:
            return value
        return self.text(value.decode("latin-1")).encode("latin-1")

    def _run(self, text: str, start: int) -> int:
        """The length of the longest run of the key starting at ``text[start]``."""
        best = 0
        head = text[start : start + MIN_RUN].lower()
        offset = self._lower.find(head)
        while offset >= 0:
            length = MIN_RUN
            while (
                offset + length < self._length
                and start + length < len(text)
                and text[start + length].lower() == self._lower[offset + length]
            ):
                length += 1
            best = max(best, length)
            offset = self._lower.find(head, offset + 1)
        return best or MIN_RUN


class _RedactingFilter(logging.Filter):
    """Renders a record and masks every live client's key in it."""

    def __init__(self) -> None:
        super().__init__()
        self.redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(self.redactors)
        if not redactors:
            return True
        message = original = record.getMessage()
        for redactor in redactors:
            message = redactor.text(message)
        if message != original:
            record.msg = message
            record.args = None
        return True


_FILTER: Final = _RedactingFilter()


def install_log_filter(redactor: Redactor) -> None:
    """Mask ``redactor``'s key in every record of our, httpx's and httpcore's loggers.

    The redactor is held weakly: when its client is gone, so is its masking.
    """
    _FILTER.redactors.add(redactor)
    for name in _LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
