"""Instructions per ping, counted by callgrind: the daemon against the bare aiohttp echo.

    .venv/bin/python -m bench.instructions                      # 50 and 500 connections
    .venv/bin/python -m bench.instructions --daemon-path /tmp/old/daemon  # an older tree too
    .venv/bin/python -m bench.instructions --connections 5 --pings 20     # a few seconds

Throughput and CPU time on a shared two-core machine move by tens of percent from one minute
to the next; the number of instructions a server executes for the same pings does not (the
same count to within a fraction of a percent, whatever else the machine does). Each server
runs under ``valgrind --tool=callgrind`` with counting off; N connections (an aiohttp client)
ping twice each to warm up, counting is switched on (``callgrind_control``), each connection
pings and waits for the pong ``--pings`` times (all connections at once), counting is
switched off. Reported per ping: instructions, and the misses of callgrind's simulated caches
(first-level data, and a last level set to 1 MB, a core's share of a server CPU's cache:
what grows with the number of connections). The kernel's work (system calls) is not counted.

Needs valgrind (Debian: ``valgrind``); no database: the daemon runs on its embedded SQLite in
a temporary folder. Writes a table to stdout, progress to stderr, JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import CONFIG_KEYS, LOAD_SETTINGS, RESULTS, ROOT
from tests.processes import Server

PING = '{"type":"ping","timestamp":1764160000000}'
CALLGRIND = ["--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes", "--LL=1048576,16,64"]
DAEMON_ENV = {**LOAD_SETTINGS, "PYTHONHASHSEED": "0"}  # as bench/run.py's daemons


def progress(message: str) -> None:
    print(f"[instructions] {message}", file=sys.stderr, flush=True)


def callgrind_totals(paths: list[Path]) -> dict[str, int]:
    """The event totals of callgrind's output files, summed (a file's ``totals:`` line; its
    ``summary:`` line can be a stale 0 after counting was switched off)."""
    totals: dict[str, int] = {}
    for path in paths:
        events: list[str] = []
        for line in path.read_text().splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):
                for event, count in zip(events, line.split()[1:], strict=False):
                    totals[event] = totals.get(event, 0) + int(count)
    return totals


async def ping_all(sockets: list[aiohttp.ClientWebSocketResponse], pings: int) -> None:
    """Every socket pings and waits for its pong ``pings`` times, all at once."""

    async def one(ws: aiohttp.ClientWebSocketResponse) -> None:
        for _ in range(pings):
            await ws.send_str(PING)
            reply = await ws.receive(timeout=120)
            if reply.type is not aiohttp.WSMsgType.TEXT or '"pong"' not in reply.data:
                raise RuntimeError(f"expected a pong, got {reply.type}: {reply.data!r:.200}")

    await asyncio.gather(*(one(ws) for ws in sockets))


async def callgrind_control(pid: int, instrument: bool) -> None:
    """Switch callgrind's counting on or off in the running process ``pid``."""
    control = shutil.which("callgrind_control") or "callgrind_control"
    switch = "on" if instrument else "off"
    # the short form: callgrind_control 3.19 reads ``--instr=on`` as its status query
    proc = await asyncio.create_subprocess_exec(
        control, "-i", switch, str(pid), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    said, _ = await proc.communicate()
    if proc.returncode or f"instrumentation {switch}" not in said.decode():
        raise RuntimeError(f"callgrind_control -i {switch} {pid} failed: {said.decode()[-500:]}")


async def run_counted(server: Server, n: int, pings: int) -> float:
    """Start ``server``, connect ``n`` sockets, count their pings; the seconds counted."""
    progress(f"{server.name}: starting under callgrind")
    await server.start()
    try:
        connector = aiohttp.TCPConnector(limit=0)  # the default pool would stop at 100
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets = [await session.ws_connect(server.ws_url + "/") for _ in range(n)]
            for ws in sockets:
                await ws.receive(timeout=120)  # the greeting
            await ping_all(sockets, 2)
            await callgrind_control(server.pid, True)
            began = time.monotonic()
            await ping_all(sockets, pings)
            await callgrind_control(server.pid, False)
            took = time.monotonic() - began
            for ws in sockets:
                await ws.close()
    finally:
        await server.close(timeout=120)
    return took


def count(name: str, argv: list[str], env: dict[str, str], n: int, pings: int) -> dict[str, Any]:
    """Instructions and simulated cache misses per ping of one server under callgrind."""
    workdir = Path(tempfile.mkdtemp(prefix=f"aert-instructions-{name.split('@')[0]}-"))
    out = workdir / "callgrind.out"
    valgrind = [shutil.which("valgrind") or "valgrind", *CALLGRIND, f"--callgrind-out-file={out}"]
    ready = "/readyz" if name == "echo" else "/healthz"  # the echo answers only the former
    server = Server([], workdir / "server.log", env=env, cwd=workdir, name=name, ready_path=ready)
    server.argv = [*valgrind, *argv, "--port", str(server.port)]
    server.start_seconds = 180.0  # a Python start-up under valgrind takes tens of seconds
    try:
        took = asyncio.run(run_counted(server, n, pings))
        totals = callgrind_totals(sorted(workdir.glob("callgrind.out*")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = n * pings
    result = {
        "connections": n,
        "pings": total,
        "instructions_per_ping": round(totals["Ir"] / total),
        "d1_misses_per_ping": round((totals["D1mr"] + totals["D1mw"]) / total, 1),
        "ll_misses_per_ping": round((totals["ILmr"] + totals["DLmr"] + totals["DLmw"]) / total, 1),
    }
    progress(
        f"{name} {n} conns: {result['instructions_per_ping']:,} instructions a ping"
        f" ({total:,} pings counted in {took:.0f} s)"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="50,500", help="comma-separated sizes")
    parser.add_argument(
        "--pings", type=int, default=0, help="per connection (default: 10,000 in all)"
    )
    parser.add_argument(
        "--daemon-path",
        action="append",
        default=[],
        help="another tree's daemon package folder (PYTHONPATH), also counted",
    )
    parser.add_argument("--out", default=str(RESULTS / "instructions.json"), help="the JSON file")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    sizes = [int(size) for size in args.connections.split(",")]
    python = sys.executable
    servers = [("echo", [python, "-m", "bench.echo_server"], {"PYTHONPATH": str(ROOT)})]
    servers.append(
        ("daemon", [str(Path(python).parent / "appointease-realtime"), "serve"], DAEMON_ENV)
    )
    for path in args.daemon_path:
        servers.append((f"daemon@{path}", servers[1][1], {**DAEMON_ENV, "PYTHONPATH": path}))
    rows: list[dict[str, Any]] = []
    for n in sizes:
        pings = args.pings or max(1, 10_000 // n)
        for name, command, extra in servers:
            # no daemon setting is inherited from the shell
            env = {k: v for k, v in os.environ.items() if k not in CONFIG_KEYS} | extra
            row = count(name, command, env, n, pings)
            rows.append({"server": name, **row})
    for row in rows:
        echo = next(
            r for r in rows if r["server"] == "echo" and r["connections"] == row["connections"]
        )
        row["vs_echo"] = round(row["instructions_per_ping"] / echo["instructions_per_ping"], 3)
    print("| server | connections | instructions a ping | vs echo | D1 misses | LL (1 MB) misses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['server']} | {row['connections']:,} | {row['instructions_per_ping']:,}"
            f" | {row['vs_echo']:.2f}x | {row['d1_misses_per_ping']:,}"
            f" | {row['ll_misses_per_ping']:,} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "valgrind": CALLGRIND}, indent=2) + "\n")
    progress(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
