"""Logs: one line per event, JSON on request, never a token or an e-mail; TLS served directly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from appointease_realtime.logs import redact
from tests.conftest import TOKEN_SECRET, token_for
from tests.wordpress.wp_harness import free_port


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


async def serve(tmp_path: Path, **env: str) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appointease_realtime",
        "--env-file",
        os.devnull,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={
            **os.environ,
            "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
            "DB_HOST": "",
            "TOKEN_SECRET": TOKEN_SECRET,
            **env,
        },
        stderr=subprocess.PIPE,
    )
    return proc, port


async def wait_ready(url: str, ssl_context: ssl.SSLContext | None = None) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"{url}/healthz", ssl=ssl_context) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError("daemon did not start")


async def test_json_logs_hold_no_token_and_no_email(tmp_path: Path) -> None:
    proc, port = await serve(tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO")
    token = token_for("secret.person@example.com")
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{port}/ws/{token}?email=secret.person%40example.com"
            async with session.ws_connect(url) as ws:
                assert (await ws.receive_json())["isAnonymous"] is False
                await ws.send_json(
                    {"type": "lock_slot", "date": "2030-05-06", "time": "10:00", "employeeId": 1}
                )
                assert (await ws.receive_json())["type"] == "slot_locked"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    text = stderr.decode()
    assert "/ws/[redacted]" in text
    assert token not in text and token.split(".")[1] not in text
    assert "secret.person" not in text


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(f"openssl could not make a test certificate: {made.stderr.decode()}")
    return cert, key


async def test_tls_serves_wss_directly(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    proc, port = await serve(tmp_path, TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        await wait_ready(f"https://127.0.0.1:{port}", trust)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"wss://127.0.0.1:{port}/", ssl=trust) as ws:
                assert (await ws.receive_json())["type"] == "connection"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
