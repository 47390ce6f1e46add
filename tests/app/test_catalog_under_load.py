"""Hiding items while a load generator runs: `python -m app` with two workers on a real Redis.
Every answer to a request sent after a hide returned is checked for the item; expiry by time
and unhiding are checked the same way."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from feature_store.settings import StoreSettings
from tests.app.conftest import users_by_tier
from tests.app.live_server import free_port, server_process

TOKEN = "catalog-load-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_hidden_items_leave_every_answer_of_two_workers_under_load(
    own_artifacts: Path, own_store_settings: StoreSettings
) -> None:
    assert own_store_settings.redis_url is not None
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update(
        {
            "RECSYS_REDIS_URL": own_store_settings.redis_url.get_secret_value(),
            "RECSYS_REDIS_PREFIX": own_store_settings.redis_prefix,
            "RECSYS_ARTIFACTS": str(own_artifacts),
            "RECSYS_ADMIN_TOKEN": TOKEN,
            "RECSYS_WORKERS": "2",
            "RECSYS_PORT": str(port),
            "RECSYS_LOG_LEVEL": "warning",
        }
    )
    tiers = users_by_tier(own_artifacts / "als_v1")
    users = ["nobody-1", "nobody-2", *tiers["cold"][:20], *tiers["warm"][:40], *tiers["hot"][:20]]
    url = f"http://127.0.0.1:{port}"
    answers: list[tuple[float, float, str, set[str]]] = []  # (sent, received, method, items)
    stop = threading.Event()

    def load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            # A fresh connection now and then, so both workers keep getting requests.
            with httpx.Client(base_url=url, timeout=10) as client:
                for _ in range(50):
                    user = users[i % len(users)]
                    i += 7
                    sent = time.time()
                    body = client.post("/candidates", json={"user_id": user, "k": 50}).json()
                    items = {c["item_id"] for c in body["candidates"]}
                    answers.append((sent, time.time(), body["method_used"], items))

    command = [sys.executable, "-m", "app"]
    with server_process(command, env, port) as proc, httpx.Client(base_url=url) as admin:
        popular = [
            c["item_id"] for c in admin.post("/candidates", json={"user_id": "x"}).json()["candidates"]
        ]
        warm_top = admin.post("/candidates", json={"user_id": tiers["warm"][0], "k": 5}).json()["candidates"]
        targets = [*popular[:4], warm_top[0]["item_id"]]
        targets = list(dict.fromkeys(targets))
        threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        hidden_at: dict[str, float] = {}
        for item in targets:
            assert admin.patch(f"/items/{item}", json={"hidden": True}, headers=AUTH).status_code == 200
            hidden_at[item] = time.time()
            time.sleep(0.4)
        expiring = popular[5]
        until = time.time() + 1.0
        admin.patch(f"/items/{expiring}", json={"available_until": until}, headers=AUTH)
        time.sleep(1.6)
        back = targets[0]
        unhiding = time.time()  # an answer received after this may hold it again
        assert admin.patch(f"/items/{back}", json={"hidden": False}, headers=AUTH).status_code == 200
        shown_at = time.time()
        time.sleep(0.8)
        stop.set()
        for t in threads:
            t.join()

    checked, leaks = 0, []
    for item, since in hidden_at.items():
        end = unhiding if item == back else float("inf")
        for sent, received, method, items in answers:
            if since < sent and received < end:
                checked += 1
                if item in items:
                    leaks.append((item, method, sent - since))
    after_expiry = [a for a in answers if a[0] > until + 0.05]
    expired_leaks = [a for a in after_expiry if expiring in a[3]]
    methods = Counter(method for _, _, method, _ in answers)
    print(
        f"{len(answers)} answers; {checked} checked after a hide, {len(after_expiry)} after the expiry; "
        f"{methods}"
    )
    log = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert not leaks and not expired_leaks, (leaks[:5], len(expired_leaks), log[-3000:])
    assert checked >= 1_000, checked
    assert len(after_expiry) >= 100 and methods["popularity"] and methods["als"], methods
    # Shown again: it is back in the answers of the users who had it before.
    assert any(back in items for sent, _, _, items in answers if sent > shown_at + 0.2)
