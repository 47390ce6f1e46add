"""Choosing the store from settings: Redis when RECSYS_REDIS_URL is set, embedded otherwise."""

from __future__ import annotations

from feature_store.base import FeatureStore
from feature_store.settings import StoreSettings


def open_store(settings: StoreSettings, *, bulk: bool = False) -> FeatureStore:
    if settings.redis_url is not None:
        from feature_store.redis_store import RedisStore

        return RedisStore.from_settings(settings, bulk=bulk)
    from feature_store.embedded_store import EmbeddedStore

    return EmbeddedStore(
        settings.artifacts,
        recent_limit=settings.recent_limit,
        stream_maxlen=min(settings.stream_maxlen, 1_000_000),
        idempotency_ttl_s=settings.idempotency_ttl_s,
        live_events_per_user=settings.live_events_per_user,
    )
