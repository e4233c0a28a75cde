"""The QA page and, with ``QA_MODE=true``, a small endpoint that books test appointments.

``page_routes`` serve ``/test-websocket.html`` and the browser client it uses. ``qa_routes``
(registered only in QA mode) create, move and cancel appointments whose ``strong_id`` starts
with ``QA-``, in the real table, then announce the change through the path a signed hook
takes, so the page exercises the real broadcasts. :func:`check_qa_database` refuses QA mode
at start-up against a database that holds appointments QA did not create, unless QA_FORCE.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import web

from . import protocol as p
from .auth import CUSTOMER, bearer_matches, client_ip, is_loopback, mint_token
from .config import ConfigError, Settings
from .keys import NODE, SETTINGS
from .protocol import Field, ProtocolError, Room, Schema
from .refusals import Refusal
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)

QA_PREFIX = "QA-"
QA_EMAIL_DOMAIN = "@example.com"
QA_TOKEN_SECONDS = 3600
NOT_FOUND = "not_found"
SLOT_BOOKED = "slot_booked"
SLOT_HELD = "slot_held"

STATIC = resources.files(__package__) / "static"  # shipped in the wheel as package data

page_routes = web.RouteTableDef()
qa_routes = web.RouteTableDef()


class QAModeRefused(ConfigError):
    """QA_MODE is on against a database that holds real appointments."""


# ---- the page ----


def _static(name: str, content_type: str) -> web.Response:
    """One file of the package's ``static`` folder, read through importlib.resources."""
    try:
        body = (STATIC / name).read_bytes()
    except OSError:
        raise web.HTTPNotFound(text=f"{name} is missing from the installed package") from None
    return web.Response(
        body=body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )


@page_routes.get("/test-websocket.html")
async def test_page(request: web.Request) -> web.Response:
    """The QA page: runs the protocol tests against the daemon that served it."""
    return _static("test-websocket.html", "text/html; charset=utf-8")


@page_routes.get("/assets/realtime-client.js")
async def client_js(request: web.Request) -> web.Response:
    """The dependency-free browser client the page (and the booking block) uses."""
    return _static("realtime-client.js", "text/javascript; charset=utf-8")


# ---- the start-up guard ----


async def check_qa_database(store: Store, settings: Settings) -> None:
    """Refuse QA mode when the appointments table holds rows QA did not create (unless forced)."""
    if not settings.qa_mode:
        return
    foreign = await store.count_foreign_appointments(QA_PREFIX)
    if foreign == 0:
        log.warning("QA_MODE is on: POST /qa/appointments creates and cancels test bookings")
        return
    table = f"{settings.table_prefix}appointments"
    if settings.qa_force:
        log.warning(
            "QA_MODE is on against %s with %d real appointment(s) (QA_FORCE=true)", table, foreign
        )
        return
    raise QAModeRefused(
        f"QA_MODE: refused, table {table} holds {foreign} appointment(s) not created by QA"
        f" (strong_id not starting with {QA_PREFIX}); QA mode books and cancels test"
        " appointments, so run it on a throw-away database, or set QA_FORCE=true"
    )


# ---- the QA endpoint ----


def _qa_email(value: Any) -> str:
    email = p.parse_email(value)
    if not email.startswith("qa-") or not email.endswith(QA_EMAIL_DOMAIN):
        raise ValueError(f"must be a QA address qa-...{QA_EMAIL_DOMAIN}")
    return email


def _ref(value: Any) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.startswith(QA_PREFIX) and len(value) <= 20:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        return int(value)
    raise ValueError(f"must be an appointment id or a {QA_PREFIX}... reference")


def _client_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise ValueError("must be the clientId of the socket that holds the slot")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise ValueError("must be a name of 1 to 100 characters")
    return value


CREATE_SCHEMA: Schema = {
    **p.SLOT_SCHEMA,
    "email": Field(_qa_email),
    "name": Field(_name, required=False),
    "serviceId": Field(p.parse_employee_id, required=False),
    "clientId": Field(_client_id, required=False),
}
MOVE_SCHEMA: Schema = {
    "id": Field(_ref),
    "newDate": Field(p.parse_date),
    "newTime": Field(p.parse_time),
    "newEmployeeId": Field(p.parse_employee_id, required=False),
    "clientId": Field(_client_id, required=False),
}
CANCEL_SCHEMA: Schema = {"id": Field(_ref)}


