"""The holder sees its hold's end coming: lock_expiring before, lock_expired after, and
neither for a hold that was extended, released or booked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from appointease_realtime.hooks import signed_request
from appointease_realtime.store import Store
from tests.test_hooks import SECRET

Connect = Callable[..., Any]
DAY = "2030-05-06"
SLOT = {"date": DAY, "time": "10:00", "employeeId": 3}
REPLIES = ("slot_locked", "lock_failed")


async def test_expiring_then_expired(make_client: Callable[..., Any], connect: Connect) -> None:
    client = await make_client(lock_ttl_seconds=3, hold_warning_seconds=2)
    holder, other = await connect(on=client), await connect(on=client)
    locked = await holder.request("lock_slot", REPLIES, **SLOT)
    assert locked["type"] == "slot_locked" and locked["expiresIn"] <= 3
    warned = await holder.expect("lock_expiring", timeout=10)
    assert {k: warned[k] for k in SLOT} == SLOT and 0 <= warned["expiresIn"] <= 2
    gone = await holder.expect("lock_expired", timeout=10)
    assert {k: gone[k] for k in SLOT} == SLOT and "expiresIn" not in gone
    assert not [f for f in other.seen if f["type"] in ("lock_expiring", "lock_expired")]


async def test_locking_again_extends_and_the_clock_follows(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    client = await make_client(lock_ttl_seconds=4, hold_warning_seconds=1)
    holder = await connect(on=client)
    first = await holder.request("lock_slot", REPLIES, **SLOT)
    await asyncio.sleep(2)
    loop = asyncio.get_running_loop()
    extended_at = loop.time()
    again = await holder.request("lock_slot", REPLIES, **SLOT)
    assert again["type"] == "slot_locked" and again["expiresIn"] >= 3
    await holder.expect("lock_expiring", timeout=10)
    await holder.expect("lock_expired", timeout=10)
    ended_after = loop.time() - extended_at
    # the first hold would have ended about first["expiresIn"] - 2 s from the extension
    assert ended_after > first["expiresIn"] - 2 + 0.8, ended_after


async def test_a_released_hold_says_nothing_more(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    client = await make_client(lock_ttl_seconds=2, hold_warning_seconds=1)
    holder = await connect(on=client)
    await holder.request("lock_slot", REPLIES, **SLOT)
    await holder.request("unlock_slot", "slot_unlocked", **SLOT)
    later = await holder.quiet(3)
    assert not [f for f in later if f["type"] in ("lock_expiring", "lock_expired")]


async def test_a_booked_hold_does_not_expire(
    make_client: Callable[..., Any], connect: Connect, store: Store
) -> None:
    client = await make_client(lock_ttl_seconds=2, hold_warning_seconds=0, hook_secret=SECRET)
    holder = await connect(on=client)
    await holder.request("lock_slot", REPLIES, **SLOT)
    await store.insert_appointment(
        {
            "name": "A",
            "email": "a@example.com",
            "appointment_date": f"{DAY} 10:00:00",
            "employee_id": 3,
            "strong_id": "APT-CLOCK-1",
        }
    )
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-CLOCK-1"})
    assert (await client.post("/hooks/booking", data=body, headers=headers)).status == 200
    later = await holder.quiet(3)
    assert not [f for f in later if f["type"] == "lock_expired"]
