"""GET /metrics: the counters move with what really happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appointease_realtime.hooks import signed_request
from tests.test_hooks import SECRET

Connect = Callable[..., Any]
DAY = "2030-05-06"


async def scrape(
    client: TestClient[Any, Any],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(await resp.text())
        for sample in family.samples
    }


async def test_metrics_follow_the_traffic(
    make_client: Callable[..., Any], connect: Connect
) -> None:
    client = await make_client(hook_secret=SECRET, reconcile_interval_seconds=0.2)
    watchers = [await connect(on=client) for _ in range(3)]
    for watcher in watchers:
        await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
    holder, other = await connect(on=client), await connect(on=client)
    await holder.request("lock_slot", "slot_locked", date=DAY, time="10:00", employeeId=3)
    await other.request("lock_slot", "lock_failed", date=DAY, time="10:00", employeeId=3)
    await holder.request("unlock_slot", "slot_unlocked", date=DAY, time="10:00", employeeId=3)
    for watcher in watchers:
        await watcher.expect("availability_update", locked=[])
    body, headers = signed_request(SECRET, "test.ping", {})
    await client.post("/hooks/booking", data=body, headers=headers)
    await client.post("/hooks/booking", data=body, headers=headers)
    await client.post("/hooks/booking", data=b"{}", headers={"webhook-id": "x"})
    await other.send("no_such_thing")
    await other.expect("error")
    await watchers[0].quiet(0.5)  # let a reconciliation tick pass

    m = await scrape(client)
    assert m[("appointease_connections", ())] == 5
    assert m[("appointease_lock_outcomes_total", (("outcome", "acquired"),))] == 1
    assert m[("appointease_lock_outcomes_total", (("outcome", "refused_slot_locked"),))] == 1
    assert m[("appointease_lock_outcomes_total", (("outcome", "released"),))] == 1
    assert m[("appointease_hook_outcomes_total", (("outcome", "test_ping"),))] == 1
    assert m[("appointease_hook_outcomes_total", (("outcome", "duplicate"),))] == 1
    assert m[("appointease_hook_outcomes_total", (("outcome", "invalid_signature"),))] == 1
    assert m[("appointease_frames_in_total", (("type", "lock_slot"),))] == 2
    assert m[("appointease_frames_in_total", (("type", "unknown"),))] == 1
    assert m[("appointease_frames_out_total", (("type", "slot_locked"),))] == 1
    assert m[("appointease_frames_out_total", (("type", "availability_update"),))] >= 6
    assert m[("appointease_fanout_recipients_count", ())] >= 2
    assert m[("appointease_fanout_recipients_sum", ())] >= 6
    assert m[("appointease_reconcile_seconds_count", ())] >= 1
    assert 0 <= m[("appointease_reconcile_lag_seconds", ())] < 5
    assert m[("appointease_db_query_seconds_count", (("operation", "acquire_lock"),))] == 2


async def test_metrics_answer_loopback_or_a_token_only(make_client: Callable[..., Any]) -> None:
    """Behind a trusted proxy a remote visitor is refused; a bearer of either token is not."""
    client = await make_client(
        trusted_proxies=("127.0.0.1/32",), metrics_token="scrape-me", debug_token="debug-me"
    )
    remote = {"X-Forwarded-For": "203.0.113.5"}
    assert (await client.get("/metrics", headers=remote)).status == 403
    wrong = {**remote, "Authorization": "Bearer nope"}
    assert (await client.get("/metrics", headers=wrong)).status == 403
    for token in ("scrape-me", "debug-me"):
        allowed = {**remote, "Authorization": f"Bearer {token}"}
        assert (await client.get("/metrics", headers=allowed)).status == 200
    assert (await client.get("/metrics")).status == 200  # loopback itself