async def _refuse_taken(
    store: Store, date: str, time: str, employee_id: int, holder: str | None = None
) -> None:
    """Refuse a slot that is booked, or held by anyone but ``holder`` (the client booking it,
    as the bridge lets a holder book its own hold): QA never takes a customer's hold."""
    state = await store.room_state(Room(date, employee_id))
    if time in state.booked:
        raise Refusal(409, SLOT_BOOKED, f"{date} {time} of employee {employee_id} is booked")
    if any(lock.slot.time == time and lock.client_id != holder for lock in state.locks):
        raise Refusal(409, SLOT_HELD, f"{date} {time} of employee {employee_id} is held")


async def _qa_appointment(store: Store, ref: str | int) -> dict[str, Any]:
    appointment = await store.appointment(ref)
    if appointment is None:
        raise Refusal(404, NOT_FOUND, f"No appointment {ref}", "id")
    if not str(appointment.get("strong_id") or "").startswith(QA_PREFIX):
        raise Refusal(403, p.FORBIDDEN, "Only QA appointments (QA-...) may be changed", "id")
    return appointment


async def _create(request: web.Request, fields: dict[str, Any]) -> web.Response:
    node = request.app[NODE]
    date, time, employee_id = fields["date"], fields["time"], fields["employeeId"]
    await _refuse_taken(node.store, date, time, employee_id, fields.get("clientId"))
    strong_id = f"{QA_PREFIX}{secrets.token_hex(6).upper()}"
    row: dict[str, Any] = {
        "name": fields.get("name", "QA Customer"),
        "email": fields["email"],
        "appointment_date": f"{date} {time}:00",
        "employee_id": employee_id,
        "status": "confirmed",
        "strong_id": strong_id,
        "notes": "created by the QA page (QA_MODE)",
    }
    if "serviceId" in fields:
        row["service_id"] = fields["serviceId"]
    await node.store.insert_appointment(row)
    await node.appointments.apply("appointment.created", strong_id)
    return web.json_response(
        {"ok": True, "action": "create", "appointment": await node.store.appointment(strong_id)},
        status=201,
    )


