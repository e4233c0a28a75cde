"""The race soak, bounded: two real daemons on one MariaDB database and one private Redis,
20 racers, 1,000 rounds (and on until 100 rounds followed recovery), node B killed with
``kill -9`` at a third and Redis restarted at two thirds (bench/soak.py runs the long one).
About 10-30 s on a 2-core machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.soak import NODE_NAMES, SoakConfig, soak

from tests.redis_support import ThrowawayRedis

pytestmark = [pytest.mark.mysql, pytest.mark.redis, pytest.mark.slow]

ROUNDS, RACERS = 1000, 20


async def test_one_winner_per_round_through_kill9_and_redis_restart(
    mysql_database: str, throwaway: ThrowawayRedis, tmp_path: Path
) -> None:
    config = SoakConfig(
        rounds=ROUNDS,
        racers=RACERS,
        kill_at=ROUNDS // 3,
        redis_at=2 * ROUNDS // 3,
        outage_seconds=1.0,
        redis_outage_seconds=1.0,
        progress_every=250,
        after_recovery=ROUNDS // 10,
    )
    result = await soak(config, mysql_database, throwaway, tmp_path)
    report = result.report()
    print(report)
    samples = json.dumps(result.mismatch_samples[:3], indent=1)

    assert ROUNDS <= result.rounds <= 2 * ROUNDS
    assert result.mismatch_count == 0, f"{report}\n{samples}"
    assert result.winners["2+"] == 0
    assert result.winners["0"] == result.refusal_rounds, report  # 0 winners only when unreached

    kill, redis = result.faults
    assert kill.what.startswith("kill -9 node-b") and kill.at_round == ROUNDS // 3
    assert redis.what.startswith("redis-server") and redis.at_round == 2 * ROUNDS // 3
    assert kill.back_before_round is not None, report  # restarted and ready
    assert redis.ready_before_round is not None, report  # both nodes reconnected to Redis
    assert redis.degraded_seen, report  # the nodes noticed Redis was gone: the fault was real
    # The killed node's racers saw their sockets drop and resumed on the other node, keeping
    # their clientIds (one RESUME_SECRET), then went back home.
    assert result.refusals["connection_lost"] >= RACERS // 2, report
    assert result.reconnects["resumed"] >= RACERS // 2, report
    assert result.reconnects["new_client_id"] == 0, report
    assert result.reconnects["back_home"] >= RACERS // 2, report

    # Every round after recovery had exactly one winner, and there were plenty of them.
    assert result.recovered_at is not None, report
    assert result.rounds_after_recovery == result.rounds - result.recovered_at
    # the run went on until then; by the round count a fast machine may need more than ROUNDS
    assert result.rounds_after_recovery >= ROUNDS // 10, report
    assert result.rounds == ROUNDS or result.rounds_after_recovery == ROUNDS // 10, report
    assert result.one_winner_after_recovery == result.rounds_after_recovery, report
    # At the end every racer raced again, half on each node.
    assert result.last_round_nodes == {name: RACERS // 2 for name in NODE_NAMES}, report
    assert not result.unlock_failures, report
