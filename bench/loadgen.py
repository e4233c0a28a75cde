"""One load-generator process: many WebSocket connections, driven over a multiprocessing pipe.

The orchestrator (bench/run.py) starts several of these and sends each the same commands:

- ``connect``: open ``n`` connections to ``port``/``path`` and wait for each one's first frame;
- ``ping``: every connection sends ``ping`` and waits for its ``pong``, in a loop, for
  ``seconds``; answers the number of pongs, the window and this process's CPU time;
- ``lock``: every connection locks then unlocks its own slot ``rounds`` times; answers the
  round trips (seconds) of each;
- ``watch``: every connection sends ``watch_slot`` for one room and waits for its snapshot;
- ``expect``: arm a predicate (``availability`` with a time held or free, or ``slot_taken``
  of a time), answer ``armed``, then answer each connection's receive time of the first
  matching frame (``time.monotonic()``, i.e. CLOCK_MONOTONIC: one clock for every process
  of the machine, so the orchestrator's send time and these receive times compare);
- ``close``: drop every connection.

The time-critical paths (a pong triggering the next ping, a frame matching the predicate)
run in ``data_received`` callbacks: no coroutine, no task, per message.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

from .wsclient import WSClient, client_frame, open_client

HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 32  # per process: stay under the server's listen backlog (128)
PING = client_frame(b'{"type":"ping","timestamp":1700000000000}')

Predicate = Callable[[bytes], bool]


def raise_nofile() -> None:
    """Open-files soft limit up to the hard limit (10,000 connections need it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame(type_: str, **fields: Any) -> bytes:
    """A client frame for ``{"type": type_, **fields}``."""
    return client_frame(json.dumps({"type": type_, **fields}, separators=(",", ":")).encode())


def availability_shows(time_: str, held: bool) -> Predicate:
    """An ``availability_update`` where ``time_`` is held (or no longer held)."""

    def check(payload: bytes) -> bool:
        if b'"availability_update"' not in payload:
            return False
        return (time_ in json.loads(payload)["locked"]) == held

    return check


def slot_taken(time_: str) -> Predicate:
    """A ``slot_taken`` for ``time_``."""
    needle = f'"time":"{time_}"'.encode()
    return lambda payload: b'"slot_taken"' in payload and needle in payload


class Worker:
    """The connections of one generator process and the scenario they are running."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.clients: list[WSClient] = []
        self.pinging = False
        self.pongs = 0
        self.predicate: Predicate | None = None
        self.pending = 0
        self.all_matched: asyncio.Future[None] | None = None

    # ---- frames ----

    def on_text(self, client: WSClient, payload: bytes) -> None:
        """Route one text frame: ping loop, armed predicate, or a waiting request."""
        if self.pinging and payload.startswith(b'{"type":"pong"'):
            self.pongs += 1
            client.send(PING)
            return
        predicate = self.predicate
        if predicate is not None and "got" not in client.state and predicate(payload):
            client.state["got"] = client.received_at
            self.pending -= 1
            if self.pending == 0 and self.all_matched is not None:
                if not self.all_matched.done():
                    self.all_matched.set_result(None)
        waiting = client.state.get("wait")
        if waiting is not None:
            markers, future = waiting  # type: ignore[misc]
            if any(m in payload for m in markers):
                del client.state["wait"]
                if not future.done():
                    future.set_result(payload)

    def wait_for(self, client: WSClient, *markers: bytes) -> asyncio.Future[bytes]:
        """A future for the next frame of ``client`` that contains one of ``markers``."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        client.state["wait"] = (markers, future)
        return future

    # ---- commands ----

    async def connect(self, port: int, n: int, path: str = "/") -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                try:
                    client = await asyncio.wait_for(open_client(HOST, port, path, self.on_text), 30)
                    hello = await asyncio.wait_for(client.first_text, 30)
                    if b'"connection"' not in hello:
                        raise ConnectionError(f"unexpected first frame: {hello[:80]!r}")
                    self.clients.append(client)
                except (OSError, TimeoutError) as exc:
                    failures.append(repr(exc))

        await asyncio.gather(*(one() for _ in range(n)))
        return {"connected": len(self.clients), "failures": failures[:3], "failed": len(failures)}

    async def ping(self, seconds: float) -> dict[str, Any]:
        self.pongs = 0
        self.pinging = True
        cpu0, began = time.process_time(), time.monotonic()
        for client in self.clients:
            client.send(PING)
        await asyncio.sleep(seconds)
        self.pinging = False
        pongs, elapsed = self.pongs, time.monotonic() - began
        cpu = time.process_time() - cpu0
        await asyncio.sleep(0.3)  # let the last in-flight pongs drain
        return {"pongs": pongs, "seconds": elapsed, "cpu": cpu}

    async def lock(self, rounds: int, date: str, employee_base: int) -> dict[str, Any]:
        locks: list[float] = []
        unlocks: list[float] = []
        refused = 0

        async def client_loop(client: WSClient, employee: int) -> None:
            nonlocal refused
            for i in range(rounds):
                slot = {"date": date, "time": f"{9 + i % 8:02d}:{(i // 8) % 60:02d}"}
                slot["employeeId"] = employee  # type: ignore[assignment]
                reply = self.wait_for(client, b'"slot_locked"', b'"lock_failed"', b'"error"')
                began = time.monotonic()
                client.send(frame("lock_slot", **slot))
                if b'"slot_locked"' not in await asyncio.wait_for(reply, 30):
                    refused += 1
                locks.append(time.monotonic() - began)
                reply = self.wait_for(client, b'"slot_unlocked"', b'"unlock_failed"', b'"error"')
                began = time.monotonic()
                client.send(frame("unlock_slot", **slot))
                await asyncio.wait_for(reply, 30)
                unlocks.append(time.monotonic() - began)

        await asyncio.gather(
            *(client_loop(c, employee_base + i) for i, c in enumerate(self.clients))
        )
        return {"lock": locks, "unlock": unlocks, "refused": refused}

    async def watch(self, date: str, employee: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(64)
        request = frame("watch_slot", date=date, employeeId=employee)

        async def one(client: WSClient) -> None:
            async with gate:
                snapshot = self.wait_for(client, b'"active_selections"')
                client.send(request)
                await asyncio.wait_for(snapshot, 60)

        await asyncio.gather(*(one(c) for c in self.clients))
        return {"watching": len(self.clients)}

    async def expect(
        self, kind: str, time_: str, held: bool, wait_seconds: float
    ) -> dict[str, Any]:
        for client in self.clients:
            client.state.pop("got", None)
        self.pending = len(self.clients)
        self.all_matched = asyncio.get_running_loop().create_future()
        if self.pending == 0:
            self.all_matched.set_result(None)
        self.predicate = (
            availability_shows(time_, held) if kind == "availability" else (slot_taken(time_))
        )
        self.pipe.send({"armed": True})
        try:
            await asyncio.wait_for(self.all_matched, wait_seconds)
        except TimeoutError:
            pass
        self.predicate = None
        got = [c.state.get("got") for c in self.clients]
        return {"received": [t for t in got if t is not None], "missing": got.count(None)}

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        if self.clients:
            await asyncio.wait([asyncio.ensure_future(c.lost) for c in self.clients], timeout=10)
        closed = len(self.clients)
        self.clients = []
        return {"closed": closed}

    async def serve(self) -> None:
        """Run commands from the pipe until ``stop``."""
        loop = asyncio.get_running_loop()
        while True:
            name, kwargs = await loop.run_in_executor(None, self.pipe.recv)
            if name == "stop":
                await self.close()
                self.pipe.send({"stopped": True})
                return
            try:
                result = await getattr(self, name)(**kwargs)
            except Exception as exc:  # the orchestrator reports it; the worker stays usable
                result = {"error": f"{type(exc).__name__}: {exc}"}
            self.pipe.send(result)


def worker_main(pipe: Pipe) -> None:
    """Entry point of a generator process."""
    raise_nofile()
    asyncio.run(Worker(pipe).serve())