async def _move(request: web.Request, fields: dict[str, Any]) -> web.Response:
    node = request.app[NODE]
    appointment = await _qa_appointment(node.store, fields["id"])
    if appointment.get("status") == "cancelled":
        raise Refusal(409, "cancelled", "A cancelled appointment cannot be moved", "id")
    employee_id = int(fields.get("newEmployeeId", appointment["employee_id"]))
    date, time = fields["newDate"], fields["newTime"]
    await _refuse_taken(node.store, date, time, employee_id, fields.get("clientId"))
    previous = {
        "appointment_date": appointment["appointment_date"],
        "employee_id": appointment["employee_id"],
    }
    changed = await node.store.update_appointment(
        int(appointment["id"]),
        {
            "appointment_date": f"{date} {time}:00",
            "employee_id": employee_id,
            "original_date": appointment["appointment_date"],
            "rescheduled_at": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    if not changed:
        raise Refusal(404, NOT_FOUND, f"No appointment {fields['id']}", "id")
    await node.appointments.apply("appointment.updated", appointment["strong_id"], previous)
    return web.json_response(
        {
            "ok": True,
            "action": "move",
            "previous": previous,
            "appointment": await node.store.appointment(int(appointment["id"])),
        }
    )


async def _cancel(request: web.Request, fields: dict[str, Any]) -> web.Response:
    node = request.app[NODE]
    appointment = await _qa_appointment(node.store, fields["id"])
    if appointment.get("status") != "cancelled":
        changed = await node.store.update_appointment(
            int(appointment["id"]), {"status": "cancelled"}
        )
        if not changed:
            raise Refusal(404, NOT_FOUND, f"No appointment {fields['id']}", "id")
        await node.appointments.apply("appointment.cancelled", appointment["strong_id"])
    return web.json_response(
        {
            "ok": True,
            "action": "cancel",
            "appointment": await node.store.appointment(int(appointment["id"])),
        }
    )


ACTIONS = {
    "create": (CREATE_SCHEMA, _create),
    "move": (MOVE_SCHEMA, _move),
    "cancel": (CANCEL_SCHEMA, _cancel),
}


@qa_routes.get("/qa")
async def qa_status(request: web.Request) -> web.Response:
    """Tells the page QA mode is on (the route exists only then), and the timings it checks."""
    node = request.app[NODE]
    return web.json_response(
        {
            "qaMode": True,
            "store": node.store.kind,
            "prefix": QA_PREFIX,
            "lockReleaseGraceSeconds": node.settings.lock_release_grace_seconds,
            "lockTtlSeconds": node.settings.lock_ttl_seconds,
            "holdWarningSeconds": node.settings.hold_warning_seconds,
        }
    )


async def _qa_body(request: web.Request) -> dict[str, Any]:
    """The JSON object of a QA request from someone allowed to make one.

    QA books and cancels real rows, so only loopback or a DEBUG_TOKEN bearer may ask.
    """
    settings = request.app[SETTINGS]
    if not settings.qa_mode:
        raise Refusal(404, NOT_FOUND, "QA mode is off")
    allowed = (
        bearer_matches(request, settings.debug_token)
        if settings.debug_token
        else is_loopback(client_ip(request, settings))
    )
    if not allowed:
        raise Refusal(403, p.FORBIDDEN, "QA needs loopback, or Authorization: Bearer <DEBUG_TOKEN>")
    if request.content_type != "application/json":  # also makes a cross-site form post preflight
        raise Refusal(415, p.INVALID_REQUEST, "Send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise Refusal(400, p.INVALID_JSON, "Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, p.INVALID_JSON, "Body must be a JSON object")
    return body


def _validated(body: dict[str, Any], schema: Schema) -> dict[str, Any]:
    try:
        return p.validate(body, schema)
    except ProtocolError as exc:
        raise Refusal(400, exc.code, exc.message, exc.field) from None


@qa_routes.post("/qa/identity")
async def qa_identity(request: web.Request) -> web.Response:
    """An identity for the page's appointment tests: a customer token for a QA address.

    Body ``{"email": "qa-...@example.com"}``. Answers ``{email, token}`` (connect to
    ``/ws/<token>``) when TOKEN_SECRET is set, else ``{email, token: null}`` when
    ALLOW_UNSIGNED_EMAIL lets ``?email=`` identify, else 409.
    """
    settings = request.app[SETTINGS]
    email = _validated(await _qa_body(request), {"email": Field(_qa_email)})["email"]
    if settings.token_secret:
        token = mint_token(settings.token_secret, f"qa:{email}", email, CUSTOMER, QA_TOKEN_SECONDS)
        return web.json_response({"email": email, "token": token})
    if settings.allow_unsigned_email:
        return web.json_response({"email": email, "token": None})
    raise Refusal(
        409,
        "no_identity",
        "Set TOKEN_SECRET (or ALLOW_UNSIGNED_EMAIL=true) so the page can sign in a QA customer",
    )


@qa_routes.post("/qa/appointments")
async def qa_appointments(request: web.Request) -> web.Response:
    """Create, move or cancel a QA appointment in the database, then announce it as a hook would.

    Body: ``{"action": "create", date, time, employeeId, email: "qa-...@example.com", name?}``,
    ``{"action": "move", id, newDate, newTime, newEmployeeId?, clientId?}`` or
    ``{"action": "cancel", id}``; ``id`` is the numeric id or the ``QA-...`` strong id.
    A slot that is booked or held by anyone is refused (409).
    """
    body = await _qa_body(request)
    action = ACTIONS.get(str(body.get("action")))
    if action is None:
        raise Refusal(400, p.INVALID_REQUEST, "action must be create, move or cancel", "action")
    schema, handler = action
    try:
        return await handler(request, _validated(body, schema))
    except StoreUnavailable as exc:
        log.warning("QA request failed, database unavailable: %s", exc)
        raise Refusal(
            503, p.UNAVAILABLE, "The booking database is unavailable; try again"
        ) from None
