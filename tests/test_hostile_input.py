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
from appointease_realtime.transport import Wire, payload_of
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


# Which message types read which fields (docs/protocol.md), and what each answers when the
# frame is accepted. A field a type does not read is ignored.
READS: dict[str, set[str]] = {
    "ping": {"timestamp", "sequence"},
    "booking_session": {"step", "service", "employee", "date", "time"},
    "get_debug": set(),
    "lock_slot": {"date", "time", "employeeId", "service"},
    "unlock_slot": {"date", "time", "employeeId", "completed"},
    "selecting_slot": {"date", "time", "employeeId"},
    "select_slot": {"date", "time", "employeeId"},
    "deselect_slot": {"date", "time", "employeeId"},
    "watch_slot": {"date", "employeeId", "time"},
    "unwatch_slot": {"date", "employeeId"},
    "check_availability": {"date", "employeeId"},
    "watch_appointments": {"email", "employeeId", "dateFrom", "dateTo"},
    "subscribe": {"email", "employeeId", "dateFrom", "dateTo"},
    "unwatch_appointments": set(),
}
ANSWERS = {
    "ping": {"pong"},
    "booking_session": {"session_tracked"},
    "get_debug": {"debug_info"},
    "lock_slot": {"slot_locked"},
    "unlock_slot": {"slot_unlocked", "unlock_failed"},
    "selecting_slot": {"selection_confirmed"},
    "select_slot": {"selection_confirmed"},
    "deselect_slot": {"deselection_confirmed"},
    "watch_slot": {"availability_update"},
    "unwatch_slot": {"slot_unwatched"},
    "check_availability": {"availability_update"},
    "watch_appointments": {"appointments_data"},
    "subscribe": {"update"},
    "unwatch_appointments": {"unwatch_confirmed"},
}
SLOT = {"date", "time", "employeeId"}
REQUIRED: dict[str, set[str]] = {  # the fields a type cannot do without; the rest are optional
    "booking_session": {"step"},
    **dict.fromkeys(("lock_slot", "unlock_slot", "selecting_slot", "select_slot"), SLOT),
    "deselect_slot": SLOT,
    "watch_slot": {"date", "employeeId"},
    "check_availability": {"date", "employeeId"},
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def accepted(field: str, value: Any) -> bool:
    """Whether docs/protocol.md's field table accepts ``value`` for ``field`` (written out
    here, independently of the daemon's parsers). None counts as absent."""
    if field in ("date", "dateFrom", "dateTo", "time", "email"):
        return False  # no NASTY string is a real day, an HH:MM or an address with one @
    if field == "employeeId":
        return _is_int(value) and 1 <= value <= 8388607
    if field == "step":
        return _is_int(value) and 1 <= value <= 7
    if field in ("service", "employee"):
        return _is_int(value) or (isinstance(value, str) and len(value) <= 200)
    if field == "completed":
        return isinstance(value, bool)
    if field in ("timestamp", "sequence"):  # finite numbers; integers within +-2^53
        return (isinstance(value, float) and abs(value) != float("inf")) or (
            _is_int(value) and abs(value) < 2**53
        )
    raise AssertionError(field)


def expected_answer(type_: str, field: str, value: Any) -> tuple[str, str | None]:
    """``("error", field)`` when the frame must be refused ``invalid_request`` naming
    ``field``, else ``("ok", None)``."""
    if field == "requestId" or field not in READS[type_]:
        return "ok", None
    if value is None:
        return ("error", field) if field in REQUIRED.get(type_, set()) else ("ok", None)
    return ("ok", None) if accepted(field, value) else ("error", field)


async def table_snapshot(sql: SQL) -> list[Any]:
    return [
        await sql("SELECT * FROM wp_appointments ORDER BY id"),
        await sql(
            "SELECT date, time, employee_id, client_id, expires_at FROM wp_appointease_slot_locks"
            " ORDER BY date, time, employee_id"
        ),
    ]


async def test_nasty_values_in_every_field_of_every_message(
    make_client: Callable[..., Any], connect: Connect, sql: SQL, store: Any
) -> None:
    """Every nasty value in every field of every message type: refused ``invalid_request``
    naming that field where the type reads it and the value is not allowed, answered as usual
    where it is allowed or not read; never another error. Both tables end as they began (a
    lock the valid frames took is given back) and nothing but those valid frames wrote."""
    await store.insert_appointment(
        {
            "name": "A",
            "email": "a@x.io",
            "appointment_date": "2030-05-06 09:00:00",
            "employee_id": 3,
        }
    )
    other = "anonymous_1_someoneelse"  # a hold of another client, that nothing may touch
    await store.acquire_lock(p.Slot("2030-05-06", "11:00", 3), other, 600, 10)
    before = await table_snapshot(sql)
    client = await make_client(rate_limit_per_second=1e6, rate_limit_burst=10**6)
    sock = await connect(on=client, role="admin")
    marker = 0
    wrong: list[Any] = []
    for type_ in sorted(COMMANDS):
        for field in FIELDS:
            for value in NASTY:
                await sock.ws.send_str(json.dumps({"type": type_, **VALID, field: value}))
                marker += 1  # a ping after each frame: everything before its pong answers it
                await sock.send("ping", requestId=f"m{marker}")
                answers = []
                while (frame := await sock.recv()).get("requestId") != f"m{marker}":
                    answers.append(frame)
                assert frame["type"] == "pong"
                errors = [(f["code"], f.get("field")) for f in answers if f["type"] == "error"]
                kind, named = expected_answer(type_, field, value)
                if kind == "error":
                    ok = errors == [(p.INVALID_REQUEST, named)]
                else:
                    ok = not errors and ANSWERS[type_] & {f["type"] for f in answers}
                if not ok:
                    wrong.append((type_, field, value, kind, named, answers[:2]))
        await sock.send("unlock_slot", **VALID)
        await sock.expect("slot_unlocked", "unlock_failed")
    assert wrong == [], f"{len(wrong)} wrong answers, first: {wrong[:5]}"
    assert marker == len(COMMANDS) * len(FIELDS) * len(NASTY)
    await sock.close()
    await asyncio.sleep(0.3)
    after = await table_snapshot(sql)
    assert after[0] == before[0]  # no appointment was touched
    assert after[1] == before[1]  # the other client's hold untouched, no hold left behind


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
# frames that reach the database more often: a slot command with all three slot fields
slot_frames = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["lock_slot", "unlock_slot", "check_availability", "watch_slot", "selecting_slot"]
        ),
        "date": st.sampled_from(["2030-05-06", "2099-12-31"]) | plausible["date"],
        "time": st.sampled_from(["10:00", "23:59:00"]) | plausible["time"],
        "employeeId": st.integers(1, 8388607) | plausible["employeeId"],
    },
    optional={"requestId": json_values, "completed": json_values, "service": json_values},
)
raw_frames = (
    frames.map(json.dumps)
    | slot_frames.map(json.dumps)
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
    direct = [json.loads(payload_of(item)) for item in sent]
    assert direct, f"no answer to {raw!r}"
    for frame in direct:
        assert isinstance(frame["type"], str) and isinstance(frame["timestamp"], int)
        if frame["type"] == "error":  # a healthy database: never unavailable (an SQL error)
            assert frame["code"] in DOCUMENTED_CODES, frame
            assert isinstance(frame["message"], str)
