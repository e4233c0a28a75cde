"""Deployed as documented: nginx (TLS) in front of two daemons on MariaDB and Redis, WordPress
with the bridge from its release zip, and Chromium pages running realtime-client.js.

The tests share one deployment (``conftest.deployment``) and run in this order; each leaves it
as it found it (both daemons up, WebSockets allowed). Latencies are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from typing import Any

import aiohttp
import pytest

from tests.deploy.conftest import Deployment, Page, print_json

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

DAY = "2030-05-06"


async def _until(probe: Any, timeout: float, what: str) -> Any:
    """Await ``probe()`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.05)


def _no_token_logged(dep: Deployment) -> None:
    assert dep.tokens, "no page was given a token"
    for name, text in dep.logs().items():
        for token in dep.tokens:
            assert token not in text, f"a connection token is in the {name} log"


async def test_a_signed_in_customer_holds_a_slot_and_sees_her_appointments(
    deployment: Deployment,
) -> None:
    dep = deployment
    email = "ann@example.org"
    booked = await dep.site.acreate_booking(DAY, "09:00", 3, email=email)
    assert booked.status == 201, booked.text
    page = await dep.open_page(customer=email)
    try:
        prefix = f"wss://127.0.0.1:{dep.nginx.https_port}/realtime/ws/"
        assert page.ws_url.startswith(prefix), page.ws_url
        (hello,) = await page.connect()
        assert hello["isAnonymous"] is False and hello["clientId"].startswith("user_")
        # The polling URL keeps the base path of the socket's URL.
        poll = await page.js("() => window.clients[0]._pollUrl()")
        assert poll == f"{dep.public}/api/availability"

        locked = await page.call(0, "lock", DAY, "10:00", 3)
        assert locked["type"] == "slot_locked", locked
        assert (await dep.lock_rows(DAY))["10:00 3"] == hello["clientId"]
        mine = await page.call(0, "watchAppointments")
        assert mine["type"] == "appointments_data" and mine["count"] == 1, mine
        assert mine["appointments"][0]["strong_id"] == booked.json["strong_id"]

        # The client script behind nginx is the one the release zip installed in WordPress.
        async with aiohttp.ClientSession() as session:
            served = f"{dep.public}/assets/realtime-client.js"
            async with session.get(served, ssl=dep.tls) as resp:
                assert resp.status == 200
                via_nginx = await resp.read()
        installed = (
            dep.site.docroot
            / "wp-content/plugins/appointease-realtime-bridge/assets/realtime-client.js"
        )
        assert via_nginx == installed.read_bytes()
        await page.call(0, "unlock", DAY, "10:00", 3)
        assert page.errors == []
    finally:
        await page.close()

    # nginx logs a socket when it closes: the token travelled in its path and is in no log.
    async def logged() -> bool:
        return '"GET /realtime/ws/[token] HTTP/1.1" 101 ' in dep.logs()["nginx access"]

    await _until(logged, 10, "nginx logged the socket")
    _no_token_logged(dep)


async def _page_on(dep: Deployment, index: int, **open_args: Any) -> Page:
    """A connected page whose client reached daemon ``index`` (nginx picks round robin)."""
    for _ in range(10):
        page = await dep.open_page(**open_args)
        (hello,) = await page.connect()
        if await dep.where(hello["clientId"]) == index:
            return page
        await page.close()
        await dep.nudge()  # one request more: the next socket goes to the other daemon
    raise AssertionError(f"10 pages, none on daemon {index + 1}")


async def _pages_on_both_daemons(dep: Deployment, **open_args: Any) -> list[tuple[Page, int]]:
    """A connected page on each daemon: (page, daemon index)."""
    first = await dep.open_page(**open_args)
    (hello,) = await first.connect()
    index = await dep.where(hello["clientId"])
    assert index is not None
    second = await _page_on(dep, 1 - index, **open_args)
    return sorted([(first, index), (second, 1 - index)], key=lambda pair: pair[1])


async def test_a_booking_in_wordpress_reaches_pages_on_either_daemon_within_a_second(
    deployment: Deployment,
) -> None:
    dep = deployment
    pages = await _pages_on_both_daemons(dep)
    try:
        for page, _ in pages:
            await page.call(0, "watchSlot", DAY, 4)
        latencies: dict[str, list[int]] = {"daemon 1": [], "daemon 2": []}
        for time_ in ("11:00", "11:30", "12:00", "12:30", "13:00"):
            started = time.time()
            booked = await dep.site.acreate_booking(DAY, time_, 4)
            answered = time.time()
            assert booked.status == 201, booked.text
            for page, index in pages:
                taken = await page.wait_frame(0, "slot_taken", 10, time=time_)
                latencies[f"daemon {index + 1}"].append(round(taken["at"] - started * 1000))
            print_json(
                f"booking {time_}: WordPress answered after ms", round((answered - started) * 1000)
            )
        print_json("booking -> slot_taken on each daemon's page, ms", latencies)
        # WordPress's hooks came through nginx's internal door (part 3 of the file).
        assert '"POST /hooks/booking HTTP/1.1" 200 ' in dep.logs()["nginx internal"]
        worst = max(max(v) for v in latencies.values())
        print_json("worst booking -> page latency, ms", worst)
    finally:
        for page, _ in pages:
            await page.close()


async def test_kill_9_the_page_resumes_on_the_other_daemon_and_keeps_its_hold(
    deployment: Deployment,
) -> None:
    dep = deployment
    holder = await dep.open_page(customer="bob@example.org")
    (hello,) = await holder.connect()
    holder_id = hello["clientId"]
    victim = await dep.where(holder_id)
    assert victim is not None
    survivor = 1 - victim
    other = await _page_on(dep, survivor, customer="cat@example.org")
    try:
        locked = await holder.call(0, "lock", DAY, "15:00", 6)
        assert locked["type"] == "slot_locked", locked
        first = await other.call(0, "watchSlot", DAY, 6)
        assert "15:00" in first["unavailable"], first

        killed_at = time.time()
        await dep.daemons[victim].kill9()
        refused = await other.call(0, "lock", DAY, "15:00", 6)  # meanwhile: still held
        assert refused["type"] == "lock_failed" and refused["reason"] == "slot_locked", refused

        async def resumed() -> Any:
            (state,) = await holder.state()
            return state["connected"] and len(state["opens"]) == 2 and state

        state = await _until(resumed, 15, "the holder reconnected")
        back = state["opens"][-1]
        assert back["clientId"] == holder_id and back["resumed"] is True, state
        assert state["closes"] == [1006]  # a killed process sends no close frame
        print_json(
            "kill -9 -> page resumed on the other daemon, ms", round(back["at"] - killed_at * 1000)
        )
        assert await dep.where(holder_id) == survivor
        assert (await dep.lock_rows(DAY))["15:00 6"] == holder_id
        # The other customer never saw 15:00 free.
        updates = await other.frames(0, "availability_update")
        assert updates and all("15:00" in f["unavailable"] for f in updates), updates
        again = await other.call(0, "lock", DAY, "15:00", 6)
        assert again["type"] == "lock_failed", again
        # The holder can still release (or book) it: it is the same client.
        released = await holder.call(0, "unlock", DAY, "15:00", 6)
        assert released["type"] == "slot_unlocked", released
    finally:
        await holder.close()
        await other.close()
        await dep.daemons[victim].start()
    _no_token_logged(dep)


async def test_with_websockets_refused_at_nginx_pages_poll_through_the_prefix(
    deployment: Deployment,
) -> None:
    dep = deployment
    await dep.nginx.set_polling_only(True, dep.tls)
    page = await dep.open_page()
    try:
        await page.call(0, "watchSlot", DAY, 8)
        await page.js("() => { window.clients[0].connect().catch(() => undefined); }")

        async def polling() -> bool:
            (state,) = await page.state()
            return state["mode"] == "polling" and state["polls"] >= 1

        await _until(polling, 15, "the page polls")
        started = time.time()
        booked = await dep.site.acreate_booking(DAY, "14:00", 8)
        assert booked.status == 201, booked.text
        seen = await page.wait_frame(0, "availability_update", 15, unavailable="14:00")
        assert seen["source"] == "polling"
        print_json("booking -> page (polling every 5-10 s), ms", round(seen["at"] - started * 1000))
        (state,) = await page.state()
        assert state["connected"] is False and state["mode"] == "polling"
        access = dep.logs()["nginx access"]
        assert f'"GET /realtime/api/availability?date={DAY}&employeeId=8 HTTP/1.1" 200 ' in access
        assert '"GET /realtime/ HTTP/1.1" 403 ' in access  # the refused upgrades
    finally:
        await page.close()
        await dep.nginx.set_polling_only(False, dep.tls)


async def test_metrics_and_debug_answer_only_at_the_internal_door(deployment: Deployment) -> None:
    dep = deployment
    bearer = {"Authorization": f"Bearer {dep.debug_token}"}
    async with aiohttp.ClientSession() as session:
        for path in ("debug", "metrics", "hooks/booking", "healthz", "readyz"):
            for headers in ({}, bearer):
                url = f"{dep.public}/{path}"
                async with session.get(url, ssl=dep.tls, headers=headers) as resp:
                    assert resp.status == 403, (path, resp.status)
                    assert resp.headers["Server"].startswith("nginx")  # nginx said no
        async with session.get(f"{dep.internal}/debug", headers=bearer) as resp:
            assert resp.status == 200
            debug = await resp.json()
            assert debug["node"]["store"] == "mysql"
        async with session.get(f"{dep.internal}/debug") as resp:
            assert resp.status == 401  # the daemon's own guard: DEBUG_TOKEN is set
        async with session.get(f"{dep.internal}/metrics", headers=bearer) as resp:
            assert resp.status == 200
            assert "appointease" in await resp.text()
        async with session.get(
            f"{dep.public}/api/availability?date={DAY}&employeeId=3", ssl=dep.tls
        ) as resp:
            assert resp.status == 200 and (await resp.json())["type"] == "availability_update"


async def test_a_rolling_restart_under_100_clients_loses_no_client_and_no_hold(
    deployment: Deployment,
) -> None:
    dep = deployment
    # Signed-in visitors (a token each, as the bridge mints them): anonymous ones would share
    # one address here, and one address may hold only a few slots.
    pages = []
    for p in range(4):
        urls = [dep.token_url(f"visitor{25 * p + i}@example.org") for i in range(25)]
        # One browser opens one WebSocket to a host at a time (RFC 6455 4.1): 100 visitors in
        # one Chromium queue behind each other, which 100 browsers would not; wait for it.
        pages.append(await dep.open_page(clients=25, urls=urls, options={"connectTimeout": 30000}))
    try:
        for page in pages:
            await page.connect()
        ids: list[str] = []
        for p, page in enumerate(pages):
            for i in range(25):
                employee = 100 + 25 * p + i
                reply = await page.call(i, "lock", DAY, "16:00", employee)
                assert reply["type"] == "slot_locked", reply
            ids += [s["clientId"] for s in await page.state()]
        holds = {f"16:00 {100 + n}": client for n, client in enumerate(ids)}
        assert {k: v for k, v in (await dep.lock_rows(DAY)).items() if k in holds} == holds
        spread = [(await dep.debug(d))["connectedClients"] for d in dep.daemons]
        print_json("clients per daemon before the restart", spread)

        for index, daemon in enumerate(dep.daemons):
            stopped_at = time.monotonic()
            assert await daemon.stop(signal.SIGTERM) == 0  # drained: closed with 1001, exit 0
            other = dep.daemons[1 - index]

            async def all_on_other() -> bool:
                states = [s for page in pages for s in await page.state()]
                return all(s["connected"] for s in states) and (
                    (await dep.debug(other))["connectedClients"] == 100  # noqa: B023
                )

            try:
                await _until(
                    all_on_other, 30, f"every client back after daemon {index + 1} stopped"
                )
            except AssertionError:
                states = [s for page in pages for s in await page.state()]
                summary = {
                    "modes": sorted({s["mode"] for s in states}),
                    "connected": sum(s["connected"] for s in states),
                    "closes": sorted({str(s["closes"]) for s in states}),
                    "on": [
                        (await dep.debug(d))["connectedClients"] for d in dep.daemons if d.alive()
                    ],
                }
                errors = re.sub(r"/ws/[^ ?\"]+", "/ws/[token]", dep.nginx.error_log.read_text())
                raise AssertionError(f"{summary}\n{errors[-3000:]}\n{other.log_tail(30)}") from None
            print_json(
                f"daemon {index + 1} stopped -> all 100 clients back, ms",
                round((time.monotonic() - stopped_at) * 1000),
            )
            await daemon.start()  # answers /healthz: the next one may go

        states = [s for page in pages for s in await page.state()]
        assert [s["clientId"] for s in states] == ids  # every client resumed as itself
        assert all(s["connected"] and s["mode"] == "websocket" for s in states)
        assert all(s["closes"] and set(s["closes"]) == {1001} for s in states), [
            s["closes"] for s in states if set(s["closes"]) != {1001}
        ]
        assert all(all(o["resumed"] for o in s["opens"][1:]) for s in states)
        assert {k: v for k, v in (await dep.lock_rows(DAY)).items() if k in holds} == holds
        for page in pages:
            assert page.errors == []
    finally:
        for page in pages:
            await page.close()
    _no_token_logged(dep)
