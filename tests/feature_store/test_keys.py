import pytest
from pydantic import ValidationError
from redis.crc import key_slot

from feature_store.keys import KeySchema
from feature_store.settings import StoreSettings


def test_the_pointer_keys_share_one_cluster_slot_so_the_switch_is_atomic() -> None:
    keys = KeySchema("shop")
    slots = {key_slot(k.encode()) for k in (keys.active, keys.previous, keys.versions)}
    assert len(slots) == 1


def test_a_users_profile_in_any_version_shares_a_slot_with_their_live_events() -> None:
    keys = KeySchema("shop")
    user = "9f1c-uuid"
    slots = {key_slot(keys.profile(v, user).encode()) for v in ("als_v3", "als_v4")}
    assert slots == {key_slot(keys.live(user).encode())}
    assert keys.profile("als_v3", user).startswith("shop:als_v3:")
    assert not keys.live(user).startswith("shop:als_v3:")  # deleting a version keeps the events


def test_version_patterns_escape_glob_characters() -> None:
    keys = KeySchema("a*b")
    assert keys.version_pattern("v[1]") == "a\\*b:v\\[1\\]:*"


def test_each_idempotency_marker_shares_the_slot_of_what_it_guards() -> None:
    keys = KeySchema("shop")
    for user in ("9f1c-uuid", "a}b", "{odd", "x:y}:z"):
        assert key_slot(keys.user_idempotency("req-1", user).encode()) == key_slot(keys.live(user).encode())
    assert key_slot(keys.stream_idempotency("req-1").encode()) == key_slot(keys.events.encode())


def test_markers_of_different_users_and_requests_never_coincide() -> None:
    keys = KeySchema("shop")
    # Without the trailing length these two would both be shop:idem:u:{a}:b}:c
    assert keys.user_idempotency("b}:c", "a") != keys.user_idempotency("c", "a}:b")
    assert keys.user_idempotency("r", "shop:events") != keys.stream_idempotency("r")


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValidationError):
        StoreSettings(redis_prefix="{shop}")
