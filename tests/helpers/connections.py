"""What a client's connection pools still hold: the tests' leak check, for both backends.

Reads private state on purpose (httpcore's pools, aiohttp's connector): no public
API says whether a cancelled request left a connection lent out.
"""

from __future__ import annotations

import httpx

from organik_async import OrganikClient
from organik_async._http import AiohttpSender, AutoSender, HttpxSender


def _senders(client: OrganikClient) -> tuple[HttpxSender, AiohttpSender | None]:
    sender = client._requester.sender
    if isinstance(sender, AutoSender):
        return sender.httpx, sender.aiohttp
    assert isinstance(sender, HttpxSender)
    return sender, None


def httpx_pools(client: OrganikClient) -> tuple[httpx.AsyncClient, ...]:
    """The httpx pools the client opened so far (or the caller's own client)."""
    return _senders(client)[0].pools.pools


def busy_connections(client: OrganikClient) -> int:
    """Requests httpcore holds, connections neither idle nor closed, and aiohttp's lent out."""
    busy = 0
    on_httpx, on_aiohttp = _senders(client)
    for pool in on_httpx.pools.pools:
        core = pool._transport._pool  # type: ignore[attr-defined]
        busy += len(core._requests)
        busy += sum(1 for c in core.connections if not (c.is_idle() or c.is_closed()))
    session = None if on_aiohttp is None else on_aiohttp._session
    if session is not None:  # the aiohttp backend: connections lent out and not returned
        busy += len(session.connector._acquired)  # type: ignore[union-attr]
    return busy
