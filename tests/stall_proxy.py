"""A TCP proxy a test can stall: a database that stops answering without closing anything.

``pause()`` stops forwarding in both directions, for open and new connections alike, and
closes nothing (as a network partition or a hung middlebox would); ``pause(after=b"...")``
first lets through the client's next chunk containing those bytes (the statement reaches
the server, its answer never comes back). ``resume()`` forwards again, including whatever
was held, and passes on closes that happened meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib


class StallProxy:
    """Forwards 127.0.0.1:<port> to ``target``; pause/resume at will."""

    def __init__(self, host: str = "127.0.0.1", port: int = 3306) -> None:
        self.target = (host, port)
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.pause_after: bytes | None = None
        self.accepted = 0  # connections accepted so far
        self.open = 0  # client connections not yet closed on both sides
        self.idle = asyncio.Event()  # set while no connection is open
        self.idle.set()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> StallProxy:
        """Listen on an ephemeral port of 127.0.0.1."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def pause(self, after: bytes | None = None) -> None:
        """Stop forwarding now, or right after a client chunk containing ``after``."""
        if after is None:
            self.flowing.clear()
        else:
            self.pause_after = after

    def resume(self) -> None:
        """Forward again."""
        self.pause_after = None
        self.flowing.set()

    async def wait_closed_connections(self, timeout: float = 5.0) -> None:
        """Wait until every accepted connection has been closed by one side or the other."""
        async with asyncio.timeout(timeout):
            await self.idle.wait()

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        self.flowing.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.idle.clear()
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            try:
                server_r, server_w = await asyncio.open_connection(*self.target)
            except OSError:
                client_w.close()
                return
            up = asyncio.create_task(self._pump(client_r, server_w, upstream=True))
            down = asyncio.create_task(self._pump(server_r, client_w, upstream=False))
            try:
                # either side closing ends the pair (after the close could be forwarded)
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in (up, down):
                    pump.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
                for writer in (server_w, client_w):
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        finally:
            self.open -= 1
            if not self.open:
                self.idle.set()
            self.tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            await self.flowing.wait()  # held here while paused: nothing forwarded, nothing closed
            if not data:
                return
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return
            if upstream and self.pause_after is not None and self.pause_after in data:
                self.pause_after = None
                self.flowing.clear()
