"""Hub: who watches which room on this node, and when a room's last watcher leaves."""

from __future__ import annotations

from appointease_realtime.hub import Hub, Watch
from appointease_realtime.protocol import Room
from appointease_realtime.transport import wire
from tests.units import Listener

MON, TUE = Room("2030-05-06", 1), Room("2030-05-07", 1)


def test_leave_says_when_the_last_watcher_has_gone() -> None:
    hub = Hub()
    ann, bob = Listener("ann"), Listener("bob")
    assert hub.join(ann.conn, Watch(MON)) == (None, False)
    assert hub.join(bob.conn, Watch(MON, "10:00")) == (None, False)
    assert hub.leave(ann.conn) == (MON, False)
    assert hub.is_watched(MON)
    assert hub.leave(bob.conn) == (MON, True)
    assert not hub.is_watched(MON) and hub.watched() == []
    assert hub.leave(bob.conn) == (None, False)


def test_joining_another_room_leaves_the_first() -> None:
    hub = Hub()
    ann = Listener("ann")
    hub.join(ann.conn, Watch(MON))
    assert hub.join(ann.conn, Watch(TUE, "09:00")) == (MON, True)
    assert hub.watch_of(ann.conn) == Watch(TUE, "09:00")
    assert hub.watched() == [TUE]
    assert hub.join(ann.conn, Watch(TUE, "10:00")) == (None, False)  # same room, new time
    assert hub.watch_of(ann.conn) == Watch(TUE, "10:00")


def test_send_room_reaches_only_that_rooms_watchers() -> None:
    hub = Hub()
    ann, bob, cid = Listener("ann"), Listener("bob"), Listener("cid")
    hub.join(ann.conn, Watch(MON))
    hub.join(bob.conn, Watch(MON))
    hub.join(cid.conn, Watch(TUE))
    assert hub.send_room(MON, wire('{"type":"x"}')) == 2
    assert ann.frames == bob.frames == [{"type": "x"}] and cid.frames == []
    assert hub.send_room(Room("2030-01-01", 9), wire("{}")) == 0


def test_remove_forgets_the_connection() -> None:
    hub = Hub()
    ann = Listener("ann")
    hub.add(ann.conn)
    assert hub.connections == {"ann": ann.conn}
    hub.remove(ann.conn)
    assert hub.connections == {}
