"""Every row of booking-block.md's protocol table, over a real socket, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from appointease_realtime import commands
from appointease_realtime.store import Store
from tests.raw_peer import RawPeer

Connect = Callable[..., Any]
DAY = "2030-05-06"


async def test_first_frame_names_the_client(connect: Connect) -> None:
    sock = await connect()
    hello = sock.hello
    # the booking block's format, then the owner tag its holds count against
    assert re.fullmatch(r"anonymous_\d{13}_[a-z0-9]{9}~a[a-z2-7]{16}", hello["clientId"])
    assert hello["mode"] == "websocket" and hello["status"] == "connected"
    assert hello["isAnonymous"] is True and hello["resumeToken"].startswith(hello["clientId"])
    known = await connect(email="Ann@Example.com")
    assert known.hello["isAnonymous"] is False
    assert known.hello["clientId"].startswith("user_")


async def test_ping_pong(connect: Connect) -> None:
    sock = await connect()
    pong = await sock.request("ping", "pong", timestamp=1_000, sequence=3, requestId="p1")
    assert pong["sequence"] == 3 and pong["requestId"] == "p1"
    assert pong["latency"] >= 0 and pong["timestamp"] > 1_000
    assert (await sock.request("ping", "pong"))["type"] == "pong"


async def test_booking_session_is_tracked_and_shown_in_debug(
    connect: Connect, client: TestClient[Any, Any]
) -> None:
    sock = await connect(role="admin")
    tracked = await sock.request(
        "booking_session",
        "session_tracked",
        step=4,
        service="Cut",
        employee=2,
        date=DAY,
        time="10:00",
    )
    assert tracked["step"] == 4
    info = await sock.request("get_debug", "debug_info")
    assert info["connectedClients"] == 1 and info["clients"][0]["id"] == sock.client_id
    session = {"step": 4, "service": "Cut", "employee": 2, "date": DAY, "time": "10:00"}
    assert info["clients"][0]["session"] == session
    page = await (await client.get("/debug")).json()  # the same over HTTP (loopback)
    assert page["clients"][0]["session"] == session
    # the next step replaces it, normalized ("5" -> 5, "HH:MM:00" -> "HH:MM"); absent fields go
    await sock.request("booking_session", "session_tracked", step="5", time="11:30:00")
    info = await sock.request("get_debug", "debug_info")
    assert info["clients"][0]["session"] == {"step": 5, "time": "11:30"}
    other = await connect()  # a client that never said where it is shows no session
    info = await sock.request("get_debug", "debug_info")
    assert "session" not in next(c for c in info["clients"] if c["id"] == other.client_id)


async def test_lock_and_unlock_replies(connect: Connect) -> None:
    sock = await connect()
    slot = {"date": DAY, "time": "10:00", "employeeId": "3"}
    locked = await sock.request("lock_slot", ("slot_locked", "lock_failed"), **slot, service=1)
    assert locked["type"] == "slot_locked"
    assert (locked["date"], locked["time"], locked["employeeId"]) == (DAY, "10:00", 3)
    assert 598 <= locked["expiresIn"] <= 600
    unlocked = await sock.request("unlock_slot", ("slot_unlocked", "unlock_failed"), **slot)
    assert unlocked["type"] == "slot_unlocked" and unlocked["employeeId"] == 3
    again = await sock.request("unlock_slot", ("slot_unlocked", "unlock_failed"), **slot)
    assert again["type"] == "unlock_failed" and again["reason"] == "not_locked"


async def test_selection_reaches_other_watchers(connect: Connect) -> None:
    watcher, picker = await connect(), await connect()
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    confirmed = await picker.request(
        "selecting_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=3
    )
    assert confirmed["time"] == "10:00"
    seen = await watcher.expect("active_selections", slots=["10:00"])
    assert seen["date"] == DAY and seen["employeeId"] == 3
    other = await connect()
    await other.request("select_slot", "selection_confirmed", date=DAY, time="11:00", employeeId=3)
    await watcher.expect("active_selections", slots=["10:00", "11:00"])
    await picker.request("select_slot", "selection_confirmed", date=DAY, time="12:00", employeeId=3)
    await watcher.expect("active_selections", slots=["11:00", "12:00"])  # 10:00 replaced
    await other.request(
        "deselect_slot", "deselection_confirmed", date=DAY, time="11:00", employeeId=3
    )
    await watcher.expect("active_selections", slots=["12:00"])


async def test_selections_go_at_once_on_disconnect(connect: Connect) -> None:
    watcher, picker = await connect(), await connect()
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await picker.request(
        "selecting_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=3
    )
    await watcher.expect("active_selections", slots=["10:00"])
    await picker.close()
    await watcher.expect("active_selections", slots=[], timeout=2)


async def test_watch_slot_answers_with_availability_and_selections(
    connect: Connect, store: Store
) -> None:
    await store.insert_appointment(
        {"name": "A", "email": "a@x.io", "appointment_date": f"{DAY} 09:00:00", "employee_id": 3}
    )
    holder, watcher = await connect(), await connect(role="admin")
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await watcher.send("watch_slot", date=DAY, employeeId=3, time="09:30")
    availability = await watcher.expect("availability_update")
    assert availability["booked"] == ["09:00"] and availability["locked"] == ["10:00"]
    assert availability["unavailable"] == ["09:00", "10:00"]
    assert (await watcher.expect("active_selections"))["slots"] == []
    info = await watcher.request("get_debug", "debug_info")
    mine = next(c for c in info["clients"] if c["id"] == watcher.client_id)
    assert mine["watchingSlot"] == {"date": DAY, "employeeId": 3, "time": "09:30"}
    done = await watcher.request("unwatch_slot", "slot_unwatched", date=DAY, employeeId=3)
    assert done["date"] == DAY
    info = await watcher.request("get_debug", "debug_info")
    assert next(c for c in info["clients"] if c["id"] == watcher.client_id)["watchingSlot"] is None


async def test_room_changes_reach_watchers(connect: Connect) -> None:
    watcher, holder = await connect(), await connect()
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=["10:00"], unavailable=["10:00"])
    await holder.request("unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=[], unavailable=[])


async def test_completed_booking_sends_slot_taken(connect: Connect, store: Store) -> None:
    watcher, booker = await connect(), await connect()
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await booker.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await store.insert_appointment(
        {"name": "B", "email": "b@x.io", "appointment_date": f"{DAY} 10:00:00", "employee_id": 3}
    )
    await booker.request(
        "unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3, completed=True
    )
    taken = await watcher.expect("slot_taken")
    assert taken["slot"] == f"{DAY} 10:00" and taken["time"] == "10:00" and taken["employeeId"] == 3
    await watcher.expect("availability_update", booked=["10:00"])


async def test_check_availability(connect: Connect, store: Store) -> None:
    await store.insert_appointment(
        {"name": "A", "email": "a@x.io", "appointment_date": f"{DAY} 09:00:00", "employee_id": 3}
    )
    sock = await connect()
    await sock.request("lock_slot", "slot_locked", date=DAY, time="11:00", employeeId=3)
    update = await sock.request("check_availability", "availability_update", date=DAY, employeeId=3)
    assert update["unavailable"] == ["09:00", "11:00"]
    assert update["booked"] == ["09:00"] and update["locked"] == ["11:00"]


async def test_appointments_of_the_connected_customer(connect: Connect, store: Store) -> None:
    for when, email, status in (
        ("2030-05-06 09:00:00", "ann@example.com", "confirmed"),
        ("2030-05-07 09:00:00", "ann@example.com", "cancelled"),
        ("2030-05-08 09:00:00", "bob@example.com", "confirmed"),
    ):
        await store.insert_appointment(
            {
                "name": "X",
                "email": email,
                "appointment_date": when,
                "employee_id": 1,
                "status": status,
            }
        )
    ann = await connect(email="ann@example.com")
    data = await ann.request("watch_appointments", "appointments_data", email="ann@example.com")
    assert data["email"] == "ann@example.com" and data["count"] == 1
    assert data["appointments"][0]["appointment_date"] == "2030-05-06 09:00:00"
    update = await ann.request("subscribe", "update")
    assert len(update["data"]["appointments"]) == 1
    assert (await ann.request("unwatch_appointments", "unwatch_confirmed"))[
        "type"
    ] == "unwatch_confirmed"
    other = await ann.request("watch_appointments", "appointments_data", email="bob@example.com")
    assert other["type"] == "error" and other["code"] == "forbidden"
    anonymous = await connect()
    refused = await anonymous.request(
        "watch_appointments", "appointments_data", email="ann@example.com"
    )
    assert refused["type"] == "error" and refused["code"] == "forbidden"


async def test_errors_keep_the_socket_open(connect: Connect) -> None:
    sock = await connect()
    await sock.ws.send_str("{oops")
    assert (await sock.expect("error"))["code"] == "invalid_json"
    await sock.send("fly_to_moon")
    assert (await sock.expect("error"))["code"] == "unknown_type"
    await sock.send("lock_slot", date="2025-02-30", time="10:00", employeeId=1)
    assert (await sock.expect("error", field="date"))["code"] == "invalid_request"
    await sock.send("lock_slot", date="2025-02-03", time="25:00", employeeId=1)
    assert (await sock.expect("error", field="time"))["code"] == "invalid_request"
    await sock.send("lock_slot", date="2025-02-03", time="10:00", employeeId="x1")
    assert (await sock.expect("error", field="employeeId"))["code"] == "invalid_request"
    await sock.ws.send_bytes(b"\x00\x01")
    assert (await sock.expect("error"))["code"] == "invalid_json"
    assert (await sock.request("ping", "pong"))["type"] == "pong"


async def test_a_dead_peer_is_dropped_by_the_heartbeat(client: Any, monkeypatch: Any) -> None:
    """A client that stops answering pings is dropped (30 s in production, 0.4 s here)."""
    from appointease_realtime import views

    monkeypatch.setattr(views, "HEARTBEAT_SECONDS", 0.4)
    mute = await client.ws_connect("/", autoping=False)  # never answers the server's pings
    assert (await mute.receive_json())["type"] == "connection"
    msg = await mute.receive(timeout=5)
    while msg.type == aiohttp.WSMsgType.PING:
        msg = await mute.receive(timeout=5)
    assert msg.type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.CLOSING,
    )
    for _ in range(20):
        if (await (await client.get("/debug")).json())["connectedClients"] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await (await client.get("/debug")).json())["connectedClients"] == 0


async def connected_clients(client: TestClient[Any, Any]) -> int:
    count: int = (await (await client.get("/debug")).json())["connectedClients"]
    return count


async def test_a_peer_that_stops_reading_is_dropped_by_the_heartbeat(
    make_client: Callable[..., Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that vanished without a FIN (it neither reads nor answers pings; its kernel
    still ACKs) is dropped by the heartbeat alone, its socket torn down, its hold kept for
    the grace period and then released. 30 s in production, 0.4 s here."""
    from appointease_realtime import views

    monkeypatch.setattr(views, "HEARTBEAT_SECONDS", 0.4)
    client = await make_client(lock_release_grace_seconds=1.5)
    assert client.server.port is not None
    peer = RawPeer(client.server.port)
    await peer.open()  # from here on the peer never reads a byte
    await peer.send("lock_slot", date=DAY, time="10:00", employeeId=3)
    for _ in range(50):
        if await store.live_locks():
            break
        await asyncio.sleep(0.05)
    assert len(await store.live_locks()) == 1
    assert await connected_clients(client) == 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    for _ in range(200):
        if not await connected_clients(client) or loop.time() - began > 10:
            break
        await asyncio.sleep(0.05)
    dropped_after = loop.time() - began
    assert await connected_clients(client) == 0, "the silent peer was never dropped"
    assert dropped_after < 3.0, f"dropped after {dropped_after:.1f}s, heartbeat 0.4 s"
    assert len(await store.live_locks()) == 1  # within the grace period: kept
    # the daemon's side of the TCP connection is gone: reading now ends (EOF or reset)
    ended = False
    async with asyncio.timeout(5):
        while not ended:
            try:
                ended = not await loop.sock_recv(peer.sock, 65536)
            except OSError:
                ended = True
    for _ in range(100):
        if not await store.live_locks():
            break
        await asyncio.sleep(0.05)
    assert await store.live_locks() == []  # released after the grace period
    peer.close()


