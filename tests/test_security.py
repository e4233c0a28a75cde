"""Nobody gets in where they don't belong: tokens, roles, origins, limits, hostile input."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from appointease_realtime.auth import AUDIENCE
from appointease_realtime.store import Store
from tests.conftest import TOKEN_SECRET, token_for
from tests.raw_peer import RawPeer

Connect = Callable[..., Any]
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
DAY = "2030-05-06"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "wp:7", "email": "ann@example.com", "role": "customer", "aud": AUDIENCE}
    return {**base, "iat": now, "exp": now + 600, **overrides}


async def closed_with(client: TestClient[Any, Any], path: str) -> tuple[int | None, str]:
    ws = await client.ws_connect(path)
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return ws.close_code, str(msg.extra)


async def book(store: Store, email: str, when: str = f"{DAY} 09:00:00", employee: int = 1) -> None:
    await store.insert_appointment(
        {"name": "X", "email": email, "appointment_date": when, "employee_id": employee}
    )


# ---- identity ----


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        (jwt.encode(claims(), "a-different-secret-that-is-long-enough!"), 4001, "signature"),
        (jwt.encode(claims(exp=int(time.time()) - 60), TOKEN_SECRET), 4002, "expired"),
        (jwt.encode(claims(aud="someone-else"), TOKEN_SECRET), 4001, "audience"),
        (jwt.encode(claims(exp=int(time.time()) + 13 * 3600), TOKEN_SECRET), 4001, "12 hours"),
        (jwt.encode(claims(role="root"), TOKEN_SECRET), 4001, "role"),
        (jwt.encode(claims(email=None, role="customer"), TOKEN_SECRET), 4001, "email"),
        (jwt.encode(claims(), "", algorithm="none"), 4001, "alg value is not allowed"),
        ("not.a.token", 4001, "invalid token"),
    ],
)
async def test_bad_tokens_close_the_socket(
    client: TestClient[Any, Any], token: str, code: int, reason: str
) -> None:
    for path in (f"/ws/{token}", f"/?token={token}"):
        got_code, got_reason = await closed_with(client, path)
        assert got_code == code and reason in got_reason.lower(), (got_code, got_reason)


async def test_token_identity_beats_a_spoofed_email(connect: Connect, store: Store) -> None:
    await book(store, "ann@example.com")
    await book(store, "bob@example.com")
    spoof = await connect(f"/ws/{token_for('ann@example.com')}?email=bob%40example.com")
    data = await spoof.request("watch_appointments", "appointments_data")
    assert data["email"] == "ann@example.com" and data["count"] == 1
    other = await spoof.request("watch_appointments", "appointments_data", email="bob@example.com")
    assert other["code"] == "forbidden"
    by_query = await connect(f"/?token={token_for('bob@example.com')}")
    assert (await by_query.request("subscribe", "update"))["data"]["appointments"][0]["email"] == (
        "bob@example.com"
    )


async def test_unsigned_email_is_anonymous_unless_allowed(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    plain = await connect("/?email=bob%40example.com")
    assert plain.hello["isAnonymous"] is True
    assert (await plain.request("watch_appointments", "appointments_data"))["code"] == "forbidden"
    lax = await make_client(allow_unsigned_email=True)
    trusted = await connect("/?email=bob%40example.com", on=lax)
    assert trusted.hello["isAnonymous"] is False and trusted.hello["role"] == "customer"


# ---- authorization ----


async def test_customers_see_their_own_staff_see_all(connect: Connect, store: Store) -> None:
    await book(store, "ann@example.com", employee=1)
    await book(store, "bob@example.com", f"{DAY} 10:00:00", employee=2)
    await book(store, "cid@example.com", "2030-06-01 10:00:00", employee=2)
    customer = await connect(email="ann@example.com")
    refused = await customer.request("watch_appointments", "appointments_data", employeeId=2)
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    staff = await connect(role="staff")
    everyone = await staff.request("watch_appointments", "appointments_data")
    assert everyone["count"] == 3 and everyone["email"] is None
    narrowed = await staff.request(
        "watch_appointments", "appointments_data", employeeId=2, dateFrom=DAY, dateTo=DAY
    )
    assert [a["email"] for a in narrowed["appointments"]] == ["bob@example.com"]
    one = await staff.request("watch_appointments", "appointments_data", email="cid@example.com")
    assert one["count"] == 1


async def test_debug_over_the_socket_is_for_admins(connect: Connect) -> None:
    for who in (
        await connect(),
        await connect(email="ann@example.com"),
        await connect(role="staff"),
    ):
        assert (await who.request("get_debug", "debug_info"))["code"] == "forbidden"
    admin = await connect(role="admin")
    await connect(email="ann@example.com")
    info = await admin.request("get_debug", "debug_info")
    assert "ann@example.com" in [c["email"] for c in info["clients"]]


async def test_debug_over_http(
    client: TestClient[Any, Any], make_client: Callable[..., Any], connect: Connect
) -> None:
    await connect(email="jane@example.com")
    masked = await (await client.get("/debug")).json()  # loopback, no DEBUG_TOKEN: masked
    assert [c["email"] for c in masked["clients"]] == ["j***@example.com"]
    proxied = await make_client(trusted_proxies=("127.0.0.0/8",))
    outside = await proxied.get("/debug", headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status == 403
    spoofed = await client.get("/debug", headers={"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status == 200  # X-Forwarded-For from an untrusted peer is ignored
    guarded = await make_client(debug_token="admin-debug-token")
    await connect(email="jane@example.com", on=guarded)
    assert (await guarded.get("/debug")).status == 401
    wrong = await guarded.get("/debug", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    full = await guarded.get("/debug", headers={"Authorization": "Bearer admin-debug-token"})
    assert [c["email"] for c in (await full.json())["clients"]] == ["jane@example.com"]


# ---- origins and limits ----


async def test_cross_origin_upgrade_refused(make_client: Callable[..., Any]) -> None:
    client = await make_client(site_url="https://shop.example.com")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    for origin in ("https://shop.example.com", "http://localhost:3000"):
        ws = await client.ws_connect("/", headers={"Origin": origin})
        assert (await ws.receive_json())["type"] == "connection"
        await ws.close()
    cors = await client.get(
        "/api/availability",
        params={"date": DAY, "employeeId": "1"},
        headers={"Origin": "https://shop.example.com"},
    )
    assert cors.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    blocked = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert blocked.status == 403


async def test_allowed_origins_and_a_malformed_origin(make_client: Callable[..., Any]) -> None:
    client = await make_client(allowed_origins=("https://book.example.net",))
    ws = await client.ws_connect("/", headers={"Origin": "https://book.example.net"})
    assert (await ws.receive_json())["type"] == "connection"
    await ws.close()
    for origin in ("http://[", "https://book.example.net.evil.example"):
        answer = await client.get("/healthz", headers={"Origin": origin})
        assert answer.status == 403, origin  # refused, never a 500


async def test_forwarded_for_is_read_across_every_header_line(
    make_client: Callable[..., Any],
) -> None:
    """A client's own X-Forwarded-For line before the proxy's must not pick its address."""
    proxied = await make_client(
        trusted_proxies=("127.0.0.0/8", "10.0.0.0/8"), max_connections_per_ip=1
    )
    forged_loopback = [("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-For", "203.0.113.9")]
    assert (await proxied.get("/debug", headers=forged_loopback)).status == 403
    first = await proxied.ws_connect(
        "/", headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9")]
    )
    assert (await first.receive_json())["type"] == "connection"
    with pytest.raises(aiohttp.WSServerHandshakeError) as capped:  # same client, other forgery
        await proxied.ws_connect(
            "/", headers=[("X-Forwarded-For", "198.51.100.2, 203.0.113.9, 10.0.0.2")]
        )
    assert capped.value.status == 429
    await first.close()


async def test_binary_frames_count_against_the_rate_limit(make_client: Callable[..., Any]) -> None:
    client = await make_client(rate_limit_per_second=1, rate_limit_burst=5)
    ws = await client.ws_connect("/")
    await ws.receive_json()
    for _ in range(20):
        await ws.send_bytes(b"\x00\x01")
    codes = []
    for _ in range(20):
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        codes.append(msg.json()["code"])
    assert codes[:5] == ["invalid_json"] * 5
    assert "rate_limited" in codes[5:]
    await ws.close()


async def test_oversized_frame_closes_with_1009(connect: Connect) -> None:
    sock = await connect()
    await sock.ws.send_str('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
    msg = await sock.ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and sock.ws.close_code == 1009


async def test_connections_per_address_are_capped(make_client: Callable[..., Any]) -> None:
    client = await make_client(max_connections_per_ip=3)
    sockets = [await client.ws_connect("/") for _ in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/")
    assert refused.value.status == 429
    await sockets[0].close()
    await asyncio.sleep(0.1)
    again = await client.ws_connect("/")  # a slot freed up
    assert (await again.receive_json())["type"] == "connection"


async def ping_round_trips(sock: Any, count: int) -> list[float]:
    """Round trips of a well-behaved client: ten pings a second, half its allowed rate."""
    times = []
    for sequence in range(count):
        await asyncio.sleep(0.1)
        began = time.perf_counter()
        await sock.send("ping", sequence=sequence)
        await sock.expect("pong", sequence=sequence)
        times.append(time.perf_counter() - began)
    return times


async def test_a_flood_is_limited_while_others_keep_their_latency(connect: Connect) -> None:
    calm, flooder = await connect(), await connect()
    baseline = statistics.median(await ping_round_trips(calm, 15))
    replies: list[dict[str, Any]] = []

    async def flood() -> None:
        for i in range(200):  # as fast as the socket takes them, while calm keeps pinging
            await flooder.send("ping", sequence=i)
            await asyncio.sleep(0)

    async def collect() -> None:
        while len(replies) < 200:
            try:
                replies.append(await flooder.recv(timeout=3))
            except (TimeoutError, AssertionError):
                return

    flooding = asyncio.gather(flood(), collect())
    during = statistics.median(await ping_round_trips(calm, 15))
    await flooding
    limited = [r for r in replies if r["type"] == "error"]
    assert limited and {r["code"] for r in limited} == {"rate_limited"}
    assert sum(r["type"] == "pong" for r in replies) <= 40 + 20 * 3  # burst + rate x seconds
    ratio = during / baseline
    print(
        f"calm ping {baseline * 1e3:.2f} ms alone, {during * 1e3:.2f} ms in a flood: {ratio:.1f}x"
    )
    assert ratio < 10


async def test_sustained_flooding_closes_with_1008(connect: Connect) -> None:
    flooder = await connect()
    for i in range(400):
        await flooder.send("ping", sequence=i)
    while True:
        msg = await flooder.ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
    assert flooder.ws.close_code == 1008


async def test_a_peer_that_stops_reading_is_cut_off_and_its_holds_enter_the_grace(
    make_client: Callable[..., Any], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A real peer that stops reading: the daemon closes it as a slow consumer (1013) and
    aborts it at once, it leaves /debug, and its hold survives the grace period, then goes."""
    client = await make_client(
        rate_limit_per_second=10000, rate_limit_burst=100000, lock_release_grace_seconds=2
    )
    port = client.server.port
    assert port is not None
    peer = RawPeer(port)
    await peer.open()
    await peer.send("lock_slot", date=DAY, time="10:00", employeeId=1)
    await asyncio.sleep(0.3)
    assert [lock.client_id for lock in await store.live_locks()]
    for i in range(400000):  # every pong piles up: the peer never reads
        await peer.send("ping", sequence=i)
        if i % 1000 == 0 and "slow consumer" in caplog.text:
            break
    assert "closing a slow consumer" in caplog.text
    for _ in range(50):
        if (await (await client.get("/debug")).json())["connectedClients"] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await (await client.get("/debug")).json())["connectedClients"] == 0
    assert len(await store.live_locks()) == 1  # kept for the grace period
    await asyncio.sleep(2.5)
    assert await store.live_locks() == []  # released after it
    peer.close()
