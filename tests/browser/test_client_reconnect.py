"""realtime-client.js when the connection goes wrong, in Chromium: a heartbeat nobody answers,
fatal close codes (1007, 1009: no reconnect, a ``fatal`` event) and a slow-consumer close (1013:
reconnect and resume). Scripted sockets for what a healthy daemon never does on cue, and a real
daemon for the oversized frame (1009)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from appointease_realtime.qa import STATIC
from tests.processes import Daemon

# A scripted WebSocket: the test opens it, makes it say hello, answer or ignore pings, and
# close with any code. Every instance is kept in FakeWS.all.
FAKE = r"""
(() => {
  class FakeWS {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.closedBy = null;
      this.answerPings = true; FakeWS.all.push(this); }
    send(text) {
      const frame = JSON.parse(text);
      this.sent.push(frame);
      if (frame.type === 'ping' && this.answerPings) {
        const pong = { type: 'pong', sequence: frame.sequence, requestId: frame.requestId };
        setTimeout(() => this.receive(pong));
      }
    }
    close(code) { if (this.readyState === 3) return; this.readyState = 3; this.closedBy = 'client';
      setTimeout(() => this.onclose && this.onclose({ code: code || 1000, reason: '' })); }
    receive(frame) { if (this.onmessage) this.onmessage({ data: JSON.stringify(frame) }); }
    hello(extra) { this.readyState = 1; this.receive(Object.assign({ type: 'connection',
      mode: 'websocket', clientId: 'anonymous_1_abcdefghi',
      resumeToken: 'anonymous_1_abcdefghi.mac', resumed: false, isAnonymous: true },
      extra || {})); }
    serverClose(code) { this.readyState = 3; this.closedBy = 'server';
      this.onclose({ code: code, reason: 'by the test' }); }
  }
  FakeWS.all = [];
  window.FakeWS = FakeWS;
  window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // A client on the fake socket, connected, with every client event recorded.
  window.connected = async (options) => {
    const start = FakeWS.all.length;
    const rt = new window.AppointEaseRealtime(Object.assign({ url: 'ws://h/ws/T', WebSocket: FakeWS,
      backoffInitial: 10, backoffMax: 40, polling: false, heartbeatInterval: 0 }, options || {}));
    rt.events = [];
    ['open', 'close', 'reconnecting', 'fatal', 'mode'].forEach((type) =>
      rt.on(type, (payload) => rt.events.push([type, type === 'mode' ? payload : payload.code])));
    const ready = rt.connect();
    FakeWS.all[start].hello();
    await ready;
    rt.sockets = () => FakeWS.all.slice(start);
    return rt;
  };
})();
"""


async def client_page(browser: Any) -> tuple[Any, list[str]]:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.set_content("<!doctype html><title>client</title>")
    await page.add_script_tag(content=(STATIC / "realtime-client.js").read_text())
    await page.add_script_tag(content=FAKE)
    return page, errors


async def test_an_unanswered_heartbeat_drops_the_socket_and_reconnects(browser: Any) -> None:
    page, errors = await client_page(browser)
    out = await page.evaluate(
        """async () => {
      // answered: pings go out every 50 ms and the socket stays
      const calm = await window.connected({ heartbeatInterval: 50, heartbeatTimeout: 100 });
      await window.sleep(400);
      const calmResult = { sockets: calm.sockets().length, pings: calm.sockets()[0].sent.length,
        latency: calm.latency !== null };
      calm.close();
      // unanswered: the socket is dropped after heartbeatTimeout and a new one resumes
      const rt = await window.connected({ heartbeatInterval: 50, heartbeatTimeout: 100 });
      const first = rt.sockets()[0];
      first.answerPings = false;
      const began = performance.now();
      const reconnecting = rt.once('reconnecting', null, 2000);
      const dropped = await reconnecting;
      const after = performance.now() - began;
      await window.sleep(100);
      const second = rt.sockets()[1];
      const result = { calm: calmResult, after: after, code: dropped.code,
        firstClosedBy: first.closedBy, secondUrl: second && second.url, modeBefore: rt.mode };
      second.hello({ resumed: true });
      await window.sleep(10);
      result.mode = rt.mode;
      result.reconnects = rt.stats.reconnects;
      result.fatal = rt.events.filter((e) => e[0] === 'fatal');
      rt.close();
      return result;
    }"""
    )
    assert out["calm"]["sockets"] == 1 and out["calm"]["pings"] >= 4 and out["calm"]["latency"]
    assert out["firstClosedBy"] == "client"  # the client itself gave up on the silent socket
    assert 100 <= out["after"] < 1000, out  # heartbeatTimeout after an unanswered ping
    assert out["secondUrl"] == "ws://h/ws/T?resume=anonymous_1_abcdefghi.mac"
    assert out["mode"] == "websocket" and out["reconnects"] == 1 and out["fatal"] == []
    assert errors == []


@pytest.mark.parametrize("code", [1007, 1009])
async def test_fatal_closes_do_not_reconnect(browser: Any, code: int) -> None:
    page, errors = await client_page(browser)
    out = await page.evaluate(
        """async (code) => {
      const rt = await window.connected();
      const fatal = [];
      rt.on('fatal', (f) => fatal.push(f));
      const pending = rt.request({ type: 'ping' }).then(() => 'resolved', (e) => e.code);
      rt.sockets()[0].serverClose(code);
      await window.sleep(300);  // far past every backoff delay (at most 40 ms here)
      return { fatal: fatal, sockets: rt.sockets().length, mode: rt.mode, pending: await pending,
        events: rt.events.map((e) => e.join(':')), connected: rt.connected };
    }""",
        code,
    )
    assert out["sockets"] == 1, out  # no new socket: reconnecting cannot help
    assert [f["code"] for f in out["fatal"]] == [code]
    assert out["fatal"][0]["why"]  # says why ('a frame over 64 KB', 'not UTF-8')
    assert out["mode"] == "disconnected" and out["connected"] is False
    assert out["pending"] == "disconnected"
    assert f"reconnecting:{code}" not in out["events"]
    assert errors == []


async def test_a_slow_consumer_close_reconnects_and_resumes(browser: Any) -> None:
    page, errors = await client_page(browser)
    out = await page.evaluate(
        """async () => {
      const rt = await window.connected();
      rt.watchSlot('2030-05-06', 3).catch(() => undefined);
      rt.sockets()[0].serverClose(1013);
      await window.sleep(200);
      const second = rt.sockets()[1];
      const url = second && second.url;
      second.hello({ resumed: true });
      await window.sleep(10);
      const out = { url: url, events: rt.events.map((e) => e.join(':')), mode: rt.mode,
        resumed: rt.resumed, resent: second.sent.map((f) => f.type) };
      rt.close();
      return out;
    }"""
    )
    assert out["url"] == "ws://h/ws/T?resume=anonymous_1_abcdefghi.mac"
    assert "reconnecting:1013" in out["events"] and not any(
        e.startswith("fatal") for e in out["events"]
    )
    assert out["mode"] == "websocket" and out["resumed"] is True
    assert out["resent"] == ["watch_slot"]  # and it resyncs: the watched day again
    assert errors == []


# The close codes Chromium's own WebSocket reports for frames of these sizes, just and far over
# the daemon's 64 KB limit, each sent on a fresh socket (a reset instead of the close frame
# shows as 1006).
OVERSIZED = [70000] * 6 + [1000000] * 2
OVERSIZED_CODES = """async ([url, sizes]) => {
  const codes = [];
  for (const size of sizes) {
    const ws = new WebSocket(url);
    await new Promise((resolve) => { ws.onmessage = resolve; });
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
    ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(size) }));
    codes.push(await closed);
  }
  return codes;
}"""


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_real_daemon_closes_an_oversized_frame_with_1009_and_the_client_stays_down(
    browser: Any, daemon: Daemon
) -> None:
    """Chromium, still writing its frame when the daemon refuses it, reads the 1009 (the
    daemon's lingering close: no reset) and realtime-client.js emits `fatal`, not a retry."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{daemon.url}/healthz")  # a page of the daemon's origin (about:blank's
    await page.set_content("<!doctype html><title>client</title>")  # "null" is refused)
    await page.add_script_tag(url=f"{daemon.url}/assets/realtime-client.js")
    out = await page.evaluate(
        """async (url) => {
      // what the browser's own socket reports, for frames just and far over 64 KB
      const codes = await ("""
        + OVERSIZED_CODES
        + """)([url, """
        + json.dumps(OVERSIZED)
        + """]);
      // and what the client does with it
      const rt = new window.AppointEaseRealtime({ url: url, backoffInitial: 10, backoffMax: 40,
        heartbeatInterval: 0, polling: false });
      const closes = [];
      rt.on('close', (c) => closes.push(c.code));
      const fatal = rt.once('fatal', null, 5000).catch(() => ({ code: 'no fatal' }));
      let attempts = 0;
      rt.on('reconnecting', () => { attempts += 1; });
      await rt.connect();
      rt.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(70000) }));
      const f = await fatal;
      await new Promise((r) => setTimeout(r, 300));
      rt.close();
      return { codes: codes, code: f.code, closes: closes, attempts: attempts, mode: rt.mode,
        tries: rt.stats.attempts };
    }""",
        daemon.ws_url + "/",
    )
    assert out["codes"] == [1009] * 8, out  # not 1006: the daemon's close is not a reset
    assert out == {
        "codes": [1009] * 8,
        "code": 1009,
        "closes": [1009],
        "attempts": 0,
        "mode": "disconnected",
        "tries": 1,
    }, out
    assert errors == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_over_tls_from_the_daemon_an_oversized_frame_still_closes_with_1009(
    browser: Any, daemon_env: dict[str, str], tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """The daemon serving wss itself (TLS_CERT_FILE): asyncio ends the TLS session, then the
    daemon lingers on the socket as over plain TCP, so Chromium reads 1009, not a reset."""
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    daemon = Daemon(
        tmp_path, tls=trust, TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key), **daemon_env
    )
    await daemon.start()
    try:
        context = await browser.new_context(ignore_https_errors=True)  # the test's own cert
        page = await context.new_page()
        await page.goto(f"{daemon.url}/healthz")  # a page of the daemon's origin
        sizes = OVERSIZED * 3  # a reset is likely, not certain, on each socket
        codes = await page.evaluate(OVERSIZED_CODES, [daemon.ws_url + "/", sizes])
        assert codes == [1009] * len(sizes), codes
    finally:
        await daemon.stop()
