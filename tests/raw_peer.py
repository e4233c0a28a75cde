"""A WebSocket peer on a raw TCP socket, for the network as it is: it can stop reading while
the server keeps writing, which no client library lets a test do."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (RFC 6455: clients must mask)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawPeer:
    """Handshakes, sends frames, and reads only when told to (its receive buffer is tiny)."""

    def __init__(self, port: int, path: str = "/", receive_buffer: int = 4096) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.setblocking(False)
        self.port = port
        self.path = path

    async def open(self) -> bytes:
        """Connect and upgrade; return the bytes read so far (the 101 answer, maybe more)."""
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            self.sock,
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(self.sock, 4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:100]
        return head

    async def send(self, type_: str, **fields: Any) -> None:
        """Send one JSON frame."""
        frame = client_frame(json.dumps({"type": type_, **fields}).encode())
        await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    def close(self) -> None:
        """Drop the TCP connection."""
        self.sock.close()
