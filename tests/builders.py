"""Small real versions for tests: synthetic logs trained with the real pipeline (seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.pipeline import train
from training.settings import TrainSettings
from training.synthetic import SyntheticConfig, SyntheticData, generate


def small_data(users: int = 600, items: int = 300, seed: int = 5) -> SyntheticData:
    return generate(SyntheticConfig(users=users, items=items, interactions=users * 12, clusters=6, seed=seed))


def train_versions(
    artifacts: Path, users: int = 600, versions: int = 1, factors: int = 8, **overrides: Any
) -> list[Path]:
    """`overrides`: more TrainSettings fields (an index kind, say)."""
    data = small_data(users)
    dataset = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    settings = TrainSettings(
        artifacts=artifacts,
        factors=factors,
        regularization=1.0,
        alpha=4.0,
        iterations=2,
        test_split=0.0,
        **overrides,
    )
    return [train(dataset, settings, items=data.items).version_dir for _ in range(versions)]  # type: ignore[misc]


def train_all_version(artifacts: Path, users: int = 600, **overrides: Any) -> Path:
    """A train-all version (ALS, popularity, content, Two-Tower, fusion) of small synthetic data,
    small models and few epochs: seconds, not minutes. `overrides`: more TrainSettings fields
    (no Two-Tower, a ranker)."""
    from training.pipeline import train_all

    data = small_data(users)
    dataset = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    settings = TrainSettings(
        artifacts=artifacts,
        factors=8,
        regularization=1.0,
        alpha=4.0,
        iterations=2,
        test_split=0.0,
        content_dim=8,
        two_tower_dim=16,
        two_tower_epochs=2,
        **overrides,
    )
    report = train_all(dataset, settings, items=data.items)
    assert report.version_dir is not None
    return report.version_dir
