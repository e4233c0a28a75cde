"""Nobody gets in where they don't belong: tokens, roles, origins, limits, hostile input."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from appointease_realtime import transport
from appointease_realtime.auth import AUDIENCE
from appointease_realtime.store import Store
from tests.conftest import TOKEN_SECRET, token_for
from tests.processes import Daemon
from tests.raw_peer import RawPeer, client_frame

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


async def test_clock_skew_of_30_seconds_is_tolerated_and_no_more(
    client: TestClient[Any, Any],
) -> None:
    """WordPress's clock may run ahead of (or behind) the daemon's by up to 30 s."""
    now = int(time.time())
    ahead_20 = jwt.encode(claims(iat=now + 20, exp=now + 620), TOKEN_SECRET)
    expired_20 = jwt.encode(claims(iat=now - 620, exp=now - 20), TOKEN_SECRET)
    for token in (ahead_20, expired_20):
        ws = await client.ws_connect(f"/ws/{token}")
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "connection" and hello["role"] == "customer", hello
        assert hello["isAnonymous"] is False
        await ws.close()
    ahead_60 = jwt.encode(claims(iat=now + 60, exp=now + 660), TOKEN_SECRET)
    code, reason = await closed_with(client, f"/ws/{ahead_60}")
    assert code == 4001 and "not yet valid" in reason.lower(), (code, reason)
    expired_60 = jwt.encode(claims(iat=now - 660, exp=now - 60), TOKEN_SECRET)
    assert (await closed_with(client, f"/ws/{expired_60}"))[0] == 4002


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


async def refused_in_order(port: int, frame: bytes, split: int, code: int) -> list[str]:
    """Send ``frame[:split]``, read the close frame with ``code``, then, as a browser still
    writing would, send the rest and a close frame, and read to the end. Returns the socket
    errors met (a reset shows as one); none means an orderly end (FIN)."""
    peer = RawPeer(port, receive_buffer=1 << 20)
    await peer.open()
    loop = asyncio.get_running_loop()
    close_frame = b"\x88\x02" + code.to_bytes(2, "big")
    await loop.sock_sendall(peer.sock, frame[:split])  # refused from here on
    received = b""
    async with asyncio.timeout(5):
        while close_frame not in received:
            chunk = await loop.sock_recv(peer.sock, 65536)
            assert chunk, f"closed without a {code} close frame: {received[-20:]!r}"
            received += chunk
    await asyncio.sleep(0.5)  # the daemon has answered and moved on
    problems = []
    try:
        await loop.sock_sendall(peer.sock, frame[split:])  # the browser finishes writing
        await loop.sock_sendall(peer.sock, client_frame(close_frame[2:], opcode=8))  # and closes
        async with asyncio.timeout(5):
            while chunk := await loop.sock_recv(peer.sock, 65536):
                received += chunk
    except OSError as exc:
        problems.append(repr(exc))
    peer.close()
    return problems


async def test_an_oversized_frame_is_closed_with_1009_and_no_reset(
    client: TestClient[Any, Any],
) -> None:
    """A peer that is still sending its oversized frame when the daemon refuses it must be
    able to finish writing, read the 1009 and close in order, as a browser does (aiohttp
    closes with the rest of the frame unread; without the daemon's lingering close the kernel
    answers the peer's next bytes with a reset, and browsers report 1006)."""
    assert client.server.port is not None
    frame = client_frame(json.dumps({"type": "ping", "pad": "x" * 1_000_000}).encode())
    problems = await refused_in_order(client.server.port, frame, 80_000, 1009)
    assert problems == [], problems  # an orderly end (FIN), not a reset


async def test_a_frame_not_utf8_is_closed_with_1007_and_no_reset(
    client: TestClient[Any, Any],
) -> None:
    """The same for 1007: frames the peer sent after its broken one are unread when the
    daemon closes, and must not turn the close into a reset."""
    assert client.server.port is not None
    pings = b"".join(client_frame(b'{"type": "ping"}') for _ in range(50_000))
    frame = client_frame(b'{"type": "\xff\xfe"}') + pings  # not UTF-8, then ~1 MB more
    problems = await refused_in_order(client.server.port, frame, 80_000, 1007)
    assert problems == [], problems


async def test_the_lingering_close_is_bounded_in_time(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that keeps sending after its 1009 and never closes keeps the socket only for
    LINGER_SECONDS: then the daemon lets go (its next bytes meet a reset)."""
    monkeypatch.setattr(transport, "LINGER_SECONDS", 0.5)
    assert client.server.port is not None
    peer = RawPeer(client.server.port, receive_buffer=1 << 20)
    await peer.open()
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(peer.sock, client_frame(b"x" * 70_000))
    received = b""
    async with asyncio.timeout(5):
        while b"\x88\x02\x03\xf1" not in received:
            received += await loop.sock_recv(peer.sock, 65536)
    began = loop.time()
    with pytest.raises((ConnectionResetError, BrokenPipeError)):  # the daemon let go: a reset
        async with asyncio.timeout(5):
            while True:
                await loop.sock_sendall(peer.sock, b"y" * 1000)
                await asyncio.sleep(0.02)
    took = loop.time() - began
    peer.close()
    assert 0.3 < took < 1.5, took


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


# A flood from another process, over its own sockets, as fast as it can, for ``seconds``:
# reconnecting whenever the daemon cuts a socket off (1008), as an attacker would. It reports,
# per socket, what it sent and got, and how many frames it sent in each 100 ms of the run.
FLOODER = r"""
import asyncio, json, sys, time
import aiohttp

URL, SECONDS, SOCKETS = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
PING = '{"type":"ping"}'
lives, buckets = [], {}


async def flood(session, until):
    while time.time() < until:
        try:
            ws = await session.ws_connect(URL)
        except aiohttp.ClientError:
            await asyncio.sleep(0.02)
            continue
        life = {"opened": time.time(), "sent": 0, "pongs": 0, "limited": 0, "other": []}

        async def read():
            async for msg in ws:
                frame = json.loads(msg.data)
                if frame["type"] == "pong":
                    life["pongs"] += 1
                elif frame.get("code") == "rate_limited":
                    life["limited"] += 1
                elif frame["type"] != "connection":
                    life["other"].append(frame)

        reader = asyncio.create_task(read())
        try:
            while time.time() < until and not ws.closed and not reader.done():
                await ws.send_str(PING)
                life["sent"] += 1
                bucket = int(time.time() * 10)
                buckets[bucket] = buckets.get(bucket, 0) + 1
                if life["sent"] % 20 == 0:
                    await asyncio.sleep(0)  # let the reader see the replies (and the close)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        if not ws.closed:
            await ws.close()
        await asyncio.wait_for(reader, 10)
        life.update(closed=time.time(), code=ws.close_code)
        lives.append(life)


async def main():
    until = time.time() + SECONDS
    async with aiohttp.ClientSession() as session:
        print("flooding", flush=True)
        await asyncio.gather(*(flood(session, until) for _ in range(SOCKETS)))
    print(json.dumps({"lives": lives, "buckets": buckets}), flush=True)


asyncio.run(main())
"""


async def ping_round_trips(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[float]:
    """Round trips of a well-behaved client: ten pings a second, half its allowed rate.
    Every ping must get its own pong: never rate_limited, never lost."""
    times = []
    for sequence in range(count):
        await asyncio.sleep(0.1)
        began = time.perf_counter()
        await ws.send_json({"type": "ping", "sequence": sequence})
        frame = await ws.receive_json(timeout=10)
        times.append(time.perf_counter() - began)
        assert (frame["type"], frame.get("sequence")) == ("pong", sequence), frame
    return times


async def test_a_flood_is_limited_while_others_keep_their_latency(tmp_path: Path) -> None:
    """Another process floods the daemon over three sockets, as fast as it can, for the whole
    time a calm client measures its pings: the flood is answered rate_limited past the
    bucket and cut off (1008) when it keeps on, and the calm client's latency holds."""
    rate, burst = 20, 40
    daemon = Daemon(
        tmp_path, RATE_LIMIT_PER_SECOND=str(rate), RATE_LIMIT_BURST=str(burst), LOG_LEVEL="ERROR"
    )
    await daemon.start()
    flooder: asyncio.subprocess.Process | None = None
    try:
        async with aiohttp.ClientSession() as session:
            calm = await session.ws_connect(daemon.ws_url)
            assert (await calm.receive_json(timeout=5))["type"] == "connection"
            baseline = statistics.median(await ping_round_trips(calm, 20))
            flooder = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOODER, daemon.ws_url, "6", "3",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert flooder.stdout is not None
            assert await asyncio.wait_for(flooder.stdout.readline(), 30) == b"flooding\n"
            await asyncio.sleep(0.5)  # the flood is under way
            window = (time.time(), 0.0)
            during_all = await ping_round_trips(calm, 30)
            window = (window[0], time.time())
            during = statistics.median(during_all)
            report = json.loads(await asyncio.wait_for(flooder.stdout.read(), 60))
            assert await flooder.wait() == 0
            assert not calm.closed
            await calm.close()
    finally:
        if flooder is not None and flooder.returncode is None:
            flooder.kill()
            await flooder.wait()
        await daemon.stop()
    lives = report["lives"]
    # limited: each socket got at most its burst plus the rate over its life, the rest refused
    for life in lives:
        assert life["other"] == [], life["other"][:3]
        allowed = burst + rate * (life["closed"] - life["opened"]) + 1
        assert life["pongs"] <= allowed, life
    assert sum(life["limited"] for life in lives) > 0
    assert any(life["code"] == 1008 for life in lives)  # kept flooding: cut off
    # the flood was in flight during the whole window, never 300 ms without a frame,
    # far past the limit
    buckets = {int(k): n for k, n in report["buckets"].items()}
    inside = range(int(window[0] * 10), int(window[1] * 10))
    gaps = [b for b in inside if not any(buckets.get(b + i, 0) for i in range(3))]
    assert gaps == [], "the flood paused (300 ms without a frame) during the window"
    flood_rate = sum(buckets.get(b, 0) for b in inside) / (window[1] - window[0])
    assert flood_rate > 20 * rate, f"only {flood_rate:.0f} frames/s: no flood"
    answered = sum(life["pongs"] + life["limited"] for life in lives)
    assert answered > 20 * rate * (window[1] - window[0])  # the daemon did read the flood
    ratio = during / baseline
    print(
        f"flood {flood_rate:.0f} frames/s sent, {answered} answered, {len(lives)} socket lives;"
        f" calm ping {baseline * 1e3:.2f} ms alone, {during * 1e3:.2f} ms in the flood"
        f" (max {max(during_all) * 1e3:.1f} ms): {ratio:.1f}x"
    )
    assert during < max(10 * baseline, 0.05), f"{ratio:.1f}x slower in the flood"


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
    """A real peer that stops reading: the daemon closes it as a slow consumer (1013), and
    when the peer does not complete the close it aborts the connection within the time box
    (CLOSE_TIMEOUT_SECONDS); the client leaves /debug at once, and its hold survives the
    grace period, then goes."""
    from appointease_realtime.transport import CLOSE_TIMEOUT_SECONDS

    client = await make_client(
        rate_limit_per_second=10000, rate_limit_burst=100000, lock_release_grace_seconds=5
    )
    port = client.server.port
    assert port is not None
    peer = RawPeer(port)
    await peer.open()
    await peer.send("lock_slot", date=DAY, time="10:00", employeeId=1)
    await asyncio.sleep(0.3)
    assert [lock.client_id for lock in await store.live_locks()]
    reset = False
    for i in range(400000):  # every pong piles up: the peer never reads
        try:
            await peer.send("ping", sequence=i)
        except OSError:  # the daemon aborted the connection: our writes meet a reset
            reset = True
            break
        if i % 1000 == 0 and "slow consumer" in caplog.text:
            break
    assert "closing a slow consumer" in caplog.text
    cut_at = next(r.created for r in caplog.records if "slow consumer" in r.getMessage())
    for _ in range(50):
        if (await (await client.get("/debug")).json())["connectedClients"] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await (await client.get("/debug")).json())["connectedClients"] == 0
    assert len(await store.live_locks()) == 1  # kept for the grace period
    # the transport is aborted within the time box: the peer's writes then fail
    while not reset and time.time() - cut_at < CLOSE_TIMEOUT_SECONDS + 3:
        try:
            await asyncio.wait_for(peer.send("ping"), 1)
        except OSError:
            reset = True
        except TimeoutError:  # our send buffer is full: the daemon stopped reading
            await asyncio.sleep(0.05)
    assert reset, f"still connected {time.time() - cut_at:.1f}s after the slow-consumer close"
    assert time.time() - cut_at < CLOSE_TIMEOUT_SECONDS + 3
    assert len(await store.live_locks()) == 1  # still within the grace period
    for _ in range(100):
        if not await store.live_locks():
            break
        await asyncio.sleep(0.1)
    assert await store.live_locks() == []  # released after it
    peer.close()
