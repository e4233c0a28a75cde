"""One daemon process: its store, broker, hub and services, and the events it receives."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime

from .auth import Identity, new_client_id, resumed_client_id
from .broker import Broker, Event
from .config import Settings
from .connection import Connection
from .hub import Hub
from .limits import AddressCounter
from .locks import Locks
from .metrics import Metrics
from .protocol import Frame, encode
from .rooms import Rooms
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class Node:
    """Everything one process serves with; commands, views and loops all work through it."""

    def __init__(self, settings: Settings, store: Store, broker: Broker) -> None:
        self.settings = settings
        self.store = store
        self.broker = broker
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.started = time.time()
        self.metrics = Metrics()
        self.hub = Hub()
        self.rooms = Rooms(store, broker, self.hub, self.metrics)
        self.locks = Locks(settings, store, self.rooms, self.metrics)
        store.observe = lambda op, seconds: self.metrics.query_seconds.labels(op).observe(seconds)
        self.resume_secret = settings.resume_secret.encode() or secrets.token_bytes(32)
        self.addresses = AddressCounter(settings.max_connections_per_ip)

    async def start(self) -> None:
        """Start receiving cluster events."""
        if hasattr(self.broker, "on_reconnect"):
            self.broker.on_reconnect = self.resync
        await self.broker.start(self.on_event)

    async def resync(self) -> None:
        """After the broker was away: re-read every room watched here and announce it anew."""
        for room in list(self.hub.rooms):
            self.rooms.touch(room)
            await self.rooms.announce_selections(room)

    def on_event(self, event: Event) -> None:
        """Route one cluster event to local connections."""
        try:
            if "room" in event:
                self.rooms.deliver(event)
            elif event.get("kind") == "resumed":
                self.locks.reclaim(str(event["clientId"]))
            elif event.get("kind") == "customer":
                email = str(event["email"])
                if email in self.hub.customers:
                    for frame in event["frames"]:
                        sent = self.hub.send_customer(email, encode(frame))
                        self.metrics.sent(frame["type"], sent)
                change = event["frames"][-1]  # appointment_update / appointment_cancel
                if self.hub.staff:
                    sent = self.hub.send_staff(change["appointment"], encode(change))
                    self.metrics.sent(change["type"], sent)
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("dropped a malformed cluster event: %r", event)

    def client_id_for(self, identity: Identity, resume: str | None) -> tuple[str, bool]:
        """A client id for a new connection: the resumed one when the token proves it."""
        if resume:
            client_id = resumed_client_id(self.resume_secret, resume)
            if client_id and client_id not in self.hub.connections:
                return client_id, True
        return new_client_id(identity), False

    async def connect(self, conn: Connection, resumed: bool) -> None:
        """Register a connection; a resumed client keeps the holds it had, on any node."""
        self.hub.add(conn)
        self.metrics.connections.inc()
        if self.locks.reclaim(conn.client_id):
            log.info("client %s resumed within the grace period", conn.client_id)
        if resumed:  # the node it left may be another one: its release timer must stop too
            await self.broker.publish({"kind": "resumed", "clientId": conn.client_id})

    async def disconnect(self, conn: Connection) -> None:
        """Forget a connection: selections go at once, holds stay for the grace period."""
        self.hub.remove(conn)
        self.metrics.connections.dec()
        self.rooms.forget(conn.room)
        self.locks.release_later(conn.client_id)
        for room in await self.broker.drop_client(conn.client_id):
            await self.rooms.announce_selections(room)

    async def close_all(self, code: int, message: str) -> None:
        """Close every socket of this node (1001 on shutdown: clients reconnect elsewhere)."""
        for conn in list(self.hub.connections.values()):
            await conn.close(code, message)

    async def debug_info(self, unmasked: bool = False) -> Frame:
        """The ``/debug`` document: clients, selections, live locks and this node."""
        now = time.time()
        selections = await self.broker.all_selections()
        try:
            locks: list[Frame] | None = [
                {**lock.slot.fields(), "clientId": lock.client_id, "expiresIn": lock.expires_in}
                for lock in await self.store.live_locks()
            ]
        except StoreUnavailable:
            locks = None
        return {
            "connectedClients": len(self.hub.connections),
            "activeSelections": len(selections),
            "clients": [conn.debug_info(unmasked) for conn in self.hub.connections.values()],
            "selections": [
                {**s.slot.fields(), "clientId": s.client_id, "age": f"{int(now - s.since)}s"}
                for s in selections
            ],
            "locks": locks,
            "node": {
                "id": self.id,
                "store": self.store.kind,
                "uptime": int(now - self.started),
                "rooms": len(self.hub.rooms),
            },
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
