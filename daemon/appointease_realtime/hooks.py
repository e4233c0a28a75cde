"""POST /hooks/booking: read the whole body, verify its Standard Webhooks signature, dedupe,
then hand the change to :class:`~.appointments.Appointments` (HTTP only; no booking logic here).

The payload is a hint: the daemon re-reads the appointment (the database is the truth).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .keys import NODE
from .refusals import Refusal
from .store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DEDUPE_SECONDS = 600
CREATED = "appointment.created"
UPDATED = "appointment.updated"
CANCELLED = "appointment.cancelled"
TEST_PING = "test.ping"
EVENT_TYPES = (CREATED, UPDATED, CANCELLED, TEST_PING)

BODY_TIMEOUT_SECONDS = 10.0

routes = web.RouteTableDef()
OUTCOME = web.ResponseKey("outcome", str)


def _answer(outcome: str, body: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON answer that remembers its outcome for the metrics."""
    response = web.json_response(body, status=status)
    response[OUTCOME] = outcome
    return response


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
    try:
        response = await _booking_hook(request)
    except Refusal as refusal:
        response = refusal.response()
        response[OUTCOME] = refusal.code
    request.app[NODE].metrics.hooks.labels(response[OUTCOME]).inc()
    return response


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, however it arrives (segments, chunks), bounded in size and time."""
    if (request.content_length or 0) > limit:
        raise Refusal(413, "too_large", f"Body over {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            async for chunk in request.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > limit:
                    raise Refusal(413, "too_large", f"Body over {limit} bytes")
    except TimeoutError:
        raise Refusal(408, "body_timeout", "The body did not arrive in time") from None
    return bytes(body)


def _verified_payload(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The JSON object of a correctly signed body, or a Refusal saying what is wrong."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        if "timestamp too" in str(exc):
            raise Refusal(
                401, "timestamp_out_of_window", "Timestamp outside the 5-minute window"
            ) from None
        raise Refusal(401, "invalid_signature", f"Signature rejected: {exc}") from None
    except ValueError:  # malformed signature header, or a body that is not UTF-8
        raise Refusal(401, "invalid_signature", "Signature rejected: malformed") from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refusal(400, "invalid_json", "Body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data", {}), dict):
        raise Refusal(400, "invalid_json", "Body must be {type, data: {...}}")
    return payload


async def _booking_hook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    secret = node.settings.hook_secret
    if not secret:
        raise Refusal(503, "hooks_disabled", "HOOK_SECRET is not set on this daemon")
    body = await read_body(request)
    payload = _verified_payload(secret, body, dict(request.headers))
    event_type = payload.get("type")
    if event_type not in EVENT_TYPES:
        raise Refusal(422, "unknown_event", f"Unknown event type: {str(event_type)[:64]}")
    data = payload.get("data") or {}
    ref = _appointment_ref(data.get("id"))
    if event_type != TEST_PING and ref is None:
        raise Refusal(400, "invalid_request", "data.id must be an appointment id or strong_id")
    previous = data.get("previous") if isinstance(data.get("previous"), dict) else None
    hook_id = request.headers["webhook-id"]
    deduper = node.cluster.deduper
    if not await deduper.remember(f"hook:{hook_id}", DEDUPE_SECONDS):
        return _answer("duplicate", {"ok": True, "duplicate": True})
    if event_type == TEST_PING:
        return _answer("test_ping", {"ok": True, "pong": True})
    assert ref is not None
    try:
        found = await node.appointments.apply(str(event_type), ref, previous)
    except StoreUnavailable as exc:
        await deduper.forget(f"hook:{hook_id}")  # let the bridge's retry through
        log.warning("hook %s not applied, database unavailable: %s", hook_id, exc)
        raise Refusal(
            503, "unavailable", "The booking database is unavailable; retry later"
        ) from None
    return _answer("applied" if found else "unknown_appointment", {"ok": True, "found": found})
