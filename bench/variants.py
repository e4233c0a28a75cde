"""The daemon with experimental patches, to measure an optimisation before changing the code.

    .venv/bin/python -m bench.run --variant direct,orjson --only ping,fanout

runs every daemon of the benchmark as ``python -m bench.variants direct,orjson <the usual
console arguments>``: the patches below are applied, then the daemon's own ``main`` runs.
orjson and uvloop are not dependencies of the project: install them where the daemon's
Python finds them (``.venv/bin/pip install orjson uvloop``, or ``pip install --target DIR``
and ``PYTHONPATH=DIR``).

- ``orjson``: ``protocol.encode`` and ``protocol.parse_frame`` use orjson instead of json.
- ``uvloop``: the event loop is uvloop's.
- ``direct``: ``Outbound.put`` writes the frame to the socket at once when nothing is queued
  before it and the transport's buffer is small, instead of waking the writer task (one
  task step and one ``call_soon`` per frame per client); the queue is kept for backpressure.
  Uses aiohttp's private ``WebSocketWriter._write_websocket_frame``: a measurement, not a fix.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

DIRECT_BUFFER_LIMIT = 64 * 1024


def patch_orjson() -> None:
    import orjson

    from appointease_realtime import protocol

    class Json:
        @staticmethod
        def dumps(obj: Any, **_: Any) -> str:
            return orjson.dumps(obj).decode()

        @staticmethod
        def loads(text: str | bytes) -> Any:
            return orjson.loads(text)

    protocol.json = Json  # type: ignore[assignment]


def patch_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def patch_direct() -> None:
    from aiohttp import WSMsgType

    from appointease_realtime.connection import Outbound

    queued = Outbound.put

    def put(self: Outbound, text: str) -> None:
        writer = self.ws._writer
        if (
            not self.overflowed
            and not self.ws.closed
            and self.queue.empty()
            and writer is not None
            and not writer.compress
            and writer.transport.get_write_buffer_size() < DIRECT_BUFFER_LIMIT
        ):
            try:
                writer._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
            except (ConnectionError, RuntimeError):
                pass
            return
        queued(self, text)

    Outbound.put = put  # type: ignore[method-assign]


PATCHES = {"orjson": patch_orjson, "uvloop": patch_uvloop, "direct": patch_direct}


def main() -> int:
    names = [n for n in sys.argv[1].split(",") if n]
    for name in names:
        PATCHES[name]()
    from appointease_realtime.__main__ import main as daemon_main

    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
