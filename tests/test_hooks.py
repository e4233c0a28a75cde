"""POST /hooks/booking: every refusal, dedupe, and what a booking change tells each page."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from appointease_realtime.hooks import signed_request
from appointease_realtime.store import Store

SECRET = "whsec_" + base64.b64encode(b"appointease-test-secret-32-bytes").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"some-other-secret-of-32-bytes!!!").decode()
DAY = "2030-05-06"
Connect = Callable[..., Any]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]


@pytest.fixture
async def hooked(make_client: Callable[..., Any]) -> TestClient[Any, Any]:
    """A daemon with HOOK_SECRET set and reconciliation out of the way (hooks alone)."""
    client: TestClient[Any, Any] = await make_client(
        hook_secret=SECRET, reconcile_interval_seconds=3600
    )
    return client


async def post(
    client: TestClient[Any, Any], body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    resp = await client.post("/hooks/booking", data=body, headers=headers)
    return resp.status, await resp.json()


async def book(
    store: Store, time_: str = "10:00", email: str = "ann@example.com", **extra: Any
) -> int:
    return await store.insert_appointment(
        {
            "name": "Ann",
            "email": email,
            "appointment_date": f"{DAY} {time_}:00",
            "employee_id": 3,
            "strong_id": f"APT-2030-{time_.replace(':', '')}",
            **extra,
        }
    )


# ---- refusals change nothing ----


async def test_refusals(hooked: TestClient[Any, Any], connect: Connect, store: Store) -> None:
    await book(store)
    watcher = await connect(on=hooked)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    good_body, good = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})

    missing = {k: v for k, v in good.items() if k != "webhook-signature"}
    assert await post(hooked, good_body, missing) == (
        401,
        {"error": "Signature rejected: Missing required headers", "code": "invalid_signature"},
    )
    _, forged = signed_request(OTHER_SECRET, "appointment.created", {"id": "APT-2030-1000"})
    assert (await post(hooked, good_body, forged))[0] == 401
    tampered = good_body.replace(b"1000", b"1001")
    assert (await post(hooked, tampered, good))[1]["code"] == "invalid_signature"
    garbled = {**good, "webhook-signature": "nonsense"}
    assert (await post(hooked, good_body, garbled))[1]["code"] == "invalid_signature"

    old = datetime.now(UTC) - timedelta(minutes=6)
    stale = {**good, "webhook-timestamp": str(int(old.timestamp()))}
    stale["webhook-signature"] = Webhook(SECRET).sign(good["webhook-id"], old, good_body.decode())
    assert await post(hooked, good_body, stale) == (
        401,
        {"error": "Timestamp outside the 5-minute window", "code": "timestamp_out_of_window"},
    )

    big, big_headers = signed_request(SECRET, "appointment.created", {"id": "x" * 70_000})
    assert (await post(hooked, big, big_headers))[0] == 413

    bad_json = b"{not json"
    bad_headers = {**good, "webhook-id": "msg_badjson"}
    bad_headers["webhook-signature"] = Webhook(SECRET).sign(
        "msg_badjson", datetime.now(UTC), bad_json.decode()
    )
    bad_headers["webhook-timestamp"] = str(int(time.time()))
    assert await post(hooked, bad_json, bad_headers) == (
        400,
        {"error": "Body is not valid JSON", "code": "invalid_json"},
    )

    unknown, unknown_headers = signed_request(SECRET, "appointment.exploded", {"id": 1})
    assert (await post(hooked, unknown, unknown_headers)) == (
        422,
        {"error": "Unknown event type: appointment.exploded", "code": "unknown_event"},
    )
    no_id, no_id_headers = signed_request(SECRET, "appointment.created", {"id": True})
    assert (await post(hooked, no_id, no_id_headers))[0] == 400

    assert [f["type"] for f in await watcher.quiet(0.5)] == []  # nothing was broadcast
    # and not later either: the next frame the watcher gets is a change made after them
    holder = await connect(on=hooked)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="11:00", employeeId=3)
    after = await watcher.recv(timeout=10)
    assert (after["type"], after["locked"]) == ("availability_update", ["11:00"]), after


async def test_secret_unset_answers_503(client: TestClient[Any, Any]) -> None:
    body, headers = signed_request(SECRET, "appointment.created", {"id": 1})
    assert await post(client, body, headers) == (
        503,
        {"error": "HOOK_SECRET is not set on this daemon", "code": "hooks_disabled"},
    )


async def test_key_rotation_accepts_any_listed_signature(hooked: TestClient[Any, Any]) -> None:
    body, headers = signed_request(SECRET, "test.ping", {})
    old_sig = Webhook(OTHER_SECRET).sign(headers["webhook-id"], datetime.now(UTC), body.decode())
    rotated = {**headers, "webhook-signature": f"{old_sig} {headers['webhook-signature']}"}
    assert await post(hooked, body, rotated) == (200, {"ok": True, "pong": True})


async def test_a_webhook_id_is_forgotten_after_the_dedupe_window(
    hooked: TestClient[Any, Any], store: Store, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within DEDUPE_SECONDS a retry of the same webhook-id is a duplicate (not applied
    again); after it, the id is new again and the hook is applied."""
    from appointease_realtime import hooks

    monkeypatch.setattr(hooks, "DEDUPE_SECONDS", 1.0)
    await book(store)
    customer = await connect(on=hooked, email="ann@example.com")
    await customer.request("watch_appointments", "appointments_data")
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})
    assert await post(hooked, body, headers) == (200, {"ok": True, "found": True})
    await customer.expect("appointment_update", timeout=10)
    assert await post(hooked, body, headers) == (200, {"ok": True, "duplicate": True})
    await asyncio.sleep(1.3)
    # the same request (its timestamp still inside the 5-minute window): applied again
    assert await post(hooked, body, headers) == (200, {"ok": True, "found": True})
    again = await customer.expect("appointment_update", timeout=10)
    assert again["appointment"]["strong_id"] == "APT-2030-1000"


