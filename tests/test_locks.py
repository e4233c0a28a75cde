"""Lock rules end to end: races, ownership, hold limit, grace and resume, expiry announcements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from appointease_realtime.store import Store
from tests.conftest import assert_one_winner_per_round

Connect = Callable[..., Any]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
DAY = "2030-05-06"
REPLIES = ("slot_locked", "lock_failed")


async def test_fifty_sockets_race_for_one_slot_and_exactly_one_wins(
    connect: Connect, sql: SQL
) -> None:
    sockets = [await connect() for _ in range(50)]
    await assert_one_winner_per_round(sockets, sql, rounds=20)


async def test_only_the_holder_unlocks(connect: Connect) -> None:
    holder, other = await connect(), await connect()
    slot = {"date": DAY, "time": "10:00", "employeeId": 3}
    await holder.request("lock_slot", "slot_locked", **slot)
    refused = await other.request("lock_slot", REPLIES, **slot)
    assert refused["type"] == "lock_failed" and refused["reason"] == "slot_locked"
    assert 590 <= refused["expiresIn"] <= 600
    denied = await other.request("unlock_slot", ("slot_unlocked", "unlock_failed"), **slot)
    assert denied["type"] == "unlock_failed" and denied["reason"] == "not_holder"
    refreshed = await holder.request("lock_slot", REPLIES, **slot)
    assert refreshed["type"] == "slot_locked"
    assert (await holder.request("unlock_slot", "slot_unlocked", **slot))["type"] == "slot_unlocked"
    assert (await other.request("lock_slot", REPLIES, **slot))["type"] == "slot_locked"


async def test_hold_limit_and_booked_slot(connect: Connect, store: Store) -> None:
    await store.insert_appointment(
        {"name": "A", "email": "a@x.io", "appointment_date": f"{DAY} 15:00:00", "employee_id": 3}
    )
    sock = await connect()
    for time in ("10:00", "11:00"):
        await sock.request("lock_slot", "slot_locked", date=DAY, time=time, employeeId=3)
    over = await sock.request("lock_slot", REPLIES, date=DAY, time="12:00", employeeId=3)
    assert over["type"] == "lock_failed" and over["reason"] == "hold_limit"
    booked = await connect()
    refused = await booked.request("lock_slot", REPLIES, date=DAY, time="15:00", employeeId=3)
    assert refused["type"] == "lock_failed" and refused["reason"] == "slot_booked"


async def test_expired_lock_of_php_is_swept_and_announced(
    connect: Connect, sql: SQL, store: Store
) -> None:
    expires = (
        "NOW() + INTERVAL 1 SECOND" if store.kind == "mysql" else "datetime('now', '+1 seconds')"
    )
    await sql(
        "INSERT INTO wp_appointease_slot_locks (date, time, employee_id, client_id, expires_at)"
        f" VALUES (%s, '10:00:00', 3, 'php_visitor', {expires})",
        DAY,
    )
    watcher, racer = await connect(), await connect()
    await watcher.send("watch_slot", date=DAY, employeeId=3)
    assert (await watcher.expect("availability_update"))["locked"] == ["10:00"]
    refused = await racer.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=3)
    assert refused["reason"] == "slot_locked"
    await watcher.expect("availability_update", locked=[], timeout=5)
    assert await sql("SELECT COUNT(*) FROM wp_appointease_slot_locks") == [(0,)]


async def test_locks_survive_a_short_disconnect_and_resume(
    make_client: Callable[..., Any], connect: Connect, sql: SQL
) -> None:
    client = await make_client(lock_release_grace_seconds=2.0)
    holder = await connect(on=client)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    token = holder.hello["resumeToken"]
    await holder.close()
    await asyncio.sleep(0.5)
    back = await connect(on=client, resume=token)
    assert back.client_id == holder.client_id and back.hello["resumed"] is True
    await asyncio.sleep(2.0)  # past the grace period: the resumed client keeps its hold
    assert await sql("SELECT client_id FROM wp_appointease_slot_locks") == [(holder.client_id,)]
    unlocked = await back.request(
        "unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3
    )
    assert unlocked["type"] == "slot_unlocked"


async def test_late_return_finds_its_locks_released_and_announced(
    connect: Connect, sql: SQL
) -> None:
    watcher, holder = await connect(), await connect()
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=["10:00"])
    await holder.close()
    await watcher.expect("availability_update", locked=[], timeout=3)  # grace is 0.5 s in tests
    assert await sql("SELECT COUNT(*) FROM wp_appointease_slot_locks") == [(0,)]
    late = await connect(resume=holder.hello["resumeToken"])
    assert late.client_id == holder.client_id
    again = await late.request(
        "unlock_slot", ("slot_unlocked", "unlock_failed"), date=DAY, time="10:00", employeeId=3
    )
    assert again["reason"] == "not_locked"


async def test_forged_resume_token_gets_a_new_identity(connect: Connect) -> None:
    holder = await connect()
    forged = f"anonymous_1_victim0000.{holder.hello['resumeToken'].rpartition('.')[2]}"
    other = await connect(resume=forged)
    assert other.client_id != "anonymous_1_victim0000" and other.hello["resumed"] is False
    twin = await connect(resume=holder.hello["resumeToken"])  # still connected: no twin
    assert twin.client_id != holder.client_id


async def test_database_failure_answers_unavailable_never_success(
    connect: Connect, sql: SQL
) -> None:
    sock = await connect()
    await sql("DROP TABLE wp_appointease_slot_locks")
    failed = await sock.request(
        "lock_slot", REPLIES, date=DAY, time="10:00", employeeId=3, requestId="x"
    )
    assert (
        failed["type"] == "error" and failed["code"] == "unavailable" and failed["requestId"] == "x"
    )
    failed = await sock.request(
        "unlock_slot", ("slot_unlocked", "unlock_failed"), date=DAY, time="10:00", employeeId=3
    )
    assert failed["type"] == "error" and failed["code"] == "unavailable"
    assert (await sock.request("ping", "pong"))["type"] == "pong"
