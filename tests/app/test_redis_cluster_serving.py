"""The service on a real Redis Cluster (3 masters, 3 replicas): it publishes, serves users on every
master, records events, and rides out the failover of one master with fallbacks, not errors.

Timings are printed (`pytest -s`) so the README can quote them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from feature_store.keys import KeySchema
from feature_store.live_view import LiveView
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, users_by_tier
from tests.app.live_server import free_port, server_process
from tests.app.load import Answer, Load
from tests.private_cluster import private_cluster

PREFIX = "clu"
VERSION = "als_v1"
USERS_PER_MASTER = 30


async def _live_and_streamed(settings: StoreSettings, user: str, request_id: str) -> tuple[int, int]:
    """The user's run-time event count in VERSION and the stream entries of `request_id`."""
    store = RedisStore.from_settings(settings)
    try:
        live = (await store.get_profile(VERSION, user, view=LiveView({}, since=None))).live
        entries = await store.read_events(count=100_000)
        return live, sum(e.fields.get("request_id") == request_id for e in entries)
    finally:
        await store.close()


def _events(user: str, request_id: str) -> dict[str, object]:
    return {
        "request_id": request_id,
        "events": [{"user_id": user, "item_id": f"i00000{n}", "event_type": "click"} for n in (1, 2)],
    }


def _is_fallback(a: Answer) -> bool:
    return a.method.endswith("_fallback")


