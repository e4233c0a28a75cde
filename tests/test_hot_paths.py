"""The per-frame and per-lock paths made lean for docs/performance.md keep their behaviour:
a lock and an unlock in one MySQL round trip each, a write transaction's BEGIN sent with its first
statement, a ping answered without a coroutine, an idle socket without queue or writer task,
frames counted without prometheus children, and json encoding unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from appointease_realtime import commands
from appointease_realtime import protocol as p
from appointease_realtime.auth import Identity
from appointease_realtime.config import Settings
from appointease_realtime.connection import Connection
from appointease_realtime.limits import ABUSIVE, LIMITED, OK, RateLimiter, TokenBucket
from appointease_realtime.metrics import Metrics
from appointease_realtime.protocol import Slot
from appointease_realtime.store import Store, open_store
from appointease_realtime.store.base import ADDRESS_LIMIT, SLOT_BOOKED, SLOT_LOCKED
from appointease_realtime.store.mysql import MySQLStore
from appointease_realtime.transport import payload_of

DAY = "2030-05-06"
SLOT = Slot(DAY, "10:00", 3)


# ---- the store: round trips on MySQL ----


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every query text aiomysql sends from now on (one entry per round trip)."""
    sent: list[str] = []
    execute = aiomysql.Cursor.execute

    async def spy(self: aiomysql.Cursor, query: str, args: Any = None) -> Any:
        sent.append(query)
        return await execute(self, query, args)

    monkeypatch.setattr(aiomysql.Cursor, "execute", spy)
    for name in ("begin", "commit", "rollback"):  # each a round trip of its own
        original = getattr(aiomysql.Connection, name)

        async def call(self: aiomysql.Connection, _name: str = name, _do: Any = original) -> Any:
            sent.append(_name.upper())
            return await _do(self)

        monkeypatch.setattr(aiomysql.Connection, name, call)
    yield sent


@pytest.fixture
async def mysql_store(mysql_database: str, settings: Settings) -> AsyncIterator[MySQLStore]:
    store = await open_store(settings)
    assert isinstance(store, MySQLStore)
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["mysql"])
async def test_a_lock_and_an_unlock_are_one_round_trip_each(
    mysql_store: MySQLStore, queries: list[str]
) -> None:
    owner = "a1"
    outcome = await mysql_store.acquire_lock(SLOT, f"c~{owner}", 600, 2, owner=owner, owner_limit=3)
    assert outcome.acquired
    assert len(queries) == 1
    statements = queries[0].split("; ")
    assert statements[0].startswith("SET @appointease_held = GET_LOCK(")
    assert " INTO @appointease_v0, " in statements[1]  # the counts, read before the write
    assert "ON DUPLICATE KEY UPDATE" in statements[2] and "@appointease_v" in statements[2]
    assert statements[-1].startswith("DO RELEASE_LOCK(")
    queries.clear()
    assert await mysql_store.release_lock(SLOT, f"c~{owner}") is None
    assert len(queries) == 1 and queries[0].startswith("DELETE FROM")  # autocommitted
    queries.clear()
    await mysql_store.room_state(SLOT.room)
    assert len(queries) == 1  # booked and held times in one query


@pytest.mark.parametrize("backend", ["mysql"])
async def test_a_refusal_writes_nothing_and_gives_the_named_lock_back(
    mysql_store: MySQLStore, queries: list[str]
) -> None:
    """Refused by the counts (the owner is at its limit): the guarded upsert writes nothing,
    and the named lock is released in the same round trip, on a connection that goes back
    to the pool and is reused."""
    assert (await mysql_store.acquire_lock(SLOT, "c~o", 600, 2, owner="o", owner_limit=1)).acquired
    queries.clear()
    other = Slot(DAY, "11:00", 3)
    refused = await mysql_store.acquire_lock(other, "d~o", 600, 2, owner="o", owner_limit=1)
    assert refused.reason == ADDRESS_LIMIT
    assert len(queries) == 1 and queries[0].endswith(")") and "DO RELEASE_LOCK(" in queries[0]
    assert (await mysql_store.room_state(other.room)).locked == ["10:00"]  # not 11:00
    assert mysql_store.pool.discarded == 0
    # the same owner locks again at once: its named lock is free
    assert (await mysql_store.release_lock(SLOT, "c~o")) is None
    assert (await mysql_store.acquire_lock(other, "d~o", 600, 2, owner="o", owner_limit=1)).acquired


@pytest.mark.parametrize("backend", ["mysql"])
async def test_a_transaction_without_statements_sends_nothing(
    mysql_store: MySQLStore, queries: list[str]
) -> None:
    async def nothing(tx: Any) -> int:
        return 7

    assert await mysql_store.run("nothing", nothing, write=True) == 7
    assert queries == []


