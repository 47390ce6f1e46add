"""ALS on Spark MLlib with the implicit engine's meaning of alpha and regularization.

The two engines weigh an observed cell differently:
- implicit: confidence c = alpha * s, where s is the scaled net weight (confidence.py);
- Spark:    confidence c = 1 + alpha_spark * |r|, preference 1 if r > 0 else 0.
So the Spark engine passes r = alpha * s - 1 (sign kept) with alpha_spark = 1, and both engines
fit the same confidence alpha * s for every cell where that is at least 1. Below 1 Spark cannot
follow (its confidence never drops under the unobserved cells' 1), so such positives are floored
at confidence 1 with preference 1, and such dislikes become plain unobserved cells.

Regularization differs too: Spark multiplies regParam by each row's number of positive cells
(ALS-WR), implicit uses one lambda for every user and item row. regParam = lambda / (mean positives
per row, over user and item rows together) gives both engines the same total penalty on rows of
average size; busier rows are penalised more and quieter ones less, as ALS-WR intends. It is an
approximation (bench/engines.py): within 0.015 NDCG@10 of implicit on ML-100K and ML-1M, but far
off on the synthetic log at lambda 50 with alpha 1 and linear weights (regParam 2.3: NDCG 0.04
against 0.25; regParam 0.5 gave 0.25), so `--spark-reg-param` sets MLlib's value directly.

A user or item without any positive cell gets the zero vector from either solver (its right-hand
side is zero), but Spark gives it no regularization at all (0 positives x regParam), so its normal
equations can be singular and MLlib aborts the job. Such rows are left out of what Spark sees; the
result is the same zero vector without the crash.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from training.als import AlsParams, AlsResult
from training.confidence import confidence_matrix

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Spark's preference is r > 0: a positive whose confidence is at most 1 keeps this tiny r.
_POSITIVE_FLOOR = 1e-6


def spark_ratings(scaled: np.ndarray, alpha: float) -> np.ndarray:
    """Ratings r with 1 + |r| = alpha * |s| (the implicit engine's confidence) and sign(r) = sign(s)."""
    excess = np.maximum(alpha * np.abs(scaled.astype(np.float64)) - 1.0, 0.0)
    ratings = np.where(scaled > 0, np.maximum(excess, _POSITIVE_FLOOR), -excess)
    return ratings.astype(np.float32)


def spark_confidence(ratings: np.ndarray) -> np.ndarray:
    """What Spark makes of `ratings` with alpha 1: confidence 1 + |r| (for showing the agreement)."""
    return 1.0 + np.abs(ratings.astype(np.float64))


def spark_reg_param(regularization: float, matrix: sp.csr_matrix) -> float:
    """Spark's regParam giving rows of average size the implicit engine's penalty (module doc)."""
    positive = matrix.data > 0
    pairs = int(np.count_nonzero(positive))
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    users = int(np.count_nonzero(np.bincount(rows[positive], minlength=matrix.shape[0])))
    items = int(np.count_nonzero(np.bincount(matrix.indices[positive], minlength=matrix.shape[1])))
    mean_positives = 2 * pairs / max(users + items, 1)
    return float(regularization) / max(mean_positives, 1.0)


def with_positive_rows_only(coo: sp.coo_matrix) -> sp.coo_matrix:
    """Cells of users and items that have at least one positive cell (see the module doc)."""
    positive = coo.data > 0
    users = np.bincount(coo.row[positive], minlength=coo.shape[0]) > 0
    items = np.bincount(coo.col[positive], minlength=coo.shape[1]) > 0
    keep = users[coo.row] & items[coo.col]
    return sp.coo_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=coo.shape)


def _factors(frame: Any, rows: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) rows as a dense array; ids it never saw keep zero vectors."""
    table = frame.toArrow()
    out = np.zeros((rows, rank), np.float32)
    ids = table.column("id").to_numpy()
    values = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    out[ids] = values.reshape(len(ids), rank)
    return out


def fit_spark_als(
    spark: SparkSession,
    matrix: sp.csr_matrix,
    params: AlsParams,
    partitions: int | None,
    reg_param: float | None = None,
) -> AlsResult:
    """Fit `matrix` (raw net weights, scaled here like the implicit engine) with MLlib ALS."""
    from pyspark.ml.recommendation import ALS

    confidences, item_weights = confidence_matrix(matrix, params.scaling, params.popularity_discount)
    coo = with_positive_rows_only(confidences.tocoo())
    ratings = spark_ratings(coo.data, params.alpha)
    frame = spark.createDataFrame(
        pa.table(
            {
                "user": pa.array(coo.row.astype(np.int32)),
                "item": pa.array(coo.col.astype(np.int32)),
                "rating": pa.array(ratings),
            }
        )
    )
    blocks = partitions or spark.sparkContext.defaultParallelism
    als = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=spark_reg_param(params.regularization, confidences) if reg_param is None else reg_param,
        implicitPrefs=True,
        alpha=1.0,
        nonnegative=False,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=5,
        seed=params.random_state,
    )
    start = time.perf_counter()
    model = als.fit(frame.repartition(blocks))
    users = _factors(model.userFactors, matrix.shape[0], params.factors)
    items = _factors(model.itemFactors, matrix.shape[1], params.factors)
    return AlsResult(
        user_factors=users,
        item_factors=items,
        params=params,
        fit_seconds=time.perf_counter() - start,
        item_weights=item_weights,
    )
