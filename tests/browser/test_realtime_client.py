"""realtime-client.js on its own, in Chromium, against a scripted fake WebSocket and fetch.

The QA page tests the client against a real daemon; these cover what a healthy daemon never
does: a socket that never opens, fatal close codes, flooding, a URL that mints fresh tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appointease_realtime.qa import STATIC

SCENARIOS = Path(__file__).with_name("realtime_client_scenarios.js")


async def test_client_behaviour(browser: Any) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.set_content("<!doctype html><title>client</title>")
    await page.add_script_tag(content=(STATIC / "realtime-client.js").read_text())
    out = await page.evaluate(SCENARIOS.read_text())
    assert out["hello"] == "anonymous_1_abcdefghi" and out["mode"] == "websocket"
    assert out["url"] == "ws://h:8080/ws/TOK?a=1&email=x%40y.z"
    assert out["pong"] == 1
    assert out["error"] == ["RealtimeError", "invalid_request", "date"]
    assert out["events"] == ["11:00"]
    assert out["inflight"] == "disconnected"
    assert out["resumeUrl"] == (
        "ws://h:8080/ws/TOK?a=1&email=x%40y.z&resume=anonymous_1_abcdefghi.mac"
    )
    assert out["resubscribed"] == ["watch_slot:3", "watch_appointments"]
    assert out["reconnects"] == 1 and out["closedMode"] == "disconnected"
    assert out["fatal"] == {"events": [4001], "newSockets": 0, "mode": "disconnected"}
    assert out["renewed"] == {"minted": 2, "url": "ws://h/ws/T2?resume=anonymous_1_abcdefghi.mac"}
    assert 4000 <= out["floodDelay"] <= 8000
    assert out["backoff"] == [True] * 7
    polling = out["polling"]
    assert polling["modes"] == ["connecting", "polling", "disconnected"]
    assert polling["closes"] == [4008]
    assert polling["first"] == (
        "https://site.example/api/availability?date=2030-01-01&employeeId=3"
    )
    assert polling["polls"] is True and polling["source"] == "polling"
    assert errors == []
