"""POST /hooks/booking: verify a Standard Webhooks signature, dedupe, then announce the change.

The payload is a hint: the daemon re-reads the appointment (the database is the truth) and
tells every page that cares: the booked slot's room, a freed slot's room, and the customer's
dashboards.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .keys import NODE
from .node import Node
from .protocol import Room, Slot, reply
from .store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEDUPE_SECONDS = 600
CREATED = "appointment.created"
UPDATED = "appointment.updated"
CANCELLED = "appointment.cancelled"
TEST_PING = "test.ping"
EVENT_TYPES = (CREATED, UPDATED, CANCELLED, TEST_PING)

routes = web.RouteTableDef()
OUTCOME = web.ResponseKey("outcome", str)


def _answer(outcome: str, body: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON answer that remembers its outcome for the metrics."""
    response = web.json_response(body, status=status)
    response[OUTCOME] = outcome
    return response


def _refusal(status: int, code: str, message: str) -> web.Response:
    return _answer(code, {"error": message, "code": code}, status)


def _room_of(when: Any, employee_id: Any) -> Room | None:
    """The room of an ``appointment_date`` text and an employee id, if both are usable."""
    text = str(when or "")
    try:
        return Room(text[:10], int(employee_id)) if len(text) >= 16 else None
    except (TypeError, ValueError):
        return None


async def apply_booking_event(
    node: Node, event_type: str, ref: str | int, previous: dict[str, Any] | None = None
) -> bool:
    """Announce one booking change after re-reading it; False when no such appointment exists."""
    appointment = await node.store.appointment(ref)
    if appointment is None:
        log.info("hook %s for unknown appointment %r: nothing to announce", event_type, ref)
        return False
    room = _room_of(appointment["appointment_date"], appointment["employee_id"])
    cancelled = appointment.get("status") == "cancelled"
    if room is not None:
        if not cancelled:  # the booking completes the hold on its slot
            time = str(appointment["appointment_date"])[11:16]
            await node.store.delete_lock(Slot(room.date, time, room.employee_id))
        node.rooms.touch(room)
    if previous:
        old = _room_of(previous.get("appointment_date"), previous.get("employee_id"))
        if old is not None and old != room:
            node.rooms.touch(old)
    kind = "appointment_cancel" if cancelled else "appointment_update"
    await announce_to_customer(node, appointment, kind)
    return True


async def announce_to_customer(node: Node, appointment: dict[str, Any], kind: str) -> None:
    """Send the customer's fresh list and the changed appointment to their dashboards."""
    email = str(appointment.get("email") or "").lower()
    if not email:
        return
    appointments = await node.store.appointments_for(email)
    frames = [
        reply("update", data={"appointments": appointments}),
        reply(kind, appointment=appointment),
    ]
    await node.broker.publish({"kind": "customer", "email": email, "frames": frames})


def _appointment_ref(value: Any) -> str | int | None:
    """A positive numeric id or a short ``strong_id``; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    return None


def signed_request(
    secret: str, event_type: str, data: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """Body and Standard Webhooks headers for one event (send-hook, tests, QA)."""
    hook_id = f"msg_{secrets.token_hex(12)}"
    now = datetime.now(UTC)
    body = json.dumps(
        {"type": event_type, "timestamp": now.isoformat(), "data": data}, separators=(",", ":")
    )
    headers = {
        "webhook-id": hook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(hook_id, now, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


@routes.post("/hooks/booking")
async def booking_hook(request: web.Request) -> web.Response:
    """Verify, dedupe and apply one signed booking hook (its outcome is counted)."""
    response = await _booking_hook(request)
    request.app[NODE].metrics.hooks.labels(response[OUTCOME]).inc()
    return response


async def _booking_hook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    secret = node.settings.hook_secret
    if not secret:
        return _refusal(503, "hooks_disabled", "HOOK_SECRET is not set on this daemon")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _refusal(413, "too_large", f"Body over {MAX_BODY_BYTES} bytes")
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _refusal(413, "too_large", f"Body over {MAX_BODY_BYTES} bytes")
    try:
        Webhook(secret).verify(body, dict(request.headers), json_parse=False)
    except WebhookVerificationError as exc:
        if "timestamp too" in str(exc):
            return _refusal(401, "timestamp_out_of_window", "Timestamp outside the 5-minute window")
        return _refusal(401, "invalid_signature", f"Signature rejected: {exc}")
    except ValueError:  # malformed signature header, or a body that is not UTF-8
        return _refusal(401, "invalid_signature", "Signature rejected: malformed")
    try:
        payload = json.loads(body)
    except ValueError:
        return _refusal(400, "invalid_json", "Body is not valid JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("data", {}), dict):
        return _refusal(400, "invalid_json", "Body must be {type, data: {...}}")
    event_type = payload.get("type")
    if event_type not in EVENT_TYPES:
        return _refusal(422, "unknown_event", f"Unknown event type: {str(event_type)[:64]}")
    data = payload.get("data") or {}
    ref = _appointment_ref(data.get("id"))
    if event_type != TEST_PING and ref is None:
        return _refusal(400, "invalid_request", "data.id must be an appointment id or strong_id")
    previous = data.get("previous") if isinstance(data.get("previous"), dict) else None
    hook_id = request.headers["webhook-id"]
    if not await node.broker.remember(f"hook:{hook_id}", DEDUPE_SECONDS):
        return _answer("duplicate", {"ok": True, "duplicate": True})
    if event_type == TEST_PING:
        return _answer("test_ping", {"ok": True, "pong": True})
    assert ref is not None
    try:
        found = await apply_booking_event(node, str(event_type), ref, previous)
    except StoreUnavailable as exc:
        await node.broker.forget(f"hook:{hook_id}")  # let the bridge's retry through
        log.warning("hook %s not applied, database unavailable: %s", hook_id, exc)
        return _refusal(503, "unavailable", "The booking database is unavailable; retry later")
    return _answer("applied" if found else "unknown_appointment", {"ok": True, "found": found})
