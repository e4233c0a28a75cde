"""The systemd notify protocol (``sd_notify(3)``) without extra dependencies.

Under ``Type=notify`` systemd sets ``$NOTIFY_SOCKET``; the daemon sends ``READY=1``
once its socket is bound and the database answered, ``WATCHDOG=1`` every half
``WatchdogSec=`` while the event loop runs, and ``STOPPING=1`` on the way out.
Without ``$NOTIFY_SOCKET`` (supervisor, a shell, tests) every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from .keys import NODE
from .store import StoreUnavailable

log = logging.getLogger(__name__)


def _address(environ: Mapping[str, str]) -> str | None:
    """The notify socket's address; a leading ``@`` names an abstract socket."""
    path = environ.get("NOTIFY_SOCKET", "")
    if not path.startswith(("/", "@")):
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd; False when not under systemd or it failed."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("systemd notify %r failed: %s", state, exc)
        return False
    return True


def ready(*_: object) -> None:
    """Tell systemd the daemon serves; fits ``web.run_app(print=...)``, called once bound."""
    notify("READY=1\nSTATUS=serving")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half ``WATCHDOG_USEC``); None when not asked."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


async def watchdog_loop(interval: float) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds until cancelled."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def _wait_for_database(app: web.Application) -> None:
    """Retry until the store answers; systemd's TimeoutStartSec bounds the wait."""
    while True:
        try:
            await app[NODE].store.ping()
            return
        except StoreUnavailable as exc:
            notify(f"STATUS=waiting for the database: {exc}")
            log.warning("waiting for the database: %s", exc)
            await asyncio.sleep(1.0)


async def systemd_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: check the database answers, feed the watchdog, say STOPPING=1 on exit.

    Append it to ``app.cleanup_ctx`` after the context that sets ``app[NODE]``; it exits
    first, so the watchdog keeps being fed while sockets close and ``on_shutdown`` runs.
    """
    if os.environ.get("NOTIFY_SOCKET"):  # READY=1 promises a database that answers
        await _wait_for_database(app)
    interval = watchdog_interval()
    task = asyncio.create_task(watchdog_loop(interval)) if interval else None
    try:
        yield
    finally:
        notify("STOPPING=1")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
