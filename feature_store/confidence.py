"""From events to ALS confidences: the event weight table and the scaling, shared by training and
serving.

Training fits ALS on `alpha * scale(weight)`; serving folds a user in against the fixed item
factors with the same function, so a user recorded at run time is scored on the scale the model
was trained on. The sign is kept: a negative value is an explicit dislike, which ALS reads as
preference 0 with confidence |value|.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

# From the ALS training guide (seed 000). `dislike` is negative on purpose: training/dataset.py
# says how a net-negative pair becomes an explicit "not interested" signal instead of being dropped.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "like": 2.0,
    "dislike": -1.0,
    "favorite": 2.5,
    "apply": 3.0,
    "interest": 3.5,
}


class Scaling(StrEnum):
    linear = "linear"  # the weight itself (the seed's behaviour)
    log = "log"  # log1p(|w|): counts spanning orders of magnitude become comparable
    binary = "binary"  # 1 for any positive pair: only whether it happened


def scale_values(values: np.ndarray, scaling: Scaling | str) -> np.ndarray:
    """Element-wise scaling that keeps the sign of each value."""
    scaling = Scaling(scaling)
    magnitude = np.abs(values)
    if scaling is Scaling.linear:
        scaled = magnitude
    elif scaling is Scaling.log:
        scaled = np.log1p(magnitude)
    else:
        scaled = np.ones_like(magnitude)
    return (np.sign(values) * scaled).astype(np.float32)
