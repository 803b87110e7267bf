"""API keys: the documented demo key, and how keys are shown (never whole).

The provider's key is ``MD5(username + password)`` in hex: 32 characters. The
simulator keeps only digests of the keys it accepts, and reports the keys it
sees in redacted form, because a key in a URL is a secret even in a test log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

__all__ = ["DEMO_API_KEY", "KEY_LENGTH", "KeyRing", "redact_key"]

KEY_LENGTH: Final = 32

DEMO_API_KEY: Final = hashlib.md5(b"demo" + b"demo").hexdigest()
"""The key the simulator accepts by default: ``MD5("demo" + "demo")``, by the
provider's own rule for keys (username ``demo``, password ``demo``)."""


def redact_key(key: str) -> str:
    """A key as it may be shown, as the simulator's stats show keys.

    Args:
        key: the key.

    Returns:
        Its first 4 characters and an ellipsis, or only its length if it is short.
    """
    if len(key) < 16:
        return f"…({len(key)} chars)"
    return f"{key[:4]}…"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    """The accepted keys, stored as SHA-256 digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            raise ValueError("at least one API key must be accepted")
        for key in keys:
            if len(key) != KEY_LENGTH:
                raise ValueError(
                    f"an accepted API key must be {KEY_LENGTH} characters like the provider's "
                    f"(got {redact_key(key)})"
                )
        self._digests = frozenset(_digest(key) for key in keys)
        # Kept only so that FakeOrganikAPI.client() can hand it to a client.
        self._first = keys[0]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _digest(key) in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._digests)} keys)"

    @property
    def first(self) -> str:
        """The first accepted key, to give to an in-process client."""
        return self._first