# ---- effects ----


async def test_created_reaches_watchers_once_and_completes_the_hold(
    hooked: TestClient[Any, Any], connect: Connect, store: Store, sql: SQL
) -> None:
    watcher, booker = await connect(on=hooked), await connect(on=hooked, email="ann@example.com")
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await booker.request("watch_appointments", "appointments_data")
    await booker.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=["10:00"])
    await book(store)
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})
    assert await post(hooked, body, headers) == (200, {"ok": True, "found": True})
    # by the hook (reconciliation is off here): a generous bound, a busy machine is slow
    taken = await watcher.expect("slot_taken", timeout=10)
    assert taken["slot"] == f"{DAY} 10:00" and taken["employeeId"] == 3
    await watcher.expect("availability_update", booked=["10:00"], locked=[], timeout=10)
    assert await sql("SELECT COUNT(*) FROM wp_appointease_slot_locks") == [(0,)]
    update = await booker.expect("update", timeout=10)
    assert [a["strong_id"] for a in update["data"]["appointments"]] == ["APT-2030-1000"]
    changed = await booker.expect("appointment_update")
    assert changed["appointment"]["appointment_date"] == f"{DAY} 10:00:00"

    again = await post(hooked, body, headers)  # the bridge retried: same webhook-id
    assert again == (200, {"ok": True, "duplicate": True})
    assert [f["type"] for f in await watcher.quiet(0.5)] == []


async def test_move_frees_the_old_slot_and_takes_the_new(
    hooked: TestClient[Any, Any], connect: Connect, store: Store
) -> None:
    appointment_id = await book(store, "10:00")
    old_room, new_room = await connect(on=hooked), await connect(on=hooked)
    await old_room.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await new_room.request("watch_slot", "active_selections", date="2030-05-07", employeeId=4)
    await store.update_appointment(
        appointment_id, {"appointment_date": "2030-05-07 15:00:00", "employee_id": 4}
    )
    previous = {"appointment_date": f"{DAY} 10:00:00", "employee_id": 3}
    body, headers = signed_request(
        SECRET, "appointment.updated", {"id": appointment_id, "previous": previous}
    )
    assert (await post(hooked, body, headers))[0] == 200
    await old_room.expect("availability_update", booked=[])
    taken = await new_room.expect("slot_taken")
    assert (taken["date"], taken["time"], taken["employeeId"]) == ("2030-05-07", "15:00", 4)


async def test_cancel_frees_the_slot_and_tells_the_customer(
    hooked: TestClient[Any, Any], connect: Connect, store: Store
) -> None:
    appointment_id = await book(store, "10:00")
    watcher, customer = await connect(on=hooked), await connect(on=hooked, email="ann@example.com")
    await watcher.send("watch_slot", date=DAY, employeeId=3)
    assert (await watcher.expect("availability_update"))["booked"] == ["10:00"]
    await customer.request("subscribe", "update")
    await store.update_appointment(appointment_id, {"status": "cancelled"})
    body, headers = signed_request(SECRET, "appointment.cancelled", {"id": str(appointment_id)})
    assert (await post(hooked, body, headers))[0] == 200
    await watcher.expect("availability_update", booked=[], unavailable=[])
    assert (await customer.expect("update"))["data"]["appointments"] == []
    cancel = await customer.expect("appointment_cancel")
    assert cancel["appointment"]["status"] == "cancelled"


