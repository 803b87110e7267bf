"""What a client's connection pools still hold: the tests' leak check, for both backends.

Reads private state on purpose (httpcore's pools, aiohttp's connector): no public
API says whether a cancelled request left a connection lent out.
"""

from __future__ import annotations

from organik_async import OrganikClient


def busy_connections(client: OrganikClient) -> int:
    """Requests httpcore holds, connections neither idle nor closed, and aiohttp's lent out."""
    busy = 0
    for pool in client._requester.pools.pools:
        core = pool._transport._pool  # type: ignore[attr-defined]
        busy += len(core._requests)
        busy += sum(1 for c in core.connections if not (c.is_idle() or c.is_closed()))
    session = client._requester._aiohttp._session if client._requester._aiohttp else None
    if session is not None:  # the aiohttp backend: connections lent out and not returned
        busy += len(session.connector._acquired)  # type: ignore[union-attr]
    return busy
