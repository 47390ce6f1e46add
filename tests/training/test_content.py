"""Content vectors from item metadata, the popularity prior, and the cold-user profile."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.builders import small_data
from training.content import (
    ContentParams,
    choose_prior,
    content_profiles,
    fit_content,
    item_documents,
    scoring_queries,
    scoring_vectors,
)
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table


def _items() -> pa.Table:
    return pa.table(
        {
            "item_id": ["a", "b", "c", "d"],
            "category": ["jazz", "jazz", "metal", "metal"],
            "tags": ["smooth|piano", "smooth|sax", "loud|guitar", "loud|drums"],
            "text": ["late night piano trio", "saxophone ballads", "guitar riffs", "drum solos"],
            "price": [10.0, 12.0, 30.0, None],
        }
    )


def test_documents_keep_categories_apart_from_words_and_follow_the_item_order() -> None:
    docs, present = item_documents(_items(), np.array(["c", "a", "zzz"], dtype=object))
    assert present.tolist() == [True, True, False]
    assert "category_metal" in docs[0] and "tags_loud" in docs[0] and "guitar riffs" in docs[0]
    assert "category_jazz" in docs[1]
    assert docs[2] == ""


def test_items_of_one_category_are_nearer_each_other_than_across() -> None:
    model = fit_content(_items(), np.array(["a", "b", "c", "d"], dtype=object), ContentParams(dim=3))
    v = model.vectors
    assert v.dtype == np.float32 and v.shape[0] == 4
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert v[2] @ v[3] > v[2] @ v[1]


def test_items_without_metadata_get_zero_vectors() -> None:
    model = fit_content(_items(), np.array(["a", "b", "nope", "c", "d"], dtype=object), ContentParams(dim=2))
    assert not model.present[2] and not model.vectors[2].any()


def test_no_matching_metadata_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="item_id"):
        fit_content(_items(), np.array(["x", "y"], dtype=object))


def test_scores_are_cosine_plus_weighted_popularity() -> None:
    vectors = np.eye(3, dtype=np.float32)
    items = scoring_vectors(vectors, np.array([10.0, 5.0, 0.0], np.float32))
    query = scoring_queries(np.array([[0.0, 2.0, 0.0]], np.float32), beta=0.5)
    scores = query @ items.T
    np.testing.assert_allclose(scores[0], [0.5, 1.0 + 0.25, 0.0], rtol=1e-6)
    # A user with no profile scores by popularity alone.
    assert np.argmax(scoring_queries(np.zeros((1, 3), np.float32), 1.0) @ items.T) == 0


def test_profile_is_the_weighted_mean_of_positive_items() -> None:
    import scipy.sparse as sp

    vectors = np.eye(2, dtype=np.float32)
    m = sp.csr_matrix(np.array([[3.0, 1.0], [-1.0, 2.0]], np.float32))
    prof = content_profiles(vectors, m)
    np.testing.assert_allclose(prof, [[0.75, 0.25], [0.0, 1.0]])


def test_prior_is_chosen_on_short_histories_and_beats_pure_content_on_clustered_data() -> None:
    data = small_data(users=800, items=300)
    ds = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    model = fit_content(data.items, ds.item_ids, ContentParams(dim=16))
    beta, trials = choose_prior(model.vectors, ds.matrix, ds.times)
    assert set(trials) == {"0", "0.25", "0.5", "1", "2", "4"}
    assert trials[f"{beta:g}"] == max(trials.values())
