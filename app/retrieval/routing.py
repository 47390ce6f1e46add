"""Tier routing (DESIGN.md's table) as a pure function: a user's interaction count and what can
serve them in, the tier and the method that answers out.

Each tier has a preference chain. The first method that can serve this user wins; when that is
not the tier's own method, the answer names what really ran (`als` for a hot user while no
Two-Tower model exists, never a pretend `ensemble`), and popularity standing in for anything
else is `popularity_fallback`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    cold = "cold"
    warm = "warm"
    hot = "hot"
    unknown = "unknown"  # the store could not tell us the user's history


class Method(StrEnum):
    popularity = "popularity"
    content_based = "content_based"
    als = "als"
    two_tower = "two_tower"
    ensemble = "ensemble"
    popularity_fallback = "popularity_fallback"


@dataclass(frozen=True)
class Thresholds:
    """Interaction counts where a user enters a tier: cold below `warm_min`, hot from `hot_min`."""

    warm_min: int = 5
    hot_min: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.warm_min < self.hot_min:
            raise ValueError(f"need 1 <= warm_min < hot_min, got {self.warm_min} and {self.hot_min}")


@dataclass(frozen=True)
class Capabilities:
    """What can serve this user in this version right now."""

    als: bool = False  # a stored ALS vector, or known items to fold one in from
    content: bool = False  # a content model and items to build a profile from
    two_tower: bool = False  # a Two-Tower user embedding and item index


@dataclass(frozen=True)
class Route:
    tier: Tier
    method: Method
    wanted: Method  # the tier's own method; differs from `method` when something was missing

    @property
    def is_fallback(self) -> bool:
        return self.method is not self.wanted


_CHAINS: dict[Tier, tuple[Method, ...]] = {
    Tier.warm: (Method.als, Method.content_based),
    Tier.hot: (Method.ensemble, Method.als, Method.two_tower, Method.content_based),
}
_CHAIN_COLD_WITH_EVENTS = (Method.content_based, Method.als)


def tier_of(count: int, thresholds: Thresholds) -> Tier:
    if count >= thresholds.hot_min:
        return Tier.hot
    if count >= thresholds.warm_min:
        return Tier.warm
    return Tier.cold


def _available(method: Method, caps: Capabilities) -> bool:
    if method is Method.ensemble:
        return caps.als and caps.two_tower
    if method is Method.als:
        return caps.als
    if method is Method.two_tower:
        return caps.two_tower
    if method is Method.content_based:
        return caps.content
    return True


def route(count: int | None, caps: Capabilities, thresholds: Thresholds) -> Route:
    """The tier of a user with `count` interactions (None: unknown, the store failed) and the
    first method of that tier's chain that `caps` allows."""
    if count is None:
        return Route(Tier.unknown, Method.popularity_fallback, Method.popularity)
    tier = tier_of(count, thresholds)
    if count <= 0:
        return Route(tier, Method.popularity, Method.popularity)
    chain = _CHAINS.get(tier, _CHAIN_COLD_WITH_EVENTS)
    for method in chain:
        if _available(method, caps):
            return Route(tier, method, chain[0])
    return Route(tier, Method.popularity_fallback, chain[0])
