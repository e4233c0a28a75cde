"""HTTP on the daemon's port: /debug, /healthz, /readyz, /api/availability."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from appointease_realtime.store import Store

Connect = Callable[..., Any]
DAY = "2030-05-06"


async def test_debug_has_the_old_shape_plus_locks_and_node(
    client: TestClient[Any, Any], connect: Connect
) -> None:
    picker = await connect(email="ann@example.com")
    await picker.request("watch_slot", "active_selections", date=DAY, employeeId=1)
    await picker.request(
        "selecting_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=1
    )
    await picker.request("lock_slot", "slot_locked", date=DAY, time="11:00", employeeId=1)
    body = await (await client.get("/debug")).json()
    assert set(body) == {
        "connectedClients",
        "activeSelections",
        "clients",
        "selections",
        "timestamp",
        "locks",
        "node",
    }
    assert body["connectedClients"] == 1 and body["activeSelections"] == 1
    assert body["clients"] == [
        {
            "id": picker.client_id,
            "email": "a***@example.com",
            "role": "customer",
            "isAnonymous": False,
            "watchingSlot": {"date": DAY, "employeeId": 1},
        }
    ]
    selection = body["selections"][0]
    assert set(selection) == {"date", "time", "employeeId", "clientId", "age"}
    assert selection["time"] == "10:00" and selection["age"].endswith("s")
    assert body["locks"][0]["clientId"] == picker.client_id and body["locks"][0]["time"] == "11:00"
    assert body["timestamp"].endswith("Z") and body["node"]["store"] in {"sqlite", "mysql"}


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_readyz_reports_an_unreachable_database(
    aiohttp_client: Callable[..., Any], tmp_path: Any
) -> None:

    from appointease_realtime.app import create_app
    from tests.conftest import base_settings
    from tests.processes import free_port

    port = free_port()  # a port nobody listens on
    client = await aiohttp_client(
        create_app(
            base_settings(db_host="127.0.0.1", db_port=port, db_name="x", debug_token="dbg-token")
        )
    )
    assert (await client.get("/healthz")).status == 200  # alive, even without its database
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503 and body == {"status": "unavailable", "reason": "database"}
    detailed = await client.get("/readyz", headers={"Authorization": "Bearer dbg-token"})
    assert "Can't connect to MySQL server" in (await detailed.json())["detail"]


async def test_readyz_says_schema_when_the_tables_are_missing(
    aiohttp_client: Callable[..., Any], mysql_database: str
) -> None:
    """A database without the plugin's tables is not ready: every request would fail."""
    from appointease_realtime.app import create_app
    from tests.conftest import base_settings

    client = await aiohttp_client(
        create_app(base_settings(db_host="127.0.0.1", db_name=mysql_database))
    )
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "unavailable", "reason": "schema"}


async def test_availability_endpoint_for_polling(
    client: TestClient[Any, Any], store: Store
) -> None:
    await store.insert_appointment(
        {"name": "A", "email": "a@x.io", "appointment_date": f"{DAY} 09:00:00", "employee_id": 2}
    )
    ok = await client.get("/api/availability", params={"date": DAY, "employeeId": "2"})
    body = await ok.json()
    assert ok.status == 200 and body["type"] == "availability_update"
    assert body["unavailable"] == ["09:00"] and body["employeeId"] == 2
    bad = await client.get("/api/availability", params={"date": "2025-02-30", "employeeId": "2"})
    assert bad.status == 400
    assert (await bad.json()) == {
        "error": "Field date is not a real calendar date",
        "code": "invalid_request",
        "field": "date",
    }


async def test_plain_get_on_the_socket_path_describes_the_service(
    client: TestClient[Any, Any],
) -> None:
    body = await (await client.get("/")).json()
    assert body["service"] == "appointease-realtime"


async def test_availability_answers_503_while_the_database_is_down(
    aiohttp_client: Callable[..., Any], mysql_database: str
) -> None:
    """The polling endpoint says ``unavailable`` (503, the error envelope) while MariaDB does
    not answer, within DB_TIMEOUT_SECONDS, and serves again once it does."""
    from appointease_realtime.app import create_app
    from tests.conftest import MYSQL, _create_schema, base_settings
    from tests.stall_proxy import StallProxy

    proxy = await StallProxy(str(MYSQL["host"]), 3306).start()
    try:
        settings = base_settings(
            db_host="127.0.0.1",
            db_port=proxy.port,
            db_name=mysql_database,
            db_timeout_seconds=0.5,
        )
        await _create_schema(settings)
        client = await aiohttp_client(create_app(settings))
        query = {"date": DAY, "employeeId": "2"}
        assert (await client.get("/api/availability", params=query)).status == 200
        proxy.pause()  # the database stops answering (nothing is closed: a hung server)
        began = asyncio.get_running_loop().time()
        down = await client.get("/api/availability", params=query)
        took = asyncio.get_running_loop().time() - began
        assert down.status == 503
        assert await down.json() == {
            "error": "The booking database is unavailable; try again",
            "code": "unavailable",
        }
        assert took < 5, f"answered after {took:.1f}s with DB_TIMEOUT_SECONDS=0.5"
        proxy.resume()
        for _ in range(50):
            back = await client.get("/api/availability", params=query)
            if back.status == 200:
                break
            await asyncio.sleep(0.1)
        assert back.status == 200 and (await back.json())["type"] == "availability_update"
    finally:
        await proxy.close()


async def test_availability_answers_503_without_a_database(
    aiohttp_client: Callable[..., Any],
) -> None:
    from appointease_realtime.app import create_app
    from tests.conftest import base_settings
    from tests.processes import free_port

    client = await aiohttp_client(
        create_app(base_settings(db_host="127.0.0.1", db_port=free_port(), db_name="x"))
    )
    down = await client.get("/api/availability", params={"date": DAY, "employeeId": "2"})
    assert down.status == 503 and (await down.json())["code"] == "unavailable"
    bad = await client.get("/api/availability", params={"date": DAY})  # validation first
    assert bad.status == 400 and (await bad.json())["field"] == "employeeId"


def _tasks_running(name: str) -> list[asyncio.Task[Any]]:
    """This loop's tasks that are inside a coroutine ``name`` (down their chain of awaits)."""
    found = []
    for task in asyncio.all_tasks():
        awaiting: Any = task.get_coro()
        while awaiting is not None and hasattr(awaiting, "cr_code"):
            if awaiting.cr_code.co_name == name:
                found.append(task)
                break
            awaiting = awaiting.cr_await
    return found


async def test_a_cancelled_socket_handler_takes_its_frame_reader_along(
    client: TestClient[Any, Any], connect: Connect
) -> None:
    """Frames are read by a task of their own; cancelling the socket's handler (a shutdown)
    cancels that reader too, and the client leaves the node as after a close."""
    sock = await connect()
    await sock.request("ping", "pong")
    (reader,) = _tasks_running("_read_frames")
    (handler,) = [task for task in _tasks_running("_serve_socket") if task is not reader]
    handler.cancel()
    await asyncio.wait([handler, reader], timeout=5)
    assert reader.cancelled() and handler.done()
    body = await (await client.get("/debug")).json()
    assert body["connectedClients"] == 0
