"""A/B variants: which variant serves a request, from the `X-AB-Variant` header or a stable hash.

The file (TOML or JSON) names a salt and the variants; each variant takes a share of traffic and
may pin a model version and override routing settings:

    salt = "exp-2026-11"
    [[variants]]
    name = "control"
    traffic = 0.5
    [[variants]]
    name = "fresh-model"
    traffic = 0.5
    model_version = "als_v7"
    warm_min_interactions = 3

Bucketing hashes `salt + user id` with BLAKE2b, so a user stays in one variant across requests,
processes and restarts, and a new salt reshuffles everyone for the next experiment.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from bisect import bisect_right
from itertools import accumulate
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.retrieval.routing import Thresholds
from feature_store.fusion import SOURCES as FUSION_SOURCES

DEFAULT_VARIANT = "default"


class ExperimentConfigError(Exception):
    """The A/B file is missing or invalid; the message says what to fix."""


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="Header value and label.")
    traffic: float = Field(ge=0.0, le=1.0, description="Share of users bucketed into this variant.")
    model_version: str | None = Field(None, description="Serve this version instead of the active one.")
    warm_min_interactions: int | None = Field(None, ge=1)
    hot_min_interactions: int | None = Field(None, ge=2)
    ef_search: int | None = Field(None, ge=1, le=65_536, description="Search beam for this variant.")
    ensemble_weights: dict[str, float] | None = Field(
        None, description="Hot-tier fusion weights per source (als, two_tower, content) for this variant."
    )
    ensemble_rrf_k: float | None = Field(
        None, gt=0, le=10_000, description="Fusion constant for this variant."
    )
    ranker: bool | None = Field(
        None,
        description="Order the candidates with the version's ranker (true) or answer unranked (false), "
        "for an A/B test of the ranking stage; null: RECSYS_RANKER.",
    )

    @model_validator(mode="after")
    def _known_sources(self) -> Variant:
        unknown = set(self.ensemble_weights or {}) - set(FUSION_SOURCES)
        if unknown:
            raise ValueError(
                f"ensemble_weights: unknown sources {sorted(unknown)}; known: {', '.join(FUSION_SOURCES)}"
            )
        if self.ensemble_weights is not None and not any(w > 0 for w in self.ensemble_weights.values()):
            raise ValueError("ensemble_weights: at least one weight must be positive")
        return self

    def thresholds(self, default: Thresholds) -> Thresholds:
        return Thresholds(
            self.warm_min_interactions or default.warm_min, self.hot_min_interactions or default.hot_min
        )


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str = Field(min_length=1, max_length=256)
    variants: list[Variant] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _valid_split(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.traffic for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"traffic shares must add up to 1, they add up to {total:g}")
        for v in self.variants:
            v.thresholds(Thresholds())  # raises on warm >= hot
        return self

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def get(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def assign(self, user_id: str) -> Variant:
        cumulative = list(accumulate(v.traffic for v in self.variants))
        i = bisect_right(cumulative, bucket(user_id, self.salt))
        return self.variants[min(i, len(self.variants) - 1)]


def bucket(user_id: str, salt: str) -> float:
    """A stable, uniform number in [0, 1) for a user in an experiment."""
    digest = hashlib.blake2b(f"{salt}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def single_variant() -> Experiment:
    return Experiment(salt="none", variants=[Variant(name=DEFAULT_VARIANT, traffic=1.0)])


def load_experiment(path: Path | None) -> Experiment:
    if path is None:
        return single_variant()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ExperimentConfigError(f"{path}: cannot read the A/B file ({exc.strerror})") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ExperimentConfigError(f"{path}: not valid {kind}: {exc}") from exc
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ExperimentConfigError(f"{path}: {problems}") from exc
