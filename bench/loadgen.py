"""One load-generator process: many WebSocket connections, driven over a multiprocessing pipe.

The orchestrator (bench/run.py) starts several of these and sends each the same commands:

- ``connect``: open ``n`` more connections to ``port``/``path`` and wait for each one's first
  frame (``wait_seconds`` each); answers how many this process holds and what failed; with
  ``address_base``, every connection says it comes from an address of its own
  (``X-Forwarded-For: 10.x.y.z``, numbered from ``address_base``; the daemons trust the
  loopback proxy), as visitors behind the reverse proxy do;
- ``ping``: every connection sends ``ping`` and waits for its ``pong``, in a loop, for
  ``seconds``; answers the number of pongs, the window and this process's CPU time;
- ``lock``: closed loop: every connection locks then unlocks its own slots, the next request
  as soon as the answer is in, ``rounds`` times or for ``seconds`` (after ``warmup``);
  answers the lock round trips (seconds) and how many locks completed in the window;
- ``lock_open``: open loop: lock requests arrive at ``rate`` a second (Poisson), each on a
  slot never locked before, each sent by whichever connection is idle (then unlocked);
  answers the round trips and how late the generator was against the schedule;
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
import random
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

from tests.processes import raise_nofile

from .wsclient import WSClient, client_frame, open_client

HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 32  # per process: stay under the server's listen backlog (128)
PING = client_frame(b'{"type":"ping","timestamp":1700000000000}')

Predicate = Callable[[bytes], bool]
ANSWERS = {"lock_slot": b'"slot_locked"', "unlock_slot": b'"slot_unlocked"'}


def frame(type_: str, **fields: Any) -> bytes:
    """A client frame for ``{"type": type_, **fields}``."""
    return client_frame(json.dumps({"type": type_, **fields}, separators=(",", ":")).encode())


def slot_of(date: str, employee: int, k: int) -> dict[str, Any]:
    """The ``k``-th slot (a minute of the day) of ``employee`` on ``date``."""
    return {"date": date, "time": f"{k // 60 % 24:02d}:{k % 60:02d}", "employeeId": employee}


def address_of(n: int) -> str:
    """The ``n``-th client address of the run: 10.0.0.0 + ``n``."""
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


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
        self.opened = 0  # connections opened so far (numbers the forwarded addresses)

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
            markers, future = cast("tuple[tuple[bytes, ...], asyncio.Future[bytes]]", waiting)
            if any(m in payload for m in markers):
                del client.state["wait"]
                client.state["answered_at"] = client.received_at
                if not future.done():
                    future.set_result(payload)

    def wait_for(self, client: WSClient, *markers: bytes) -> asyncio.Future[bytes]:
        """A future for the next frame of ``client`` that contains one of ``markers``; its
        receive time goes to ``client.state["answered_at"]``."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        client.state["wait"] = (markers, future)
        return future

    # ---- commands ----

    async def connect(
        self,
        port: int,
        n: int,
        path: str = "/",
        wait_seconds: float = 30,
        give_up_after: int = 0,
        address_base: int | None = None,
    ) -> dict[str, Any]:
        """Open ``n`` more connections; with ``give_up_after``, stop trying after that many
        failures (the rest are not attempted)."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                if give_up_after and len(failures) >= give_up_after:
                    return
                forwarded = None
                if address_base is not None:
                    forwarded = address_of(address_base + self.opened)
                    self.opened += 1
                try:
                    opening = open_client(HOST, port, path, self.on_text, forwarded)
                    client = await asyncio.wait_for(opening, wait_seconds)
                except (OSError, TimeoutError) as exc:
                    failures.append(f"connect: {exc!r}")
                    return
                try:
                    hello = await asyncio.wait_for(client.first_text, wait_seconds)
                    if b'"connection"' not in hello:
                        raise ConnectionError(f"unexpected first frame: {hello[:80]!r}")
                    self.clients.append(client)
                except (OSError, TimeoutError) as exc:
                    client.close()
                    failures.append(f"no greeting: {exc!r}")

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

    async def request(self, client: WSClient, type_: str, slot: dict[str, Any]) -> bytes:
        """Send one lock or unlock request and wait for its answer."""
        reply = self.wait_for(client, ANSWERS[type_], b"_failed", b'"error"')
        client.send(frame(type_, **slot))
        return await asyncio.wait_for(reply, 30)

    async def lock(
        self,
        date: str,
        employee_base: int,
        rounds: int = 0,
        seconds: float = 0.0,
        warmup: float = 0.0,
    ) -> dict[str, Any]:
        """Closed loop; a lock counts when its answer arrives within the measured window."""
        locks: list[float] = []
        unlocks: list[float] = []
        refused = 0
        began = time.monotonic()
        start = began + warmup
        end = start + seconds if seconds else float("inf")

        async def client_loop(client: WSClient, employee: int) -> None:
            nonlocal refused
            i = 0
            while (i < rounds) if rounds else (time.monotonic() < end):
                slot = slot_of(date, employee, i % 1440)
                i += 1
                sent = time.monotonic()
                answer = await self.request(client, "lock_slot", slot)
                answered = float(client.state["answered_at"])  # type: ignore[arg-type]
                if b'"slot_locked"' not in answer:
                    refused += 1
                if start <= answered <= end:
                    locks.append(answered - sent)
                sent = time.monotonic()
                await self.request(client, "unlock_slot", slot)
                unlocks.append(float(client.state["answered_at"]) - sent)  # type: ignore[arg-type]

        await asyncio.gather(
            *(client_loop(c, employee_base + i) for i, c in enumerate(self.clients))
        )
        window = seconds if seconds else time.monotonic() - began
        return {"lock": locks, "unlock": unlocks, "refused": refused, "seconds": window}

    async def lock_open(
        self, rate: float, seconds: float, date: str, employee_base: int, seed: int
    ) -> dict[str, Any]:
        """Open loop: Poisson arrivals at ``rate``/s for ``seconds``, fresh slots, idle clients."""
        idle: asyncio.Queue[WSClient] = asyncio.Queue()
        for client in self.clients:
            idle.put_nowait(client)
        rng = random.Random(seed)
        locks: list[float] = []
        from_schedule: list[float] = []
        late: list[float] = []
        refused = 0
        tasks: set[asyncio.Task[None]] = set()

        async def one(scheduled: float, slot: dict[str, Any]) -> None:
            nonlocal refused
            client = await idle.get()
            sent = time.monotonic()
            late.append(sent - scheduled)
            answer = await self.request(client, "lock_slot", slot)
            answered = float(client.state["answered_at"])  # type: ignore[arg-type]
            if b'"slot_locked"' not in answer:
                refused += 1
            locks.append(answered - sent)
            from_schedule.append(answered - scheduled)
            await self.request(client, "unlock_slot", slot)
            idle.put_nowait(client)

        began = time.monotonic()
        due, k = began, 0
        while True:
            due += rng.expovariate(rate)
            if due - began >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(due, slot_of(date, employee_base + k // 1440, k % 1440)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.gather(*tasks)
        return {
            "lock": locks,
            "from_schedule": from_schedule,
            "late": late,
            "refused": refused,
            "arrivals": k,
            "seconds": seconds,
        }

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