@pytest.mark.parametrize(
    "full_coverage",
    [True, False],
    ids=["require-full-coverage-yes", "require-full-coverage-no"],
)
def test_serving_on_a_redis_cluster_survives_the_failover_of_one_master(
    artifacts: Path, full_coverage: bool
) -> None:
    """Redis' default (`cluster-require-full-coverage yes`) makes every master refuse commands
    from the moment the dead one is marked failed until its replica takes over, so the other
    masters' users fall back for that moment too. With `no` they must keep their model."""
    with private_cluster(full_coverage=full_coverage) as cluster:
        settings = StoreSettings(
            redis_url=cluster.url, redis_cluster=True, redis_prefix=PREFIX, artifacts=artifacts
        )
        publish(settings, artifacts / VERSION)
        cluster.wait_replicated()  # what the replicas inherit must include the version

        keys, masters = KeySchema(PREFIX), cluster.masters()
        by_master: dict[int, list[str]] = defaultdict(list)
        for user in users_by_tier(artifacts / VERSION)["warm"]:
            by_master[cluster.master_of(keys.profile(VERSION, user), masters)].append(user)
        assert len(by_master) == 3 and all(len(u) >= USERS_PER_MASTER for u in by_master.values())
        # The master holding the event stream dies: reads of its users and every write's stream
        # entries fail until its replica takes over.
        victim = cluster.master_of(keys.events, masters)
        doomed = by_master[victim][:USERS_PER_MASTER]
        survivors = [
            u for port, users in by_master.items() if port != victim for u in users[:USERS_PER_MASTER]
        ]
        writer = survivors[1]  # survivors[0] had warm-up events

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
        env |= {
            # The one node the service is told about is the one that dies: it finds the others
            # at start-up and does not need it again.
            "RECSYS_REDIS_URL": f"redis://127.0.0.1:{victim}/0",
            "RECSYS_REDIS_CLUSTER": "1",
            "RECSYS_REDIS_PREFIX": PREFIX,
            "RECSYS_ARTIFACTS": str(artifacts),
            "RECSYS_PORT": str(port),
            "RECSYS_LOG_LEVEL": "warning",
        }
        with (
            server_process([sys.executable, "-m", "app"], env, port),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            for users in by_master.values():  # every master serves its users their model
                body = client.post("/candidates", json={"user_id": users[0], "k": 10}).json()
                assert (body["method_used"], body["model_version"]) == ("als", VERSION), body
                first = client.post("/interactions", json=_events(users[0], f"warm-up-{users[0]}"))
                again = client.post("/interactions", json=_events(users[0], f"warm-up-{users[0]}"))
                assert (first.json()["stored"], again.json()["duplicate"]) == (2, True)
            assert client.get("/readyz").json()["status"] == "ready"

            with Load(str(client.base_url), doomed + survivors) as load:
                time.sleep(1.0)
                kill_started = load.now()  # answers that ended before this never met the kill
                killed = cluster.kill_master(victim)
                killed_at = load.now()
                time.sleep(0.3)
                refused = client.post("/interactions", json=_events(writer, "during-failover"))
                failover = cluster.wait_failover(killed)
                promoted_at = killed_at + failover.promoted_after_s
                deadline = time.monotonic() + 15
                while not any(
                    a.at > promoted_at and a.user in doomed and a.method == "als" for a in load.answers
                ):
                    assert time.monotonic() < deadline, "the doomed master's users never got ALS back"
                    time.sleep(0.05)
                time.sleep(1.0)
                load.finish()

            retried = client.post("/interactions", json=_events(writer, "during-failover"))
            retried_again = client.post("/interactions", json=_events(writer, "during-failover"))
        reader = StoreSettings(redis_url=cluster.url, redis_cluster=True, redis_prefix=PREFIX)  # a live node
        live, streamed = asyncio.run(_live_and_streamed(reader, writer, "during-failover"))

    answers = load.answers
    statuses = {a.status for a in answers}
    assert statuses == {200}, f"statuses {statuses}: {[a for a in answers if a.status != 200][:3]}"
    before = [a for a in answers if a.at + a.seconds < kill_started]
    assert before and all(a.method == "als" for a in before)
    doomed_down = [
        a for a in answers if a.user in doomed and killed_at < a.at and a.at + a.seconds < promoted_at
    ]
    assert doomed_down and all(_is_fallback(a) for a in doomed_down), [
        a for a in doomed_down if not _is_fallback(a)
    ][:3]
    back = min(
        a.at + a.seconds for a in answers if a.user in doomed and a.at > promoted_at and a.method == "als"
    )
    settled = [a for a in answers if a.at > back + 0.5]
    assert settled and all(a.method == "als" for a in settled), [a for a in settled if a.method != "als"][:3]
    ready = [s for _, s in load.ready]
    assert ready[0] == ready[-1] == "ready" and "degraded" in ready, list(
        zip(load.ready, load.reasons, strict=True)
    )
    degraded_at = next(t for t, s in load.ready if s == "degraded")
    ready_at = load.ready[-1][0]
    # The master dies somewhere between kill_started and killed_at (kill_master returns after
    # the process is reaped): the probe, every 20 ms on its own thread, may see it first.
    assert kill_started < degraded_at < promoted_at < ready_at + 0.5, load.ready

    # A write whose stream part hit the dead master is refused, and its retry after the failover
    # completes it exactly once: the user's part (on a live master) is not applied twice.
    assert refused.status_code == 503 and "retry with the same request id" in refused.json()["detail"]
    assert retried.status_code == 200 and retried.json()["stored"] == 2, retried.json()
    assert retried_again.json()["duplicate"] is True
    assert (live, streamed) == (2, 2)

    first_fallback = min(a.at + a.seconds for a in answers if _is_fallback(a))
    survivors_down = [a for a in answers if a.user not in doomed and killed_at < a.at < back]
    if not full_coverage:  # a dead master costs its own users only
        assert sum(map(_is_fallback, survivors_down)) <= 0.05 * len(survivors_down), survivors_down[:3]
    print(
        f"\ncluster-require-full-coverage {'yes' if full_coverage else 'no'}: "
        f"{len(answers)} answers in {load.now():.1f}s, all 200, slowest "
        f"{max(a.seconds for a in answers) * 1000:.0f} ms; {sum(map(_is_fallback, answers))} fallbacks "
        f"({len(doomed_down)} of {len(doomed_down)} answers for the dead master's users while it was down, "
        f"{sum(map(_is_fallback, survivors_down))} of {len(survivors_down)} for the other masters' users "
        f"until recovery). First fallback {(first_fallback - killed_at) * 1000:.0f} ms after the SIGKILL "
        f"(readyz degraded after {(degraded_at - killed_at) * 1000:.0f} ms); replica promoted after "
        f"{failover.promoted_after_s:.2f}s, cluster_state ok after {failover.ok_after_s:.2f}s; the dead "
        f"master's users got ALS again {back - killed_at:.2f}s after the kill ({back - promoted_at:.2f}s "
        f"after the promotion), readyz ready after {ready_at - killed_at:.2f}s "
        f"({len(ready) - 3} more readyz changes)"
    )
