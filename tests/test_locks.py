"""Lock rules end to end: races, ownership, hold limit, grace and resume, expiry announcements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

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


async def test_a_resume_supersedes_the_old_socket_and_keeps_the_holds(
    make_client: Callable[..., Any], connect: Connect, sql: SQL
) -> None:
    """A phone changed network: it resumes before the heartbeat noticed the old socket die.
    The new socket gets the clientId, the old one is closed (4009) and releases nothing."""
    client = await make_client(lock_release_grace_seconds=0.3)
    holder = await connect(on=client)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    twin = await connect(on=client, resume=holder.hello["resumeToken"])
    assert twin.client_id == holder.client_id and twin.hello["resumed"] is True
    closing = await holder.ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4009
    await asyncio.sleep(0.8)  # past the grace: nothing was released
    rows = await sql("SELECT client_id FROM wp_appointease_slot_locks")
    assert rows == [(holder.client_id,)]
    refreshed = await twin.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=3)
    assert refreshed["type"] == "slot_locked"
    stranger = await connect(on=client)
    refused = await stranger.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=3)
    assert refused["reason"] == "slot_locked"


async def test_one_address_cannot_squat_a_calendar(
    make_client: Callable[..., Any], connect: Connect, sql: SQL
) -> None:
    """50 sockets from one address: at most HOLDS_PER_ADDRESS holds, counted in the database."""
    client = await make_client(holds_per_address=10)
    sockets = [await connect(on=client) for _ in range(50)]
    replies = await asyncio.gather(
        *(
            sock.request(
                "lock_slot",
                REPLIES,
                date=DAY,
                time=f"{8 + i // 6:02d}:{i % 6 * 10:02d}",
                employeeId=4,
            )
            for i, sock in enumerate(sockets)
        )
    )
    won = [r for r in replies if r["type"] == "slot_locked"]
    assert len(won) == 10
    assert {r["reason"] for r in replies if r["type"] == "lock_failed"} == {"address_limit"}
    assert await sql("SELECT COUNT(*) FROM wp_appointease_slot_locks") == [(10,)]


async def test_a_signed_in_person_counts_all_their_sockets(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    client = await make_client(holds_per_identity=3, holds_per_address=100)
    tabs = [await connect(on=client, email="ann@example.com") for _ in range(5)]
    answers = [
        await tab.request("lock_slot", REPLIES, date=DAY, time=f"1{i}:00", employeeId=5)
        for i, tab in enumerate(tabs)
    ]
    assert [a["type"] for a in answers].count("slot_locked") == 3
    assert answers[-1]["reason"] == "identity_limit"
    other = await connect(on=client, email="bob@example.com")
    assert (await other.request("lock_slot", REPLIES, date=DAY, time="16:00", employeeId=5))[
        "type"
    ] == "slot_locked"


async def test_a_hold_cannot_be_refreshed_past_its_maximum_age(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    """Re-locking refreshes only up to HOLD_MAX_SECONDS after the hold was first taken; then
    the slot is free for someone else."""
    client = await make_client(hold_max_seconds=3)
    sock, other = await connect(on=client), await connect(on=client)
    first = await sock.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=6)
    assert first["type"] == "slot_locked" and first["expiresIn"] <= 3
    await asyncio.sleep(1.2)
    again = await sock.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=6)
    assert again["type"] == "slot_locked" and again["expiresIn"] <= 2  # not another 600 s
    refused = await other.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=6)
    assert refused["reason"] == "slot_locked" and refused["expiresIn"] <= 2
    await asyncio.sleep(again["expiresIn"] + 1.1)
    taken = await other.request("lock_slot", REPLIES, date=DAY, time="10:00", employeeId=6)
    assert taken["type"] == "slot_locked"
