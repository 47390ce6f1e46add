"""A/B variants: stable hashing, the configured split, and clear errors in the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.experiments import (
    Experiment,
    ExperimentConfigError,
    Variant,
    bucket,
    load_experiment,
    single_variant,
)


def _experiment(shares: dict[str, float], salt: str = "exp-1") -> Experiment:
    return Experiment(salt=salt, variants=[Variant(name=n, traffic=t) for n, t in shares.items()])


def test_bucketing_is_stable_for_a_user_and_changes_with_the_salt() -> None:
    assert bucket("u42", "a") == bucket("u42", "a")
    assert bucket("u42", "a") != bucket("u42", "b")
    exp = _experiment({"control": 0.5, "treatment": 0.5})
    assert {exp.assign("u42").name for _ in range(10)} == {exp.assign("u42").name}


def test_the_split_on_100k_ids_is_within_one_percent_of_the_configuration() -> None:
    shares = {"control": 0.7, "treatment": 0.2, "holdout": 0.1}
    exp = _experiment(shares)
    n = 100_000
    counts = dict.fromkeys(shares, 0)
    for i in range(n):
        counts[exp.assign(f"user-{i:06d}").name] += 1
    for name, share in shares.items():
        assert abs(counts[name] / n - share) < 0.01, counts


def test_a_file_with_shares_not_adding_up_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "ab.toml"
    path.write_text('salt = "x"\n[[variants]]\nname = "a"\ntraffic = 0.5\n')
    with pytest.raises(ExperimentConfigError, match="add up to 0.5"):
        load_experiment(path)


def test_a_variant_with_inconsistent_thresholds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ab.json"
    bad = {"name": "a", "traffic": 1.0, "warm_min_interactions": 30}
    path.write_text(json.dumps({"salt": "x", "variants": [bad]}))
    with pytest.raises(ExperimentConfigError, match="warm_min < hot_min"):
        load_experiment(path)


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ExperimentConfigError, match="cannot read"):
        load_experiment(tmp_path / "missing.toml")
    broken = tmp_path / "ab.toml"
    broken.write_text("salt = ")
    with pytest.raises(ExperimentConfigError, match="not valid TOML"):
        load_experiment(broken)


def test_without_a_file_every_user_is_in_the_default_variant() -> None:
    assert single_variant().assign("anyone").name == "default"
