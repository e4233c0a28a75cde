"""/metrics counts how holds end: a booking consumed it, it expired, or it was released."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from appointease_realtime.hooks import signed_request
from appointease_realtime.store import Store
from tests.test_hooks import SECRET

DAY = "2030-05-06"


async def ended(client: Any) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {
        sample.labels["how"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "appointease_holds_ended"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def test_booked_expired_and_released_are_told_apart(
    make_client: Callable[..., Any], store: Store
) -> None:
    """One daemon alone on the database (another one's sweep would count the expiry)."""
    client = await make_client(
        hook_secret=SECRET, lock_ttl_seconds=1, lock_sweep_interval_seconds=0.2
    )
    ws = await client.ws_connect("/")
    await ws.receive_json()

    async def ask(type_: str, time: str) -> None:
        await ws.send_json({"type": type_, "date": DAY, "time": time, "employeeId": 3})
        while (await ws.receive_json())["type"] not in ("slot_locked", "slot_unlocked"):
            pass

    await ask("lock_slot", "09:00")
    await ask("lock_slot", "10:00")
    await ask("unlock_slot", "09:00")
    await store.insert_appointment(
        {
            "name": "A",
            "email": "a@example.com",
            "appointment_date": f"{DAY} 10:00:00",
            "employee_id": 3,
            "strong_id": "APT-M-1",
        }
    )
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-M-1"})
    assert (await client.post("/hooks/booking", data=body, headers=headers)).status == 200
    await ask("lock_slot", "11:00")
    for _ in range(100):
        if (await ended(client)).get("expired"):
            break
        await asyncio.sleep(0.1)
    assert await ended(client) == {"released": 1.0, "booked": 1.0, "expired": 1.0}
    await ws.close()
