"""The data checks as pure functions: each fires on the broken log it is for, and stays quiet on an
ordinary one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from training.interaction_log import from_table
from training.log_checks import DAY, CheckLimits, check_catalog, check_log, check_size

START = 1_700_000_000


def _log(days: int = 40, per_day: int = 300, users: int = 200, seed: int = 0, extra: list | None = None):
    rng = np.random.default_rng(seed)
    n = days * per_day
    rows = {
        "user_id": [f"u{u}" for u in rng.integers(0, users, n)],
        "item_id": [f"i{i}" for i in rng.integers(0, 50, n)],
        "event_type": rng.choice(["view", "like"], n, p=[0.7, 0.3]).tolist(),
        "timestamp": (START + np.sort(rng.integers(0, days * DAY, n))).tolist(),
    }
    for row in extra or []:
        for key in rows:
            rows[key].append(row[key])
    return from_table(pa.table(rows), {"view": 0.5, "like": 2.0})


WINDOW = START + 33 * DAY  # the last 7 days are new


def test_an_ordinary_log_passes_every_check() -> None:
    assert check_log(_log(), WINDOW, {"events": 10_000}, {f"i{i}" for i in range(50)}) == []


def test_half_a_day_missing_is_an_outage_named_by_its_date() -> None:
    log = _log()
    assert log.timestamps is not None
    day = (log.timestamps - START) // DAY
    lost = (day == 35) & (np.arange(len(log)) % 2 == 0)
    problems = check_log(log.subset(~lost), WINDOW, None)
    assert [p.check for p in problems] == ["outage"]
    assert problems[0].message.startswith("2023-12-20 has ") and "a tracking outage?" in problems[0].message


def test_a_user_with_an_outsized_share_of_the_new_days_is_a_bot() -> None:
    flood = [
        {"user_id": "scraper", "item_id": f"i{j % 50}", "event_type": "view", "timestamp": WINDOW + j * 60}
        for j in range(400)
    ]
    problems = check_log(_log(extra=flood), WINDOW, None)
    assert any(p.check == "bot" and "'scraper'" in p.message for p in problems)


def test_an_event_type_whose_share_jumps_is_named_with_both_shares() -> None:
    rows = [
        {
            "user_id": f"u{j % 200}",
            "item_id": f"i{j % 50}",
            "event_type": "like",
            "timestamp": WINDOW + j * 30,
        }
        for j in range(2_000)
    ]
    problems = check_log(_log(extra=rows), WINDOW, None)
    assert any(p.check == "event_types" and "'like' events went from 30% to" in p.message for p in problems)


def test_a_log_far_smaller_or_larger_than_the_last_one_is_refused() -> None:
    limits = CheckLimits()
    assert "a truncated export" in check_size(5_000, 10_000, limits)[0].message
    assert "3.5x" in check_size(35_000, 10_000, limits)[0].message
    assert check_size(12_000, 10_000, limits) == [] and check_size(12_000, None, limits) == []


def test_new_events_on_items_the_catalog_does_not_know_point_at_an_id_change() -> None:
    new_items = np.array([f"SKU-{i}" for i in range(80)] + [f"i{i}" for i in range(20)], dtype=object)
    problem = check_catalog(new_items, {f"i{i}" for i in range(50)}, CheckLimits())[0]
    assert problem.check == "catalog" and "80% of the new events" in problem.message
    assert check_catalog(new_items, None, CheckLimits()) == []
