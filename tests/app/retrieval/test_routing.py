"""Tier routing: DESIGN.md's table, and honest names when a tier's model is missing."""

from __future__ import annotations

import pytest

from app.retrieval.routing import Capabilities, Method, Thresholds, Tier, route

ALS = Capabilities(als=True)
EVERYTHING = Capabilities(als=True, content=True, two_tower=True)
T = Thresholds()


@pytest.mark.parametrize(
    ("count", "tier", "method"),
    [
        (0, Tier.cold, Method.popularity),
        (1, Tier.cold, Method.content_based),
        (4, Tier.cold, Method.content_based),
        (5, Tier.warm, Method.als),
        (19, Tier.warm, Method.als),
        (20, Tier.hot, Method.ensemble),
        (5_000, Tier.hot, Method.ensemble),
    ],
)
def test_the_design_table_when_every_model_can_serve(count: int, tier: Tier, method: Method) -> None:
    chosen = route(count, EVERYTHING, T)
    assert (chosen.tier, chosen.method, chosen.is_fallback) == (tier, method, False)


def test_a_hot_user_without_two_tower_gets_als_named_as_such_never_ensemble() -> None:
    chosen = route(25, ALS, T)
    assert (chosen.tier, chosen.method, chosen.wanted) == (Tier.hot, Method.als, Method.ensemble)


def test_a_cold_user_with_three_events_gets_content_based_when_the_model_exists() -> None:
    assert route(3, EVERYTHING, T).method is Method.content_based


def test_a_cold_user_with_events_but_no_content_model_gets_als_fold_in() -> None:
    assert route(3, ALS, T).method is Method.als


def test_a_warm_user_with_no_vector_falls_back_to_popularity_and_says_so() -> None:
    chosen = route(7, Capabilities(), T)
    assert (chosen.tier, chosen.method, chosen.wanted) == (Tier.warm, Method.popularity_fallback, Method.als)


def test_an_unknown_count_means_the_store_failed_and_popularity_falls_back() -> None:
    chosen = route(None, EVERYTHING, T)
    assert (chosen.tier, chosen.method) == (Tier.unknown, Method.popularity_fallback)


def test_thresholds_come_from_settings() -> None:
    assert route(3, ALS, Thresholds(warm_min=3, hot_min=10)).tier is Tier.warm
    assert route(10, ALS, Thresholds(warm_min=3, hot_min=10)).tier is Tier.hot


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="warm_min < hot_min"):
        Thresholds(warm_min=20, hot_min=5)
