"""The hold cookie: a first-party cookie binding a browser to its clientId, so WordPress can
tell, at booking time, whether the request comes from the holder of the slot's hold.

Value ``<clientId>.<expiry>.<signature>``: ``expiry`` in Unix seconds, ``signature`` the
unpadded base64url HMAC-SHA256 under TOKEN_SECRET of ``appointease-rt-hold-cookie:v1:`` +
``<clientId>.<expiry>`` (a label of its own: it can never pass for a connection token).
The bridge verifies it in PHP (``AppointEase_RT_Hold_Cookie``) with the same rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time

from aiohttp import web

from .config import Settings

NAME = "appointease_rt_hold"
LABEL = b"appointease-rt-hold-cookie:v1:"
LIFETIME_SECONDS = 86400


def _signature(secret: str, client_id: str, expiry: int) -> str:
    digest = hmac.new(secret.encode(), LABEL + f"{client_id}.{expiry}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def mint(secret: str, client_id: str, now: float | None = None) -> str:
    """A cookie value for ``client_id``, valid for LIFETIME_SECONDS."""
    expiry = int(now if now is not None else time.time()) + LIFETIME_SECONDS
    return f"{client_id}.{expiry}.{_signature(secret, client_id, expiry)}"


def verify(secret: str, value: str, now: float | None = None) -> str | None:
    """The clientId a cookie value proves, or None (forged, expired, malformed, no secret)."""
    client_id, _, rest = value.rpartition(".")
    client_id, _, expiry_text = client_id.rpartition(".")
    if not secret or not client_id or len(value) > 400:
        return None
    if not (expiry_text.isascii() and expiry_text.isdigit()):  # "²" is a digit, not a number
        return None
    expiry = int(expiry_text)
    if expiry <= (now if now is not None else time.time()):
        return None
    if not hmac.compare_digest(rest, _signature(secret, client_id, expiry)):
        return None
    return client_id


def _is_https(request: web.Request, settings: Settings) -> bool:
    """TLS here, or a trusted proxy saying the browser used https."""
    if request.secure:
        return True
    try:
        remote = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    trusted = any(remote in ipaddress.ip_network(n) for n in settings.trusted_proxies)
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return trusted and proto == "https"


def attach(
    response: web.StreamResponse, request: web.Request, settings: Settings, client_id: str
) -> None:
    """Set the cookie on an upgrade response (nothing without TOKEN_SECRET)."""
    if not settings.token_secret:
        return
    response.set_cookie(
        NAME,
        mint(settings.token_secret, client_id),
        max_age=LIFETIME_SECONDS,
        path="/",
        domain=settings.cookie_domain,
        secure=_is_https(request, settings),
        httponly=True,
        samesite="Lax",
    )