# ---- requestId ----


async def test_request_id_is_echoed_within_its_limits(connect: Connect) -> None:
    sock = await connect()
    echoed: list[Any] = ["x" * 64, "", "r-1", 0, 7, -7, 2**53 - 1, -(2**53 - 1)]
    ignored: list[Any] = ["x" * 65, 2**53, -(2**53), 1.5, 3.0, True, False, None, [1], {"a": 1}]
    for value in echoed + ignored:
        await sock.ws.send_json({"type": "ping", "sequence": 1, "requestId": value})
        pong = await sock.expect("pong")
        if value in echoed and not isinstance(value, bool | float):
            assert pong.get("requestId", "absent") == value, value
            assert type(pong["requestId"]) is type(value)
        else:
            assert "requestId" not in pong, (value, pong)
    # every reply carries it, an error too, and watch_slot's two frames both
    await sock.ws.send_json({"type": "lock_slot", "date": "2030-02-30", "requestId": "bad"})
    error = await sock.expect("error")
    assert (error["code"], error["field"], error["requestId"]) == ("invalid_request", "date", "bad")
    await sock.ws.send_json({"type": "fly", "requestId": 12})
    assert (await sock.expect("error"))["requestId"] == 12
    await sock.ws.send_json({"type": "watch_slot", "date": DAY, "employeeId": 3, "requestId": "w"})
    assert (await sock.expect("availability_update"))["requestId"] == "w"
    assert (await sock.expect("active_selections"))["requestId"] == "w"


