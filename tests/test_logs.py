"""Logs: one line per event, JSON on request, never a token or an e-mail; TLS served directly."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest

from appointease_realtime.logs import redact
from tests.conftest import TOKEN_SECRET, token_for
from tests.processes import Daemon


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ws/eyJhbGci.eyJzdWIi.sig?email=ann%40x.io", "/ws/[redacted]?email=[redacted]"),
        ("/?token=abc&resume=anonymous_1_x.mac", "/?token=[redacted]&resume=[redacted]"),
        (
            "/api/availability?date=2030-01-01&employeeId=2",
            "/api/availability?date=2030-01-01&employeeId=2",
        ),
    ],
)
def test_redaction(target: str, expected: str) -> None:
    assert redact(target) == expected


async def test_json_logs_hold_no_token_and_no_email(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO", TOKEN_SECRET=TOKEN_SECRET)
    await daemon.start()
    token = token_for("secret.person@example.com")
    async with aiohttp.ClientSession() as session:
        url = f"{daemon.ws_url}/ws/{token}?email=secret.person%40example.com"
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json())["isAnonymous"] is False
            await ws.send_json(
                {"type": "lock_slot", "date": "2030-05-06", "time": "10:00", "employeeId": 1}
            )
            assert (await ws.receive_json())["type"] == "slot_locked"
    assert await daemon.stop() == 0
    text = daemon.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert "/ws/[redacted]" in text
    assert token not in text and token.split(".")[1] not in text
    assert "secret.person" not in text


async def test_tls_serves_wss_directly(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    daemon = Daemon(tmp_path, tls=trust, TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key))
    await daemon.start()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{daemon.ws_url}/", ssl=trust) as ws:
            assert (await ws.receive_json())["type"] == "connection"
    assert await daemon.stop() == 0
