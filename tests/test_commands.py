"""Every row of booking-block.md's protocol table, over a real socket, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from appointease_realtime.store import Store

Connect = Callable[..., Any]
DAY = "2030-05-06"


async def test_first_frame_names_the_client(connect: Connect) -> None:
    sock = await connect()
    hello = sock.hello
    assert re.fullmatch(r"anonymous_\d{13}_[a-z0-9]{9}", hello["clientId"])
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


async def test_booking_session_is_tracked_and_shown_in_debug(connect: Connect) -> None:
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
    await picker.request("select_slot", "selection_confirmed", date=DAY, time="11:00", employeeId=3)
    await watcher.expect("active_selections", slots=["10:00", "11:00"])
    await picker.request(
        "deselect_slot", "deselection_confirmed", date=DAY, time="10:00", employeeId=3
    )
    await watcher.expect("active_selections", slots=["11:00"])


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
