"""The lock floor: the daemon's own store, driven directly, with no WebSocket or daemon layers.

``saturate`` opens the store exactly as the daemon does (``open_store`` with the Settings the
daemon reads from the same environment, so the same pool size and driver) and runs the same
closed loop as the benchmark's clients: ``clients`` tasks, each with its own client id and
employee, each calling ``Store.acquire_lock`` then ``Store.release_lock`` (the statements a
``lock_slot`` and an ``unlock_slot`` run in the daemon) as fast as they complete. Where the
daemon tags client ids with an owner (``auth.owner_tag``: its holds count against a
per-address limit in the database), each task is a client of its own address, as the
benchmark's clients are, and passes that owner and limit as ``Locks.lock`` does. What the
daemon adds on top (frames, parsing, validation, limits, metrics, the event loop it shares
with its sockets) is the gap between its lock rate and this one.

``open_loop`` drives the same store the way the benchmark's open loop drives the daemon:
Poisson arrivals at a given rate, each lock on a slot never locked before, taken by whichever
of the ``clients`` is idle, then unlocked. Its p99 beside the daemon's says how much of the
daemon's tail the store and the machine already have.

``python -m bench.lock_driver --clients 100 --seconds 5 ...`` (add ``--rate R`` for the open
loop) runs it in a process of its own
and prints the result as JSON: bench/run.py starts it with the daemon's environment (and its
``PYTHONPATH`` when it measures another tree's daemon), so the floor is always that daemon's
own store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from appointease_realtime import auth
from appointease_realtime.config import Settings, load_settings
from appointease_realtime.protocol import Slot
from appointease_realtime.store import open_store

from .loadgen import slot_of


def client_of(n: int, settings: Settings, owners: bool) -> tuple[str, dict[str, Any]]:
    """The ``n``-th client: its id and what ``Locks.lock`` passes for it (owner and limits)."""
    owner = f"a{n:08d}" if owners else None
    client_id = f"bench-driver-{n}" + (f"~{owner}" if owner else "")
    extra: dict[str, Any] = {}
    if owner is not None:
        extra = {"owner": owner, "owner_limit": settings.holds_per_address}
        extra["max_hold_seconds"] = settings.hold_max_seconds
    return client_id, extra


async def saturate(
    settings: Settings,
    clients: int,
    seconds: float,
    warmup: float,
    date: str,
    employee_base: int,
) -> dict[str, Any]:
    """Locks a second (each followed by its unlock) of ``clients`` closed-loop tasks."""
    store = await open_store(settings, create_embedded=False)
    owners = hasattr(auth, "owner_tag")  # this daemon counts holds per owner too
    locks: list[float] = []
    refused = 0
    start = time.monotonic() + warmup
    end = start + seconds
    cpu0 = time.process_time()

    async def client_loop(n: int) -> None:
        nonlocal refused
        client_id, extra = client_of(n, settings, owners)
        i = 0
        while time.monotonic() < end:
            fields = slot_of(date, employee_base + n, i % 1440)
            slot = Slot(fields["date"], fields["time"], fields["employeeId"])
            i += 1
            sent = time.monotonic()
            outcome = await store.acquire_lock(
                slot, client_id, settings.lock_ttl_seconds, settings.hold_limit, **extra
            )
            answered = time.monotonic()
            if not outcome.acquired:
                refused += 1
            if start <= answered <= end:
                locks.append(answered - sent)
            await store.release_lock(slot, client_id)

    began = time.monotonic()
    try:
        await asyncio.gather(*(client_loop(n) for n in range(clients)))
    finally:
        await store.close()
    return {
        "lock": locks,
        "refused": refused,
        "seconds": seconds,
        "owners": owners,
        "cpu_share": round((time.process_time() - cpu0) / (time.monotonic() - began), 3),
        "db_pool_size": settings.db_pool_size,
        "module": auth.__file__,
    }


async def open_loop(
    settings: Settings, clients: int, rate: float, seconds: float, date: str, employee_base: int
) -> dict[str, Any]:
    """Lock round trips of Poisson arrivals at ``rate``/s on fresh slots, idle clients."""
    store = await open_store(settings, create_embedded=False)
    owners = hasattr(auth, "owner_tag")
    idle: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for n in range(clients):
        idle.put_nowait(client_of(n, settings, owners))
    rng = random.Random(1)
    locks: list[float] = []
    refused = 0

    async def one(k: int) -> None:
        nonlocal refused
        client_id, extra = await idle.get()
        fields = slot_of(date, employee_base + k // 1440, k % 1440)
        slot = Slot(fields["date"], fields["time"], fields["employeeId"])
        sent = time.monotonic()
        outcome = await store.acquire_lock(
            slot, client_id, settings.lock_ttl_seconds, settings.hold_limit, **extra
        )
        locks.append(time.monotonic() - sent)
        refused += not outcome.acquired
        await store.release_lock(slot, client_id)
        idle.put_nowait((client_id, extra))

    tasks: set[asyncio.Task[None]] = set()
    began = time.monotonic()
    due, k = began, 0
    try:
        while True:
            due += rng.expovariate(rate)
            if due - began >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        await asyncio.gather(*tasks)
    finally:
        await store.close()
    return {"lock": locks, "refused": refused, "arrivals": k, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--date", default="2031-03-05")
    parser.add_argument("--employee-base", type=int, default=20000)
    parser.add_argument("--rate", type=float, help="an open loop at this many locks/s")
    args = parser.parse_args()
    settings = load_settings(os.devnull, environ=os.environ)
    if args.rate:
        run = open_loop(
            settings, args.clients, args.rate, args.seconds, args.date, args.employee_base
        )
    else:
        run = saturate(
            settings, args.clients, args.seconds, args.warmup, args.date, args.employee_base
        )
    result = asyncio.run(run)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
