"""realtime-client.js in Chromium against a real daemon with a short hold: the countdown, the
daemon's lock_expiring and lock_expired, an extension, and a click-through of selections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.processes import Daemon

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

SCRIPT = """
async (url) => {
  const rt = new AppointEaseRealtime({ url: url, heartbeatInterval: 0 });
  const seen = [];
  const ticks = [];
  rt.on('hold', (e) => seen.push(e.why + ' ' + e.hold.time + ' ' + e.hold.expiresIn));
  rt.on('countdown', (holds) => ticks.push(holds.length ? holds[0].expiresIn : null));
  await rt.connect();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (why, ms) => {
    const end = Date.now() + ms;
    while (!seen.some((s) => s.startsWith(why)) && Date.now() < end) await sleep(50);
  };
  const locked = await rt.lock('2030-05-06', '10:00', 3);
  const afterLock = rt.holdsLeft();
  await until('expiring', 6000);
  const again = await rt.lock('2030-05-06', '10:00', 3);      // extend it
  const extended = rt.holdsLeft()[0].expiresIn;
  await until('expired', 12000);
  const left = rt.holdsLeft();
  const watcher = new AppointEaseRealtime({ url: url, heartbeatInterval: 0 });
  const shown = [];
  watcher.on('active_selections', (f) => shown.push(f.slots.join(',')));
  await watcher.connect();
  await watcher.watchSlot('2030-05-07', 4);
  for (const t of ['09:00', '09:30', '10:00']) await rt.select('2030-05-07', t, 4);
  await sleep(500);
  rt.close(); watcher.close();
  return { locked: locked.type, lockedIn: locked.expiresIn, afterLock, again: again.type,
           extended, seen, ticks, left, shown, kept: Array.from(rt._selections.keys()) };
}
"""


async def test_hold_countdown_and_click_through(
    browser: Any, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    daemon = Daemon(
        tmp_path, **{**daemon_env, "LOCK_TTL_SECONDS": "4", "HOLD_WARNING_SECONDS": "2"}
    )
    await daemon.start()
    try:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{daemon.url}/test-websocket.html")  # a page of the daemon's origin
        await page.add_script_tag(url=f"{daemon.url}/assets/realtime-client.js")
        out = await page.evaluate(SCRIPT, daemon.ws_url + "/")
    finally:
        await daemon.stop()
    assert out["locked"] == "slot_locked" and out["again"] == "slot_locked", out
    assert out["afterLock"][0]["time"] == "10:00" and out["afterLock"][0]["expiresIn"] <= 4
    assert out["seen"][0].startswith("held 10:00")
    assert any(s.startswith("expiring 10:00") for s in out["seen"]), out["seen"]
    assert out["extended"] >= 3  # locking again extended the hold
    assert out["seen"][-1].startswith("expired 10:00"), out["seen"]
    assert out["left"] == []
    counted = [t for t in out["ticks"] if t is not None]
    assert len(counted) >= 3 and max(counted) <= 4  # ticked every second, within the hold
    # three clicks in one day: the watcher sees one "looking at" that follows the clicks
    assert out["shown"][-1] == "10:00" and "09:00,09:30" not in out["shown"], out["shown"]
    assert out["kept"] == ["2030-05-07|10:00|4"]
    assert errors == []
