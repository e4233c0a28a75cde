"""The fan-out floor: a bare aiohttp server holding the watchers, one prebuilt frame to each.

It speaks just enough of the daemon's protocol for the benchmark to drive it like the daemon:
a ``connection`` greeting, ``watch_slot`` (the socket joins the one set of watchers and gets
an ``active_selections`` answer), and ``lock_slot`` / ``unlock_slot`` from the trigger: the
server builds one ``availability_update`` (the daemon's fields, the time now held or free),
writes it to every watcher, then answers the trigger (``slot_locked`` / ``slot_unlocked``).
No database, validation, rate limit, queue or per-watcher encoding: what is left is the cost
of aiohttp's server, the event loop and one write to each socket.

``--write frame`` (the default) builds the WebSocket frame (header + payload) once per event
and hands the same bytes to each watcher's transport: one ``transport.write`` per watcher,
the least any server on this stack can do. ``--write send_str`` uses aiohttp's public
``WebSocketResponse.send_str`` per watcher instead (aiohttp frames it for each socket).

    .venv/bin/python -m bench.fanout_floor --port 8098 [--write send_str]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
from typing import Any

from aiohttp import WSMsgType, web

HELLO = '{"type":"connection","mode":"websocket","status":"connected"}'
WATCHERS = web.AppKey("watchers", dict)
WRITE = web.AppKey("write", str)
LOCKED = web.AppKey("locked", set)


def server_frame(payload: bytes) -> bytes:
    """One final, unmasked server text frame carrying ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def encode(type_: str, **fields: Any) -> str:
    """A flat server frame, stamped like the daemon's."""
    return json.dumps(
        {"type": type_, **fields, "timestamp": int(time.time() * 1000)}, separators=(",", ":")
    )


async def broadcast(app: web.Application, text: str) -> None:
    """Write ``text`` to every watcher, as the chosen ``--write`` does it."""
    watchers: dict[web.WebSocketResponse, asyncio.Transport] = app[WATCHERS]
    if app[WRITE] == "send_str":
        for ws in list(watchers):
            if not ws.closed:
                await ws.send_str(text)
        return
    data = server_frame(text.encode())
    for transport in list(watchers.values()):
        if not transport.is_closing():
            transport.write(data)


async def trigger(app: web.Application, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
    """A lock or unlock of a slot: one availability_update to all watchers, then the answer."""
    locked: set[str] = app[LOCKED]
    date, time_, employee = msg["date"], msg["time"], msg["employeeId"]
    held = msg["type"] == "lock_slot"
    if held:
        locked.add(time_)
    else:
        locked.discard(time_)
    times = sorted(locked)
    await broadcast(
        app,
        encode(
            "availability_update",
            date=date,
            employeeId=employee,
            unavailable=times,
            booked=[],
            locked=times,
        ),
    )
    slot = {"date": date, "time": time_, "employeeId": employee}
    await ws.send_str(encode("slot_locked" if held else "slot_unlocked", **slot))


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    await ws.send_str(HELLO)
    watchers = request.app[WATCHERS]
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            kind = data.get("type")
            if kind == "watch_slot":
                assert request.transport is not None
                watchers[ws] = request.transport
                room = {"date": data["date"], "employeeId": data["employeeId"]}
                await ws.send_str(encode("active_selections", **room, slots=[]))
            elif kind in ("lock_slot", "unlock_slot"):
                await trigger(request.app, ws, data)
            elif kind == "ping":
                await ws.send_str(encode("pong"))
    finally:
        watchers.pop(ws, None)
    return ws


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--write", choices=("frame", "send_str"), default="frame")
    args = parser.parse_args()
    app = web.Application()
    app[WATCHERS] = {}
    app[WRITE] = args.write
    app[LOCKED] = set()
    app.router.add_get("/", socket)
    app.router.add_get("/readyz", readyz)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
