"""Checks on a log before a retrain trains on it: what a broken pipeline upstream looks like.

A tracking outage, a bot, a truncated export or a change of id format does not fail any reader:
the log still parses, the model still fits, and it is worse for every user. These checks look at
the *new* days of the log (since the live version's newest event) against the days before them and
against the log the live version was trained on, and name what looks wrong. Pure functions over
arrays: the retrain command decides what to do with the problems (stop, or go on with `--force`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from training.interaction_log import InteractionLog

DAY = 86_400


@dataclass(frozen=True)
class CheckLimits:
    min_size_ratio: float = 0.7  # the log against the live version's log, in events
    max_size_ratio: float = 3.0
    outage_ratio: float = 0.6  # a new day below this share of a usual day (the median)...
    outage_quantile_ratio: float = 0.8  # ...and below this share of the 5th-percentile day
    baseline_days: int = 14  # the usual day: the days just before the new ones
    bot_share: float = 0.01  # a user with more than this share of the new days' events...
    bot_p99_multiple: float = 10.0  # ...and this many times the 99th-percentile user
    type_share_shift: float = 0.15  # an event type's share moving more than this (absolute)
    unknown_item_share: float = 0.2  # new events on items the catalog does not know


@dataclass(frozen=True)
class Problem:
    check: str  # size, outage, bot, event_types, catalog
    message: str


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def check_size(events: int, previous_events: int | None, limits: CheckLimits) -> list[Problem]:
    if not previous_events:
        return []
    ratio = events / previous_events
    if ratio < limits.min_size_ratio:
        return [
            Problem(
                "size",
                f"the log has {events:,} events, {ratio:.0%} of the {previous_events:,} the live version "
                "was trained on (a truncated export, a wrong query?)",
            )
        ]
    if ratio > limits.max_size_ratio:
        return [
            Problem(
                "size",
                f"the log has {events:,} events, {ratio:.1f}x the {previous_events:,} the live version "
                "was trained on (duplicated rows, another table joined in?)",
            )
        ]
    return []


def check_outage(times: np.ndarray, window_start: int, limits: CheckLimits) -> list[Problem]:
    """Whole new days with far fewer events than the usual day. The newest day is left out: a log
    exported mid-day ends with a partial one."""
    if not len(times):
        return []
    first_new = int(np.ceil(window_start / DAY))
    last_whole = int(times.max()) // DAY  # the newest day, partial: excluded
    base_from = first_new - limits.baseline_days
    days = times // DAY
    counts = np.bincount(days[days >= base_from] - base_from, minlength=last_whole - base_from + 1)
    baseline = counts[: limits.baseline_days]
    if (baseline > 0).sum() < limits.baseline_days // 2:
        return []  # too little history to know what a usual day is
    usual = float(np.median(baseline))
    floor = min(limits.outage_ratio * usual, limits.outage_quantile_ratio * float(np.percentile(baseline, 5)))
    problems = []
    for offset in range(limits.baseline_days, last_whole - base_from):
        if counts[offset] < floor:
            day = _day((base_from + offset) * DAY)
            problems.append(
                Problem(
                    "outage",
                    f"{day} has {counts[offset]:,} events, {counts[offset] / usual:.0%} of the usual "
                    f"{usual:,.0f} a day (a tracking outage?)",
                )
            )
    return problems


def check_bots(user_codes: np.ndarray, user_ids: np.ndarray, limits: CheckLimits) -> list[Problem]:
    """Users with an outsized share of the new days' events (`user_codes`: those rows only)."""
    if not len(user_codes):
        return []
    counts = np.bincount(user_codes)
    active = counts[counts > 0]
    p99 = float(np.percentile(active, 99))
    limit = max(limits.bot_share * len(user_codes), limits.bot_p99_multiple * p99)
    suspects = np.flatnonzero(counts > limit)
    suspects = suspects[np.argsort(-counts[suspects])]
    return [
        Problem(
            "bot",
            f"user {user_ids[u]!r} has {counts[u]:,} of the {len(user_codes):,} new events "
            f"({counts[u] / len(user_codes):.1%}; {counts[u] / p99:.0f}x the 99th-percentile user): a bot?",
        )
        for u in suspects[:5].tolist()
    ]


def type_shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: n / total for name, n in counts.items()} if total else {}


def check_event_types(
    new: Mapping[str, int], before: Mapping[str, int], limits: CheckLimits
) -> list[Problem]:
    """An event type whose share of events moved a lot: a tracker renamed or lost, a bot."""
    now, then = type_shares(new), type_shares(before)
    if not now or not then:
        return []
    return [
        Problem(
            "event_types",
            f"'{name}' events went from {then.get(name, 0):.0%} to {now.get(name, 0):.0%} of events",
        )
        for name in sorted(set(now) | set(then))
        if abs(now.get(name, 0.0) - then.get(name, 0.0)) > limits.type_share_shift
    ]


def check_catalog(new_items: np.ndarray, known: set[str] | None, limits: CheckLimits) -> list[Problem]:
    """New events whose item ids the catalog (the items file, the items API) does not know."""
    if known is None or not len(new_items):
        return []
    unknown = float(np.mean([item not in known for item in new_items.tolist()]))
    if unknown <= limits.unknown_item_share:
        return []
    sample = next(item for item in new_items.tolist() if item not in known)
    return [
        Problem(
            "catalog",
            f"{unknown:.0%} of the new events name items the catalog does not know (e.g. {sample!r}): "
            "did the item ids change format?",
        )
    ]


def check_log(
    log: InteractionLog,
    window_start: int,
    previous: Mapping[str, Any] | None,
    known_items: set[str] | None = None,
    limits: CheckLimits | None = None,
) -> list[Problem]:
    """Every check on a log whose new days start at `window_start` (epoch seconds); `previous`
    is the live version's data report (its metrics.json `data`), when there is one."""
    limits = limits or CheckLimits()
    assert log.timestamps is not None, "the retrain needs timestamps"
    new = log.timestamps >= window_start
    fresh, earlier = log.subset(new), log.subset(~new)
    problems = check_size(len(log), (previous or {}).get("events"), limits)
    problems += check_outage(log.timestamps, window_start, limits)
    problems += check_bots(fresh.user_codes, log.user_ids, limits)
    problems += check_event_types(fresh.event_type_counts(), earlier.event_type_counts(), limits)
    problems += check_catalog(log.item_ids[fresh.item_codes], known_items, limits)
    return problems
