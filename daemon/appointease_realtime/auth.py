"""Who a connection is: identity from the upgrade request, client ids and resume tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass

from aiohttp import web

from .protocol import parse_email

_ALPHABET = string.ascii_lowercase + string.digits

ANONYMOUS = "anonymous"
CUSTOMER = "customer"


@dataclass(frozen=True)
class Identity:
    """The person behind a connection, as far as the daemon can tell."""

    email: str | None = None
    role: str = ANONYMOUS

    @property
    def is_anonymous(self) -> bool:
        """True when nothing identifies the person."""
        return self.email is None


def identify(request: web.Request) -> Identity:
    """Identity from the upgrade request: the block appends ``?email=`` for a logged-in customer."""
    raw = request.query.get("email")
    if not raw:
        return Identity()
    try:
        return Identity(email=parse_email(raw), role=CUSTOMER)
    except ValueError:
        return Identity()


def new_client_id(identity: Identity) -> str:
    """``anonymous_<ms>_<9 chars>`` (``user_...`` for a known person): unique per connection."""
    kind = "anonymous" if identity.is_anonymous else "user"
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(9))
    return f"{kind}_{int(time.time() * 1000)}_{tail}"


def _mac(secret: bytes, client_id: str) -> str:
    digest = hmac.new(secret, client_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def resume_token(secret: bytes, client_id: str) -> str:
    """``<clientId>.<mac>``: proof, for a later connection, that it was this client."""
    return f"{client_id}.{_mac(secret, client_id)}"


def resumed_client_id(secret: bytes, token: str) -> str | None:
    """The client id a resume token proves, or None when it is forged or malformed."""
    client_id, dot, mac = token.rpartition(".")
    if not dot or not client_id or len(token) > 300:
        return None
    return client_id if hmac.compare_digest(mac, _mac(secret, client_id)) else None
