"""Hostile input: injection strings, huge numbers, unicode, binary and malformed UTF-8 in every
field, and thousands of random frames from hypothesis. Clean errors; tables unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appointease_realtime import protocol as p
from appointease_realtime.auth import ADMIN, Identity
from appointease_realtime.broker import open_cluster
from appointease_realtime.commands import COMMANDS, dispatch
from appointease_realtime.connection import Connection
from appointease_realtime.metrics import Metrics
from appointease_realtime.node import Node
from appointease_realtime.store.sqlite import SQLiteStore
from appointease_realtime.transport import Wire
from tests.conftest import base_settings

Connect = Callable[..., Any]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]

NASTY = [
    "' OR '1'='1",
    "1; DROP TABLE wp_appointease_slot_locks; --",
    "2030-05-06' --",
    "10:00'); DELETE FROM wp_appointments; --",
    "\u0000",
    "\ud83d\ude00 \u202e \ufeff",
    "x" * 5000,
    10**30,
    -(10**30),
    1e308,
    -1,
    0,
    True,
    None,
    [],
    {"$gt": ""},
    [1, 2, 3],
]
FIELDS = (
    "date",
    "time",
    "employeeId",
    "email",
    "step",
    "service",
    "completed",
    "timestamp",
    "sequence",
    "requestId",
    "dateFrom",
    "dateTo",
    "employee",
)
DOCUMENTED_CODES = {p.UNKNOWN_TYPE, p.INVALID_JSON, p.INVALID_REQUEST, p.FORBIDDEN, p.RATE_LIMITED}
VALID = {"date": "2030-05-06", "time": "10:00", "employeeId": 3, "step": 4}


async def table_snapshot(sql: SQL) -> list[Any]:
    return [
        await sql("SELECT * FROM wp_appointments ORDER BY id"),
        await sql("SELECT date, time, employee_id, client_id FROM wp_appointease_slot_locks"),
    ]


async def test_nasty_values_in_every_field_of_every_message(
    make_client: Callable[..., Any], connect: Connect, sql: SQL, store: Any
) -> None:
    await store.insert_appointment(
        {
            "name": "A",
            "email": "a@x.io",
            "appointment_date": "2030-05-06 09:00:00",
            "employee_id": 3,
        }
    )
    before = await table_snapshot(sql)
    client = await make_client(rate_limit_per_second=1e6, rate_limit_burst=10**6)
    sock = await connect(on=client, role="admin")
    marker = 0
    for type_ in sorted(COMMANDS):
        for field in FIELDS:
            for value in NASTY:
                await sock.ws.send_str(json.dumps({"type": type_, **VALID, field: value}))
                marker += 1  # a ping after each frame: everything before its pong answers it
                await sock.send("ping", requestId=f"m{marker}")
                while (frame := await sock.recv()).get("requestId") != f"m{marker}":
                    assert frame["type"] != "error" or frame["code"] in DOCUMENTED_CODES, frame
                assert frame["type"] == "pong"
        await sock.send("unlock_slot", **VALID)
    await asyncio.sleep(0.3)
    assert (await table_snapshot(sql))[0] == before[0]  # no appointment was touched
    assert marker == len(COMMANDS) * len(FIELDS) * len(NASTY)


async def test_binary_and_malformed_utf8(connect: Connect) -> None:
    sock = await connect()
    await sock.ws.send_bytes(b"\xff\xfe{not utf8")
    assert (await sock.expect("error"))["code"] == "invalid_json"
    await sock.ws.send_str('{"type": "ping", "timestamp": 1e999}')
    assert (await sock.expect("error"))["field"] == "timestamp"
    await sock.ws.send_str("[" * 100_00 + "]" * 100_00)
    assert (await sock.expect("error"))["code"] == "invalid_json"
    assert (await sock.request("ping", "pong"))["type"] == "pong"
    # A text frame that is not UTF-8 breaks the WebSocket protocol itself: closed with 1007.
    await sock.ws._writer.send_frame(b"\xff\xfe", aiohttp.WSMsgType.TEXT)  # type: ignore[attr-defined]
    msg = await sock.ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and sock.ws.close_code == 1007


# ---- property-based fuzzing of the protocol layer ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
plausible = {
    "date": st.sampled_from(["2030-05-06", "2030-02-30", "", "2030-5-6"]) | json_values,
    "time": st.sampled_from(["10:00", "25:00", "10:00:00", "9:5"]) | json_values,
    "employeeId": st.sampled_from([1, "2", 0, -3, "x", 8388607, 8388608]) | json_values,
}
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(COMMANDS)) | st.text(max_size=12)},
    optional={
        **plausible,
        "requestId": json_values,
        "email": json_values,
        "step": json_values,
        "completed": json_values,
        "timestamp": json_values,
        "sequence": json_values,
    },
)
raw_frames = (
    frames.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=50).map(lambda b: b.decode("latin-1"))
)


@pytest.fixture(scope="module")
def fuzz_node(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, Node]]:
    """One node on SQLite for all examples, in a loop of its own."""
    loop = asyncio.new_event_loop()
    path = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.sqlite3"
    node_settings = base_settings(sqlite_path=str(path), hold_limit=1000)
    store = loop.run_until_complete(SQLiteStore.open(str(path), "wp_"))
    node = Node(node_settings, store, open_cluster(None), Metrics())
    loop.run_until_complete(node.start())
    yield loop, node
    loop.run_until_complete(node.rooms.stop())
    loop.run_until_complete(store.close())
    loop.close()


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=raw_frames, admin=st.booleans())
def test_random_frames_always_get_a_well_formed_answer(
    fuzz_node: tuple[asyncio.AbstractEventLoop, Node], raw: str, admin: bool
) -> None:
    loop, node = fuzz_node
    sent: list[Wire] = []
    identity = Identity("fuzz@example.com", ADMIN, "fuzz") if admin else Identity()
    conn = Connection("anonymous_1_fuzzer", identity, sent.append)
    node.hub.add(conn)
    try:
        loop.run_until_complete(dispatch(node, conn, raw))  # must not raise
    finally:
        node.hub.remove(conn)
    direct = [json.loads(item.payload) for item in sent]
    assert direct, f"no answer to {raw!r}"
    for frame in direct:
        assert isinstance(frame["type"], str) and isinstance(frame["timestamp"], int)
        if frame["type"] == "error":
            assert frame["code"] in DOCUMENTED_CODES | {p.UNAVAILABLE}, frame
            assert isinstance(frame["message"], str)
