"""The pure protocol layer: parsing, validation, error mapping; no socket, no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appointease_realtime import protocol as p
from appointease_realtime.auth import Identity, resume_token, resumed_client_id
from appointease_realtime.commands import COMMANDS, dispatch
from appointease_realtime.connection import Connection
from appointease_realtime.transport import payload_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2025-02-28", "2025-02-28"), ("2024-02-29", "2024-02-29")],
)
def test_real_dates_pass(value: str, expected: str) -> None:
    assert p.parse_date(value) == expected


@pytest.mark.parametrize(
    "value", ["2025-02-30", "2025-13-01", "25-01-01", "2025-1-1", 20250101, None]
)
def test_impossible_dates_fail(value: Any) -> None:
    with pytest.raises(ValueError):
        p.parse_date(value)


@pytest.mark.parametrize(("value", "expected"), [("09:30", "09:30"), ("23:59:00", "23:59")])
def test_times_normalize_to_hh_mm(value: str, expected: str) -> None:
    assert p.parse_time(value) == expected


@pytest.mark.parametrize("value", ["25:00", "10:60", "9:30", "10:00:30", "", 930])
def test_impossible_times_fail(value: Any) -> None:
    with pytest.raises(ValueError):
        p.parse_time(value)


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("42", 42), (7.0, 7), (8388607, 8388607)])
def test_employee_ids(value: Any, expected: int) -> None:
    assert p.parse_employee_id(value) == expected


@pytest.mark.parametrize(
    "value", [0, -1, "0", "1.5", 1.5, True, "abc", 8388608, "99999999999", None]
)
def test_bad_employee_ids(value: Any) -> None:
    with pytest.raises(ValueError):
        p.parse_employee_id(value)


def test_validate_names_the_field() -> None:
    with pytest.raises(p.ProtocolError) as missing:
        p.validate({"date": "2030-01-01", "time": "10:00"}, p.SLOT_SCHEMA)
    assert (missing.value.code, missing.value.field) == (p.INVALID_REQUEST, "employeeId")
    with pytest.raises(p.ProtocolError) as bad:
        p.validate({"date": "2030-01-01", "time": "25:00", "employeeId": 1}, p.SLOT_SCHEMA)
    assert bad.value.field == "time"


def test_resume_tokens_cannot_be_forged() -> None:
    token = resume_token(b"secret", "anonymous_1_abc")
    assert resumed_client_id(b"secret", token) == "anonymous_1_abc"
    assert resumed_client_id(b"other", token) is None
    forged = "anonymous_2_abc." + token.rpartition(".")[2]
    assert resumed_client_id(b"secret", forged) is None
    assert resumed_client_id(b"secret", "garbage") is None


def sink() -> tuple[Connection, list[dict[str, Any]]]:
    """A connection whose frames land in a list, decoded."""
    frames: list[dict[str, Any]] = []
    return Connection(
        "anonymous_1_test", Identity(), lambda item: frames.append(json.loads(payload_of(item)))
    ), frames


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("{not json", p.INVALID_JSON, None),
        ("[1, 2]", p.INVALID_JSON, None),
        ('{"no": "type"}', p.INVALID_REQUEST, "type"),
        ('{"type": "teleport"}', p.UNKNOWN_TYPE, None),
        (
            '{"type": "lock_slot", "date": "2025-02-30", "time": "10:00", "employeeId": 1}',
            p.INVALID_REQUEST,
            "date",
        ),
        (
            '{"type": "lock_slot", "date": "2025-02-03", "time": "25:00", "employeeId": 1}',
            p.INVALID_REQUEST,
            "time",
        ),
        (
            '{"type": "lock_slot", "date": "2025-02-03", "time": "10:00", "employeeId": -4}',
            p.INVALID_REQUEST,
            "employeeId",
        ),
        ('{"type": "booking_session", "step": 9}', p.INVALID_REQUEST, "step"),
    ],
)
async def test_dispatch_maps_bad_frames_to_error_codes(
    raw: str, code: str, field: str | None
) -> None:
    """Errors are produced before any service is touched, so no node is needed."""
    conn, frames = sink()
    await dispatch(None, conn, raw)  # type: ignore[arg-type]
    assert len(frames) == 1
    error = frames[0]
    assert error["type"] == "error" and error["code"] == code
    assert error.get("field") == field
    assert isinstance(error["message"], str) and error["timestamp"] > 0


async def test_request_id_is_echoed_on_errors_and_replies() -> None:
    conn, frames = sink()
    await dispatch(None, conn, '{"type": "teleport", "requestId": "r-1"}')  # type: ignore[arg-type]
    await dispatch(None, conn, '{"type": "ping", "requestId": 7, "timestamp": 1}')  # type: ignore[arg-type]
    assert frames[0]["requestId"] == "r-1"
    assert frames[1]["type"] == "pong" and frames[1]["requestId"] == 7


def test_every_message_of_the_booking_block_has_a_handler() -> None:
    block = {
        "ping",
        "booking_session",
        "lock_slot",
        "unlock_slot",
        "selecting_slot",
        "select_slot",
        "deselect_slot",
        "watch_slot",
        "unwatch_slot",
        "check_availability",
        "watch_appointments",
        "subscribe",
        "unwatch_appointments",
        "get_debug",
    }
    assert block <= set(COMMANDS)