async def test_lock_outcomes_are_unchanged_on_either_database(store: Store, sql: Any) -> None:
    """Booked, taken by another, at the owner's limit, ours: the reasons of before."""
    await sql(
        "INSERT INTO wp_appointments (name, email, appointment_date, employee_id, status)"
        " VALUES ('x', 'x@example.com', %s, 3, 'confirmed')",
        f"{DAY} 09:00:00",
    )
    booked = await store.acquire_lock(
        Slot(DAY, "09:00", 3), "a~o", 600, 2, owner="o", owner_limit=5
    )
    assert booked.reason == SLOT_BOOKED
    assert (await store.acquire_lock(SLOT, "a~o", 600, 2, owner="o", owner_limit=5)).acquired
    taken = await store.acquire_lock(SLOT, "b~p", 600, 2, owner="p", owner_limit=5)
    assert taken.reason == SLOT_LOCKED and 598 <= taken.expires_in <= 600
    state = await store.room_state(SLOT.room)
    assert state.booked == ["09:00"] and state.locked == ["10:00"]
    assert [lock.client_id for lock in state.locks] == ["a~o"]


# ---- commands: no coroutine for a ping ----


def sink() -> tuple[Connection, list[dict[str, Any]]]:
    frames: list[dict[str, Any]] = []
    conn = Connection(
        "anonymous_1_test", Identity(), lambda item: frames.append(json.loads(payload_of(item)))
    )
    return conn, frames


def test_a_ping_is_answered_before_handle_returns() -> None:
    conn, frames = sink()
    assert commands.handle(None, conn, '{"type":"ping","timestamp":5,"requestId":9}') is None  # type: ignore[arg-type]
    (pong,) = frames
    assert list(pong) == ["type", "clientTimestamp", "latency", "timestamp", "requestId"]
    assert pong["clientTimestamp"] == 5 and pong["requestId"] == 9
    assert commands.handle(None, conn, "{bad") is None  # type: ignore[arg-type]
    assert frames[-1]["code"] == p.INVALID_JSON


PING_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70),
    st.lists(st.integers(), max_size=2),
)


def ping_raw(draw: st.DrawFn) -> str:
    frame: dict[str, Any] = {"type": "ping"}
    for name in ("timestamp", "sequence", "requestId", "extra"):
        if draw(st.booleans()):
            frame[name] = draw(PING_VALUES)
    return json.dumps(frame)


@given(raw=st.composite(ping_raw)())
@settings(max_examples=400, deadline=None)
def test_the_plain_ping_shortcut_answers_exactly_as_the_generic_path(raw: str) -> None:
    """handle() answers a ping with plain integer fields without validation or Request;
    for every ping, plain or not, its answer is the one the generic path gives."""
    answers = []
    for shortcut in (True, False):
        conn, frames = sink()
        metrics = Metrics()
        node: Any = type("Node", (), {"metrics": metrics})()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(p, "now_ms", lambda: 1_761_527_417_930)
            if not shortcut:
                patch.setattr(commands, "_plain_ping", lambda frame: False)
            assert commands.handle(node, conn, raw) is None
        assert metrics._in == {"ping": 1}
        answers.append(frames)
    assert answers[0] == answers[1]


def test_a_plain_ping_skips_validation_and_an_odd_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    validated: list[Any] = []
    validate = p.validate_compiled
    monkeypatch.setattr(p, "validate_compiled", lambda *a: validated.append(a) or validate(*a))
    conn, frames = sink()
    commands.handle(None, conn, '{"type":"ping","timestamp":5,"sequence":2,"requestId":"r"}')  # type: ignore[arg-type]
    commands.handle(None, conn, '{"type":"ping","timestamp":null}')  # type: ignore[arg-type]
    assert validated == [] and [f["type"] for f in frames] == ["pong", "pong"]
    assert frames[0]["requestId"] == "r" and frames[0]["sequence"] == 2
    commands.handle(None, conn, '{"type":"ping","timestamp":5.5}')  # type: ignore[arg-type]
    commands.handle(None, conn, '{"type":"ping","sequence":9007199254740992}')  # type: ignore[arg-type]
    assert len(validated) == 2
    assert frames[2]["clientTimestamp"] == 5.5 and frames[3]["code"] == p.INVALID_REQUEST


