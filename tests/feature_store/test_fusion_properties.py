"""Properties of weighted reciprocal rank fusion (feature_store/fusion.py).

Inputs look like what serving fuses: per source a ranked list of distinct item rows, possibly
padded at the end with -1 (Faiss' "no result"), and non-negative source weights.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from feature_store.fusion import FusionParams, fuse

SETTINGS = settings(max_examples=40, deadline=None)
NAMES = ("als", "two_tower", "content", "popularity")

Lists = list[tuple[str, np.ndarray]]

rrf_ks = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)
positive_weights = st.floats(min_value=0.01, max_value=10.0, allow_nan=False)
weights_or_zero = st.one_of(st.just(0.0), positive_weights)
ks = st.integers(min_value=0, max_value=40)


def ranked(max_row: int = 30, max_size: int = 15) -> st.SearchStrategy[list[int]]:
    """A ranked list of distinct rows, as one source returns them (before padding)."""
    return st.lists(st.integers(0, max_row), unique=True, max_size=max_size)


@st.composite
def sources(draw: st.DrawFn, min_lists: int = 1) -> tuple[Lists, dict[str, float]]:
    """1 to 4 uniquely named lists (some padded with -1) and a weight for each name."""
    n = draw(st.integers(min_value=min_lists, max_value=len(NAMES)))
    names = draw(st.permutations(NAMES))[:n]
    lists: Lists = []
    for name in names:
        rows = draw(ranked())
        padding = draw(st.integers(0, 3))
        lists.append((name, np.array(rows + [-1] * padding, np.int64)))
    weights = {name: draw(weights_or_zero) for name in names}
    return lists, weights


def brute_force_scores(lists: Lists, params: FusionParams) -> dict[int, float]:
    """The module docstring's formula: rank r (0-based) of source m earns w_m / (c + r + 1)."""
    scores: dict[int, float] = {}
    for name, rows in lists:
        weight = float(params.weights.get(name, 0.0))
        for r, row in enumerate(int(x) for x in rows if x >= 0):
            scores[row] = scores.get(row, 0.0) + weight / (params.rrf_k + r + 1)
    return scores


def all_rows(lists: Lists) -> set[int]:
    return {int(x) for _, rows in lists for x in rows if x >= 0}


