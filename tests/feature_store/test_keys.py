from redis.crc import key_slot

from feature_store.keys import KeySchema


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
