"""A real WordPress with the bridge, talking to a real daemon on the same database.

Reconciliation is switched off in these daemons, so everything a watcher sees came by hook.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from wp_harness import DEFAULT_HOOK_SECRET, WordPressSite

from appointease_realtime.app import create_app
from tests.conftest import base_settings, token_for
from tests.processes import free_port

DAY = "2030-05-06"


async def start_daemon(site: WordPressSite, port: int) -> TestServer:
    """The daemon on ``port``, on the site's own database, hooks only."""
    settings = base_settings(
        db_host=site.mysql.host,
        db_port=site.mysql.port,
        db_user=site.mysql.user,
        db_password=site.mysql.password,
        db_name=site.db_name,
        table_prefix=site.table_prefix,
        hook_secret=DEFAULT_HOOK_SECRET,
        reconcile_interval_seconds=3600,
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    return server


class Watcher:
    """A socket that follows one day of one employee (and optionally a customer)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def expect(self, type_: str, timeout: float, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame: dict[str, Any] = json.loads((await self.ws.receive(timeout=left)).data)
            except TimeoutError:
                break
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame
        raise AssertionError(f"no {type_} {match} within {timeout}s")


async def watch(session: aiohttp.ClientSession, port: int, email: str | None = None) -> Watcher:
    path = f"/ws/{token_for(email)}" if email else "/"
    ws = await session.ws_connect(f"ws://127.0.0.1:{port}{path}")
    watcher = Watcher(ws)
    await ws.send_json({"type": "watch_slot", "date": DAY, "employeeId": 3})
    await watcher.expect("active_selections", 10)
    if email:
        await ws.send_json({"type": "watch_appointments"})
        await watcher.expect("appointments_data", 10)
    return watcher


async def test_booking_in_wordpress_reaches_a_watcher_by_its_hook(
    wordpress_factory: Callable[..., WordPressSite],
) -> None:
    port = free_port()
    site = wordpress_factory(rt_url=f"http://127.0.0.1:{port}", hook_secret=DEFAULT_HOOK_SECRET)
    server = await start_daemon(site, port)
    try:
        async with aiohttp.ClientSession() as session:
            watcher = await watch(session, port)
            booked = await site.acreate_booking(DAY, "10:00", 3)
            assert booked.status == 201, booked.text
            # Reconciliation is off and cron never ran: only the hook WordPress sent while
            # booking can bring it. (A generous bound: a busy machine is slow, not wrong.)
            started = time.monotonic()
            taken = await watcher.expect("slot_taken", 10.0)
            print(f"slot_taken {time.monotonic() - started:.3f}s after the booking answered")
            assert taken["slot"] == f"{DAY} 10:00" and taken["employeeId"] == 3
            assert site.outbox_rows() == []  # delivered at once, nothing left for cron

            cancelled = await site.acancel_booking(booked.json["id"])
            assert cancelled.status == 200, cancelled.text
            await watcher.expect("availability_update", 10.0, booked=[], unavailable=[])

            moved_from = await site.acreate_booking(DAY, "11:00", 3)
            await watcher.expect("slot_taken", 10.0, time="11:00")
            moved = await site.areschedule_booking(moved_from.json["id"], f"{DAY} 14:00:00")
            assert moved.status == 200, moved.text
            await watcher.expect("slot_taken", 10.0, time="14:00")
            await watcher.expect("availability_update", 10.0, booked=["14:00"])
    finally:
        await server.close()


async def test_with_the_daemon_down_the_event_waits_and_arrives_after_cron(
    wordpress_factory: Callable[..., WordPressSite],
) -> None:
    port = free_port()
    site = wordpress_factory(rt_url=f"http://127.0.0.1:{port}", hook_secret=DEFAULT_HOOK_SECRET)
    booked = await site.acreate_booking(DAY, "10:00", 3, email="late@example.org")
    assert booked.status == 201
    pending = site.outbox_rows()
    assert [row["event"]["type"] for row in pending] == ["appointment.created"]

    server = await start_daemon(site, port)
    try:
        async with aiohttp.ClientSession() as session:
            customer = await watch(session, port, email="late@example.org")
            await site.arun_cron()
            update = await customer.expect("appointment_update", 10)
            assert update["appointment"]["strong_id"] == booked.json["strong_id"]
            assert site.outbox_rows() == []
    finally:
        await server.close()


def test_the_browser_client_is_registered_for_the_block(
    wordpress_factory: Callable[..., WordPressSite],
) -> None:
    """The booking block can list 'appointease-realtime-client' as a script dependency."""
    site = wordpress_factory(rt_url="http://127.0.0.1:9", hook_secret=DEFAULT_HOOK_SECRET)
    out = site.php(
        "do_action('wp_enqueue_scripts');"
        "$s = wp_scripts()->registered['appointease-realtime-client'] ?? null;"
        "echo $s ? $s->src : 'missing';"
    )
    assert out.strip().endswith("/appointease-realtime-bridge/assets/realtime-client.js")
