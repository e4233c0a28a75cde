"""One daemon process: its store, cluster parts, hub and services, and the events it hears.

The node wires the services together and is the handler of cluster events (rooms to
:class:`Rooms`, appointment changes to :class:`Appointments`, resumes to :class:`Locks`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime

from .appointments import Appointments
from .auth import Identity, new_client_id, owner_tag, resumed_client_id
from .broker import Cluster
from .config import Settings
from .connection import Connection
from .events import ClientResumed, CustomerChange, Resync, RoomEvent
from .hold_clock import HoldClock
from .hub import Hub
from .limits import AddressCounter
from .locks import Locks
from .metrics import Metrics
from .protocol import Frame
from .rooms import Rooms
from .selections import Selections
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)

CLOSE_RESUMED = 4009  # this socket's client resumed on a newer one: do not reconnect


class Node:
    """Everything one process serves with; commands, views and loops all work through it."""

    def __init__(
        self, settings: Settings, store: Store, cluster: Cluster, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.cluster = cluster
        self.broker = cluster.broker
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.started = time.time()
        self.metrics = metrics
        self.hub = Hub()
        self.rooms = Rooms(store, self.broker, self.hub, metrics)
        self.selections = Selections(
            cluster.selections,
            self.broker,
            settings.selection_ttl_seconds,
            settings.max_selections_per_client,
        )
        self.locks = Locks(settings, store, self.rooms, metrics)
        self.appointments = Appointments(store, self.broker, self.rooms, self.locks, metrics)
        self.hold_clock = HoldClock(store, settings.hold_warning_seconds)
        self.resume_secret = settings.resume_secret.encode() or secrets.token_bytes(32)
        self.addresses = AddressCounter(settings.max_connections_per_ip)
        self.superseded: set[Connection] = set()  # sockets a resume replaced: release nothing
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start receiving cluster events."""
        await self.broker.start(self)

    # ---- cluster events (events.EventHandler) ----

    def on_room(self, event: RoomEvent) -> None:
        """A room changed somewhere: tell this node's watchers."""
        self.rooms.deliver(event)

    def on_customer(self, event: CustomerChange) -> None:
        """An appointment changed: tell this node's dashboards that follow it."""
        self.appointments.deliver(event)

    def on_resumed(self, event: ClientResumed) -> None:
        """A client resumed (maybe elsewhere): its holds must not be released here, and a
        socket of it that this node still holds is stale."""
        self.locks.reclaim(event.client_id)
        stale = self.hub.connections.get(event.client_id)
        if event.node != self.id and stale is not None:
            self._supersede(stale)

    async def on_resync(self, event: Resync) -> None:
        """After the broker was away: re-read every room watched here and announce it anew."""
        log.info("resync after %s", event.reason)
        rooms = self.hub.watched()
        self.rooms.resync()
        await self.selections.resync(rooms)

    # ---- connections ----

    def client_id_for(
        self, identity: Identity, address: str, resume: str | None
    ) -> tuple[str, bool]:
        """A client id for a new connection: the resumed one when the token proves it (even
        while its old socket still looks alive here or elsewhere), else a new one tagged with
        the owner its holds count against."""
        if resume:
            client_id = resumed_client_id(self.resume_secret, resume)
            if client_id:
                return client_id, True
        return new_client_id(identity, owner_tag(self.resume_secret, identity, address)), False

    async def connect(self, conn: Connection, resumed: bool) -> None:
        """Register a connection; a resumed client keeps the holds it had, on any node.

        The socket it resumed from (a phone that changed network before the heartbeat saw
        the old socket die) is superseded: closed without releasing anything, here at once,
        and on other nodes when they hear ``ClientResumed``.
        """
        stale = self.hub.connections.get(conn.client_id)
        if stale is not None:
            self._supersede(stale)
        self.hub.add(conn)
        self.metrics.connections.inc()
        if self.locks.reclaim(conn.client_id):
            log.info("client %s resumed within the grace period", conn.client_id)
        if resumed:  # the node it left may be another one: its release timer must stop too
            await self.broker.publish(ClientResumed(conn.client_id, self.id))

    def _supersede(self, stale: Connection) -> None:
        """A newer socket of the same client exists: close this one and keep its state."""
        self.superseded.add(stale)
        self.hub.remove(stale)
        task = asyncio.get_running_loop().create_task(stale.close(CLOSE_RESUMED, "resumed"))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def disconnect(self, conn: Connection) -> None:
        """Forget a connection: selections go at once, holds stay for the grace period
        (unless a newer socket of the same client has taken over: then both stay)."""
        self.rooms.unwatch(conn)
        self.appointments.unfollow(conn)
        self.hold_clock.gone(conn)
        self.hub.remove(conn)
        self.metrics.connections.dec()
        if conn in self.superseded:
            self.superseded.discard(conn)
            return
        self.locks.release_later(conn.client_id)
        await self.selections.drop_client(conn.client_id)

    async def close_all(self, code: int, message: str) -> None:
        """Close every socket of this node (1001 on shutdown: clients reconnect elsewhere)."""
        for conn in list(self.hub.connections.values()):
            await conn.close(code, message)

    def _watching(self, conn: Connection) -> Frame | None:
        watch = self.hub.watch_of(conn)
        if watch is None:
            return None
        watching: Frame = {"date": watch.room.date, "employeeId": watch.room.employee_id}
        if watch.time:
            watching["time"] = watch.time
        return watching

    async def debug_info(self, unmasked: bool = False) -> Frame:
        """The ``/debug`` document: clients, selections, live locks and this node."""
        now = time.time()
        selections = await self.selections.all()
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
            "clients": [
                conn.debug_info(self._watching(conn), unmasked)
                for conn in self.hub.connections.values()
            ],
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
