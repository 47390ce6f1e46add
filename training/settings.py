"""Training settings in one place: defaults, environment variables (RECSYS_*), CLI options.

Every field can be set as `RECSYS_<NAME>` (e.g. `RECSYS_FACTORS=128`) and as the CLI option of
the same name (`--factors 128`); the option wins. The CLI options are built from these fields
(training/commands/options.py): `json_schema_extra={"cli": [...]}` gives a field other flags.
`None` for alpha, regularization, scaling, popularity_discount or iterations means "choose it on
validation data" (see tune.py); any value pins it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_store.index_files import IndexKind, Metric
from training.confidence import Scaling
from training.events import DEFAULT_EVENT_WEIGHTS
from training.indexes import IndexParams
from training.readers.items import DuplicatePolicy, ItemOptions
from training.splits import SplitKind
from training.timestamps import EpochUnit

# The ALS training guide's values (seed 000), kept as an explicit preset: `--seed-defaults`.
SEED_DEFAULTS = {
    "factors": 128,
    "regularization": 0.01,
    "iterations": 20,
    "alpha": 40.0,
    "scaling": Scaling.linear,
    "popularity_discount": 0.0,
}


class Engine(StrEnum):
    """Who fits ALS: the `implicit` library on this machine, or Spark MLlib on a Spark cluster."""

    implicit = "implicit"
    spark = "spark"


class TrainSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    artifacts: Path = Field(Path("artifacts"), description="Folder of model versions (als_v1, ...).")
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="Weight per event type (JSON in the environment).",
    )
    timestamp_unit: EpochUnit = Field(
        EpochUnit.auto,
        description="Unit of epoch-number timestamps: s, ms, us, ns; auto = inferred from the magnitude "
        "(printed).",
        json_schema_extra={"group": "reading"},
    )
    drop_invalid_rows: bool = Field(
        False,
        description="Skip rows without a user_id or item_id, or with an unusable weight or timestamp "
        "(counted in the report); by default such rows stop the run with an example.",
        json_schema_extra={"group": "reading"},
    )
    list_separator: str = Field(
        "|",
        max_length=8,
        description="Item metadata: text columns holding it are multi-valued ('' = never split).",
        json_schema_extra={"group": "items"},
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="Item metadata columns kept as one text value each: never split, never numeric.",
        json_schema_extra={"group": "items"},
    )
    numeric: list[str] = Field(
        default_factory=list,
        description="Item metadata columns read as numbers; values that are not become missing (counted).",
        json_schema_extra={"group": "items"},
    )
    item_duplicates: DuplicatePolicy = Field(
        DuplicatePolicy.error,
        description="An item_id on several metadata rows: error, or keep the first or last row.",
        json_schema_extra={"group": "items"},
    )
    min_interactions: int = Field(
        1, ge=1, description="Drop users with fewer positive items.", json_schema_extra={"group": "filters"}
    )
    min_item_interactions: int = Field(
        1, ge=1, description="Drop items with fewer positive users.", json_schema_extra={"group": "filters"}
    )
    factors: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Embedding size; unset = chosen on validation, doubling from 64 up to max_factors.",
        json_schema_extra={"group": "als"},
    )
    max_factors: int = Field(
        512,
        ge=1,
        le=4096,
        description="Largest size the search may choose. Per ALS sweep, time grows with "
        "(users + items) x factors^2 and memory with (users + items) x factors x 4 bytes.",
        json_schema_extra={"group": "als_fit"},
    )
    search_seconds: float | None = Field(
        None,
        gt=0,
        le=7 * 24 * 3600,
        description="Time budget of the automatic search: no trial starts after this many "
        "seconds and the best so far is kept (the one in flight finishes). Unset = the whole search. "
        "The search shapes the model at 64 factors first and grows it last, so a tight budget "
        "keeps a smaller model.",
        json_schema_extra={"group": "als_fit"},
    )
    regularization: float | None = Field(
        None,
        ge=0,
        description="L2 penalty; unset = chosen on validation.",
        json_schema_extra={"group": "als"},
    )
    alpha: float | None = Field(
        None,
        gt=0,
        description="Confidence multiplier; unset = chosen on validation.",
        json_schema_extra={"group": "als"},
    )
    iterations: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="ALS sweeps; unset = up to max_iterations, early-stopped.",
        json_schema_extra={"group": "als"},
    )
    max_iterations: int = Field(
        30,
        ge=1,
        le=1000,
        description="Cap when iterations are chosen.",
        json_schema_extra={"group": "als_fit"},
    )
    scaling: Scaling | None = Field(
        None,
        description="linear, log or binary; unset = chosen on validation.",
        json_schema_extra={"group": "als"},
    )
    popularity_discount: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Confidence of a pair x (item popularity / mean) ** -discount: 0 = off; unset = "
        "chosen on validation among 0, 0.25, 0.5.",
        json_schema_extra={"group": "als"},
    )
    split: SplitKind = Field(SplitKind.random, description="Held-out evaluation split.")
    test_split: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Held-out share; 0 skips evaluation.",
        json_schema_extra={"group": "holdout"},
    )
    k: int = Field(
        10,
        ge=1,
        le=1000,
        description="Cut-off of the ranking metrics.",
        json_schema_extra={"group": "holdout"},
    )
    seed: int = Field(
        42,
        description="Random seed of splits and factor initialisation.",
        json_schema_extra={"group": "holdout"},
    )
    validate_every: int = Field(
        2,
        ge=1,
        description="Validation every N sweeps up to 12, then every quarter of the sweeps so far.",
        json_schema_extra={"group": "als_fit"},
    )
    biases: bool = Field(
        False,
        description="Learn user and item bias terms (own CG solver; slower).",
        json_schema_extra={"cli": ["--biases/--no-biases"], "group": "als_fit"},
    )
    use_gpu: bool = Field(
        False,
        description="Use implicit's CUDA solver when a GPU is present.",
        json_schema_extra={"cli": ["--use-gpu/--no-gpu"], "group": "als_fit"},
    )
    refit: bool = Field(
        True,
        description="After evaluation, refit on all data for the saved model.",
        json_schema_extra={"cli": ["--refit/--no-refit"], "group": "als_fit"},
    )
    index_kind: IndexKind = Field(
        IndexKind.auto,
        description="Item index: auto (flat below exact_below items; above, ivf for inner product, "
        "ivf_pq from pq_above items, hnsw for cosine and l2), flat, hnsw, ivf, ivf_pq.",
        json_schema_extra={"group": "index"},
    )
    index_metric: Metric = Field(
        Metric.ip, description="ip (ALS scores), cosine or l2.", json_schema_extra={"group": "index"}
    )
    exact_below: int = Field(20_000, ge=0, description="auto: catalogs smaller than this get an exact index.")
    pq_above: int = Field(
        250_000,
        ge=0,
        description="auto: inner-product catalogs at least this large get ivf_pq (4-bit PQ codes, "
        "candidates re-ranked exactly).",
    )
    pq_rerank: int = Field(
        1_000, ge=1, le=100_000, description="ivf_pq: candidates fetched and re-scored exactly per search."
    )
    hnsw_m: int = Field(
        32, ge=4, le=256, description="HNSW graph degree.", json_schema_extra={"group": "index"}
    )
    ef_construction: int = Field(
        200, ge=8, le=4096, description="HNSW build-time beam width.", json_schema_extra={"group": "index"}
    )
    ef_search: int = Field(
        64,
        ge=1,
        le=32_768,
        description="HNSW search beam to start calibration from (raised until recall 0.99).",
        json_schema_extra={"group": "index"},
    )
    recent_limit: int = Field(50, ge=1, le=10_000, description="Recent items kept per user profile.")
    # -- train-all: the other models and the tiers they serve -----------------------------------
    content_dim: int = Field(
        64,
        ge=2,
        le=1024,
        description="Content vector size (truncated SVD).",
        json_schema_extra={"group": "models"},
    )
    two_tower: bool = Field(
        True,
        description="Train the Two-Tower model and fit the ensemble (train-all).",
        json_schema_extra={"cli": ["--two-tower/--no-two-tower"], "group": "models"},
    )
    ranker: bool = Field(
        False,
        description="Also train the ranking stage (LightGBM lambdarank over every source's candidates) "
        "and ship it in the version (train-all); evaluate-tiers adds its rows.",
        json_schema_extra={"cli": ["--ranker/--no-ranker"], "group": "models"},
    )
    two_tower_dim: int = Field(
        64, ge=4, le=1024, description="Two-Tower embedding size.", json_schema_extra={"group": "models"}
    )
    two_tower_epochs: int = Field(
        40,
        ge=1,
        le=1000,
        description="Two-Tower epoch cap (early-stopped).",
        json_schema_extra={"group": "models"},
    )
    device: str = Field(
        "cpu",
        description="torch device of the Two-Tower model: cpu, cuda, cuda:0.",
        json_schema_extra={"group": "models"},
    )
    warm_min_interactions: int = Field(
        5, ge=1, description="Tier table: users below this are cold.", json_schema_extra={"group": "tiers"}
    )
    hot_min_interactions: int = Field(
        20, ge=2, description="Tier table: users from this on are hot.", json_schema_extra={"group": "tiers"}
    )
    # -- the Spark engine (train --engine spark) -------------------------------------------------
    engine: Engine = Field(
        Engine.implicit,
        description="ALS engine: implicit (this machine) or spark (MLlib).",
        json_schema_extra={"group": "spark"},
    )
    spark_master: str = Field(
        "local[*]",
        description="Spark master URL: local[*], spark://host:7077, yarn, k8s://...",
        json_schema_extra={"cli": ["--master", "--spark-master"], "group": "spark"},
    )
    spark_driver_memory: str = Field(
        "4g",
        description="Spark driver heap (it holds the pairs on their way in and the factors out).",
        json_schema_extra={"group": "spark"},
    )
    spark_partitions: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="ALS blocks and shuffle partitions; unset = Spark's parallelism.",
        json_schema_extra={"group": "spark"},
    )
    spark_reg_param: float | None = Field(
        None,
        ge=0,
        description="MLlib's own regParam (scaled per row by its positives, ALS-WR); unset = derived "
        "from --regularization.",
        json_schema_extra={"group": "spark"},
    )
    spark_jars: str | None = Field(
        None,
        description="Comma-separated jars for Spark (a JDBC driver for SQL sources); unset = the "
        "Debian PostgreSQL driver when installed.",
    )

    retrain_holdout_days: float = Field(
        3.0,
        gt=0,
        le=365,
        description="retrain: the newest days of the log, held out to score the candidate against "
        "the live version (what the new model will face); the candidate trains on the days before, "
        "so new data older than these is what the gate judges.",
        json_schema_extra={"group": "retrain"},
    )
    retrain_tolerance: float = Field(
        0.02,
        ge=0,
        le=1,
        description="retrain: the candidate's Recall@k may be this much lower (relative) than the "
        "live version's and still ship.",
        json_schema_extra={"group": "retrain"},
    )
    retrain_k: int = Field(
        20,
        ge=1,
        le=1000,
        description="retrain: k of the gate's Recall@k.",
        json_schema_extra={"group": "retrain"},
    )
    retrain_eval_users: int = Field(
        5_000,
        ge=10,
        description="retrain: at most this many held-out users are scored (drawn at random).",
        json_schema_extra={"group": "retrain"},
    )
    retrain_lock_ttl_s: float = Field(
        6 * 3600,
        gt=0,
        description="retrain: how long a retrain's lock holds if its process dies without releasing it.",
        json_schema_extra={"group": "retrain"},
    )

    def item_options(self) -> ItemOptions:
        return ItemOptions(
            list_separator=self.list_separator,
            categorical=tuple(c.strip().lower() for c in self.categorical),
            numeric=tuple(c.strip().lower() for c in self.numeric),
            duplicates=self.item_duplicates,
            drop_invalid_rows=self.drop_invalid_rows,
        )

    def index_params(self) -> IndexParams:
        return IndexParams(
            kind=self.index_kind,
            metric=self.index_metric,
            exact_below=self.exact_below,
            pq_above=self.pq_above,
            pq_rerank=self.pq_rerank,
            hnsw_m=self.hnsw_m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
        )
