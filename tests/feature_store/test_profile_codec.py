import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.bulk_pack import pack_rows
from feature_store.profile_codec import ProfileDecodeError, pack_profile, unpack_profile
from tests.feature_store.conftest import make_table

floats = st.floats(-1e6, 1e6, width=32)


@given(
    count=st.integers(0, 2**32 - 1),
    vec=st.lists(floats, max_size=64),
    seen=st.lists(st.integers(0, 2**31 - 1), max_size=50),
    recent=st.lists(st.tuples(st.integers(0, 2**31 - 1), floats), max_size=20),
)
@settings(max_examples=200, deadline=None)
def test_a_packed_profile_unpacks_to_the_same_values(count, vec, seen, recent) -> None:
    items = np.array([r[0] for r in recent], np.int32)
    weights = np.array([r[1] for r in recent], np.float32)
    data = pack_profile(count, {"als": np.array(vec, np.float32)}, np.array(seen, np.int32), items, weights)
    back = unpack_profile(data)
    assert back.count == count
    np.testing.assert_array_equal(back.embeddings["als"], np.array(vec, np.float32))
    np.testing.assert_array_equal(back.seen, seen)
    np.testing.assert_array_equal(back.recent_items, items)
    np.testing.assert_array_equal(back.recent_weights, weights)


def test_bulk_packing_is_byte_identical_to_packing_one_user() -> None:
    table = make_table(n_users=40)
    limit = 5
    values = pack_rows(table, 3, 40, recent_limit=limit)
    for offset, value in enumerate(values):
        u = 3 + offset
        lo, hi = table.seen_indptr[u], table.seen_indptr[u + 1]
        rlo = max(table.recent_indptr[u], table.recent_indptr[u + 1] - limit)
        rhi = table.recent_indptr[u + 1]
        expected = pack_profile(
            int(table.counts[u]),
            {"als": table.embeddings["als"][u]},
            table.seen_items[lo:hi],
            table.recent_items[rlo:rhi],
            table.recent_weights[rlo:rhi],
        )
        assert value == expected


@pytest.mark.parametrize("bad", [b"", b"XX" + bytes(20), b"RP\x02" + bytes(20)])
def test_a_foreign_or_truncated_value_is_refused(bad: bytes) -> None:
    with pytest.raises(ProfileDecodeError):
        unpack_profile(bad)


def test_trailing_bytes_are_refused() -> None:
    data = pack_profile(1, {}, np.array([1], np.int32), np.array([], np.int32), np.array([], np.float32))
    with pytest.raises(ProfileDecodeError, match="trailing"):
        unpack_profile(data + b"\x00")