async def test_unknown_appointment_is_acknowledged_without_broadcast(
    hooked: TestClient[Any, Any],
) -> None:
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-none"})
    assert await post(hooked, body, headers) == (200, {"ok": True, "found": False})


async def test_database_down_answers_503_and_the_retry_is_not_a_duplicate(
    hooked: TestClient[Any, Any], store: Store, sql: SQL
) -> None:
    await book(store)
    await sql("ALTER TABLE wp_appointments RENAME TO wp_appointments_away")
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})
    status, answer = await post(hooked, body, headers)
    assert status == 503 and answer["code"] == "unavailable"
    await sql("ALTER TABLE wp_appointments_away RENAME TO wp_appointments")
    assert await post(hooked, body, headers) == (200, {"ok": True, "found": True})


# ---- reconciliation: certain even when no hook comes ----


async def test_a_row_inserted_without_hook_reaches_watchers(
    make_client: Callable[..., Any], connect: Connect, sql: SQL
) -> None:
    client = await make_client(reconcile_interval_seconds=0.5)
    watcher = await connect(on=client)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await sql(
        "INSERT INTO wp_appointments (name, email, appointment_date, employee_id, status)"
        " VALUES ('Walk-in', 'w@example.com', %s, 3, 'confirmed')",
        f"{DAY} 11:30:00",
    )
    taken = await watcher.expect("slot_taken", timeout=10)  # by reconciliation: no hook here
    assert taken["time"] == "11:30"
    await watcher.expect("availability_update", booked=["11:30"], timeout=10)
    await sql("UPDATE wp_appointments SET status = 'cancelled'")
    await watcher.expect("availability_update", booked=[], timeout=10)
    assert [f for f in await watcher.quiet(1.2) if f["type"] == "slot_taken"] == []


# ---- send-hook, for admins ----


async def test_send_hook_command(hooked: TestClient[Any, Any], store: Store) -> None:
    await book(store)
    url = str(hooked.make_url("/hooks/booking"))
    env = {**os.environ, "HOOK_SECRET": SECRET}
    cmd = [sys.executable, "-m", "appointease_realtime", "--env-file", os.devnull, "send-hook"]

    def run(*args: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cmd, *args], capture_output=True, text=True, env=env, timeout=30, check=False
        )

    sent = await asyncio.to_thread(run, "appointment.created", "APT-2030-1000", "--url", url)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout.split(" ", 1)[1]) == {"ok": True, "found": True}
    no_secret = await asyncio.to_thread(
        run, "test.ping", "-", "--url", url, env={**env, "HOOK_SECRET": ""}
    )
    assert no_secret.returncode == 2 and "HOOK_SECRET is not set" in no_secret.stderr


# ---- the network as it is ----


async def raw_post(port: int, head: bytes, parts: list[bytes], pause: float) -> tuple[int, Any]:
    """POST over a raw socket: the head, then each part after ``pause`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    for part in parts:
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(part)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.split(b"\r\n\r\n", 1)[1]
    if b"Transfer-Encoding: chunked" in rest.split(b"\r\n\r\n", 1)[0]:
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_body_in_two_segments_or_chunks_is_read_whole(
    hooked: TestClient[Any, Any], store: Store, connect: Connect
) -> None:
    """A correctly signed hook whose body arrives in pieces 50 ms apart is applied, not 401."""
    watcher = await connect(on=hooked)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await book(store)
    port = hooked.server.port
    assert port is not None
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST /hooks/booking HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n"
    split = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
    status, answer = await raw_post(port, split, [body[:40], body[40:]], 0.05)
    assert status == 200 and answer == {"ok": True, "found": True}
    await watcher.expect("slot_taken", time="10:00")
    body, headers = signed_request(SECRET, "test.ping", {})
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST /hooks/booking HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n"
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:10], body[10:])] + [
        b"0\r\n\r\n"
    ]
    status, answer = await raw_post(port, chunked, chunks, 0.05)
    assert status == 200 and answer == {"ok": True, "pong": True}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_body_that_never_ends_is_refused_in_bounded_time(
    hooked: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from appointease_realtime import hooks

    monkeypatch.setattr(hooks, "BODY_TIMEOUT_SECONDS", 0.5)
    port = hooked.server.port
    assert port is not None
    body, headers = signed_request(SECRET, "test.ping", {})
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST /hooks/booking HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, answer = await raw_post(port, head + body[:20], [], 0)
    assert status == 408 and answer["code"] == "body_timeout"
