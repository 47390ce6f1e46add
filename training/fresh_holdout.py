"""The retrain's yardstick: the newest days of the log, which neither model has seen, scored
through the serving code path for the candidate and the live version alike.

Each version is loaded by `LocalService` (the HTTP app's own objects on an in-memory embedded
store), the evaluated users' events before the cut are recorded as run-time events (each version
folds in only those newer than its own training data, as it would in production), and each user
gets the answer `/candidates` would give: routing by tier, fallbacks, exclusion of seen items.
A hit is an item the user interacted with positively after the cut and not before it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.interaction_log import InteractionLog

TIERS = ("cold", "warm", "hot")


@dataclass(frozen=True)
class FreshHoldout:
    cutoff: int  # epoch seconds: events at or after it are held out
    users: list[str]  # evaluated users, in a fixed order
    targets: dict[str, set[str]]  # user -> items first met (positively) after the cut
    history: dict[str, list[tuple[str, float, int]]]  # user -> (item, weight, time) before the cut
    popular: list[str]  # items by positive events before the cut, most first


def fresh_holdout(log: InteractionLog, cutoff: int, max_users: int = 5_000, seed: int = 42) -> FreshHoldout:
    """Users with a new item after `cutoff`; at most `max_users` of them, drawn at random."""
    assert log.timestamps is not None
    after = log.timestamps >= cutoff
    before_pairs = set(zip(log.user_codes[~after].tolist(), log.item_codes[~after].tolist(), strict=True))
    targets: dict[int, set[int]] = defaultdict(set)
    positive = log.weights > 0
    new = after & positive
    for u, i in zip(log.user_codes[new].tolist(), log.item_codes[new].tolist(), strict=True):
        if (u, i) not in before_pairs:
            targets[u].add(i)
    chosen = sorted(targets)
    if len(chosen) > max_users:
        chosen = sorted(np.random.default_rng(seed).choice(chosen, max_users, replace=False).tolist())
    wanted = set(chosen)
    history: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    rows = np.flatnonzero(~after)
    in_wanted = np.fromiter((u in wanted for u in log.user_codes[rows].tolist()), bool, len(rows))
    for r in rows[in_wanted].tolist():
        history[str(log.user_ids[log.user_codes[r]])].append(
            (str(log.item_ids[log.item_codes[r]]), float(log.weights[r]), int(log.timestamps[r]))
        )
    counts = np.bincount(log.item_codes[~after & positive], minlength=len(log.item_ids))
    popular = [str(log.item_ids[i]) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    return FreshHoldout(
        cutoff=cutoff,
        users=[str(log.user_ids[u]) for u in chosen],
        targets={str(log.user_ids[u]): {str(log.item_ids[i]) for i in targets[u]} for u in chosen},
        history=dict(history),
        popular=popular,
    )


@dataclass
class TierScore:
    users: int = 0
    recall: float = 0.0  # mean over users of hits / targets, at k
    popularity_recall: float = 0.0  # the same users, the most popular unseen items
    methods: dict[str, int] = field(default_factory=dict)  # method_used -> answers in this tier


@dataclass
class VersionScore:
    version: str
    k: int
    users: int
    recall: float  # the primary metric: Recall@k over every evaluated user
    coverage: float  # distinct items recommended / items the version can recommend
    fallback_share: float  # answers where the tier's method could not serve (X-Recsys-Fallback)
    methods: dict[str, int]  # method_used -> answers
    tiers: dict[str, TierScore] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _popular_unseen(popular: Sequence[str], seen: set[str], k: int) -> Iterator[str]:
    taken = 0
    for item in popular:
        if item not in seen:
            yield item
            taken += 1
            if taken == k:
                return


def score_version(
    version_dir: Path, holdout: FreshHoldout, k: int = 20, since: float | None = None
) -> VersionScore:
    """`version_dir`'s answers for the holdout's users. `since`: only history newer than this is
    recorded (what no evaluated version was trained on needs recording; older events are in both)."""
    from app.inprocess import LocalService

    recall_sum: dict[str, float] = defaultdict(float)
    pop_sum: dict[str, float] = defaultdict(float)
    tier_users: Counter[str] = Counter()
    tier_methods: dict[str, Counter[str]] = defaultdict(Counter)
    methods: Counter[str] = Counter()
    fallbacks = 0
    shown: set[str] = set()
    with LocalService(version_dir) as service:
        for start in range(0, len(holdout.users), 1_000):
            events = [
                {"user_id": user, "item_id": item, "weight": weight, "timestamp": float(ts)}
                for user in holdout.users[start : start + 1_000]
                for item, weight, ts in holdout.history.get(user, [])
                if since is None or ts > since
            ]
            for chunk in range(0, len(events), 50_000):
                service.record(events[chunk : chunk + 50_000])
        catalog = service.item_count
        for user, answer in zip(holdout.users, service.recommend_many(holdout.users, limit=k), strict=True):
            targets = holdout.targets[user]
            seen = {item for item, _, _ in holdout.history.get(user, [])}
            recall_sum[answer.tier] += len(targets & set(answer.items)) / len(targets)
            baseline = set(_popular_unseen(holdout.popular, seen, k))
            pop_sum[answer.tier] += len(targets & baseline) / len(targets)
            tier_users[answer.tier] += 1
            methods[answer.method_used] += 1
            tier_methods[answer.tier][answer.method_used] += 1
            fallbacks += answer.fallback_reason is not None
            shown.update(answer.items)
    n = max(len(holdout.users), 1)
    return VersionScore(
        version=version_dir.name,
        k=k,
        users=len(holdout.users),
        recall=sum(recall_sum.values()) / n,
        coverage=len(shown) / catalog if catalog else 0.0,
        fallback_share=fallbacks / n,
        methods=dict(methods),
        tiers={
            tier: TierScore(
                tier_users[tier],
                recall_sum[tier] / tier_users[tier],
                pop_sum[tier] / tier_users[tier],
                dict(tier_methods[tier]),
            )
            for tier in TIERS
            if tier_users[tier]
        },
    )
