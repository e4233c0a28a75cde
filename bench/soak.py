"""A race soak with real processes: two daemons, one MariaDB database, one private Redis.

    .venv/bin/python -m bench.soak --rounds 10000          # the long run
    .venv/bin/python -m bench.soak --rounds 1000 --racers 20 --json soak.json

Two daemons (``python -m appointease_realtime serve``, as tests.processes.Daemon starts them)
share a throw-away MariaDB database (``aert_soak_<random>`` on 127.0.0.1:3306, root, no
password; ``init-db``-ed, dropped afterwards) and a private redis-server on a free port
(REDIS_URL), with one RESUME_SECRET and the rate limits raised. ``--racers`` WebSocket
clients (20), half homed on each node, race for one fresh slot per round (date, time and
employee never reused): all send ``lock_slot`` at once, and each answer is ``slot_locked``,
``lock_failed`` {reason} or ``error`` {code}; an error, a dropped socket, a node that cannot
be reached or no answer in time counts as a refusal with that reason, never as a win.

After every round: exactly one racer was told ``slot_locked``, and the slot's row in
``wp_appointease_slot_locks`` names that racer's clientId (from its ``connection`` hello).
Then the winner unlocks the slot (HOLD_LIMIT is at most 100, so winners cannot keep their
holds across thousands of rounds). A round in which no racer got a decision (``slot_locked``
or ``lock_failed``: every one was unreachable, dropped, timed out or answered ``error``) is
a refusal round, not a mismatch. Mismatches: ``no_winner`` (0 told, some racer got a
decision), ``multiple_winners`` (2+ told), ``holder_differs`` (the row does not name the one
told, or there is no row), ``holder_unknown`` (a refusal round whose slot has a row that
names no racer left without an answer).

Faults, between rounds, while rounds keep going: at ``--kill-at`` (default a third of the
way) node B gets ``kill -9`` and is started again on its port ``--outage`` seconds later;
its racers find their sockets dead in the next round, reconnect to node A with their resume
token (same clientId), and go back to node B with a fresh connection once it answers again
(tried every ``--home-retry`` rounds). At ``--redis-at`` (default two thirds) the private
redis-server is killed (SIGKILL) and started again on its port ``--redis-outage`` seconds
later; both nodes keep serving and ``/readyz`` says ``degraded`` until they reconnect.
Recovery is the first round after the node is back and both nodes report ready, not
degraded, after Redis came back. With ``--after-recovery N`` the run goes on past
``--rounds`` until N rounds have followed recovery (at most ``--rounds`` more): how many
rounds a repair takes depends on how fast the machine races.

Prints the counts (rounds, winners per round 0/1/2+, mismatches, refusals by reason, the
faults and when they were repaired, the elapsed time); a progress line every
``--progress`` rounds on stderr; exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pymysql

from appointease_realtime.config import table as config_table
from tests.processes import Daemon, raise_nofile
from tests.redis_support import ThrowawayRedis

MYSQL: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TABLE_PREFIX = "wp_"
LOCKS_TABLE = f"{TABLE_PREFIX}appointease_slot_locks"
BASE_DAY = date(2035, 1, 1)
EMPLOYEE_BASE = 100_000  # employee ids 100000.. (one per round; below mediumint's 8388607)
NODE_NAMES = ("node-a", "node-b")
KILLED_NODE = 1  # node-b gets kill -9
CONFIG_KEYS = {entry.key for entry in config_table()}

# What a racer was told in one round. Decisions: WON and REFUSED; the rest are refusals
# without a decision from the database.
WON, REFUSED, ERROR = "slot_locked", "lock_failed", "error"
LOST, UNREACHABLE, TIMEOUT = "connection_lost", "unreachable", "timeout"


def progress(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def slot_for(round_: int) -> dict[str, Any]:
    """Round ``round_``'s slot: a day, a minute of it and an employee used by no other round."""
    day = BASE_DAY + timedelta(days=round_ // 1440)
    minute = round_ % 1440
    return {
        "date": day.isoformat(),
        "time": f"{minute // 60:02d}:{minute % 60:02d}",
        "employeeId": EMPLOYEE_BASE + round_,
    }


@dataclass(frozen=True)
class SoakConfig:
    """The sizes and the fault schedule of one run."""

    rounds: int = 10_000
    racers: int = 20
    kill_at: int | None = None  # the round before which node B is killed; default rounds // 3
    redis_at: int | None = None  # the round before which Redis is killed; default 2 * rounds // 3
    outage_seconds: float = 1.0  # node B stays down this long, then is started again
    redis_outage_seconds: float = 1.0  # Redis stays down this long
    reply_timeout: float = 10.0  # longest wait for one answer
    home_retry_rounds: int = 20  # a racer away from its home node tries it again this often
    progress_every: int = 500
    # rounds that must follow recovery: the run goes on past ``rounds`` until then (at most
    # ``rounds`` more), so a fast machine still races well after every repair
    after_recovery: int = 0

    @property
    def kill_round(self) -> int:
        return self.rounds // 3 if self.kill_at is None else self.kill_at

    @property
    def redis_round(self) -> int:
        return 2 * self.rounds // 3 if self.redis_at is None else self.redis_at


@dataclass
class Answer:
    """One racer's outcome in one round."""

    kind: str  # WON, REFUSED, ERROR, LOST, UNREACHABLE or TIMEOUT
    reason: str  # the refusal reason as counted ("slot_locked", "error:unavailable", ...)
    client_id: str | None  # the racer's clientId when it sent the request
    node: int | None  # the node it sent it to

    @property
    def decided(self) -> bool:
        return self.kind in (WON, REFUSED)

    @property
    def unanswered(self) -> bool:
        """Sent, but nothing came back: the database may have granted it all the same."""
        return self.kind in (LOST, TIMEOUT)


class Racer:
    """One WebSocket client with a home node; fails over to the other node when home is gone."""

    def __init__(self, index: int, home: int) -> None:
        self.index = index
        self.home = home
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.node: int | None = None
        self.client_id: str | None = None
        self.resume_token: str | None = None
        self.away_since = 0  # the round it last connected to (or tried) its home node

    async def open(
        self, session: aiohttp.ClientSession, url: str, resume: bool
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]] | None:
        """Connect to ``url`` (with the resume token when ``resume``) and read the hello."""
        params = {"resume": self.resume_token} if resume and self.resume_token else None
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            async with asyncio.timeout(5):
                ws = await session.ws_connect(url, params=params)
                msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                hello: dict[str, Any] = json.loads(msg.data)
                if hello.get("type") == "connection" and isinstance(hello.get("clientId"), str):
                    return ws, hello
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            pass
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        return None

    def adopt(
        self, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any], node: int, round_: int
    ) -> bool:
        """Use this connection from now on; True when it kept the previous clientId."""
        kept = bool(hello["clientId"] == self.client_id)
        self.ws, self.node = ws, node
        self.client_id = str(hello["clientId"])
        self.resume_token = hello.get("resumeToken")
        if node == self.home:
            self.away_since = round_
        return kept

    async def drop(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        self.ws, self.node = None, None

    async def send(self, frame: dict[str, Any]) -> bool:
        if self.ws is None or self.ws.closed:
            return False
        try:
            await self.ws.send_str(json.dumps(frame))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return False
        return True

    async def answer(self, request_id: str, seconds: float) -> dict[str, Any] | str:
        """The frame carrying ``request_id``, or LOST / TIMEOUT."""
        if self.ws is None:
            return LOST
        try:
            async with asyncio.timeout(seconds):
                while True:
                    msg = await self.ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return LOST  # CLOSE, CLOSED, ERROR: the node went away
                    frame: dict[str, Any] = json.loads(msg.data)
                    if frame.get("requestId") == request_id:
                        return frame
        except TimeoutError:
            return TIMEOUT
        except (aiohttp.ClientError, ConnectionError, RuntimeError, ValueError):
            return LOST


@dataclass
class Fault:
    """One injected fault and when it was repaired (round numbers are 0-based)."""

    what: str
    at_round: int
    injected_at: float = 0.0  # seconds into the run
    back_before_round: int | None = None  # the process answered again before this round
    back_after_seconds: float | None = None
    degraded_seen: list[str] = field(default_factory=list)  # nodes seen degraded (Redis)
    ready_before_round: int | None = None  # both nodes ready, not degraded, before this round


@dataclass
class SoakResult:
    """What one run counted."""

    config: dict[str, Any]
    rounds: int = 0
    winners: Counter[str] = field(default_factory=Counter)  # "0", "1", "2+" -> rounds
    mismatches: Counter[str] = field(default_factory=Counter)
    mismatch_samples: list[dict[str, Any]] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)  # reason -> racers refused
    refusal_rounds: int = 0
    unlock_failures: Counter[str] = field(default_factory=Counter)
    reconnects: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    recovered_at: int | None = None  # the first round after every fault was repaired
    rounds_after_recovery: int = 0
    one_winner_after_recovery: int = 0
    decided_per_round: Counter[int] = field(default_factory=Counter)  # racers decided -> rounds
    last_round_nodes: dict[str, int] = field(default_factory=dict)  # node -> racers decided
    elapsed_seconds: float = 0.0

    @property
    def mismatch_count(self) -> int:
        return sum(self.mismatches.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``asdict`` would turn each Counter into a Counter of pairs)."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Counter):
                value = {str(k): v for k, v in sorted(value.items())}
            elif name == "faults":
                value = [asdict(fault) for fault in value]
            data[name] = value
        data["mismatch_count"] = self.mismatch_count
        return data

    def report(self) -> str:
        """The counts as text."""
        lines = [
            f"rounds: {self.rounds} ({self.config['racers']} racers, 2 nodes, 1 MariaDB,"
            " 1 private Redis)",
            "winners per round: "
            + ", ".join(f"{k}: {self.winners.get(k, 0)}" for k in ("0", "1", "2+")),
            f"mismatches: {self.mismatch_count}"
            + (f" ({dict(self.mismatches)})" if self.mismatches else ""),
            f"refusal rounds (no racer got a decision): {self.refusal_rounds}",
            "refusals by reason: "
            + (", ".join(f"{k}: {v}" for k, v in self.refusals.most_common()) or "none"),
            "racers with a decision per round: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.decided_per_round.items())),
            "reconnects: " + (", ".join(f"{k}: {v}" for k, v in self.reconnects.items()) or "none"),
        ]
        if self.unlock_failures:
            lines.append(f"unlock failures: {dict(self.unlock_failures)}")
        lines.append("faults injected:")
        for fault in self.faults:
            line = f"  {fault.what} at round {fault.at_round} ({fault.injected_at:.1f} s)"
            if fault.back_before_round is not None:
                line += (
                    f"; back before round {fault.back_before_round}"
                    f" ({fault.back_after_seconds:.1f} s down)"
                )
            if fault.degraded_seen:
                line += f"; seen degraded: {', '.join(fault.degraded_seen)}"
            if fault.ready_before_round is not None:
                line += f"; both nodes ready before round {fault.ready_before_round}"
            lines.append(line)
        if self.recovered_at is not None:
            lines.append(
                f"after recovery (round {self.recovered_at} on): {self.rounds_after_recovery}"
                f" rounds, {self.one_winner_after_recovery} with exactly one winner"
            )
        else:
            lines.append("recovery: not reached")
        nodes = ", ".join(f"{k}: {v}" for k, v in self.last_round_nodes.items())
        lines.append(f"last round, racers decided per node: {nodes}")
        for sample in self.mismatch_samples:
            lines.append(f"mismatch: {json.dumps(sample)}")
        lines.append(f"elapsed: {self.elapsed_seconds:.1f} s")
        return "\n".join(lines)