async def both_events(sock: Any, time: str) -> list[dict[str, Any]]:
    """The room's availability_update and active_selections that show ``time``, in any order."""
    found: dict[str, dict[str, Any]] = {}
    while len(found) < 2:
        frame = await sock.expect("availability_update", "active_selections")
        if time in frame.get("locked", frame.get("slots", [])):
            found[frame["type"]] = frame
    return list(found.values())


async def test_other_clients_events_never_carry_a_request_id(connect: Connect) -> None:
    watcher, actor = await connect(), await connect()
    await watcher.ws.send_json({"type": "watch_slot", "date": DAY, "employeeId": 3, "requestId": 1})
    await watcher.expect("active_selections", requestId=1)
    await actor.ws.send_json({"type": "watch_slot", "date": DAY, "employeeId": 3, "requestId": 2})
    await actor.expect("active_selections", requestId=2)
    slot = {"date": DAY, "time": "10:00", "employeeId": 3}
    await actor.ws.send_json({"type": "lock_slot", **slot, "requestId": "L"})
    await actor.ws.send_json({"type": "selecting_slot", **slot, "requestId": "S"})
    assert (await actor.expect("slot_locked"))["requestId"] == "L"
    assert (await actor.expect("selection_confirmed"))["requestId"] == "S"
    events = []
    for sock in (watcher, actor):  # the actor watches the day too: its own events are events
        events += await both_events(sock, "10:00")
    assert [e.get("requestId", "none") for e in events] == ["none"] * 4, events


