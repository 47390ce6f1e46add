"""Choices a version made on validation, read back from its manifest for `--keep-params`: what is
there is kept, what is missing or malformed is searched again (never a crash on an old manifest)."""

from __future__ import annotations

from feature_store.fusion import FusionParams
from training.model_set import KeptChoices


def test_the_prior_and_the_fusion_weights_of_a_manifest_are_kept() -> None:
    fusion = FusionParams().as_dict()
    kept = KeptChoices.from_hyperparameters({"content": {"popularity_prior": 0.5}, "fusion": fusion})
    assert kept.content_prior == 0.5
    assert kept.fusion is not None and kept.fusion.as_dict() == fusion


def test_missing_or_malformed_choices_are_searched_again() -> None:
    for hyper in ({}, {"content": "x", "fusion": [1]}, {"content": {"popularity_prior": True}, "fusion": {}}):
        kept = KeptChoices.from_hyperparameters(hyper)
        assert kept.content_prior is None
    assert KeptChoices.from_hyperparameters({"content": {"popularity_prior": -1}}).content_prior is None
