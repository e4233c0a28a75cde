"""A connection token minted by the bridge inside a real WordPress, sent to a real daemon.

The site is built from the release zip (see conftest.py) with
``APPOINTEASE_RT_TOKEN_SECRET`` and a public URL that points at a daemon process
(``appointease-realtime serve``, ``tests.processes.Daemon``) started with the same
``TOKEN_SECRET``. Logged-in users fetch their token from the bridge's REST route (and from the
page's ``wsUrl``), connect with it exactly as the booking block would (``?email=`` appended),
and the daemon's hello, ``/debug`` and ``get_debug`` must name the WordPress identity.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from wp_harness import DEFAULT_TOKEN_SECRET, TOKEN_ROUTE, WordPressSite

from tests.processes import Daemon

DEBUG_TOKEN = "wp-daemon-debug-token"
JWT_RE = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The daemon as admins run it, on its own SQLite file, with the site's token secret."""
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    started = Daemon(workdir, TOKEN_SECRET=DEFAULT_TOKEN_SECRET, DEBUG_TOKEN=DEBUG_TOKEN)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


async def hello_of(session: aiohttp.ClientSession, url: str) -> tuple[Any, dict[str, Any]]:
    ws = await session.ws_connect(url)
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg, ws.close_code)
    hello: dict[str, Any] = msg.json()
    assert hello["type"] == "connection", hello
    return ws, hello


async def request(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json({**frame, "requestId": frame["type"]})
    while True:
        reply: dict[str, Any] = await ws.receive_json(timeout=10)
        if reply.get("requestId") == frame["type"]:
            return reply


async def test_a_token_from_wordpress_identifies_the_socket(
    wordpress_factory: Callable[..., WordPressSite], daemon: Daemon
) -> None:
    site = wordpress_factory(public_url=daemon.ws_url, token_secret=DEFAULT_TOKEN_SECRET)
    user_id = site.create_user("sub1", "subscriber", email="Sub.One@Example.org")
    customer = site.user_session("sub1")
    answer = await _arest(customer, "GET", TOKEN_ROUTE)
    assert answer.status == 200, answer.text
    token_url = answer.json["wsUrl"]
    assert token_url.startswith(f"{daemon.ws_url}/ws/")
    admin_answer = await _arest(site.user_session("admin", "admin-password"), "GET", TOKEN_ROUTE)
    assert admin_answer.status == 200, admin_answer.text

    async with aiohttp.ClientSession() as session:
        # as the booking block connects: the bridge's wsUrl, then "?email=" of its own
        spoof = quote("bob@example.com")
        ws, hello = await hello_of(session, f"{token_url}?email={spoof}")
        assert hello["isAnonymous"] is False and hello["role"] == "customer", hello
        assert hello["clientId"].startswith("user_")
        data = await request(ws, {"type": "watch_appointments"})
        assert data["type"] == "appointments_data" and data["email"] == "sub.one@example.org"
        refused = await request(ws, {"type": "watch_appointments", "email": "bob@example.com"})
        assert (refused["type"], refused["code"]) == ("error", "forbidden")

        headers = {"Authorization": f"Bearer {DEBUG_TOKEN}"}
        async with session.get(f"{daemon.url}/debug", headers=headers) as response:
            debug = await response.json()
        mine = next(c for c in debug["clients"] if c["id"] == hello["clientId"])
        assert (mine["email"], mine["role"], mine["isAnonymous"]) == (
            "sub.one@example.org",
            "customer",
            False,
        )

        # the page of a logged-in visitor carries a token URL too, and it works the same
        page = await _aget(customer, "/")
        found = re.search(r'window\.bookingAPI\.wsUrl = "([^"]+/ws/' + JWT_RE + ')";', page.text)
        assert found is not None, page.text
        page_ws, page_hello = await hello_of(session, found.group(1))
        assert page_hello["role"] == "customer"

        # an administrator's token is an admin on the daemon: get_debug is allowed
        admin_ws, admin_hello = await hello_of(session, admin_answer.json["wsUrl"])
        assert admin_hello["role"] == "admin" and admin_hello["isAnonymous"] is False
        info = await request(admin_ws, {"type": "get_debug"})
        assert info["type"] == "debug_info", info
        by_id = {c["id"]: c for c in info["clients"]}
        assert by_id[admin_hello["clientId"]]["email"] == "admin@example.org"
        assert by_id[hello["clientId"]]["email"] == "sub.one@example.org"
        for socket in (ws, page_ws, admin_ws):
            await socket.close()

        # a site whose secret differs from the daemon's: its tokens are refused (4001)
        site.configure(token_secret="another-secret-of-at-least-thirty-two-characters")
        foreign = await _arest(customer, "GET", TOKEN_ROUTE)
        assert foreign.status == 200, foreign.text
        refused_ws = await session.ws_connect(foreign.json["wsUrl"])
        msg = await refused_ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and refused_ws.close_code == 4001
    assert user_id > 1
    assert site.php_problems() == []


async def _arest(session: Any, method: str, route: str) -> Any:
    """``UserSession.rest`` in a worker thread (the daemon's client runs in this loop)."""
    return await asyncio.to_thread(session.rest, method, route)


async def _aget(session: Any, path: str) -> Any:
    return await asyncio.to_thread(session.get, path)
