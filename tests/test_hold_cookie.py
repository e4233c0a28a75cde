"""The hold cookie: minted on every upgrade, verified in constant time, refused when forged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from appointease_realtime import hold_cookie
from tests.conftest import TOKEN_SECRET

SECRET = TOKEN_SECRET


def test_a_minted_cookie_proves_its_client_id() -> None:
    value = hold_cookie.mint(SECRET, "anonymous_1_abc", now=1000)
    assert value.startswith("anonymous_1_abc.") and value.count(".") == 2
    assert hold_cookie.verify(SECRET, value, now=1001) == "anonymous_1_abc"


def test_forged_expired_and_foreign_cookies_prove_nothing() -> None:
    value = hold_cookie.mint(SECRET, "anonymous_1_abc", now=1000)
    client_id, expiry, signature = value.split(".")
    expired = 1000 + hold_cookie.LIFETIME_SECONDS
    assert hold_cookie.verify(SECRET, value, now=expired) is None
    assert hold_cookie.verify(SECRET, f"anonymous_2_xyz.{expiry}.{signature}", now=1001) is None
    assert hold_cookie.verify(SECRET, f"{client_id}.{int(expiry) + 9}.{signature}", 1001) is None
    assert hold_cookie.verify("another-site-secret-of-32-characters!", value, now=1001) is None
    assert hold_cookie.verify("", value, now=1001) is None
    for junk in ("", "a", "a.b", "a.b.c", "..", "x" * 500):
        assert hold_cookie.verify(SECRET, junk, now=1001) is None


def test_a_connection_token_is_not_a_cookie() -> None:
    from appointease_realtime.auth import mint_token

    token = mint_token(SECRET, "wp:1", "a@example.com", "customer")
    assert hold_cookie.verify(SECRET, token, now=time.time()) is None


def set_cookie(headers: Any) -> dict[str, str]:
    """The hold cookie's Set-Cookie header of an upgrade answer, as attribute -> value."""
    (line,) = [v for v in headers.getall("Set-Cookie", []) if v.startswith(hold_cookie.NAME)]
    parts = [part.strip() for part in line.split(";")]
    attributes = {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}
    return {"value": parts[0].split("=", 1)[1], **attributes}


async def upgrade_headers(client: Any, **headers: str) -> tuple[Any, str]:
    """Connect, read the hello; the 101 answer's headers and the clientId."""
    async with client.session.ws_connect(client.make_url("/"), headers=headers) as ws:
        hello = await ws.receive_json()
        return ws._response.headers, hello["clientId"]


async def test_every_upgrade_sets_the_cookie(make_client: Callable[..., Any]) -> None:
    client = await make_client(token_secret=TOKEN_SECRET, cookie_domain="example.test")
    headers, client_id = await upgrade_headers(client)
    cookie = set_cookie(headers)
    assert hold_cookie.verify(TOKEN_SECRET, cookie["value"]) == client_id
    assert "httponly" in cookie and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["domain"] == "example.test" and "secure" not in cookie
    proxied = await make_client(token_secret=TOKEN_SECRET, trusted_proxies=("127.0.0.0/8",))
    headers, _ = await upgrade_headers(proxied, **{"X-Forwarded-Proto": "https"})
    assert "secure" in set_cookie(headers)
    spoofed, _ = await upgrade_headers(client, **{"X-Forwarded-Proto": "https"})
    assert "secure" not in set_cookie(spoofed)  # only a trusted proxy is believed


async def test_no_cookie_without_a_token_secret(make_client: Callable[..., Any]) -> None:
    client = await make_client(token_secret="")
    headers, _ = await upgrade_headers(client)
    assert not [v for v in headers.getall("Set-Cookie", []) if hold_cookie.NAME in v]


def test_a_non_ascii_digit_expiry_is_refused_not_raised() -> None:
    assert hold_cookie.verify(SECRET, "anonymous_1_abc.\u00b2.sig") is None
