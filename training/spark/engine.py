"""The Spark engine behind `recsys train --engine spark` (the AlsEngine of pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import scipy.sparse as sp

from training.als import AlsParams, AlsResult, IterationRecord
from training.confidence import confidence_matrix
from training.pipeline import Progress, base_params, pinned_names
from training.settings import TrainSettings
from training.spark.als import fit_spark_als, spark_reg_param
from training.tune import SEARCHED, Selection, is_binary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkEngine:
    """MLlib ALS. It has no per-iteration hook, so there is no validation search or early stop:
    unpinned values take the implicit engine's starting point and the manifest says so."""

    name = "spark"

    def __init__(self, spark: SparkSession, settings: TrainSettings) -> None:
        self._spark = spark
        self._partitions = settings.spark_partitions
        self._reg_param = settings.spark_reg_param

    def select(
        self,
        train: sp.csr_matrix,
        settings: TrainSettings,
        progress: Progress,
        also_fit: sp.csr_matrix | None = None,
    ) -> Selection:
        params = base_params(settings, is_binary(train))
        unpinned = set(SEARCHED) - pinned_names(settings)
        if unpinned:
            progress(
                f"spark engine: no validation search; {', '.join(sorted(unpinned))} take the defaults "
                f"(pin them, e.g. with values from `recsys tune` on a sample)"
            )
        return Selection(params)

    def fit(
        self,
        matrix: sp.csr_matrix,
        params: AlsParams,
        on_iteration: Callable[[IterationRecord], None] | None = None,
    ) -> AlsResult:
        return fit_spark_als(self._spark, matrix, params, self._partitions, self._reg_param)

    def hyperparameters(self, matrix: sp.csr_matrix, params: AlsParams) -> dict[str, Any]:
        return {
            "spark_reg_param": self._reg_param
            if self._reg_param is not None
            else spark_reg_param(
                params.regularization,
                confidence_matrix(matrix, params.scaling, params.popularity_discount)[0],
            ),
            "spark_alpha": 1.0,
            "spark_rating": "alpha * scaled weight - 1 (confidence 1 + |r| = alpha * scaled weight)",
            "spark_master": self._spark.sparkContext.master,
        }