async def test_a_waiting_handler_returns_its_awaitable_and_errors_still_map() -> None:
    conn, frames = sink()

    async def failing(node: Any, req: commands.Request) -> None:
        raise p.ProtocolError(p.FORBIDDEN, "no")

    def failing_now(node: Any, req: commands.Request) -> None:
        raise RuntimeError("boom")

    commands.COMMANDS["test_waits"] = commands.Command({}, failing)
    commands.COMMANDS["test_now"] = commands.Command({}, failing_now)
    try:
        assert commands.COMMANDS["test_waits"].waits and not commands.COMMANDS["test_now"].waits
        pending = commands.handle(None, conn, '{"type":"test_waits","requestId":"r"}')  # type: ignore[arg-type]
        assert pending is not None and frames == []
        await pending
        assert frames[-1]["code"] == p.FORBIDDEN and frames[-1]["requestId"] == "r"
        assert commands.handle(None, conn, '{"type":"test_now"}') is None  # type: ignore[arg-type]
        assert frames[-1]["code"] == p.INTERNAL_ERROR
    finally:
        del commands.COMMANDS["test_waits"], commands.COMMANDS["test_now"]


def test_the_inlined_rate_check_matches_the_bucket() -> None:
    limiter = RateLimiter(0.0001, 3)  # no refill to speak of
    verdicts = [limiter.check() for _ in range(3 + 15 + 1)]
    assert verdicts[:3] == [OK] * 3
    assert verdicts[3:18] == [LIMITED] * 15  # the refusal bucket: 5 x the burst
    assert verdicts[18] == ABUSIVE
    bucket = TokenBucket(1000.0, 2)
    assert bucket.take() and bucket.take()


# ---- metrics and encoding ----


def test_frame_counters_are_exported_as_counters() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.received("ping")
    metrics.sent("pong", 2)
    metrics.sent("pong")
    metrics.sent("availability_update", 0)
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE appointease_frames_in_total counter" in text
    assert 'appointease_frames_in_total{type="ping"} 3.0' in text
    assert 'appointease_frames_out_total{type="pong"} 3.0' in text
    assert "availability_update" not in text


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "pong", "timestamp": 1, "latency": 0.5},
        {"type": "x", "name": 'Zoë ☃ \u2028 \x01 "q" \\', "n": [1, 2.5, None, True]},
        {"type": "y", "nested": {"a": {"b": []}}, "big": 2**60},
    ],
)
def test_encode_is_json_dumps_compact_and_unescaped(frame: dict[str, Any]) -> None:
    expected = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    assert p._json_encode(frame) == expected  # the stdlib path, character for character
    assert p.encode_bytes(frame) == p.encode(frame).encode()
    assert json.loads(p.encode(frame)) == frame  # orjson's, where installed: the same JSON
    if p.orjson is None or not any(isinstance(v, float | list) for v in frame.values()):
        assert p.encode(frame) == expected  # floats aside, even the same characters


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"ping","timestamp":NaN}',  # json reads NaN, orjson does not
        '{"type":"ping","timestamp":123456789012345678901234567890}',  # past 64 bits
        '{"type":"ping","sequence":-9223372036854775809,"service":18446744073709551616}',
        '{"type":"ping","timestamp":18446744073709551615,"sequence":1e19}',  # 64 bits: int
        '{"type":"x","s":"\\ud800"}',  # a lone surrogate
        '{"type":"a","type":"b"}',  # the last duplicate wins
        '{"type":"x","n":[1,2.5,-0,1e300,true,null,"\\u00e9"]}',
        '{"type": "x"} trailing',
        "[" * 3000 + "]" * 3000,
        "",
    ],
)
def test_frames_parse_or_fail_as_with_json_alone(raw: str) -> None:
    """With orjson installed (the optional extra), every frame still reads as json reads it,
    or fails as it fails: what orjson refuses is handed to json."""
    try:
        expected: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        expected = type(exc)
    try:
        got: Any = p._decode(raw)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    if isinstance(expected, dict) and isinstance(expected.get("timestamp"), float):
        assert got["timestamp"] != got["timestamp"]  # NaN: not equal to itself
    else:
        assert got == expected


def test_compiled_validation_is_validation() -> None:
    schema = {**p.SLOT_SCHEMA, "completed": p.Field(p.parse_bool, required=False)}
    fields = p.compile_schema(schema)
    good = {"date": DAY, "time": "9:00", "employeeId": "3"}
    with pytest.raises(p.ProtocolError):
        p.validate_compiled(good, fields)
    good["time"] = "09:00"
    assert p.validate_compiled(good, fields) == p.validate(good, schema)
    with pytest.raises(p.ProtocolError) as caught:
        p.validate_compiled({"date": DAY}, fields)
    assert caught.value.field == "time"


async def test_asyncio_is_not_needed_for_the_sync_path() -> None:
    """handle() runs a ping without the loop doing anything (no task, no call_soon)."""
    loop = asyncio.get_running_loop()
    conn, frames = sink()
    ready_before = len(loop._ready)  # type: ignore[attr-defined]
    commands.handle(None, conn, '{"type":"ping"}')  # type: ignore[arg-type]
    assert len(loop._ready) == ready_before and frames[-1]["type"] == "pong"  # type: ignore[attr-defined]
