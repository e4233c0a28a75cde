"""The wire protocol, pure: parse and validate frames, build replies, name error codes. No I/O."""

from __future__ import annotations

import json
import math
import re
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date as _date
from typing import Any, NamedTuple

# Error codes carried by {"type": "error", "code": ...}; the socket stays open for all of them.
UNKNOWN_TYPE = "unknown_type"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
UNAVAILABLE = "unavailable"
FORBIDDEN = "forbidden"
RATE_LIMITED = "rate_limited"
INTERNAL_ERROR = "internal_error"

MAX_EMPLOYEE_ID = 8_388_607  # mediumint(9) signed, the column type in the plugin's tables
MAX_REQUEST_ID_LENGTH = 64
EXACT_INT = 2**53  # integers a JavaScript number holds exactly: |n| must stay below

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
_EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,255}$")

Frame = dict[str, Any]


class ProtocolError(Exception):
    """A frame the server refuses; becomes an ``error`` reply with a machine-readable code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Room(NamedTuple):
    """One day of one employee: the unit of watching and broadcasting."""

    date: str
    employee_id: int


class Slot(NamedTuple):
    """One bookable time: ``time`` is ``HH:MM``."""

    date: str
    time: str
    employee_id: int

    @property
    def room(self) -> Room:
        """The room this slot belongs to."""
        return Room(self.date, self.employee_id)

    def fields(self) -> Frame:
        """The slot as the booking block names it on the wire."""
        return {"date": self.date, "time": self.time, "employeeId": self.employee_id}


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of every ``timestamp`` on the wire."""
    return _time.time_ns() // 1_000_000


def reply(type_: str, **fields: Any) -> Frame:
    """A server frame: flat, typed, stamped."""
    return {"type": type_, **fields, "timestamp": now_ms()}


def error_frame(error: ProtocolError) -> Frame:
    """The ``error`` reply for a refused frame."""
    frame = reply("error", code=error.code, message=error.message)
    if error.field is not None:
        frame["field"] = error.field
    return frame


# One encoder for every frame: ``json.dumps`` with any non-default argument builds a new
# JSONEncoder on each call. Same output as json.dumps(frame, separators=(",", ":"),
# ensure_ascii=False).
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_decode = json.JSONDecoder().decode

try:  # the optional extra ``fast``: several times quicker at both ends of every frame
    import orjson
except ImportError:  # pragma: no cover - depends on what is installed
    orjson = None  # type: ignore[assignment]


def _encode_bytes(frame: Mapping[str, Any]) -> bytes:
    return _json_encode(frame).encode()


def _decode(raw: str) -> Any:
    return _json_decode(raw)


if orjson is not None:
    _orjson_dumps, _orjson_loads = orjson.dumps, orjson.loads
    _INT64, _UINT64 = 2.0**63, 2.0**64
    _OrjsonDecodeError = orjson.JSONDecodeError

    def _encode_bytes(frame: Mapping[str, Any]) -> bytes:
        """orjson's bytes (the same JSON; a float may be spelled otherwise: 1.5e-7 for
        json's 1.5e-07), json's where orjson refuses (integers past 64 bits, lone surrogates,
        non-string keys), so nothing encodes, or fails, differently than with json alone."""
        try:
            return _orjson_dumps(frame)
        except TypeError:  # orjson.JSONEncodeError
            return _json_encode(frame).encode()

    def _decode(raw: str) -> Any:
        """orjson's reading; json's answer (or its error) for what orjson refuses (NaN,
        lone surrogates, nesting past 1024) and where orjson reads an integer past 64 bits as
        a float (a top-level float that large sends the frame to json), so every field the
        daemon reads parses, or fails, exactly as with json alone."""
        try:
            data = _orjson_loads(raw)
        except _OrjsonDecodeError:
            return _json_decode(raw)
        if type(data) is dict:
            for value in data.values():
                if type(value) is float and not -_INT64 <= value < _UINT64:
                    return _json_decode(raw)
        return data


def encode(frame: Mapping[str, Any]) -> str:
    """Serialize one frame to compact JSON text."""
    return _encode_bytes(frame).decode()


encode_bytes = _encode_bytes  # :func:`encode` as the UTF-8 bytes that go on the wire


