"""Properties of the confidence scaling shared by training and serving (feature_store/confidence.py).

`scale_values` receives float32 weights in training (the matrix data) and float64 aggregated
weights in serving (the fold-in); both are tested. Its output is float32, so inputs are kept
within float32's range: a float64 weight beyond ~3.4e38 overflows to inf under `linear`, and one
below ~1e-45 in magnitude flushes to zero, by the cast the function documents with its dtype.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from feature_store.confidence import Scaling, scale_values

SETTINGS = settings(max_examples=40, deadline=None)

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32

scalings = st.sampled_from(list(Scaling))
float32_weights = st.floats(width=32, allow_nan=False, allow_infinity=False)
# Float64 values that stay nonzero and finite once the result is cast to float32.
float64_weights = st.one_of(
    st.just(0.0),
    st.floats(min_value=F32_TINY, max_value=F32_MAX / 2),
    st.floats(min_value=-F32_MAX / 2, max_value=-F32_TINY),
)


def weight_arrays(dtype: type[np.floating]) -> st.SearchStrategy[np.ndarray]:
    elements = float32_weights if dtype is np.float32 else float64_weights
    return hnp.arrays(dtype, hnp.array_shapes(max_dims=1, max_side=20), elements=elements)


arrays = st.one_of(weight_arrays(np.float32), weight_arrays(np.float64))


@given(values=arrays, scaling=scalings)
@SETTINGS
def test_scaling_is_monotone_non_decreasing_in_the_raw_weight(values: np.ndarray, scaling: Scaling) -> None:
    ordered = np.sort(values)
    scaled = scale_values(ordered, scaling)
    assert np.all(np.diff(scaled) >= 0)


@given(values=arrays, scaling=scalings)
@SETTINGS
def test_scaling_is_finite_float32_of_the_same_shape_for_finite_input(
    values: np.ndarray, scaling: Scaling
) -> None:
    scaled = scale_values(values, scaling)
    assert scaled.dtype == np.float32 and scaled.shape == values.shape
    assert np.all(np.isfinite(scaled))


@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=30))
@SETTINGS
def test_log_scaling_is_finite_for_any_finite_float64(values: list[float]) -> None:
    assert np.all(np.isfinite(scale_values(np.array(values, np.float64), Scaling.log)))


@given(values=arrays, scaling=scalings)
@SETTINGS
def test_scaling_keeps_the_sign_of_each_weight_and_zero_stays_zero(
    values: np.ndarray, scaling: Scaling
) -> None:
    """A negative weight is a dislike and stays negative; the sign is the documented contract."""
    assert np.array_equal(np.sign(scale_values(values, scaling)), np.sign(values).astype(np.float32))


@given(values=arrays, scaling=scalings)
@SETTINGS
def test_a_dislike_gets_the_same_magnitude_as_the_like_of_the_same_weight(
    values: np.ndarray, scaling: Scaling
) -> None:
    """ALS reads a negative cell as preference 0 with confidence |value|: only |w| is scaled."""
    assert np.array_equal(scale_values(-values, scaling), -scale_values(values, scaling))


@given(values=arrays)
@SETTINGS
def test_binary_scaling_is_one_for_a_positive_weight_minus_one_for_a_dislike_zero_for_zero(
    values: np.ndarray,
) -> None:
    scaled = scale_values(values, Scaling.binary)
    assert set(np.unique(scaled).tolist()) <= {-1.0, 0.0, 1.0}
    assert np.array_equal(scaled == 1, values > 0) and np.array_equal(scaled == -1, values < 0)


@given(values=weight_arrays(np.float32))
@SETTINGS
def test_linear_scaling_is_the_weight_itself(values: np.ndarray) -> None:
    assert np.array_equal(scale_values(values, Scaling.linear), values)


@given(values=arrays)
@SETTINGS
def test_log_scaling_is_log1p_of_the_magnitude_with_the_sign_kept(values: np.ndarray) -> None:
    expected = np.sign(values) * np.log1p(np.abs(values.astype(np.float64)))
    np.testing.assert_allclose(scale_values(values, Scaling.log), expected, rtol=1e-6, atol=0)


@given(values=arrays, scaling=scalings)
@SETTINGS
def test_scaling_is_element_wise_and_accepts_the_scaling_by_name(
    values: np.ndarray, scaling: Scaling
) -> None:
    whole = scale_values(values, scaling)
    assert np.array_equal(scale_values(values, scaling.value), whole)
    for i, value in enumerate(values):
        assert scale_values(values[i : i + 1], scaling)[0] == whole[i], value


@given(values=arrays)
@SETTINGS
def test_log_scaling_never_exceeds_the_linear_magnitude(values: np.ndarray) -> None:
    """log1p(|w|) <= |w|: log only ever tames a weight."""
    assert np.all(np.abs(scale_values(values, Scaling.log)) <= np.abs(scale_values(values, Scaling.linear)))
