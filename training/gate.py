"""Whether a retrained candidate may replace the live version: a pure decision over two scores on
the same fresh holdout (training/fresh_holdout.py).

The primary metric (Recall@k over every evaluated user) may not drop by more than a relative
tolerance, and no guardrail may regress: the share of the catalog recommended, every tier against
popularity on the same users, and the share of answers served by a fallback. A refusal names each
failed check with its numbers, so the person reading the cron mail knows what to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.fresh_holdout import VersionScore

MIN_TIER_USERS = 30  # fewer users in a tier than this: too noisy to gate on


@dataclass(frozen=True)
class GateLimits:
    tolerance: float = 0.02  # relative drop of the primary metric allowed (noise, not regression)
    coverage_drop: float = 0.25  # relative drop of coverage allowed
    fallback_rise: float = 0.02  # absolute rise of the fallback share allowed


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    publish: bool
    checks: list[Check]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


def decide(candidate: VersionScore, live: VersionScore | None, limits: GateLimits | None = None) -> Decision:
    """Publish when every check holds. Without a live version only the tier-vs-popularity checks
    apply (there is nothing to regress from)."""
    limits = limits or GateLimits()
    checks: list[Check] = []
    k = candidate.k
    if live is not None:
        floor = live.recall * (1 - limits.tolerance)
        checks.append(
            Check(
                f"recall@{k}",
                candidate.recall >= floor,
                f"candidate {candidate.recall:.4f} vs live {live.recall:.4f} "
                f"(at least {floor:.4f} allowed, {limits.tolerance:.0%} tolerance)",
            )
        )
        floor = live.coverage * (1 - limits.coverage_drop)
        checks.append(
            Check(
                "coverage",
                candidate.coverage >= floor,
                f"candidate {candidate.coverage:.3f} vs live {live.coverage:.3f} of the catalog recommended",
            )
        )
        ceiling = live.fallback_share + limits.fallback_rise
        checks.append(
            Check(
                "fallback share",
                candidate.fallback_share <= ceiling,
                f"candidate {candidate.fallback_share:.1%} vs live {live.fallback_share:.1%} of answers "
                "served by a fallback",
            )
        )
    for tier, score in candidate.tiers.items():
        by_popularity = sum(n for m, n in score.methods.items() if m.startswith("popularity"))
        if score.users < MIN_TIER_USERS or by_popularity * 2 >= score.users:
            continue  # too few users to tell, or popularity itself serves the tier
        floor = score.popularity_recall * (1 - limits.tolerance)
        checks.append(
            Check(
                f"{tier} tier vs popularity",
                score.recall >= floor,
                f"recall@{k} {score.recall:.4f} vs popularity {score.popularity_recall:.4f} "
                f"({score.users:,} users)",
            )
        )
    return Decision(all(c.ok for c in checks), checks)