class SoakDaemon(Daemon):
    """One node: MySQL, ready at /readyz, only the settings given (none leak from the shell)."""

    ready_path = "/readyz"
    start_seconds = 30.0

    def __init__(self, workdir: Path, name: str, env: dict[str, str]) -> None:
        super().__init__(workdir)
        self.name = name
        self.env = env
        self.log = workdir / f"{name}-{self.port}.log"


class LockRows:
    """Reads the lock table as an outsider would, in a thread (one connection, autocommit)."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.conn: pymysql.connections.Connection | None = None

    def _holder(self, slot: dict[str, Any]) -> str | None:
        if self.conn is None:
            self.conn = pymysql.connect(**MYSQL, database=self.db_name, autocommit=True)
        with self.conn.cursor() as cur:
            cur.execute(
                f"SELECT client_id FROM {LOCKS_TABLE}"  # noqa: S608 - a constant table name
                " WHERE date = %s AND time = %s AND employee_id = %s",
                (slot["date"], f"{slot['time']}:00", slot["employeeId"]),
            )
            rows = cur.fetchall()
        if len(rows) > 1:  # the unique key forbids it; say so rather than pick one
            return "<several rows>"
        return str(rows[0][0]) if rows else None

    async def holder(self, slot: dict[str, Any]) -> str | None:
        try:
            return await asyncio.to_thread(self._holder, slot)
        except pymysql.err.OperationalError:
            self.close()
            return await asyncio.to_thread(self._holder, slot)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def daemon_env(db_name: str, redis_url: str, resume_secret: str) -> dict[str, str]:
    """The whole environment of both nodes."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_KEYS}
    env.update(
        DB_HOST=str(MYSQL["host"]),
        DB_PORT=str(MYSQL["port"]),
        DB_USER=str(MYSQL["user"]),
        DB_PASSWORD="",
        DB_NAME=db_name,
        TABLE_PREFIX=TABLE_PREFIX,
        REDIS_URL=redis_url,
        RESUME_SECRET=resume_secret,
        HOLD_LIMIT="100",  # the most the configuration accepts; winners unlock anyway
        RATE_LIMIT_PER_SECOND="10000",
        RATE_LIMIT_BURST="100000",
        MAX_CONNECTIONS_PER_IP="100000",
        RECONCILE_INTERVAL_SECONDS="3600",
        LOG_LEVEL="WARNING",
    )
    return env


