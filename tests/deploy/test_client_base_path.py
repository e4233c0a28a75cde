"""realtime-client.js keeps the base path of its socket URL for every daemon URL it derives.

Behind nginx the bridge hands out ``wss://host/realtime/ws/<token>``: the polling fallback must
then be ``https://host/realtime/api/availability``, not ``https://host/api/availability``
(which nginx does not proxy). A bare daemon (``ws://host:8080``) keeps its root. Runs the
client in Chromium against a fake WebSocket and fetch, like tests/browser/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.deploy.conftest import CHROMIUM, CHROMIUM_ARGS

CLIENT = (
    Path(__file__).resolve().parent.parent.parent
    / "wp-bridge/appointease-realtime-bridge/assets/realtime-client.js"
)

CHROMIUM_FOUND = Path(CHROMIUM).is_file()

SCENARIO = """
async () => {
  const RT = window.AppointEaseRealtime;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  class NeverOpens {
    constructor(url) { this.url = url; this.readyState = 0; }
    send() {}
    close() { this.readyState = 3; }
  }
  const urls = ['wss://host/realtime/ws/TOK?email=a%40b.c', 'wss://host/realtime',
    'wss://host/realtime/', 'wss://host/realtime?email=a%40b.c', 'ws://host:8080',
    'ws://host:8080/', 'ws://host:8080/ws/TOK', 'ws://host:8080/ws', 'wss://host/a/b/ws/T#x'];
  const out = { derived: {}, scripts: {} };
  urls.forEach((u) => { out.derived[u] = RT.httpUrl(u, '/api/availability'); });
  out.scripts.prefix = RT.httpUrl('wss://host/realtime/ws/T', '/assets/realtime-client.js');

  // A client whose socket never opens polls under the prefix ...
  const fetched = [];
  const fakeFetch = (url) => { fetched.push(url); return Promise.resolve({ ok: true, status: 200,
    json: () => Promise.resolve({ type: 'availability_update', unavailable: [] }) }); };
  const options = { WebSocket: NeverOpens, fetch: fakeFetch, connectTimeout: 30,
    backoffInitial: 60000, backoffMax: 60000, pollInterval: [20, 30], heartbeatInterval: 0 };
  const behind = new RT(Object.assign({ url: 'wss://host/realtime/ws/TOK' }, options));
  behind.watchSlot('2030-01-01', 3);
  behind.connect().catch(() => undefined);
  await sleep(120);
  behind.close();
  out.behind = fetched[0];
  out.instance = behind.httpUrl('/test-websocket.html');
  // ... a URL function's resolved URL too ...
  fetched.length = 0;
  const mint = () => Promise.resolve('wss://h2/rt/ws/T1');
  const minted = new RT(Object.assign({ url: mint }, options));
  minted.watchSlot('2030-01-01', 4);
  minted.connect().catch(() => undefined);
  await sleep(120);
  minted.close();
  out.minted = fetched[0];
  // ... and an explicit pollUrl still wins.
  fetched.length = 0;
  const told = new RT(
    Object.assign({ url: 'wss://host/realtime', pollUrl: 'https://x/poll' }, options));
  told.watchSlot('2030-01-01', 5);
  told.connect().catch(() => undefined);
  await sleep(120);
  told.close();
  out.told = fetched[0];
  return out;
}
"""


@pytest.fixture
async def page() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        need("Playwright for Python", str(exc))
    if not CHROMIUM_FOUND:
        need("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab = await browser.new_page()
            await tab.set_content("<!doctype html><title>client</title>")
            await tab.add_script_tag(content=CLIENT.read_text())
            yield tab
        finally:
            await browser.close()


async def test_polling_and_other_urls_keep_the_socket_urls_base_path(page: Any) -> None:
    out = await page.evaluate(SCENARIO)
    assert out["derived"] == {
        "wss://host/realtime/ws/TOK?email=a%40b.c": "https://host/realtime/api/availability",
        "wss://host/realtime": "https://host/realtime/api/availability",
        "wss://host/realtime/": "https://host/realtime/api/availability",
        "wss://host/realtime?email=a%40b.c": "https://host/realtime/api/availability",
        "ws://host:8080": "http://host:8080/api/availability",
        "ws://host:8080/": "http://host:8080/api/availability",
        "ws://host:8080/ws/TOK": "http://host:8080/api/availability",
        "ws://host:8080/ws": "http://host:8080/api/availability",
        "wss://host/a/b/ws/T#x": "https://host/a/b/api/availability",
    }
    assert out["scripts"]["prefix"] == "https://host/realtime/assets/realtime-client.js"
    assert out["behind"] == ("https://host/realtime/api/availability?date=2030-01-01&employeeId=3")
    assert out["instance"] == "https://host/realtime/test-websocket.html"
    assert out["minted"] == "https://h2/rt/api/availability?date=2030-01-01&employeeId=4"
    assert out["told"] == "https://x/poll?date=2030-01-01&employeeId=5"
