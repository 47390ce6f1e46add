import numpy as np
import pyarrow as pa
import pytest

from training.errors import UnknownEventTypesError
from training.events import DEFAULT_EVENT_WEIGHTS, event_weights_for, parse_weight_overrides


def test_seed_event_types_map_to_the_seed_weights() -> None:
    labels = pa.array(["view", "click", "like", "dislike", "favorite", "apply", "interest"])
    weights, unknown = event_weights_for(labels, DEFAULT_EVENT_WEIGHTS)
    assert weights.tolist() == [0.5, 1.0, 2.0, -1.0, 2.5, 3.0, 3.5]
    assert unknown == {}


def test_labels_are_matched_case_and_space_insensitively() -> None:
    weights, _ = event_weights_for(pa.array([" Like", "VIEW "]), DEFAULT_EVENT_WEIGHTS)
    assert weights.tolist() == [2.0, 0.5]


def test_unknown_event_types_are_reported_with_counts() -> None:
    labels = pa.array(["view", "share", "share", "purchase", None])
    with pytest.raises(UnknownEventTypesError) as err:
        event_weights_for(labels, DEFAULT_EVENT_WEIGHTS)
    message = str(err.value)
    assert "'share' x2" in message and "'purchase' x1" in message and "'<missing>' x1" in message
    assert "--event-weight" in message


def test_dropping_unknown_events_still_reports_them() -> None:
    weights, unknown = event_weights_for(
        pa.array(["view", "share"]), DEFAULT_EVENT_WEIGHTS, drop_unknown=True
    )
    assert weights[0] == 0.5 and np.isnan(weights[1])
    assert unknown == {"share": 1}


def test_weight_overrides_parse_and_reject_garbage() -> None:
    assert parse_weight_overrides(["Share=1.5", "like=3"]) == {"share": 1.5, "like": 3.0}
    with pytest.raises(UnknownEventTypesError, match="NAME=NUMBER"):
        parse_weight_overrides(["share"])
    with pytest.raises(UnknownEventTypesError, match="NAME=NUMBER"):
        parse_weight_overrides(["share=lots"])