async def init_db(env: dict[str, str]) -> None:
    """``appointease-realtime init-db``: the plugin's two tables, as the plugin makes them."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appointease_realtime",
        "--env-file",
        os.devnull,
        "init-db",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError("appointease-realtime init-db failed")


class Soak:
    """The run: nodes, racers, rounds, faults."""

    session: aiohttp.ClientSession  # open while ``run`` runs

    def __init__(
        self, config: SoakConfig, db_name: str, redis: ThrowawayRedis, workdir: Path
    ) -> None:
        if config.racers < 2 or config.rounds < 1:
            raise ValueError("a soak needs at least 2 racers and 1 round")
        self.config = config
        self.redis = redis
        env = daemon_env(db_name, redis.url, f"soak-{secrets.token_hex(16)}")
        self.env = env
        self.nodes = [SoakDaemon(workdir, name, env) for name in NODE_NAMES]
        self.racers = [Racer(i, i % 2) for i in range(config.racers)]
        self.rows = LockRows(db_name)
        self.result = SoakResult(config=asdict(config))
        self.round = 0
        self.began = 0.0
        self.tasks: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return time.monotonic() - self.began

    # ---- the run ----

    async def run(self) -> SoakResult:
        await init_db(self.env)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3)
        try:
            await asyncio.gather(*(node.start() for node in self.nodes))
            self.began = time.monotonic()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                self.session = session
                round_ = 0
                while self.another_round(round_):
                    self.round = round_
                    await self.inject_faults()
                    await self.race()
                    self.note_recovery()
                    if (self.round + 1) % self.config.progress_every == 0:
                        self.progress()
                    round_ += 1
                for racer in self.racers:
                    await racer.drop()
                for task in self.tasks:  # a repair still pending (a run shorter than outages)
                    await task
        finally:
            self.result.elapsed_seconds = round(self.now(), 1) if self.began else 0.0
            self.rows.close()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*(node.close() for node in self.nodes))
        return self.result

    def another_round(self, round_: int) -> bool:
        """``rounds`` rounds, then on (at most as many again) until ``after_recovery`` rounds
        have followed recovery."""
        c, r = self.config, self.result
        if round_ < c.rounds:
            return True
        return (
            c.after_recovery > 0
            and round_ < 2 * c.rounds
            and (r.recovered_at is None or r.rounds_after_recovery < c.after_recovery)
        )

    def progress(self) -> None:
        r = self.result
        progress(
            f"round {self.round + 1}/{self.config.rounds}"
            f"{' (on until rounds follow recovery)' if self.round >= self.config.rounds else ''}:"
            f" one winner {r.winners['1']},"
            f" mismatches {r.mismatch_count}, refusal rounds {r.refusal_rounds},"
            f" {self.now():.1f} s"
        )

    # ---- faults ----

    async def inject_faults(self) -> None:
        if self.round == self.config.kill_round:
            node = self.nodes[KILLED_NODE]
            fault = Fault(f"kill -9 {node.name} (pid {node.pid})", self.round, self.now())
            await node.kill9()
            self.result.faults.append(fault)
            progress(f"round {self.round}: {fault.what}")
            self.tasks.append(asyncio.create_task(self.restart_node(node, fault)))
        if self.round == self.config.redis_round:
            fault = Fault("redis-server SIGKILL and restart", self.round, self.now())
            await self.redis.stop()
            self.result.faults.append(fault)
            progress(f"round {self.round}: {fault.what}")
            self.tasks.append(asyncio.create_task(self.restart_redis(fault)))

    async def restart_node(self, node: SoakDaemon, fault: Fault) -> None:
        await asyncio.sleep(self.config.outage_seconds)
        await node.start()  # the same port; waits until /readyz answers 200
        fault.back_before_round = self.round + 1
        fault.back_after_seconds = round(self.now() - fault.injected_at, 2)
        fault.ready_before_round = fault.back_before_round
        progress(f"{node.name} is back ({fault.back_after_seconds} s after the kill)")

    async def restart_redis(self, fault: Fault) -> None:
        watch = asyncio.create_task(self.watch_degraded(fault))
        try:
            await asyncio.sleep(self.config.redis_outage_seconds)
            await self.redis.start()  # the same port
            fault.back_before_round = self.round + 1
            fault.back_after_seconds = round(self.now() - fault.injected_at, 2)
            deadline = time.monotonic() + 60
            while not await self.all_ready():  # both nodes reconnected to Redis
                if time.monotonic() > deadline:
                    progress("the nodes did not report ready within 60 s of Redis coming back")
                    return
                await asyncio.sleep(0.05)
            fault.ready_before_round = self.round + 1
            progress(
                f"Redis is back ({fault.back_after_seconds} s); both nodes ready"
                f" {self.now() - fault.injected_at:.1f} s after the kill"
            )
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def readyz(self, node: SoakDaemon) -> str:
        """``ready``, ``degraded`` or ``down``."""
        try:
            async with asyncio.timeout(2), self.session.get(f"{node.url}/readyz") as resp:
                body = await resp.json()
                return str(body.get("status")) if resp.status == 200 else "down"
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return "down"

    async def all_ready(self) -> bool:
        states = await asyncio.gather(*(self.readyz(node) for node in self.nodes))
        return all(state == "ready" for state in states)

    async def watch_degraded(self, fault: Fault) -> None:
        """Note which nodes said ``degraded`` (they noticed Redis was gone)."""
        while True:
            for node in self.nodes:
                if node.name not in fault.degraded_seen and await self.readyz(node) == "degraded":
                    fault.degraded_seen.append(node.name)
            await asyncio.sleep(0.05)

    def note_recovery(self) -> None:
        r, c = self.result, self.config
        scheduled = sum(f < self.config.rounds for f in (c.kill_round, c.redis_round))
        if r.recovered_at is None and len(r.faults) == scheduled:
            marks = [f.ready_before_round for f in r.faults]
            if all(m is not None and m <= self.round + 1 for m in marks):
                r.recovered_at = self.round + 1

    # ---- one round ----

    async def connect_all(self) -> None:
        """Connect every racer without a socket; bring racers away from home back home."""
        await asyncio.gather(*(self.connect(racer) for racer in self.racers))

    async def connect(self, racer: Racer) -> None:
        urls = [node.ws_url for node in self.nodes]
        if racer.ws is None:
            for node in (racer.home, 1 - racer.home):
                opened = await racer.open(self.session, urls[node], resume=True)
                if opened is not None:
                    had_id = racer.client_id is not None
                    kept = racer.adopt(*opened, node, self.round)
                    if had_id:
                        self.result.reconnects["resumed" if kept else "new_client_id"] += 1
                    if node != racer.home:
                        self.result.reconnects["to_other_node"] += 1
                    return
            return  # both unreachable: refused this round
        if (
            racer.node != racer.home
            and self.round - racer.away_since >= self.config.home_retry_rounds
        ):
            racer.away_since = self.round
            # A fresh connection (no resume): the old socket closes after it, and a node must
            # not release holds of a clientId that lives on elsewhere.
            opened = await racer.open(self.session, urls[racer.home], resume=False)
            if opened is not None:
                await racer.drop()
                racer.adopt(*opened, racer.home, self.round)
                self.result.reconnects["back_home"] += 1

    async def race(self) -> None:
        await self.connect_all()
        slot = slot_for(self.round)
        request_id = f"soak-{self.round}"
        frame = {"type": "lock_slot", "requestId": request_id, **slot}
        racers = self.racers
        sent_by = [(r.client_id, r.node) for r in racers]
        # All racers send before any waits for its answer.
        sent = await asyncio.gather(*(r.send(frame) for r in racers))
        waits = [
            r.answer(request_id, self.config.reply_timeout) if ok else _unsent(r)
            for r, ok in zip(racers, sent, strict=True)
        ]
        raw = await asyncio.gather(*waits)
        answers = [
            self.classify(reply, client_id, node)
            for reply, (client_id, node) in zip(raw, sent_by, strict=True)
        ]
        for racer, answer in zip(racers, answers, strict=True):
            if answer.kind in (LOST, TIMEOUT):
                await racer.drop()  # reconnects (resuming) next round
        holder = await self.rows.holder(slot)
        self.check(slot, answers, holder)
        await self.unlock(slot, answers)

    def classify(
        self, reply: dict[str, Any] | str, client_id: str | None, node: int | None
    ) -> Answer:
        if isinstance(reply, str):
            return Answer(reply, reply, client_id if reply != UNREACHABLE else None, node)
        kind = str(reply.get("type"))
        if kind == WON:
            return Answer(WON, "", client_id, node)
        if kind == REFUSED:
            return Answer(REFUSED, str(reply.get("reason")), client_id, node)
        if kind == ERROR:
            return Answer(ERROR, f"error:{reply.get('code')}", client_id, node)
        return Answer(ERROR, f"unexpected:{kind}", client_id, node)

    def check(self, slot: dict[str, Any], answers: list[Answer], holder: str | None) -> None:
        r = self.result
        told = [a for a in answers if a.kind == WON]
        decided = [a for a in answers if a.decided]
        for answer in answers:
            if answer.kind != WON:
                r.refusals[answer.reason] += 1
        r.rounds += 1
        r.winners["2+" if len(told) >= 2 else str(len(told))] += 1
        r.decided_per_round[len(decided)] += 1
        r.last_round_nodes = {  # the last round's, once the run ends
            name: sum(1 for a in decided if a.node == i) for i, name in enumerate(NODE_NAMES)
        }
        if r.recovered_at is not None:
            r.rounds_after_recovery += 1
            r.one_winner_after_recovery += len(told) == 1
        kind: str | None = None
        if len(told) >= 2:
            kind = "multiple_winners"
        elif len(told) == 1:
            if holder != told[0].client_id:
                kind = "holder_differs"
        elif decided:
            kind = "no_winner"
        else:
            r.refusal_rounds += 1
            unanswered = {a.client_id for a in answers if a.unanswered}
            if holder is not None and holder not in unanswered:
                kind = "holder_unknown"
        if kind is not None:
            r.mismatches[kind] += 1
            if len(r.mismatch_samples) < 20:
                r.mismatch_samples.append(
                    {
                        "round": self.round,
                        "kind": kind,
                        "slot": slot,
                        "holder": holder,
                        "answers": [asdict(a) for a in answers],
                    }
                )
            progress(f"round {self.round}: MISMATCH {kind}, holder {holder}")

    async def unlock(self, slot: dict[str, Any], answers: list[Answer]) -> None:
        """The round's winner gives the slot back (so no racer reaches HOLD_LIMIT)."""
        for racer, answer in zip(self.racers, answers, strict=True):
            if answer.kind != WON or racer.client_id != answer.client_id:
                continue
            request_id = f"soak-unlock-{self.round}"
            if not await racer.send({"type": "unlock_slot", "requestId": request_id, **slot}):
                self.result.unlock_failures["not_sent"] += 1
                continue
            reply = await racer.answer(request_id, self.config.reply_timeout)
            if isinstance(reply, str):
                self.result.unlock_failures[reply] += 1
                await racer.drop()
            elif reply.get("type") != "slot_unlocked":
                why = reply.get("reason") or reply.get("code")
                self.result.unlock_failures[f"{reply.get('type')}:{why}"] += 1


