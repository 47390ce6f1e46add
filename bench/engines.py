"""The two ALS engines side by side on the same data, split and parameters.

    python bench/engines.py                      # synthetic demo log, ML-100K and ML-1M (when present)
    python bench/engines.py --data synthetic

For each data set: one random 20% holdout; the implicit engine's validation search chooses the
parameters on the training part; then implicit, Spark (this project's mapping of alpha and
regularization) and Spark given the same numbers naively (its alpha = our alpha, its regParam = our
lambda, ratings = scaled weights) are fitted with them and scored on the same holdout, with
Spark given regParam 0.5 directly as well (`--spark-reg-param`). The naive row shows why the
mapping exists. Spark runs in local mode on this machine's cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED_DATA, print_table
from py4j.protocol import Py4JJavaError

from training.als import AlsParams, AlsResult
from training.confidence import scale_matrix
from training.dataset import Dataset, build_dataset
from training.evaluation import evaluate_ranking
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.pipeline import ImplicitEngine
from training.readers import read_interactions
from training.settings import TrainSettings
from training.spark.als import fit_spark_als, with_positive_rows_only
from training.spark.session import spark_session
from training.splits import SplitKind, split
from training.synthetic import SyntheticConfig, generate


def _datasets(names: list[str]) -> dict[str, Dataset]:
    out: dict[str, Dataset] = {}
    for name in names:
        if name == "synthetic":
            data = generate(SyntheticConfig(users=20_000, items=5_000, interactions=500_000, seed=42))
            out[name] = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
        else:
            folder = SHARED_DATA / name
            if not folder.exists():
                print(f"skipping {name}: {folder} is absent")
                continue
            out[name] = build_dataset(read_interactions(str(folder), {}))
    return out


def _naive_spark(spark: Any, matrix: Any, params: AlsParams) -> AlsResult:
    """Spark given our numbers as they are: confidence 1 + alpha * s, regParam = lambda (ALS-WR)."""
    from pyspark.ml.recommendation import ALS

    coo = with_positive_rows_only(scale_matrix(matrix, params.scaling).tocoo())
    frame = spark.createDataFrame(
        pa.table(
            {
                "user": pa.array(coo.row.astype(np.int32)),
                "item": pa.array(coo.col.astype(np.int32)),
                "rating": pa.array(coo.data.astype(np.float32)),
            }
        )
    )
    start = time.perf_counter()
    model = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=params.regularization,
        implicitPrefs=True,
        alpha=params.alpha,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        seed=params.random_state,
    ).fit(frame)
    users = np.zeros((matrix.shape[0], params.factors), np.float32)
    items = np.zeros((matrix.shape[1], params.factors), np.float32)
    for target, factors in ((users, model.userFactors), (items, model.itemFactors)):
        table = factors.toArrow()
        ids = table.column("id").to_numpy()
        target[ids] = table.column("features").combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    return AlsResult(users, items, params, fit_seconds=time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="synthetic,ml-100k,ml-1m")
    parser.add_argument("--factors", type=int, default=64)
    args = parser.parse_args()
    settings = TrainSettings(factors=args.factors, spark_master="local[*]", spark_driver_memory="4g")
    rows: list[list[object]] = []
    with spark_session(settings) as spark:
        for name, dataset in _datasets(args.data.split(",")).items():
            parts = split(dataset.matrix, SplitKind.random, test_fraction=0.2, times=dataset.times, seed=42)
            params = ImplicitEngine().select(parts.train, settings, print).params
            params = replace(params, calculate_loss=False)
            label = (
                f"f{params.factors} reg {params.regularization:g} alpha {params.alpha:g} "
                f"it {params.iterations} {params.scaling}"
            )
            for engine in ("implicit", "spark (mapped)", "spark (regParam 0.5)", "spark (naive)"):
                try:
                    if engine == "implicit":
                        result = ImplicitEngine().fit(parts.train, params)
                    elif engine == "spark (mapped)":
                        result = fit_spark_als(spark, parts.train, params, None)
                    elif engine == "spark (regParam 0.5)":
                        result = fit_spark_als(spark, parts.train, params, None, reg_param=0.5)
                    else:
                        result = _naive_spark(spark, parts.train, params)
                except Py4JJavaError as exc:
                    rows.append([name, engine, label, "failed", str(exc.java_exception)[:60], "", "", ""])
                    continue
                m = evaluate_ranking(result.user_factors, result.item_factors, parts.train, parts.test, k=10)
                rows.append(
                    [
                        name,
                        engine,
                        label,
                        m.ndcg,
                        m.recall,
                        m.hit_rate,
                        m.coverage,
                        f"{result.fit_seconds:.1f}",
                    ]
                )
                print(f"\n{rows[-1]}", flush=True)
    print()
    print_table(["data", "engine", "parameters", "NDCG@10", "recall@10", "HR@10", "coverage", "fit s"], rows)


if __name__ == "__main__":
    main()
