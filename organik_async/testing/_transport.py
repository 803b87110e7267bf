"""In-process transport: httpx.ASGITransport, plus what a socket would do.

``httpx.ASGITransport`` re-raises whatever the app raises and asserts that the
app completed its response. A real server that stops part-way through a body
just closes the connection, and the client sees ``httpx.RemoteProtocolError``.
This wrapper gives the in-process client that same error, so code under test
meets the same exception in-process as over TCP.
"""

from __future__ import annotations

import httpx

from ._asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FakeTransport"]


class _Dropped(Exception):
    """The app returned without finishing its response."""


class FakeTransport(httpx.AsyncBaseTransport):
    """Send requests straight to an ASGI app, with no sockets.

    Like ``httpx.ASGITransport`` (the whole body is buffered, so a trickled
    body only makes the answer late), except that an answer the app leaves
    unfinished raises ``httpx.RemoteProtocolError``, as over TCP.
    [`FakeOrganikAPI.transport()`][organik_async.testing.FakeOrganikAPI.transport] makes one.

    Args:
        app: the ASGI app to send to (a [`FakeOrganikAPI`][organik_async.testing.FakeOrganikAPI]).
        client: the client address the app sees.
    """

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self._app = app
        self._inner = httpx.ASGITransport(app=self._run, client=client)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        complete = False

        async def tracking_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        await self._app(scope, receive, tracking_send)
        if not complete:
            raise _Dropped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request to the app (httpx calls this).

        Args:
            request: the request.

        Returns:
            The app's answer, its body read whole.

        Raises:
            httpx.RemoteProtocolError: the app left its answer unfinished (a dropped
                connection, as a server would).
        """
        try:
            return await self._inner.handle_async_request(request)
        except _Dropped:
            pass
        # Raised outside the except block: nothing chained that could carry a URL.
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a complete response.", request=request
        )

    async def aclose(self) -> None:
        """Close the transport (httpx calls this when its client closes)."""
        await self._inner.aclose()
