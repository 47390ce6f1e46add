"""Traffic that looks like a product's backend calling the candidate service.

Users come from the version the server is serving (its id mapping and interaction counts, read from
the artifact folder), in all three tiers, plus ids the model has never seen; a share of requests
carry filters, `exclude_seen: false` or an `X-AB-Variant` header, and `POST /interactions` batches
arrive in between, each with its own idempotency key.

Every task is tagged, so one scenario runs alone: `--tags hot`, `--tags filters`,
`--tags interactions`... Requests are named by scenario (`/candidates [warm]`), so locust's table
gives each tier its own latency percentiles.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --artifacts artifacts
    ./scripts/loadtest.sh               # starts a server, runs headless, prints the summary

Tier thresholds are the service's defaults (5 and 20 interactions); pass `--warm-min` and
`--hot-min` when the server runs with others.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from locust import between, events, tag, task
from locust.contrib.fasthttp import FastHttpUser

EVENT_TYPES = ("view", "view", "view", "click", "click", "like", "favorite", "apply", "dislike")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--artifacts", default="artifacts", help="Folder of model versions the server reads.")
    parser.add_argument("--warm-min", type=int, default=5, help="RECSYS_WARM_MIN_INTERACTIONS of the server.")
    parser.add_argument("--hot-min", type=int, default=20, help="RECSYS_HOT_MIN_INTERACTIONS of the server.")
    parser.add_argument(
        "--variants",
        default="",
        help="Comma-separated A/B variant names to send in X-AB-Variant (default: none).",
    )
    parser.add_argument(
        "--api-key", default="", help="X-API-Key to send (when the server has RECSYS_API_KEYS)."
    )
    parser.add_argument("--k", type=int, default=100, help="k of each /candidates request.")


@dataclass
class Population:
    """The served version's users by tier, its items and its filterable categories."""

    version: str
    tiers: dict[str, list[str]]
    items: list[str]
    categories: dict[str, list[str]]

    @classmethod
    def read(cls, artifacts: Path, version: str, warm_min: int, hot_min: int) -> Population:
        folder = artifacts / version
        users = _ids(folder / "user_mapping.json")
        counts = np.load(folder / "profile_counts.npy", allow_pickle=False)
        tiers: dict[str, list[str]] = {"cold": [], "warm": [], "hot": []}
        for user, n in zip(users, counts.tolist(), strict=True):
            tiers["cold" if n < warm_min else "warm" if n < hot_min else "hot"].append(user)
        attributes = folder / "item_attributes.json"
        columns = json.loads(attributes.read_text())["columns"] if attributes.is_file() else {}
        categories = {
            name: col["values"]
            for name, col in columns.items()
            if col["kind"] == "categorical" and col["values"]
        }
        return cls(version, tiers, _ids(folder / "item_mapping.json"), categories)


def _ids(path: Path) -> list[str]:
    mapping: dict[str, int] = json.loads(path.read_bytes())
    return sorted(mapping, key=mapping.__getitem__)


POPULATION: Population | None = None


@events.test_start.add_listener
def _load_population(environment: Any, **_: Any) -> None:
    """Ask the server which version it serves, then read that version's ids from disk."""
    global POPULATION
    import urllib.request

    opts = environment.parsed_options
    with urllib.request.urlopen(f"{environment.host}/readyz", timeout=10) as response:
        version = json.loads(response.read())["model_version"]
    if version is None:
        raise RuntimeError("the server has no model version loaded: publish one first (recsys publish)")
    POPULATION = Population.read(Path(opts.artifacts), version, opts.warm_min, opts.hot_min)
    sizes = ", ".join(f"{tier} {len(users):,}" for tier, users in POPULATION.tiers.items())
    print(f"load test on {version}: {sizes} users, {len(POPULATION.items):,} items")


class MarketplaceBackend(FastHttpUser):
    """One backend worker: about ten requests a second, mostly reads, a write now and then.

    Task weights are the traffic mix: active users ask most often, so hot and warm users dominate
    reads; a fifth of reads come from ids the model has never seen (new sign-ups)."""

    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.k = opts.k
        self.variants = [v for v in opts.variants.split(",") if v]
        self.headers = {"X-API-Key": opts.api_key} if opts.api_key else {}

    @property
    def population(self) -> Population:
        if POPULATION is None:
            raise RuntimeError("population not loaded (test_start did not run)")
        return POPULATION

    def _user(self, tier: str) -> str:
        users = self.population.tiers[tier] or self.population.tiers["warm"]
        return random.choice(users)

    def _ask(self, name: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        with self.client.post(
            "/candidates",
            json=body,
            headers={**self.headers, **(headers or {})},
            name=f"/candidates [{name}]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            answer = response.json()
            if "method_used" not in answer or len(answer["candidates"]) == 0:
                response.failure(f"no candidates or no method_used: {(response.text or '')[:200]}")
            elif answer["method_used"] == "popularity_fallback":
                response.failure("popularity_fallback (the store failed)")

    @tag("cold", "candidates")
    @task(10)
    def unknown_user(self) -> None:
        self._ask("new", {"user_id": f"new-{uuid.uuid4().hex[:12]}", "k": self.k})

    @tag("cold", "candidates")
    @task(10)
    def cold_user(self) -> None:
        self._ask("cold", {"user_id": self._user("cold"), "k": self.k})

    @tag("warm", "candidates")
    @task(35)
    def warm_user(self) -> None:
        self._ask("warm", {"user_id": self._user("warm"), "k": self.k})

    @tag("hot", "candidates")
    @task(25)
    def hot_user(self) -> None:
        self._ask("hot", {"user_id": self._user("hot"), "k": self.k})

    @tag("filters", "candidates")
    @task(10)
    def filtered(self) -> None:
        """A category page: the user's candidates within one or two categories, seen items kept."""
        tier = random.choice(("warm", "warm", "hot", "cold"))
        attributes: dict[str, Any] = {}
        if self.population.categories:
            name, values = random.choice(list(self.population.categories.items()))
            attributes[name] = {"in": random.sample(values, min(len(values), random.choice((1, 2))))}
        deny = random.sample(self.population.items, 5)
        body = {
            "user_id": self._user(tier),
            "k": self.k,
            "exclude_seen": random.random() < 0.5,
            "filters": {"attributes": attributes, "deny_items": deny},
        }
        self._ask("filters", body)

    @tag("ab", "candidates")
    @task(5)
    def with_variant(self) -> None:
        if not self.variants:
            self._ask("warm", {"user_id": self._user("warm"), "k": self.k})
            return
        variant = random.choice(self.variants)
        self._ask("ab", {"user_id": self._user("hot"), "k": self.k}, {"X-AB-Variant": variant})

    @tag("interactions")
    @task(5)
    def interactions(self) -> None:
        """A small batch of events from one user, with an idempotency key as a backend would send."""
        user = self._user(random.choice(("cold", "warm", "hot")))
        batch = [
            {
                "user_id": user,
                "item_id": random.choice(self.population.items),
                "event_type": random.choice(EVENT_TYPES),
            }
            for _ in range(random.randint(1, 5))
        ]
        with self.client.post(
            "/interactions",
            json={"request_id": uuid.uuid4().hex, "events": batch},
            headers=self.headers,
            name="/interactions",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
