"""A hold is a guarantee at booking time: real WordPress, the real daemon, two Chromiums.

The site (php -S on 127.0.0.1:<port>) and the daemon (``appointease-realtime serve`` on
127.0.0.1:<another port>, on the site's own MariaDB database) share a host, so the hold
cookie the daemon sets on the WebSocket upgrade is sent with the page's own booking
requests (cookies ignore ports). Each visitor is a browser context of its own (its own
cookie jar) on a front-end page of the site: it opens ``bookingAPI.wsUrl`` (the bridge
points it at the daemon), sends ``lock_slot`` over it like step 6 of the block, and books
with ``fetch`` and ``X-WP-Nonce: bookingAPI.nonce`` exactly as the block does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wp_harness import DEFAULT_HOOK_SECRET, DEFAULT_TOKEN_SECRET, WordPressSite

from appointease_realtime import hold_cookie
from tests.conftest import need
from tests.processes import Daemon

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DAY = "2030-05-06"
HELD = "appointease_rt_slot_held"

# What a page of the site gets: the block's socket and its two booking requests.
PAGE_HELPERS = """
() => {
  const api = window.bookingAPI;
  const rt = { frames: [], ws: null, clientId: null };
  rt.open = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(api.wsUrl);
    rt.ws = ws;
    const timer = setTimeout(() => reject(new Error('no connection frame in 10 s')), 10000);
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      rt.frames.push(frame);
      if (frame.type === 'connection') {
        clearTimeout(timer);
        rt.clientId = frame.clientId;
        resolve(frame.clientId);
      }
    };
    ws.onerror = () => { clearTimeout(timer); reject(new Error('socket error')); };
  });
  rt.send = (frame) => rt.ws.send(JSON.stringify(frame));
  rt.waitFor = async (type, match, timeout) => {
    const deadline = Date.now() + (timeout || 10000);
    while (Date.now() < deadline) {
      const found = rt.frames.find((f) => f.type === type
        && Object.entries(match || {}).every(([k, v]) => f[k] === v));
      if (found) { return found; }
      await new Promise((r) => setTimeout(r, 25));
    }
    return null;
  };
  const call = async (method, path, body) => {
    const response = await fetch(api.root + path, {
      method,
      headers: { 'X-WP-Nonce': api.nonce, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  rt.book = (date, employeeId) => call('POST', 'appointease/v1/appointments', {
    name: 'Zoe', email: 'zoe@example.org', phone: '555', date,
    service_id: 1, employee_id: employeeId,
  });
  rt.reschedule = (id, newDate) => call('PUT', 'appointease/v1/appointments/' + id,
    { new_date: newDate, reason: 'moved' });
  window.rt = rt;
  return { wsUrl: api.wsUrl, root: api.root, nonce: api.nonce };
}
"""


def chromium_installed() -> bool:
    """True when the Chromium binary is there."""
    return Path(CHROMIUM).is_file()


class Visitor:
    """One browser context (its own cookie jar) on a page of the site."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context = context
        self.page = page
        self.client_id: str | None = None

    async def connect(self) -> str:
        """Open the block's socket; the daemon's upgrade answer sets the hold cookie."""
        self.client_id = str(await self.page.evaluate("() => window.rt.open()"))
        return self.client_id

    async def send(self, frame: dict[str, Any]) -> None:
        await self.page.evaluate("(frame) => window.rt.send(frame)", frame)

    async def expect(self, type_: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first frame of ``type_`` (with ``match``) the page received, waiting for it."""
        frame = await self.page.evaluate(
            "([t, m, ms]) => window.rt.waitFor(t, m, ms)", [type_, match, int(timeout * 1000)]
        )
        assert frame is not None, f"no {type_} {match}; frames: {await self.frames()}"
        return dict(frame)

    async def frames(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate("() => window.rt.frames"))

    async def hold(self, time_: str, employee_id: int = 3) -> dict[str, Any]:
        """``lock_slot`` over the socket, as the block does at step 6."""
        await self.send(
            {"type": "lock_slot", "date": DAY, "time": time_, "employeeId": employee_id}
        )
        return await self.expect("slot_locked", time=time_)

    async def book(self, time_: str, employee_id: int = 3) -> dict[str, Any]:
        answer = await self.page.evaluate(
            "([d, e]) => window.rt.book(d, e)", [f"{DAY} {time_}:00", employee_id]
        )
        return dict(answer)

    async def reschedule(self, appointment: int | str, time_: str) -> dict[str, Any]:
        answer = await self.page.evaluate(
            "([i, d]) => window.rt.reschedule(i, d)", [appointment, f"{DAY} {time_}:00"]
        )
        return dict(answer)

    async def hold_cookie(self) -> dict[str, Any] | None:
        for cookie in await self.context.cookies():
            if cookie["name"] == hold_cookie.NAME:
                return dict(cookie)
        return None

    async def set_hold_cookie(self, value: str) -> None:
        await self.context.add_cookies(
            [{"name": hold_cookie.NAME, "value": value, "domain": "127.0.0.1", "path": "/"}]
        )


class World:
    """The site, the daemon on its database, and a browser to make visitors with."""

    def __init__(self, site: WordPressSite, daemon: Daemon, browser: Any) -> None:
        self.site = site
        self.daemon = daemon
        self.browser = browser

    async def visitor(self, connect: bool = True) -> Visitor:
        context = await self.browser.new_context()
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(self.site.base_url + "/", wait_until="load")
        api = await page.evaluate(PAGE_HELPERS)
        assert api["wsUrl"] == self.daemon.ws_url, api  # the bridge's override
        visitor = Visitor(context, page)
        if connect:
            await visitor.connect()
        return visitor

    def refused(self) -> int:
        return int(self.site.php("echo (int) get_option('appointease_rt_refused_bookings', 0);"))

    async def lock_rows(self, time_: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            self.site.sql,
            f"SELECT client_id FROM `{self.site.locks_table}` WHERE date = %s AND time = %s",
            (DAY, f"{time_}:00"),
        )


@pytest.fixture
async def world(
    wordpress_factory: Callable[..., WordPressSite], tmp_path: Path
) -> AsyncIterator[World]:
    """A site whose bridge points at a real daemon on the site's database, and Chromium."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        need("Playwright for Python", str(exc))
    if not chromium_installed():
        need("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    site = wordpress_factory(token_secret=DEFAULT_TOKEN_SECRET, hook_secret=DEFAULT_HOOK_SECRET)
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    daemon = Daemon(
        workdir,
        TOKEN_SECRET=DEFAULT_TOKEN_SECRET,
        HOOK_SECRET=DEFAULT_HOOK_SECRET,
        DB_HOST=site.mysql.host,
        DB_PORT=str(site.mysql.port),
        DB_USER=site.mysql.user,
        DB_PASSWORD=site.mysql.password,
        DB_NAME=site.db_name,
        TABLE_PREFIX=site.table_prefix,
        SITE_URL=site.base_url,
        HOLD_LIMIT="10",
        LOCK_SWEEP_INTERVAL_SECONDS="0.5",
        RECONCILE_INTERVAL_SECONDS="60",
        REDIS_URL="",
    )
    site.configure(rt_url=daemon.url, public_url=daemon.ws_url)
    await daemon.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield World(site, daemon, browser)
            finally:
                await browser.close()
    finally:
        await daemon.close()
        assert site.php_problems() == []


async def _eventually(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_the_holder_books_others_get_409_until_the_hold_expires(world: World) -> None:
    site = world.site
    a, b = await world.visitor(), await world.visitor()
    assert a.client_id != b.client_id
    # Each browser stores the daemon's cookie for its own clientId: HttpOnly, SameSite=Lax,
    # host-only on 127.0.0.1 (the site's host), not Secure on plain http.
    for visitor in (a, b):
        cookie = await visitor.hold_cookie()
        assert cookie is not None, await visitor.context.cookies()
        assert hold_cookie.verify(DEFAULT_TOKEN_SECRET, cookie["value"]) == visitor.client_id
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
        assert cookie["secure"] is False and cookie["path"] == "/"
        assert cookie["domain"] == "127.0.0.1"
    await b.send({"type": "watch_slot", "date": DAY, "employeeId": 3})
    await b.expect("active_selections")

    # A holds 10:00; B's booking of it is refused before AppointEase runs.
    locked = await a.hold("10:00")
    # whole seconds left by the database's clock, read just after the write: 599 when a
    # second boundary falls between the two statements (as the store tests allow too)
    assert 599 <= locked["expiresIn"] <= 600
    refused = await b.book("10:00")
    assert refused["status"] == 409, refused
    assert refused["body"]["code"] == HELD
    assert 590 <= refused["body"]["data"]["expiresIn"] <= 600
    assert refused["body"]["data"]["status"] == 409
    assert refused["body"]["message"] == (
        "This time is being booked by someone else. "
        "Please pick another time or try again in 10 minutes."
    )
    assert site.appointments() == []
    assert world.refused() == 1

    # A books it; the daemon hears the hook, consumes the hold and tells B.
    booked = await a.book("10:00")
    assert booked["status"] == 201 and booked["body"]["success"] is True, booked
    assert booked["body"]["strong_id"].startswith("APT-")
    taken = await b.expect("slot_taken", time="10:00")
    assert taken["slot"] == f"{DAY} 10:00" and int(taken["employeeId"]) == 3
    assert await _eventually(lambda: _no_rows(world, "10:00")), "the hold was not consumed"
    again = await b.book("10:00")  # now the slot is booked: AppointEase's own answer
    assert again["status"] == 409 and again["body"]["code"] == "slot_taken", again

    # A holds 11:00; B is refused until the hold expires (by the database's clock).
    await a.hold("11:00")
    assert (await b.book("11:00"))["body"]["code"] == HELD
    await asyncio.to_thread(
        site.sql,
        f"UPDATE `{site.locks_table}` SET expires_at = NOW() - INTERVAL 1 SECOND"
        " WHERE date = %s AND time = '11:00:00'",
        (DAY,),
    )
    late = await b.book("11:00")
    assert late["status"] == 201, late
    assert world.refused() == 2
    assert len(site.appointments()) == 2


async def _no_rows(world: World, time_: str) -> bool:
    return await world.lock_rows(time_) == []


async def test_reschedules_forged_cookies_and_the_daemon_down(world: World) -> None:
    site = world.site
    a, b = await world.visitor(), await world.visitor()
    mine = (await a.book("15:00"))["body"]
    theirs = (await b.book("16:00"))["body"]

    # A holds 10:00: B may not move its appointment there, A may.
    await a.hold("10:00")
    refused = await b.reschedule(theirs["strong_id"], "10:00")
    assert refused["status"] == 409 and refused["body"]["code"] == HELD, refused
    moved = await a.reschedule(mine["id"], "10:00")
    assert moved["status"] == 200 and moved["body"]["success"] is True, moved
    dates = {r["id"]: r["appointment_date"].strftime("%H:%M") for r in site.appointments()}
    assert dates == {mine["id"]: "10:00", theirs["id"]: "16:00"}

    # A holds 12:00. A visitor without a socket tries cookies it made up: none proves A.
    await a.hold("12:00")
    assert a.client_id is not None
    c = await world.visitor(connect=False)
    assert await c.hold_cookie() is None
    good = hold_cookie.mint(DEFAULT_TOKEN_SECRET, a.client_id)
    client_id, expiry, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for what, value in {
        "no cookie": None,
        "forged signature": f"{client_id}.{expiry}.{flipped}",
        "expired": hold_cookie.mint(DEFAULT_TOKEN_SECRET, a.client_id, now=time.time() - 2 * 86400),
        "another site's secret": hold_cookie.mint("another-site-secret-of-32-chars!!", a.client_id),
    }.items():
        if value is not None:
            await c.set_hold_cookie(value)
        answer = await c.book("12:00")
        assert answer["status"] == 409 and answer["body"]["code"] == HELD, (what, answer)
    assert world.refused() == 5
    # Only the secret makes a cookie: minted with it, the same clientId is the holder.
    await c.set_hold_cookie(good)
    assert (await c.book("12:00"))["status"] == 201

    # The daemon is down: no live locks are written, bookings go through as before.
    await world.daemon.close()
    d = await world.visitor(connect=False)
    assert (await d.book("13:00"))["status"] == 201
    assert (await a.book("14:00"))["status"] == 201
    assert (await b.reschedule(theirs["id"], "17:00"))["status"] == 200
    assert world.refused() == 5
    # What the daemon did not hear about waits in the outbox.
    assert {row["event"]["type"] for row in site.outbox_rows()} <= {
        "appointment.created",
        "appointment.updated",
    }
    with contextlib.suppress(Exception):
        await a.page.close()
