"""Properties of tier routing (app/retrieval/routing.py) over every count, threshold pair and
combination of capabilities."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.retrieval.routing import Capabilities, Method, Route, Thresholds, Tier, route, tier_of

SETTINGS = settings(max_examples=30, deadline=None)

# Colder to hotter; `unknown` is not on this scale (it has no count).
WARMTH = {Tier.cold: 0, Tier.warm: 1, Tier.hot: 2}
FALLBACKS = {Method.popularity, Method.popularity_fallback}
CAPABILITY_OF = {Method.als: "als", Method.content_based: "content", Method.two_tower: "two_tower"}

counts = st.integers(min_value=-1_000, max_value=1_000_000)
capabilities = st.builds(Capabilities, als=st.booleans(), content=st.booleans(), two_tower=st.booleans())


@st.composite
def thresholds(draw: st.DrawFn) -> Thresholds:
    warm_min = draw(st.integers(min_value=1, max_value=10_000))
    hot_min = draw(st.integers(min_value=warm_min + 1, max_value=warm_min + 10_000))
    return Thresholds(warm_min=warm_min, hot_min=hot_min)


def served_by(method: Method, caps: Capabilities) -> bool:
    """Whether `caps` can really serve `method` (popularity always can)."""
    if method is Method.ensemble:
        return caps.als and caps.two_tower
    if method in CAPABILITY_OF:
        return bool(getattr(caps, CAPABILITY_OF[method]))
    return method in FALLBACKS


@given(a=counts, b=counts, caps=capabilities, th=thresholds())
@SETTINGS
def test_more_interactions_never_make_a_user_colder(
    a: int, b: int, caps: Capabilities, th: Thresholds
) -> None:
    low, high = sorted((a, b))
    assert WARMTH[route(low, caps, th).tier] <= WARMTH[route(high, caps, th).tier]


@given(th=thresholds(), caps=capabilities)
@SETTINGS
def test_thresholds_are_respected_exactly_at_the_boundaries(th: Thresholds, caps: Capabilities) -> None:
    assert route(th.warm_min - 1, caps, th).tier is Tier.cold
    assert route(th.warm_min, caps, th).tier is Tier.warm
    assert route(th.hot_min - 1, caps, th).tier is Tier.warm
    assert route(th.hot_min, caps, th).tier is Tier.hot


@given(count=counts, caps=capabilities, th=thresholds())
@SETTINGS
def test_the_tier_is_cold_below_warm_min_and_hot_from_hot_min(
    count: int, caps: Capabilities, th: Thresholds
) -> None:
    expected = Tier.cold if count < th.warm_min else Tier.warm if count < th.hot_min else Tier.hot
    assert route(count, caps, th).tier is expected is tier_of(count, th)


@given(count=st.one_of(st.none(), counts), caps=capabilities, th=thresholds())
@SETTINGS
def test_the_chosen_method_is_one_the_capabilities_serve_or_a_named_fallback(
    count: int | None, caps: Capabilities, th: Thresholds
) -> None:
    assert served_by(route(count, caps, th).method, caps)


@given(count=counts, caps=capabilities, th=thresholds())
@SETTINGS
def test_ensemble_is_never_chosen_unless_both_als_and_two_tower_can_serve(
    count: int, caps: Capabilities, th: Thresholds
) -> None:
    if route(count, caps, th).method is Method.ensemble:
        assert caps.als and caps.two_tower


@given(
    count=counts,
    caps=capabilities,
    th=thresholds(),
    removed=st.sampled_from(["als", "content", "two_tower"]),
)
@SETTINGS
def test_a_method_removed_from_the_capabilities_is_never_chosen(
    count: int, caps: Capabilities, th: Thresholds, removed: str
) -> None:
    method = route(count, dataclasses.replace(caps, **{removed: False}), th).method
    assert CAPABILITY_OF.get(method) != removed
    if removed in ("als", "two_tower"):
        assert method is not Method.ensemble


@given(count=st.one_of(st.none(), counts), caps=capabilities, th=thresholds())
@SETTINGS
def test_routing_is_deterministic(count: int | None, caps: Capabilities, th: Thresholds) -> None:
    first = route(count, caps, th)
    again = route(
        count, Capabilities(caps.als, caps.content, caps.two_tower), Thresholds(*dataclasses.astuple(th))
    )
    assert first == again and isinstance(first, Route)


@given(count=counts, caps=capabilities, th=thresholds())
@SETTINGS
def test_is_fallback_exactly_when_the_method_is_not_the_tiers_own(
    count: int, caps: Capabilities, th: Thresholds
) -> None:
    chosen = route(count, caps, th)
    own = {Tier.cold: Method.content_based, Tier.warm: Method.als, Tier.hot: Method.ensemble}
    assert chosen.wanted is (Method.popularity if count <= 0 else own[chosen.tier])
    assert chosen.is_fallback == (chosen.method is not chosen.wanted)


@given(count=st.integers(min_value=1, max_value=1_000_000), th=thresholds())
@SETTINGS
def test_with_every_model_available_a_user_with_history_never_falls_back(count: int, th: Thresholds) -> None:
    assert not route(count, Capabilities(als=True, content=True, two_tower=True), th).is_fallback


@given(count=st.integers(min_value=1, max_value=1_000_000), th=thresholds())
@SETTINGS
def test_with_no_model_available_a_user_with_history_gets_the_popularity_fallback(
    count: int, th: Thresholds
) -> None:
    chosen = route(count, Capabilities(), th)
    assert chosen.method is Method.popularity_fallback and chosen.is_fallback


@given(count=st.integers(min_value=1, max_value=1_000_000), caps=capabilities, th=thresholds())
@SETTINGS
def test_an_als_vector_or_a_content_model_always_beats_the_popularity_fallback(
    count: int, caps: Capabilities, th: Thresholds
) -> None:
    assume(caps.als or caps.content)
    assert route(count, caps, th).method is not Method.popularity_fallback


@given(count=counts, caps=capabilities, more=capabilities, th=thresholds())
@SETTINGS
def test_more_capabilities_never_turn_the_tiers_own_method_into_a_fallback(
    count: int, caps: Capabilities, more: Capabilities, th: Thresholds
) -> None:
    union = Capabilities(caps.als or more.als, caps.content or more.content, caps.two_tower or more.two_tower)
    before, after = route(count, caps, th), route(count, union, th)
    if not before.is_fallback:
        assert after == before
    if after.method is Method.popularity_fallback:
        assert before.method is Method.popularity_fallback


@given(caps=capabilities, th=thresholds())
@SETTINGS
def test_an_unknown_count_is_the_unknown_tier_served_by_the_popularity_fallback(
    caps: Capabilities, th: Thresholds
) -> None:
    assert route(None, caps, th) == Route(Tier.unknown, Method.popularity_fallback, Method.popularity)


@given(count=st.integers(min_value=-1_000, max_value=0), caps=capabilities, th=thresholds())
@SETTINGS
def test_a_user_without_interactions_gets_plain_popularity_whatever_can_serve(
    count: int, caps: Capabilities, th: Thresholds
) -> None:
    assert route(count, caps, th) == Route(Tier.cold, Method.popularity, Method.popularity)


@given(warm_min=st.integers(-100, 100), hot_min=st.integers(-100, 100))
@SETTINGS
def test_thresholds_are_accepted_exactly_when_one_le_warm_min_lt_hot_min(warm_min: int, hot_min: int) -> None:
    if 1 <= warm_min < hot_min:
        assert Thresholds(warm_min, hot_min) == Thresholds(warm_min=warm_min, hot_min=hot_min)
    else:
        with pytest.raises(ValueError, match="warm_min < hot_min"):
            Thresholds(warm_min, hot_min)
