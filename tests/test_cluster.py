"""Two daemons on one Redis act as one: selections, locks, hooks and /debug cross nodes.

Both apps run in this process on the same database; each test gets its own Redis namespace.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appointease_realtime import app as app_module
from appointease_realtime.broker import Cluster, open_cluster
from appointease_realtime.hooks import signed_request
from appointease_realtime.keys import NODE
from appointease_realtime.store import Store
from tests.conftest import Socket, assert_one_winner_per_round, token_for
from tests.processes import free_port
from tests.redis_support import ThrowawayRedis, wait_for

pytestmark = pytest.mark.redis

SECRET = "whsec_" + base64.b64encode(b"appointease-test-secret-32-bytes").decode()
DAY = "2030-05-06"
REPLIES = ("slot_locked", "lock_failed")
Client = TestClient[Any, Any]
StartNode = Callable[..., Awaitable[Client]]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]


@pytest.fixture
async def node(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str
) -> StartNode:
    """Start a daemon on the shared Redis, in a namespace of this test alone."""

    def open_on_namespace(url: str | None, _: str) -> Cluster:
        assert url is not None
        return open_cluster(url, namespace=namespace, backoff_cap=0.5)

    monkeypatch.setattr(app_module, "open_cluster", open_on_namespace)

    async def start(**overrides: Any) -> Client:
        client: Client = await make_client(**{"redis_url": redis_url, **overrides})
        return client

    return start


async def open_socket(client: Client, email: str | None = None) -> Socket:
    """A socket to one node, past its ``connection`` frame (signed in when ``email`` is given)."""
    ws = await client.ws_connect(f"/ws/{token_for(email)}" if email else "/")
    hello = json.loads((await ws.receive(timeout=5)).data)
    assert hello["type"] == "connection", hello
    return Socket(ws, hello)


async def test_a_selection_on_one_node_reaches_a_watcher_on_another(node: StartNode) -> None:
    a, b = await node(), await node()
    watcher, picker = await open_socket(b), await open_socket(a)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await picker.request(
        "selecting_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=3
    )
    await watcher.expect("active_selections", slots=["10:00"])
    late = await open_socket(b)  # a new watcher on B sees A's selection at once
    first = await late.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    assert first["slots"] == ["10:00"]
    await picker.close()  # the picker leaves node A: its selection goes everywhere
    await watcher.expect("active_selections", slots=[])


async def test_a_lock_on_one_node_reaches_a_watcher_on_another(node: StartNode) -> None:
    a, b = await node(), await node()
    watcher, holder = await open_socket(b), await open_socket(a)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=["10:00"])
    await holder.request("unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("availability_update", locked=[])


async def test_debug_and_availability_show_the_whole_cluster(node: StartNode) -> None:
    a, b = await node(), await node()
    picker = await open_socket(a)
    await picker.request("select_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=3)
    await picker.request("lock_slot", "slot_locked", date=DAY, time="11:00", employeeId=3)
    debug = await (await b.get("/debug")).json()
    assert debug["connectedClients"] == 0  # clients are per node, selections are not
    assert debug["activeSelections"] == 1
    (selection,) = debug["selections"]
    assert selection["clientId"] == picker.client_id
    assert (selection["date"], selection["time"], selection["employeeId"]) == (DAY, "10:00", 3)
    assert [lock["time"] for lock in debug["locks"]] == ["11:00"]
    query = {"date": DAY, "employeeId": "3"}
    availability = await (await b.get("/api/availability", params=query)).json()
    assert availability["locked"] == ["11:00"]
    ready = await (await b.get("/readyz")).json()
    assert ready["status"] == "ready"


async def test_a_hook_on_one_node_reaches_watchers_on_another_once(
    node: StartNode, store: Store
) -> None:
    quiet = {"hook_secret": SECRET, "reconcile_interval_seconds": 3600}  # the hook alone
    a, b = await node(**quiet), await node(**quiet)
    watcher = await open_socket(b)
    customer = await open_socket(b, email="ann@example.com")
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await customer.request("watch_appointments", "appointments_data")
    await store.insert_appointment(
        {
            "name": "Ann",
            "email": "ann@example.com",
            "appointment_date": f"{DAY} 10:00:00",
            "employee_id": 3,
            "strong_id": "APT-2030-1000",
        }
    )
    body, headers = signed_request(SECRET, "appointment.created", {"id": "APT-2030-1000"})
    resp = await a.post("/hooks/booking", data=body, headers=headers)
    assert (resp.status, await resp.json()) == (200, {"ok": True, "found": True})
    taken = await watcher.expect("slot_taken")
    assert taken["slot"] == f"{DAY} 10:00"
    await watcher.expect("availability_update", booked=["10:00"])
    changed = await customer.expect("appointment_update")
    assert changed["appointment"]["appointment_date"] == f"{DAY} 10:00:00"
    again = await b.post("/hooks/booking", data=body, headers=headers)  # retried to node B
    assert (again.status, await again.json()) == (200, {"ok": True, "duplicate": True})


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"])
async def test_a_race_across_two_nodes_has_one_winner(node: StartNode, sql: SQL) -> None:
    a, b = await node(), await node()
    sockets = [await open_socket(a) for _ in range(10)] + [await open_socket(b) for _ in range(10)]
    await assert_one_winner_per_round(sockets, sql, rounds=20)


async def test_without_redis_a_node_serves_its_own_clients_and_says_degraded(
    node: StartNode,
) -> None:
    lonely = await node(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    ready = await (await lonely.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["reason"].startswith("redis unavailable")
    watcher, picker = await open_socket(lonely), await open_socket(lonely)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    await picker.request("select_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=3)
    await watcher.expect("active_selections", slots=["10:00"])
    await picker.request("lock_slot", "slot_locked", date=DAY, time="11:00", employeeId=3)
    await watcher.expect("availability_update", locked=["11:00"])
    assert lonely.app[NODE].broker.status() is not None


async def test_redis_lost_mid_run_each_node_serves_alone_then_catches_up(
    node: StartNode, throwaway: ThrowawayRedis
) -> None:
    a, b = await node(redis_url=throwaway.url), await node(redis_url=throwaway.url)
    near, far, holder = await open_socket(a), await open_socket(b), await open_socket(a)
    for watcher in (near, far):
        await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)

    await throwaway.stop()
    await wait_for(lambda: all(n.app[NODE].broker.status() for n in (a, b)))
    ready = await (await a.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["reason"].startswith("redis unavailable")
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await near.expect("availability_update", locked=["10:00"])  # node A still serves its own
    assert [f for f in await far.quiet(0.3) if f["type"] == "availability_update"] == []

    await throwaway.start()
    await far.expect("availability_update", locked=["10:00"])  # B re-read its rooms
    await wait_for(lambda: not any(n.app[NODE].broker.status() for n in (a, b)))
    assert (await (await b.get("/readyz")).json())["status"] == "ready"
    await holder.request("unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3)
    await far.expect("availability_update", locked=[])  # and the cluster is one again


async def test_a_client_that_resumes_on_another_node_keeps_its_hold(
    node: StartNode, sql: SQL
) -> None:
    a, b = await node(lock_release_grace_seconds=1.0), await node(lock_release_grace_seconds=1.0)
    holder = await open_socket(a)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await holder.close()  # node A starts its 1 s grace timer
    ws = await b.ws_connect(f"/?resume={holder.hello['resumeToken']}")
    back = Socket(ws, json.loads((await ws.receive(timeout=5)).data))
    assert back.client_id == holder.client_id and back.hello["resumed"] is True
    await asyncio.sleep(1.5)  # past A's grace period: A must have cancelled its release
    assert await sql("SELECT client_id FROM wp_appointease_slot_locks") == [(holder.client_id,)]
    unlocked = await back.request(
        "unlock_slot", ("slot_unlocked", "unlock_failed"), date=DAY, time="10:00", employeeId=3
    )
    assert unlocked["type"] == "slot_unlocked"


async def test_two_sites_on_one_redis_do_not_hear_each_other(
    make_client: Callable[..., Any], redis_url: str, connect: Any
) -> None:
    """REDIS_NAMESPACE keeps two sites sharing one Redis apart."""
    import secrets

    first, second = (f"site{secrets.token_hex(4)}" for _ in range(2))
    a = await make_client(redis_url=redis_url, redis_namespace=first)
    b = await make_client(redis_url=redis_url, redis_namespace=second)
    watcher = await connect(on=b)
    await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=9)
    picker = await connect(on=a)
    await picker.request(
        "selecting_slot", "selection_confirmed", date=DAY, time="10:00", employeeId=9
    )
    assert not [f for f in await watcher.quiet(0.5) if f["type"] == "active_selections"]
