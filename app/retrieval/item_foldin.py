"""ALS vectors for items a version was not trained on, from their run-time events.

The mirror of the user fold-in (foldin.py): an item's least-squares half step against the
fixed user factors, the users being those who interacted with it through `POST /interactions`.
Every worker reads those events from the store's event stream (so it sees events another worker
accepted), keeps them per new item, and re-solves an item's vector when its events change:
`(UᵀU + Σ_u (c_u - 1) x_u x_uᵀ + λI) y = Σ_u c_u p_u x_u`, with the version's alpha, scaling
and regularisation. UᵀU is summed once per version from its user factors; each user's vector is
the one the store publishes for that version. Users the version does not know (no published
vector) and biased versions contribute nothing yet: such an item keeps its content vector only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from feature_store.base import StreamEntry

MAX_USERS_PER_ITEM = 1_000  # the newest users an item's vector is solved from
MAX_ITEMS = 50_000  # unknown items followed at once; the least recently active drop out


class NewItemEvents:
    """Per item a version does not know: the summed event weight of each user, from the stream,
    newest last. Bounded in items and in users per item, whatever the stream holds."""

    def __init__(self, max_users: int = MAX_USERS_PER_ITEM, max_items: int = MAX_ITEMS) -> None:
        self.max_users = max_users
        self.max_items = max_items
        self.after = "0"  # the stream entry read last
        self.weights: dict[str, dict[str, float]] = {}
        self.takers: dict[str, int] = {}  # users with a positive summed weight, per item

    def add(self, entries: Iterable[StreamEntry], known: Mapping[str, int]) -> set[str]:
        """Fold stream entries on items not in `known` into the weights; returns those changed."""
        changed: set[str] = set()
        for entry in entries:
            self.after = entry.entry_id
            item = entry.fields.get("item_id")
            user = entry.fields.get("user_id")
            if not item or not user or item in known:
                continue
            try:
                weight = float(entry.fields.get("weight", "nan"))
            except ValueError:
                continue
            if not np.isfinite(weight):
                continue
            users = self.weights.pop(item, {})  # re-inserted: the most recently active last
            self.weights[item] = users
            users[user] = users.pop(user, 0.0) + weight
            while len(users) > self.max_users:
                users.pop(next(iter(users)))
            while len(self.weights) > self.max_items:
                dropped = next(iter(self.weights))
                del self.weights[dropped]
                self.takers.pop(dropped, None)
            changed.add(item)
        for item in changed:  # counted once per read, not per popularity request
            if item in self.weights:
                self.takers[item] = sum(w > 0 for w in self.weights[item].values())
        return changed


def user_gram(user_factors: np.ndarray, regularization: float) -> np.ndarray:
    """UᵀU + λI over every user of a version, in float64, chunk by chunk (a memory map of
    millions of users never becomes one float64 copy)."""
    d = user_factors.shape[1]
    gram = np.zeros((d, d))
    for start in range(0, len(user_factors), 65_536):
        chunk = np.asarray(user_factors[start : start + 65_536], np.float64)
        gram += chunk.T @ chunk
    return gram + regularization * np.eye(d)