# ---- one watched day per connection ----


async def test_watching_a_second_day_leaves_the_first(connect: Connect) -> None:
    watcher, holder = await connect(role="admin"), await connect()
    first, second = {"date": DAY, "employeeId": 3}, {"date": "2030-05-07", "employeeId": 4}
    await watcher.request("watch_slot", "active_selections", **first)
    await watcher.request("watch_slot", "active_selections", **second)
    mark = len(watcher.seen)
    info = await watcher.request("get_debug", "debug_info")
    assert next(c for c in info["clients"] if c["id"] == watcher.client_id)["watchingSlot"] == {
        **second
    }
    assert info["node"]["rooms"] == 1  # the first day has no watcher left on this node
    await holder.request("lock_slot", "slot_locked", **first, time="10:00")
    await holder.request("selecting_slot", "selection_confirmed", **first, time="10:00")
    await holder.request("lock_slot", "slot_locked", **second, time="11:00")
    await watcher.expect("availability_update", **second, locked=["11:00"])
    # events of the first day were announced before the second's: none may have come
    await holder.request("unlock_slot", "slot_unlocked", **second, time="11:00")
    await watcher.expect("availability_update", **second, locked=[])
    seen = watcher.seen[mark:] + await watcher.quiet(0.3)
    assert [f for f in seen if f.get("date") == DAY] == [], seen


# ---- a handler that fails ----


async def test_a_failing_handler_answers_internal_error_and_keeps_the_socket(
    connect: Connect, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(node: Any, req: Any) -> None:
        raise RuntimeError("a bug in a handler")

    original = commands.COMMANDS["check_availability"]
    monkeypatch.setitem(
        commands.COMMANDS, "check_availability", commands.Command(original.schema, broken)
    )
    sock = await connect()
    await sock.ws.send_json(
        {"type": "check_availability", "date": DAY, "employeeId": 3, "requestId": "c1"}
    )
    error = await sock.expect("error")
    assert (error["code"], error["requestId"]) == ("internal_error", "c1")
    assert "a bug in a handler" not in error["message"]  # no internals on the wire
    assert "a bug in a handler" in caplog.text  # but in the log, with its traceback
    # validation still runs first: a bad frame is invalid_request, not internal_error
    await sock.send("check_availability", date="2030-02-30", employeeId=3)
    assert (await sock.expect("error"))["code"] == "invalid_request"
    assert (await sock.request("ping", "pong"))["type"] == "pong"  # the socket stays open
    assert not sock.ws.closed
