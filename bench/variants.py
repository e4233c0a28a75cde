"""The daemon with experimental patches, to measure an optimisation before changing the code.

    .venv/bin/python -m bench.run --variant json --only ping,fanout

runs every daemon of the benchmark as ``python -m bench.variants json <the usual
console arguments>``: the patches below are applied, then the daemon's own ``main`` runs.
uvloop is not a dependency of the project: install it where the daemon's Python finds it
(``.venv/bin/pip install uvloop``). Only the one process started is patched: the workers of
``serve --workers N`` start fresh interpreters and run unpatched.

- ``json``: the standard library's json even where orjson is installed (the daemon uses
  orjson when it finds it: the optional extra ``fast``), to measure what orjson brings.
- ``uvloop``: the event loop is uvloop's.
- ``nogc``: no cyclic garbage collection at all (what collections cost, at most).
- ``gctune``: ``gc.freeze()`` once the daemon's modules are loaded, and collections ten times
  rarer (``gc.set_threshold(7000, 10, 10)``): a candidate against long pauses, to measure.
- ``freeze``: ``gc.freeze()`` once the daemon's modules are loaded, thresholds unchanged: the
  objects of start-up (modules, functions, classes) leave the full collections.
- ``gclog``: every collection that takes 2 ms or more is appended to the file named by
  ``AERT_GCLOG`` (default /tmp/aert-gc.log): time, generation, milliseconds, objects.
- ``looplag``: a task sleeps 1 ms again and again; each wake-up 4 ms or more late is
  appended to the file named by ``AERT_LOOPLAG`` (default /tmp/aert-looplag.log):
  ``time.monotonic()`` at the sleep (one clock for every process, as the generators'
  latencies), the wall milliseconds it took and the CPU milliseconds the daemon's thread used
  meanwhile. Wall far above CPU: the process waited for a core; CPU near wall: the loop was
  busy with other callbacks.
"""

from __future__ import annotations

import asyncio
import sys


def patch_json() -> None:
    from appointease_realtime import protocol

    def encode_bytes(frame: object) -> bytes:
        return protocol._json_encode(frame).encode()

    protocol._encode_bytes = protocol.encode_bytes = encode_bytes  # type: ignore[assignment]
    protocol._decode = protocol._json_decode


def patch_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def patch_nogc() -> None:
    import gc

    gc.disable()


def patch_gclog() -> None:
    import gc
    import os
    import time

    path = os.environ.get("AERT_GCLOG", "/tmp/aert-gc.log")  # noqa: S108 - a measurement
    began: list[float] = [0.0]

    def log(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        took = (time.perf_counter() - began[0]) * 1000
        if took >= 2.0:
            with open(path, "a") as out:
                out.write(
                    f"{time.time():.3f} pid {os.getpid()} gen {info['generation']}"
                    f" {took:.1f} ms, {len(gc.get_objects())} objects\n"
                )

    gc.callbacks.append(log)


def patch_looplag() -> None:
    import os
    import time

    from aiohttp import web

    path = os.environ.get("AERT_LOOPLAG", "/tmp/aert-looplag.log")  # noqa: S108 - a measurement

    out = open(path, "a")  # kept open for the daemon's lifetime
    tasks: list[asyncio.Task[None]] = []

    async def watch() -> None:
        while True:
            began, cpu = time.monotonic(), time.thread_time()
            await asyncio.sleep(0.001)
            took = time.monotonic() - began
            if took >= 0.004:
                used = time.thread_time() - cpu
                out.write(f"{began:.4f} {took * 1000:.1f} {used * 1000:.1f}\n")
                out.flush()

    async def start(app: web.Application) -> None:
        tasks.append(asyncio.get_running_loop().create_task(watch()))

    init = web.Application.__init__

    def patched(self: web.Application, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.on_startup.append(start)

    web.Application.__init__ = patched  # type: ignore[method-assign]


def patch_freeze() -> None:
    import gc

    import appointease_realtime.app  # noqa: F401 - load the daemon's modules first

    gc.collect()
    gc.freeze()


def patch_gctune() -> None:
    import gc

    patch_freeze()
    gc.set_threshold(7000, 10, 10)


PATCHES = {
    "json": patch_json,
    "uvloop": patch_uvloop,
    "nogc": patch_nogc,
    "gclog": patch_gclog,
    "looplag": patch_looplag,
    "freeze": patch_freeze,
    "gctune": patch_gctune,
}


def main() -> int:
    names = [n for n in sys.argv[1].split(",") if n]
    for name in names:
        PATCHES[name]()
    from appointease_realtime.__main__ import main as daemon_main

    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