@given(src=sources(), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_the_output_has_no_duplicates_at_most_k_rows_and_only_rows_of_the_inputs(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int
) -> None:
    lists, weights = src
    rows, scores, labels = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    out = rows.tolist()
    assert len(out) == len(set(out)) == len(scores) == len(labels) == min(k, len(all_rows(lists)))
    assert set(out) <= all_rows(lists)
    assert all(row >= 0 for row in out)


@given(src=sources(), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_fused_scores_never_increase_down_the_list(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int
) -> None:
    lists, weights = src
    _, scores, _ = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    assert scores.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)


@given(src=sources(), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_sources_name_exactly_the_lists_that_contained_the_row_in_list_order(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int
) -> None:
    lists, weights = src
    rows, _, labels = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    for row, label in zip(rows.tolist(), labels, strict=True):
        expected = [name for name, ranked_rows in lists if row in ranked_rows.tolist()]
        assert label == "+".join(expected)


@given(src=sources(), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_the_output_is_the_top_k_of_the_documented_weighted_rrf_formula(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int
) -> None:
    lists, weights = src
    params = FusionParams(weights, rrf_k=rrf_k)
    rows, scores, _ = fuse(lists, params, k)
    expected = brute_force_scores(lists, params)
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        assert math.isclose(score, expected[row], rel_tol=1e-6, abs_tol=1e-12)
    if len(rows):
        # Nothing left out scores above the last row kept (up to float rounding).
        floor = expected[int(rows[-1])]
        left_out = set(expected) - set(rows.tolist())
        assert all(expected[row] <= floor * (1 + 1e-9) for row in left_out)


@given(src=sources(), zero=ranked(max_row=60), rrf_k=rrf_ks)
@SETTINGS
def test_a_list_with_weight_zero_cannot_change_the_order_or_the_scores_of_the_others(
    src: tuple[Lists, dict[str, float]], zero: list[int], rrf_k: float
) -> None:
    lists, weights = src
    assume(len(lists) < len(NAMES))
    spare = next(name for name in NAMES if name not in weights)
    k = len(all_rows(lists)) + len(zero)
    before_rows, before_scores, _ = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    with_zero = [*lists, (spare, np.array(zero, np.int64))]
    after_rows, after_scores, _ = fuse(with_zero, FusionParams({**weights, spare: 0.0}, rrf_k=rrf_k), k)
    # Rows that scored before keep their order and score; the zero list only appends its
    # remaining rows (at score 0) after them.
    scored = before_scores > 0
    n_scored = int(scored.sum())
    assert after_rows[:n_scored].tolist() == before_rows[scored].tolist()
    assert after_scores[:n_scored].tolist() == before_scores[scored].tolist()
    assert np.all(after_scores[n_scored:] == 0)


@given(src=sources(), zero=ranked(max_row=60), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_a_source_missing_from_the_weights_weighs_zero(
    src: tuple[Lists, dict[str, float]], zero: list[int], rrf_k: float, k: int
) -> None:
    lists, weights = src
    assume(len(lists) < len(NAMES))
    spare = next(name for name in NAMES if name not in weights)
    with_spare = [*lists, (spare, np.array(zero, np.int64))]
    unweighted = fuse(with_spare, FusionParams(weights, rrf_k=rrf_k), k)
    zero_weighted = fuse(with_spare, FusionParams({**weights, spare: 0.0}, rrf_k=rrf_k), k)
    assert unweighted[0].tolist() == zero_weighted[0].tolist()
    assert unweighted[1].tolist() == zero_weighted[1].tolist()
    assert unweighted[2] == zero_weighted[2]


@given(src=sources(), top=st.integers(0, 30), rrf_k=rrf_ks, k=st.integers(1, 40), data=st.data())
@SETTINGS
def test_a_row_ranked_first_by_every_positively_weighted_list_is_ranked_first(
    src: tuple[Lists, dict[str, float]], top: int, rrf_k: float, k: int, data: st.DataObject
) -> None:
    lists, weights = src
    assume(any(w > 0 for w in weights.values()))
    # `top` goes first in every list with a positive weight; a zero-weight list may rank it
    # anywhere, or not at all.
    crowned: Lists = []
    for name, rows in lists:
        rest = [int(r) for r in rows if r != top]
        if weights[name] > 0:
            rest.insert(0, top)
        elif data.draw(st.booleans(), label=f"{name} holds the row"):
            rest.insert(data.draw(st.integers(0, len(rest)), label=f"its rank in {name}"), top)
        crowned.append((name, np.array(rest, np.int64)))
    rows, _, _ = fuse(crowned, FusionParams(weights, rrf_k=rrf_k), k)
    assert int(rows[0]) == top


@given(
    a=ranked(),
    b=ranked(),
    others=st.lists(st.tuples(ranked(), weights_or_zero), max_size=2),
    weight=positive_weights,
    rrf_k=rrf_ks,
    k=ks,
)
@SETTINGS
def test_swapping_two_lists_of_equal_weight_changes_only_the_source_names(
    a: list[int],
    b: list[int],
    others: list[tuple[list[int], float]],
    weight: float,
    rrf_k: float,
    k: int,
) -> None:
    rest = [(name, np.array(rows, np.int64)) for name, (rows, _) in zip(NAMES[2:], others, strict=False)]
    weights = {"als": weight, "two_tower": weight} | {
        name: w for name, (_, w) in zip(NAMES[2:], others, strict=False)
    }
    params = FusionParams(weights, rrf_k=rrf_k)
    rows, scores, labels = fuse([("als", np.array(a)), ("two_tower", np.array(b)), *rest], params, k)
    s_rows, s_scores, s_labels = fuse([("als", np.array(b)), ("two_tower", np.array(a)), *rest], params, k)
    assert s_rows.tolist() == rows.tolist()
    assert s_scores.tolist() == scores.tolist()
    swap = {"als": "two_tower", "two_tower": "als"}
    for label, s_label in zip(labels, s_labels, strict=True):
        assert {swap.get(n, n) for n in label.split("+")} == set(s_label.split("+"))


@given(src=sources(), rrf_k=rrf_ks, k=ks, power=st.integers(-20, 20))
@SETTINGS
def test_scaling_every_weight_by_a_power_of_two_scales_the_scores_and_keeps_the_order(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int, power: int
) -> None:
    """Exact: multiplying by 2**p commutes with floating-point rounding."""
    lists, weights = src
    c = 2.0**power
    rows, scores, labels = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    scaled = FusionParams({name: w * c for name, w in weights.items()}, rrf_k=rrf_k)
    s_rows, s_scores, s_labels = fuse(lists, scaled, k)
    assert s_rows.tolist() == rows.tolist() and s_labels == labels
    assert s_scores.tolist() == (scores * np.float32(c)).tolist()


@given(src=sources(), rrf_k=rrf_ks, c=st.floats(min_value=1e-3, max_value=1e3))
@SETTINGS
def test_scaling_every_weight_by_any_positive_constant_keeps_the_order_up_to_rounding_ties(
    src: tuple[Lists, dict[str, float]], rrf_k: float, c: float
) -> None:
    """Mathematically the order is scale-free; in floating point only rows whose scores agree to
    ~1e-12 (exact ties in real arithmetic) may trade places."""
    lists, weights = src
    k = len(all_rows(lists))
    rows, scores, _ = fuse(lists, FusionParams(weights, rrf_k=rrf_k), k)
    scaled = FusionParams({name: w * c for name, w in weights.items()}, rrf_k=rrf_k)
    s_rows, s_scores, _ = fuse(lists, scaled, k)
    assert set(s_rows.tolist()) == set(rows.tolist())
    np.testing.assert_allclose(s_scores, scores * c, rtol=1e-5)
    exact = brute_force_scores(lists, FusionParams(weights, rrf_k=rrf_k))
    position = {row: i for i, row in enumerate(s_rows.tolist())}
    ordered = rows.tolist()
    for hi, lo in itertools.pairwise(ordered):
        if exact[hi] > exact[lo] * (1 + 1e-9):
            assert position[hi] < position[lo]


@given(src=sources(), rrf_k=rrf_ks, k=ks)
@SETTINGS
def test_fusion_is_deterministic_and_ignores_trailing_padding(
    src: tuple[Lists, dict[str, float]], rrf_k: float, k: int
) -> None:
    lists, weights = src
    params = FusionParams(weights, rrf_k=rrf_k)
    first = fuse(lists, params, k)
    unpadded = [(name, rows[rows >= 0]) for name, rows in lists]
    for again in (fuse(lists, params, k), fuse(unpadded, params, k)):
        assert again[0].tolist() == first[0].tolist()
        assert again[1].tolist() == first[1].tolist()
        assert again[2] == first[2]
