"""The baseline: a bare aiohttp WebSocket server that answers every text frame with a pong.

Same aiohttp, same settings the daemon's socket uses (heartbeat, frame size limit), none of
the daemon's work: no parsing, validation, rate limiting, outbound queue or JSON encoding.
It greets like the daemon (one ``connection`` frame) so the generator treats both alike.

    .venv/bin/python -m bench.echo_server --port 8099
"""

from __future__ import annotations

import argparse
import time

from aiohttp import WSMsgType, web


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    await ws.send_str('{"type":"connection","mode":"websocket","status":"connected"}')
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(f'{{"type":"pong","timestamp":{int(time.time() * 1000)}}}')
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", socket)
    app.router.add_get("/readyz", healthz)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
