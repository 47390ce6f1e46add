import pytest
from pydantic import ValidationError
from redis.crc import key_slot

from feature_store.keys import KeySchema
from feature_store.settings import StoreSettings


def test_the_pointer_keys_share_one_cluster_slot_so_the_switch_is_atomic() -> None:
    keys = KeySchema("shop")
    slots = {key_slot(k.encode()) for k in (keys.active, keys.previous, keys.versions)}
    assert len(slots) == 1


def test_all_keys_of_one_user_and_version_share_a_slot() -> None:
    keys = KeySchema("shop")
    stem = keys.user("als_v3", "9f1c-uuid")
    assert len({key_slot((stem + s).encode()) for s in (":p", ":n", ":s", ":r")}) == 1
    assert keys.profile("als_v3", "9f1c-uuid").startswith("shop:als_v3:")


def test_version_patterns_escape_glob_characters() -> None:
    keys = KeySchema("a*b")
    assert keys.version_pattern("v[1]") == "a\\*b:v\\[1\\]:*"


def test_each_idempotency_marker_shares_the_slot_of_what_it_guards() -> None:
    keys = KeySchema("shop")
    for user in ("9f1c-uuid", "a}b", "{odd", "x:y}:z"):
        stem = keys.user("als_v3", user)
        assert key_slot(keys.user_idempotency("req-1", user).encode()) == key_slot((stem + ":n").encode())
    assert key_slot(keys.stream_idempotency("req-1").encode()) == key_slot(keys.events.encode())


def test_markers_of_different_users_and_requests_never_coincide() -> None:
    keys = KeySchema("shop")
    # Without the trailing length these two would both be shop:idem:u:{a}:b}:c
    assert keys.user_idempotency("b}:c", "a") != keys.user_idempotency("c", "a}:b")
    assert keys.user_idempotency("r", "shop:events") != keys.stream_idempotency("r")


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValidationError):
        StoreSettings(redis_prefix="{shop}")
