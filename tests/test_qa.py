"""The QA page's server side: the page itself, the QA endpoint and its start-up guard."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appointease_realtime.app import create_app
from appointease_realtime.config import Settings
from appointease_realtime.qa import STATIC, QAModeRefused, check_qa_database
from appointease_realtime.store import Store
from tests.conftest import need

Connect = Callable[..., Any]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
DAY = "2030-05-06"
QA_EMAIL = "qa-ann@example.com"


@pytest.fixture
async def qa(aiohttp_client: Callable[..., Any], settings: Settings) -> TestClient[Any, Any]:
    """The daemon in QA mode, exactly as create_app wires it."""
    started: TestClient[Any, Any] = await aiohttp_client(
        create_app(replace(settings, qa_mode=True))
    )
    return started


async def post(client: TestClient[Any, Any], **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/qa/appointments", json=body)
    return response.status, await response.json()


async def create(client: TestClient[Any, Any], time: str = "10:00", **extra: Any) -> str:
    status, body = await post(
        client,
        action="create",
        date=DAY,
        time=time,
        employeeId=3,
        email=QA_EMAIL,
        **extra,
    )
    assert status == 201, body
    strong_id: str = body["appointment"]["strong_id"]
    return strong_id


async def test_daemon_serves_the_page_and_qa_routes_only_in_qa_mode(
    make_client: Callable[..., Any],
) -> None:
    plain = await make_client()
    page = await plain.get("/test-websocket.html")
    assert page.status == 200 and page.content_type == "text/html"
    assert "Run All Tests" in await page.text()
    script = await plain.get("/assets/realtime-client.js")
    assert script.status == 200 and "AppointEaseRealtime" in await script.text()
    for path in ("/qa/appointments", "/qa/identity"):
        assert (await plain.post(path, json={"action": "create"})).status == 404
    assert (await plain.get("/qa")).status == 404
    paths = {r.canonical for r in plain.server.app.router.resources()}
    assert not {"/qa", "/qa/appointments", "/qa/identity"} & paths
    in_qa = await make_client(qa_mode=True)
    assert (await (await in_qa.get("/qa")).json())["qaMode"] is True
    paths = {r.canonical for r in in_qa.server.app.router.resources()}
    assert {"/qa", "/qa/appointments", "/qa/identity", "/test-websocket.html"} <= paths
    # the wired endpoint books for real: a row, not a 404 or 405
    status, body = await post(
        in_qa, action="create", date=DAY, time="10:00", employeeId=3, email=QA_EMAIL
    )
    assert status == 201 and body["appointment"]["strong_id"].startswith("QA-"), body


# ---- who may use the QA endpoint ----

REMOTE = {"X-Forwarded-For": "203.0.113.9"}  # through a trusted proxy: a remote client


async def qa_calls(client: TestClient[Any, Any], headers: dict[str, str]) -> list[int]:
    """The statuses of one identity and one appointment request with ``headers``."""
    identity = await client.post(
        "/qa/identity", json={"email": "qa-who@example.com"}, headers=headers
    )
    booking = await client.post(
        "/qa/appointments",
        json={"action": "cancel", "id": "QA-NOTTHERE"},  # 404 once allowed: changes nothing
        headers=headers,
    )
    return [identity.status, booking.status]


async def test_qa_answers_loopback_only_without_a_debug_token(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client(qa_mode=True, trusted_proxies=("127.0.0.0/8",))
    assert await qa_calls(client, {}) == [200, 404]  # loopback: allowed
    assert await qa_calls(client, REMOTE) == [403, 403]
    refused = await client.post("/qa/identity", json={"email": "qa-x@example.com"}, headers=REMOTE)
    assert (await refused.json())["code"] == "forbidden"
    forged = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}  # a client naming loopback itself
    assert await qa_calls(client, forged) == [403, 403]
    # a bearer means nothing while no DEBUG_TOKEN is set
    assert await qa_calls(client, {**REMOTE, "Authorization": "Bearer "}) == [403, 403]


async def test_qa_needs_the_debug_token_once_one_is_set(make_client: Callable[..., Any]) -> None:
    client = await make_client(
        qa_mode=True, trusted_proxies=("127.0.0.0/8",), debug_token="qa-debug-token"
    )
    bearer = {"Authorization": "Bearer qa-debug-token"}
    assert await qa_calls(client, {**REMOTE, **bearer}) == [200, 404]  # from anywhere
    assert await qa_calls(client, bearer) == [200, 404]
    assert await qa_calls(client, REMOTE) == [403, 403]
    assert await qa_calls(client, {**REMOTE, "Authorization": "Bearer wrong"}) == [403, 403]
    assert await qa_calls(client, {"Authorization": "qa-debug-token"}) == [403, 403]
    assert await qa_calls(client, {}) == [403, 403]  # then loopback alone is not enough


# ---- a held slot is booked only for its holder ----


async def test_create_refuses_a_slot_held_by_someone_else(
    qa: TestClient[Any, Any], connect: Connect, sql: SQL
) -> None:
    holder, other = await connect(on=qa), await connect(on=qa)
    slot = {"date": DAY, "time": "10:00", "employeeId": 3}
    await holder.request("lock_slot", "slot_locked", **slot)
    for extra in ({}, {"clientId": other.client_id}, {"clientId": holder.client_id + "x"}):
        status, body = await post(qa, action="create", **slot, email=QA_EMAIL, **extra)
        assert (status, body["code"]) == (409, "slot_held"), (extra, body)
    assert await sql("SELECT COUNT(*) FROM wp_appointments") == [(0,)]
    status, body = await post(qa, action="create", **slot, email=QA_EMAIL, clientId="")
    assert (status, body.get("field")) == (400, "clientId")
    status, body = await post(
        qa, action="create", **slot, email=QA_EMAIL, clientId=holder.client_id
    )
    assert status == 201, body  # the holder books its own hold, and the hold is consumed
    assert await sql("SELECT COUNT(*) FROM wp_appointease_slot_locks") == [(0,)]


async def test_move_refuses_a_slot_held_by_someone_else(
    qa: TestClient[Any, Any], connect: Connect, sql: SQL
) -> None:
    strong_id = await create(qa, time="09:00")
    holder, other = await connect(on=qa), await connect(on=qa)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    for extra in ({}, {"clientId": other.client_id}):
        status, body = await post(
            qa, action="move", id=strong_id, newDate=DAY, newTime="10:00", **extra
        )
        assert (status, body["code"]) == (409, "slot_held"), (extra, body)
    rows = await sql("SELECT appointment_date FROM wp_appointments")
    assert [str(r[0]) for r in rows] == [f"{DAY} 09:00:00"]  # not moved


async def test_move_onto_its_own_hold_is_allowed_for_the_holder(
    qa: TestClient[Any, Any], connect: Connect
) -> None:
    strong_id = await create(qa, time="09:00")
    holder = await connect(on=qa)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    status, body = await post(
        qa, action="move", id=strong_id, newDate=DAY, newTime="10:00", clientId=holder.client_id
    )
    assert status == 200, body


async def test_create_books_in_the_table_and_announces_it(
    qa: TestClient[Any, Any], connect: Connect, sql: SQL
) -> None:
    watcher = await connect(on=qa)
    customer = await connect(on=qa, email=QA_EMAIL)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    listed = await customer.request("watch_appointments", "appointments_data")
    assert listed["count"] == 0
    strong_id = await create(qa, name="Ann QA")
    assert re.fullmatch(r"QA-[0-9A-F]{12}", strong_id)
    rows = await sql(
        "SELECT email, appointment_date, employee_id, status, name FROM wp_appointments"
        " WHERE strong_id = %s",
        strong_id,
    )
    assert [tuple(str(v) for v in row) for row in rows] == [
        (QA_EMAIL, f"{DAY} 10:00:00", "3", "confirmed", "Ann QA")
    ]
    taken = await watcher.expect("slot_taken")
    assert taken["slot"] == f"{DAY} 10:00" and taken["employeeId"] == 3
    await watcher.expect("availability_update", booked=["10:00"])
    update = await customer.expect("update")
    assert [a["strong_id"] for a in update["data"]["appointments"]] == [strong_id]
    changed = await customer.expect("appointment_update")
    assert changed["appointment"]["strong_id"] == strong_id
    status, body = await post(
        qa, action="create", date=DAY, time="10:00", employeeId=3, email="qa-bob@example.com"
    )
    assert status == 409 and body["code"] == "slot_booked"


async def test_move_and_cancel_free_the_old_slot_and_tell_the_customer(
    qa: TestClient[Any, Any], connect: Connect
) -> None:
    strong_id = await create(qa)
    watcher = await connect(on=qa)
    customer = await connect(on=qa, email=QA_EMAIL)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await customer.request("watch_appointments", "appointments_data")
    status, body = await post(qa, action="move", id=strong_id, newDate=DAY, newTime="11:30")
    assert status == 200, body
    assert body["appointment"]["appointment_date"] == f"{DAY} 11:30:00"
    assert body["appointment"]["original_date"] == f"{DAY} 10:00:00"
    assert body["previous"] == {"appointment_date": f"{DAY} 10:00:00", "employee_id": 3}
    await watcher.expect("slot_taken", time="11:30")
    await watcher.expect("availability_update", booked=["11:30"])
    moved = await customer.expect("appointment_update")
    assert moved["appointment"]["appointment_date"] == f"{DAY} 11:30:00"
    numeric = body["appointment"]["id"]
    status, body = await post(qa, action="cancel", id=str(numeric))
    assert status == 200 and body["appointment"]["status"] == "cancelled"
    cancelled = await customer.expect("appointment_cancel")
    assert cancelled["appointment"]["strong_id"] == strong_id
    await watcher.expect("availability_update", booked=[])
    status, body = await post(qa, action="cancel", id=strong_id)  # idempotent
    assert status == 200 and body["appointment"]["status"] == "cancelled"


async def test_refusals(qa: TestClient[Any, Any], store: Store) -> None:
    real = await store.insert_appointment(
        {
            "name": "Real",
            "email": "real@example.org",
            "appointment_date": f"{DAY} 09:00:00",
            "employee_id": 3,
            "strong_id": "APT-2030-000001",
        }
    )
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"action": "fly"}, 400, "invalid_request", "action"),
        (
            {"action": "create", "date": DAY, "time": "10:00", "employeeId": 3, "email": "a@b.io"},
            400,
            "invalid_request",
            "email",
        ),
        (
            {"action": "create", "date": "2030-02-30", "time": "10:00", "employeeId": 3},
            400,
            "invalid_request",
            "date",
        ),
        (
            {"action": "move", "id": real, "newDate": DAY, "newTime": "12:00"},
            403,
            "forbidden",
            "id",
        ),
        ({"action": "cancel", "id": "APT-2030-000001"}, 400, "invalid_request", "id"),
        ({"action": "cancel", "id": 999999}, 404, "not_found", "id"),
    ]
    for body, status, code, field in cases:
        got_status, got = await post(qa, **body)
        assert (got_status, got["code"], got.get("field")) == (status, code, field), body
    form = await qa.post("/qa/appointments", data={"action": "cancel", "id": "1"})
    assert form.status == 415
    text = await qa.post(
        "/qa/appointments", data="{oops", headers={"Content-Type": "application/json"}
    )
    assert text.status == 400 and (await text.json())["code"] == "invalid_json"
    assert (await store.appointment(real) or {}).get("status") == "confirmed"


async def test_identity_mints_a_customer_token(qa: TestClient[Any, Any], connect: Connect) -> None:
    response = await qa.post("/qa/identity", json={"email": "QA-Zed@example.com"})
    body = await response.json()
    assert response.status == 200 and body["email"] == "qa-zed@example.com"
    sock = await connect(f"/ws/{body['token']}", on=qa)
    assert sock.hello["isAnonymous"] is False
    data = await sock.request("watch_appointments", "appointments_data")
    assert data["email"] == "qa-zed@example.com"
    refused = await qa.post("/qa/identity", json={"email": "ann@example.com"})
    assert refused.status == 400 and (await refused.json())["field"] == "email"


@pytest.mark.parametrize(
    ("overrides", "status", "token"),
    [({"allow_unsigned_email": True}, 200, None), ({}, 409, "absent")],
)
async def test_identity_without_a_token_secret(
    aiohttp_client: Callable[..., Any],
    settings: Settings,
    overrides: dict[str, Any],
    status: int,
    token: str | None,
) -> None:
    app = create_app(replace(settings, qa_mode=True, token_secret="", **overrides))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.post("/qa/identity", json={"email": "qa-x@example.com"})
    body = await response.json()
    assert response.status == status
    assert body.get("token", "absent") == token


async def test_start_up_guard(settings: Settings, store: Store) -> None:
    await check_qa_database(store, settings)  # QA mode off: nothing to check
    on = replace(settings, qa_mode=True)
    await check_qa_database(store, on)  # empty table
    await store.insert_appointment(
        {"name": "Q", "email": QA_EMAIL, "appointment_date": f"{DAY} 09:00:00", "strong_id": "QA-1"}
    )
    await check_qa_database(store, on)  # only QA rows
    await store.insert_appointment(
        {"name": "R", "email": "r@example.org", "appointment_date": f"{DAY} 10:00:00"}
    )
    with pytest.raises(QAModeRefused, match=r"QA_MODE: .*wp_appointments holds 1 appointment"):
        await check_qa_database(store, on)
    await check_qa_database(store, replace(on, qa_force=True))
    await check_qa_database(store, settings)


def test_page_and_client_parse_as_javascript(tmp_path: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        need("node", "node is not installed: JavaScript syntax not checked")
    html = (STATIC / "test-websocket.html").read_text()
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    assert scripts, "the page has inline scripts"
    for index, source in enumerate([*scripts, (STATIC / "realtime-client.js").read_text()]):
        path = tmp_path / f"script{index}.js"
        path.write_text(source)
        result = subprocess.run(
            [node, "--check", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
