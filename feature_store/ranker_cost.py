"""What evaluating a LightGBM ranker costs per candidate, read from the model itself.

Training uses it to keep the cheapest of the boosters that validate alike; serving, to decide
whether scoring a request's candidates is small enough to run on the event loop (a hand-off to a
search thread cost more than the work for a small model: see docs/ranking.md).
"""

from __future__ import annotations

from typing import Any


def comparisons_per_row(booster: Any, trees: int | None = None) -> float:
    """Expected split tests to score one row over the first `trees` trees (all when None): each
    tree's leaf depths weighted by how many training rows reached the leaf. Prediction time
    follows it, plus a fixed cost per call."""
    dumped = booster.dump_model(num_iteration=trees if trees is not None else -1)["tree_info"]
    total = 0.0
    for tree in dumped if trees is None else dumped[:trees]:
        stack = [(tree["tree_structure"], 0)]
        reached, weighted = 0, 0
        while stack:
            node, depth = stack.pop()
            if "split_index" not in node:  # a leaf (a one-leaf tree has no leaf_index)
                count = int(node.get("leaf_count", 1))
                reached += count
                weighted += count * depth
            else:
                stack.append((node["left_child"], depth + 1))
                stack.append((node["right_child"], depth + 1))
        total += weighted / reached if reached else 0.0
    return total
