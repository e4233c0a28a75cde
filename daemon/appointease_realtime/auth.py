"""Who a connection is and where it may come from.

Identity comes from a signed connection token (JWT HS256, minted by the WordPress bridge),
never from a bare ``?email=`` unless ALLOW_UNSIGNED_EMAIL is set. Also: client ids, resume
tokens, the client's real address behind trusted proxies, origin checks, e-mail masking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import string
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from aiohttp import web

from .config import Settings
from .protocol import parse_email

_ALPHABET = string.ascii_lowercase + string.digits

ANONYMOUS = "anonymous"
CUSTOMER = "customer"
STAFF = "staff"
ADMIN = "admin"
ROLES = (CUSTOMER, STAFF, ADMIN)
AUDIENCE = "appointease-realtime"
MAX_TOKEN_LIFETIME = 12 * 3600

# Close codes of a socket whose token is refused (documented in docs/security.md).
CLOSE_INVALID_TOKEN = 4001
CLOSE_TOKEN_EXPIRED = 4002
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


class TokenError(Exception):
    """A connection token that must not be trusted; ``close_code`` says how to refuse it."""

    def __init__(self, message: str, close_code: int = CLOSE_INVALID_TOKEN) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass(frozen=True)
class Identity:
    """The person behind a connection, as far as the daemon can tell."""

    email: str | None = None
    role: str = ANONYMOUS
    subject: str | None = None

    @property
    def is_anonymous(self) -> bool:
        """True when nothing identifies the person."""
        return self.role == ANONYMOUS

    @property
    def is_staff(self) -> bool:
        """Staff and admins may follow every appointment."""
        return self.role in (STAFF, ADMIN)


def mint_token(secret: str, sub: str, email: str | None, role: str, lifetime: int = 3600) -> str:
    """A connection token as the bridge mints it (for the CLI and tests)."""
    now = int(time.time())
    claims = {"sub": sub, "role": role, "aud": AUDIENCE, "iat": now, "exp": now + lifetime}
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str) -> Identity:
    """The identity a token proves; TokenError for a forged, expired or foreign one."""
    if not secret:
        raise TokenError("this daemon has no TOKEN_SECRET: tokens cannot be checked")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            leeway=30,  # clock skew allowed, as the bridge's PHP decoder does
            options={"require": ["sub", "aud", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired", CLOSE_TOKEN_EXPIRED) from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    if int(claims["exp"]) - int(claims["iat"]) > MAX_TOKEN_LIFETIME:
        raise TokenError("invalid token: lifetime over 12 hours")
    role = claims.get("role")
    if role not in ROLES:
        raise TokenError("invalid token: unknown role")
    email = claims.get("email")
    try:
        email = parse_email(email) if email is not None else None
    except ValueError:
        raise TokenError("invalid token: bad email claim") from None
    if role == CUSTOMER and email is None:
        raise TokenError("invalid token: a customer token needs an email")
    return Identity(email=email, role=role, subject=str(claims["sub"]))


def identify(request: web.Request, settings: Settings) -> Identity:
    """Identity of an upgrade request: its token, else (only if allowed) ``?email=``.

    With a valid token ``?email=`` is ignored: the booking block appends it to any URL.
    """
    token = request.match_info.get("token") or request.query.get("token")
    if token:
        return verify_token(token, settings.token_secret)
    raw = request.query.get("email")
    if raw and settings.allow_unsigned_email:
        try:
            return Identity(email=parse_email(raw), role=CUSTOMER, subject=f"unsigned:{raw}")
        except ValueError:
            return Identity()
    return Identity()


def client_ip(request: web.Request, settings: Settings) -> str:
    """The client's address; X-Forwarded-For is believed only from TRUSTED_PROXIES."""
    remote = request.remote or ""
    networks = [ipaddress.ip_network(n) for n in settings.trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not trusted(remote):
        return remote
    # Every header line counts (a client may send its own line before the proxy's), and the
    # walk goes from the right: the nearest hop not run by us is the client.
    lines = ",".join(request.headers.getall("X-Forwarded-For", []))
    hops = [hop.strip() for hop in lines.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0] if hops else remote


def origin_allowed(origin: str | None, settings: Settings) -> bool:
    """No Origin (not a browser), localhost, SITE_URL and ALLOWED_ORIGINS are allowed."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.lower())
        hostname = parts.hostname
    except ValueError:  # e.g. "http://[": malformed, so not an allowed origin
        return False
    if hostname in LOCAL_HOSTS:
        return True
    normalized = f"{parts.scheme}://{parts.netloc}"
    return normalized == settings.site_url or normalized in settings.allowed_origins


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 and ::1."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def bearer_matches(request: web.Request, secret: str) -> bool:
    """``Authorization: Bearer <secret>``, compared in constant time."""
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def mask_email(email: str | None) -> str | None:
    """``j***@example.com``: enough to tell clients apart, not enough to contact them."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def new_client_id(identity: Identity, owner: str | None = None) -> str:
    """``anonymous_<ms>_<9 chars>`` (``user_...`` for a known person), unique per connection,
    with ``~<owner>`` appended when the holds it takes count against an owner's limit."""
    kind = "anonymous" if identity.is_anonymous else "user"
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(9))
    base = f"{kind}_{int(time.time() * 1000)}_{tail}"
    return f"{base}~{owner}" if owner else base


def owner_tag(secret: bytes, identity: Identity, address: str) -> str:
    """Who the holds of a connection count against: the signed-in person (``u...``), else the
    client address (``a...``; IPv6 per /64, as one household or phone gets a whole /64).

    A keyed hash, so the tag in a client id names no address; the same on every node that
    shares RESUME_SECRET, so the count holds across the cluster.
    """
    if not identity.is_anonymous and identity.subject:
        kind, subject = "u", f"identity:{identity.subject}"
    else:
        try:
            ip = ipaddress.ip_address(address)
            key = str(ipaddress.ip_network(f"{ip}/64", strict=False) if ip.version == 6 else ip)
        except ValueError:
            key = address
        kind, subject = "a", f"address:{key}"
    digest = hmac.new(secret, subject.encode(), hashlib.sha256).digest()
    return kind + base64.b32encode(digest[:10]).decode().lower()


def owner_of(client_id: str) -> str | None:
    """The owner tag a client id carries, if any."""
    _, tilde, owner = client_id.rpartition("~")
    return owner if tilde and owner else None


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