def parse_frame(raw: str) -> Frame:
    """Decode one text frame into a JSON object that has a string ``type``."""
    try:
        data = _decode(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(INVALID_JSON, "Frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_JSON, "Frame must be a JSON object")
    type_ = data.get("type")
    if not isinstance(type_, str) or not type_:
        raise ProtocolError(INVALID_REQUEST, "Missing message type", "type")
    return data


def request_id(frame: Mapping[str, Any]) -> str | int | None:
    """The frame's ``requestId`` when it is a short string or an integer, else None."""
    value = frame.get("requestId")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < EXACT_INT:
        return value
    if isinstance(value, str) and len(value) <= MAX_REQUEST_ID_LENGTH:
        return value
    return None


# ---- field parsers: each takes the raw value and returns a clean one or raises ValueError ----


def parse_date(value: Any) -> str:
    """``YYYY-MM-DD`` naming a real calendar day."""
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError("must be a date YYYY-MM-DD")
    try:
        _date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real calendar date") from None
    return value


def parse_time(value: Any) -> str:
    """``HH:MM`` (``HH:MM:00`` accepted, as the database returns it), normalized to ``HH:MM``."""
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be a time HH:MM")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds != 0:
        raise ValueError("is not a valid time of day HH:MM")
    return f"{hours:02d}:{minutes:02d}"


def parse_positive_int(value: Any, high: int) -> int:
    """A positive integer up to ``high``, given as a number or a numeric string."""
    if isinstance(value, bool):
        raise ValueError("must be a positive integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"must be a positive integer up to {high}")
    return value


def parse_employee_id(value: Any) -> int:
    """The employee id: a positive integer within the column's range."""
    return parse_positive_int(value, MAX_EMPLOYEE_ID)


def parse_step(value: Any) -> int:
    """A booking step, 1 to 7."""
    return parse_positive_int(value, 7)


def parse_email(value: Any) -> str:
    """An e-mail address as the plugin stores it (at most 100 characters), lower-cased."""
    if not isinstance(value, str) or len(value) > 100 or not _EMAIL_RE.match(value):
        raise ValueError("must be an e-mail address")
    return value.strip().lower()


def parse_bool(value: Any) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def parse_number(value: Any) -> int | float:
    """A finite JSON number, kept as sent (an integer stays an integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number")
    if isinstance(value, int) and abs(value) >= EXACT_INT:
        raise ValueError("must be a number within +-2^53")
    return value


def parse_label(value: Any) -> str | int | None:
    """A short free label (service or employee as the block sends it): string, number or null."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= 200:
        return value
    raise ValueError("must be a short string, a number or null")


@dataclass(frozen=True)
class Field:
    """One field of a message schema."""

    parse: Callable[[Any], Any]
    required: bool = True


Schema = Mapping[str, Field]


CompiledSchema = tuple[tuple[str, Callable[[Any], Any], bool], ...]


def compile_schema(schema: Schema) -> CompiledSchema:
    """``schema`` as (name, parse, required) triples, for :func:`validate_compiled`."""
    return tuple((name, spec.parse, spec.required) for name, spec in schema.items())


def validate(frame: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """Check ``frame`` against ``schema``; return the parsed fields (absent optionals omitted)."""
    return validate_compiled(frame, compile_schema(schema))


def validate_compiled(frame: Mapping[str, Any], fields: CompiledSchema) -> dict[str, Any]:
    """:func:`validate` with the schema compiled once (the command table does, per type)."""
    clean: dict[str, Any] = {}
    get = frame.get
    for name, parse, required in fields:
        value = get(name)
        if value is None:
            if required:
                raise ProtocolError(INVALID_REQUEST, f"Missing field {name}", name)
            continue
        try:
            clean[name] = parse(value)
        except ValueError as exc:
            raise ProtocolError(INVALID_REQUEST, f"Field {name} {exc}", name) from None
    return clean


def slot_of(fields: Mapping[str, Any]) -> Slot:
    """The slot named by validated ``date``, ``time`` and ``employeeId`` fields."""
    return Slot(fields["date"], fields["time"], fields["employeeId"])


def room_of(fields: Mapping[str, Any]) -> Room:
    """The room named by validated ``date`` and ``employeeId`` fields."""
    return Room(fields["date"], fields["employeeId"])


SLOT_SCHEMA: Schema = {
    "date": Field(parse_date),
    "time": Field(parse_time),
    "employeeId": Field(parse_employee_id),
}
ROOM_SCHEMA: Schema = {"date": Field(parse_date), "employeeId": Field(parse_employee_id)}