async def _unsent(racer: Racer) -> str:
    """The outcome of a racer that could not send: no node, or its socket was dead."""
    if racer.ws is None:
        return UNREACHABLE
    await racer.drop()
    return LOST


# ---- the command ----


def mysql_admin(statement: str) -> None:
    conn = pymysql.connect(**MYSQL, autocommit=True, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


async def soak(
    config: SoakConfig,
    db_name: str | None = None,
    redis: ThrowawayRedis | None = None,
    workdir: Path | None = None,
) -> SoakResult:
    """Run ``config``. Without ``db_name`` a throw-away database is created and dropped; without
    ``redis`` a private redis-server is started and killed; without ``workdir`` (the daemons'
    logs) a temporary one is made and removed. ``redis`` must be started and is restarted."""
    raise_nofile()
    owned_db = db_name is None
    db = db_name or f"aert_soak_{secrets.token_hex(4)}"
    server = redis or ThrowawayRedis()
    logs = workdir or Path(tempfile.mkdtemp(prefix="aert-soak-"))
    if owned_db:
        await asyncio.to_thread(mysql_admin, f"CREATE DATABASE {db}")
    try:
        if redis is None:
            await server.start()
        progress(
            f"{config.rounds} rounds, {config.racers} racers, database {db},"
            f" Redis on port {server.port}, logs in {logs}"
        )
        return await Soak(config, db, server, logs).run()
    finally:
        if redis is None:
            await server.stop()
        if owned_db:
            await asyncio.to_thread(mysql_admin, f"DROP DATABASE IF EXISTS {db}")
        if workdir is None:
            shutil.rmtree(logs, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--racers", type=int, default=20)
    parser.add_argument("--kill-at", type=int, help="round of the kill -9 (default rounds/3)")
    parser.add_argument("--redis-at", type=int, help="round of the Redis restart (default 2/3)")
    parser.add_argument("--outage", type=float, default=1.0, help="seconds node B stays down")
    parser.add_argument("--redis-outage", type=float, default=1.0, help="seconds Redis is down")
    parser.add_argument("--home-retry", type=int, default=20, help="rounds between tries home")
    parser.add_argument("--progress", type=int, default=500, help="rounds between progress lines")
    parser.add_argument(
        "--after-recovery",
        type=int,
        default=0,
        help="go on past --rounds until this many rounds followed recovery (at most --rounds more)",
    )
    parser.add_argument("--json", help="also write the counts to this file")
    args = parser.parse_args(argv)
    config = SoakConfig(
        rounds=args.rounds,
        racers=args.racers,
        kill_at=args.kill_at,
        redis_at=args.redis_at,
        outage_seconds=args.outage,
        redis_outage_seconds=args.redis_outage,
        home_retry_rounds=args.home_retry,
        progress_every=args.progress,
        after_recovery=args.after_recovery,
    )
    result = asyncio.run(soak(config))
    print(result.report())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 1 if result.mismatch_count else 0


if __name__ == "__main__":
    sys.exit(main())
