"""The gate as a pure decision: what passes, what is refused, and the reason it gives."""

from __future__ import annotations

from training.fresh_holdout import TierScore, VersionScore
from training.gate import GateLimits, decide


def _score(
    recall: float, coverage: float = 0.5, fallback: float = 0.0, warm: float | None = None
) -> VersionScore:
    warm_recall = recall if warm is None else warm
    return VersionScore(
        version="v",
        k=20,
        users=1_000,
        recall=recall,
        coverage=coverage,
        fallback_share=fallback,
        methods={"als": 600, "popularity": 400},
        tiers={
            "cold": TierScore(400, 0.10, 0.10, {"popularity": 400}),  # popularity serves it: not gated
            "warm": TierScore(600, warm_recall, 0.12, {"als": 600}),
        },
    )


def test_a_candidate_within_the_tolerance_passes() -> None:
    decision = decide(_score(0.295), _score(0.300), GateLimits(tolerance=0.02))
    assert decision.publish and decision.reasons == []
    assert [c.name for c in decision.checks] == [
        "recall@20",
        "coverage",
        "fallback share",
        "warm tier vs popularity",
    ]


def test_a_drop_beyond_the_tolerance_is_refused_with_both_numbers() -> None:
    decision = decide(_score(0.28), _score(0.30), GateLimits(tolerance=0.02))
    assert not decision.publish
    assert decision.reasons == [
        "recall@20: candidate 0.2800 vs live 0.3000 (at least 0.2940 allowed, 2% tolerance)"
    ]


def test_guardrails_refuse_even_when_the_primary_metric_improves() -> None:
    narrow = decide(_score(0.31, coverage=0.2), _score(0.30, coverage=0.5))
    assert not narrow.publish and narrow.reasons[0].startswith("coverage:")
    fallback = decide(_score(0.31, fallback=0.10), _score(0.30, fallback=0.01))
    assert not fallback.publish and fallback.reasons[0].startswith("fallback share:")
    tier = decide(_score(0.31, warm=0.05), _score(0.30))
    assert not tier.publish and tier.reasons[0].startswith("warm tier vs popularity:")


def test_without_a_live_version_only_the_tiers_against_popularity_are_checked() -> None:
    decision = decide(_score(0.3), None)
    assert decision.publish and [c.name for c in decision.checks] == ["warm tier vs popularity"]
