"""Interaction sources read and aggregated by Spark, then handed to the shared dataset builder.

Spark reads what it reads natively (Parquet and CSV files or folders, on local disk or any
Hadoop filesystem such as hdfs:// or s3a://; SQL tables through JDBC), turns event types into
weights and sums each (user, item) pair. Only the aggregated pairs travel to the driver, where
`build_dataset` gives them the same ids, filters and fingerprint as the implicit engine would, so
the two engines train on exactly the same matrix. Sources Spark has no reader for (a MovieLens
folder, a SQL database without a JDBC driver) are read by the project's own readers first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from training.errors import NoInteractionsError, TrainingInputError
from training.events import unknown_events_error
from training.interaction_log import (
    BAD_WEIGHT,
    NO_ITEM,
    NO_USER,
    OUT_OF_RANGE,
    REQUIRED,
    UNPARSEABLE,
    InteractionLog,
    from_table,
    invalid_rows_error,
)
from training.readers.dispatch import is_sql_url, read_source_table
from training.readers.sql import DEFAULT_QUERY
from training.timestamps import (
    OPTION,
    PER_SECOND,
    PLAUSIBLE_FROM,
    UNIT_NAMES,
    EpochUnit,
    infer_unit,
    no_unit_error,
    plausible_until,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_CSV = (".csv", ".tsv", ".txt", ".csv.gz")
_PARQUET = (".parquet", ".pq")


def _suffix(path: str) -> str:
    name = path.rstrip("/").lower()
    return next((s for s in (*_CSV, *_PARQUET) if name.endswith(s)), "")


def jdbc_options(url: str, query: str | None) -> dict[str, str]:
    """Spark JDBC options for a postgresql:// URL (credentials as options, not in the URL)."""
    parts = urlsplit(url.replace("postgres://", "postgresql://", 1))
    scheme = parts.scheme.split("+", 1)[0]
    if scheme != "postgresql":
        raise TrainingInputError(
            f"--engine spark reads SQL through JDBC for postgresql:// URLs only, not {scheme}://."
        )
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    options = {
        "url": f"jdbc:postgresql://{host}{port}{parts.path or '/'}",
        "query": query or DEFAULT_QUERY,
        "driver": "org.postgresql.Driver",
        "fetchsize": "100000",
    }
    if parts.username:
        options["user"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    return options


def _source_frame(spark: SparkSession, source: str, query: str | None, jdbc: bool) -> DataFrame:
    if is_sql_url(source):
        if jdbc:
            return spark.read.format("jdbc").options(**jdbc_options(source, query)).load()
        return spark.createDataFrame(read_source_table(source, query))
    has_scheme = "://" in source
    if not has_scheme:
        path = Path(source).expanduser()
        if not path.exists():
            raise TrainingInputError(f"{path}: no such file or folder.")
        if path.is_dir() and not any(path.glob("*.parquet")) and not any(path.glob("*.csv")):
            return spark.createDataFrame(read_source_table(source))  # MovieLens and other folders
        source = str(path)
    suffix = _suffix(source)
    if suffix in _CSV:
        sep = "\t" if suffix == ".tsv" else ","
        return spark.read.csv(source, header=True, sep=sep, inferSchema=False)
    if suffix in _PARQUET or not suffix:
        if not has_scheme and Path(source).is_dir() and not any(Path(source).glob("*.parquet")):
            return spark.read.csv(source, header=True, inferSchema=False)
        return spark.read.parquet(source)
    raise TrainingInputError(f"{source}: unknown file type; use .csv, .tsv, .csv.gz or .parquet.")


_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def _epoch_seconds(frame: DataFrame, unit: EpochUnit) -> tuple[DataFrame, list[str]]:
    """The `timestamp` column as epoch seconds (null where missing or unparseable), by the rules
    of `training.timestamps`: any precision floored, naive times as UTC (the session's zone), the
    unit of epoch numbers inferred from their median unless set."""
    from pyspark.sql import functions as sf
    from pyspark.sql.types import DateType, NumericType, StringType, TimestampNTZType, TimestampType

    kind = frame.schema["timestamp"].dataType
    notes: list[str] = []
    if isinstance(kind, StringType):
        frame = frame.withColumn("timestamp", sf.nullif(sf.trim(sf.col("timestamp")), sf.lit("")))
        as_number = sf.col("timestamp").try_cast("double")
        texts = frame.filter(sf.col("timestamp").isNotNull() & as_number.isNull())
        if texts.limit(1).count() == 0:
            frame = frame.withColumn("timestamp", as_number)
            kind = frame.schema["timestamp"].dataType
        else:
            if texts.filter(~sf.col("timestamp").rlike(_OFFSET)).limit(1).count():
                notes.append("timestamp: times without a time zone taken as UTC")
            parsed = sf.try_to_timestamp(sf.col("timestamp"))
            return frame.withColumn("timestamp", sf.unix_timestamp(parsed)), notes
    if isinstance(kind, (TimestampType, TimestampNTZType, DateType)):
        if isinstance(kind, TimestampNTZType):
            notes.append("timestamp: times without a time zone taken as UTC")
        return frame.withColumn("timestamp", sf.unix_timestamp(sf.col("timestamp").cast("timestamp"))), notes
    if not isinstance(kind, NumericType):
        raise TrainingInputError(f"Column 'timestamp' has an unusable type {kind.simpleString()}.")
    number = sf.col("timestamp").cast("double")
    frame = frame.withColumn("timestamp", sf.when(~sf.isnan(number), number))
    if unit is EpochUnit.auto:
        quantiles = frame.approxQuantile("timestamp", [0.5], 0.001)
        if quantiles:
            inferred = infer_unit(quantiles[0])
            if inferred is None:
                raise no_unit_error("timestamp", quantiles[0], None, None)
            unit = inferred
            notes.append(
                f"timestamp: epoch {UNIT_NAMES[unit]} (inferred from the magnitude; set {OPTION} to override)"
            )
        else:
            unit = EpochUnit.s
    seconds = sf.floor(sf.col("timestamp") / sf.lit(float(PER_SECOND[unit]))).cast("long")
    return frame.withColumn("timestamp", seconds), notes


def _invalid_rows(
    frame: DataFrame, has_weight: bool, has_time: bool, drop: bool, source: str
) -> tuple[DataFrame, dict[str, int]]:
    """The same policy as the implicit engine's reader: stop with counts and an example, or drop."""
    from pyspark.sql import functions as sf

    def blank(name: str) -> Any:
        return sf.col(name).isNull() | (sf.trim(sf.col(name).cast("string")) == "")

    reasons = {NO_USER: blank("user_id"), NO_ITEM: blank("item_id")}
    if has_weight:
        reasons[BAD_WEIGHT] = sf.col("weight").isNull() | sf.isnan("weight")
    if has_time:
        stamp = sf.col("timestamp")
        reasons[UNPARSEABLE] = stamp.isNull()
        reasons[OUT_OF_RANGE] = stamp.isNotNull() & (
            (stamp < PLAUSIBLE_FROM) | (stamp > sf.lit(plausible_until()))
        )
    names = list(reasons)
    totals = frame.agg(
        sf.count(sf.lit(1)).alias("rows"),
        *[sf.sum(cond.cast("long")).alias(f"r{i}") for i, cond in enumerate(reasons.values())],
    ).collect()[0]
    counts = {name: int(totals[f"r{i}"] or 0) for i, name in enumerate(names)}
    counts = {name: n for name, n in counts.items() if n}
    if not counts:
        return frame, {}
    any_bad = sf.lit(False)
    for cond in reasons.values():
        any_bad = any_bad | cond
    if drop:
        return frame.filter(~any_bad), counts
    bad = frame.filter(any_bad)
    first = bad.limit(1).collect()[0].asDict()
    shown = ", ".join(f"{k}={v!r}" for k, v in first.items() if k in ("user_id", "item_id", "event_type"))
    raise invalid_rows_error(source, bad.count(), int(totals["rows"]), counts, f"such row: {shown}")


def _weighted(
    frame: DataFrame, event_weights: dict[str, float], drop_unknown: bool, source: str
) -> tuple[DataFrame, dict[str, int]]:
    """A numeric `weight` per row: the given column, or the event type's weight."""
    from pyspark.sql import functions as sf

    if "weight" in frame.columns:
        return frame, {}
    label = sf.lower(sf.trim(sf.col("event_type").cast("string")))
    frame = frame.withColumn("event_type", label)
    counts = {
        ("<missing>" if row[0] is None else row[0]): int(row[1])
        for row in frame.groupBy("event_type").count().collect()
    }
    unknown = {name: n for name, n in counts.items() if name not in event_weights}
    if unknown and not drop_unknown:
        raise unknown_events_error(unknown, event_weights)
    pairs = [x for name, w in event_weights.items() for x in (sf.lit(name), sf.lit(float(w)))]
    lookup = sf.create_map(*pairs) if pairs else sf.create_map().cast("map<string,double>")
    frame = frame.withColumn("weight", lookup[sf.col("event_type")])
    if unknown:
        frame = frame.filter(sf.col("weight").isNotNull())
    return frame, unknown


def read_with_spark(
    spark: SparkSession,
    source: str,
    event_weights: dict[str, float],
    *,
    query: str | None = None,
    drop_unknown_events: bool = False,
    drop_invalid_rows: bool = False,
    timestamp_unit: EpochUnit = EpochUnit.auto,
    jdbc: bool = True,
) -> InteractionLog:
    """Read `source` in Spark and return its (user, item) pairs with summed weights, latest time."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as sf

    try:
        frame = _source_frame(spark, source, query, jdbc)
        frame = frame.toDF(*[c.lower() for c in frame.columns])
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing or ("weight" not in frame.columns and "event_type" not in frame.columns):
            raise TrainingInputError(
                f"{source}: missing column(s) {', '.join(missing) or 'weight or event_type'}; found "
                f"{', '.join(frame.columns) or 'none'}. Expected user_id, item_id and weight or "
                "event_type (timestamp optional)."
            )
        has_time = "timestamp" in frame.columns
        notes: list[str] = []
        if "weight" in frame.columns:
            frame = frame.withColumn("weight", sf.col("weight").try_cast("double"))
        if has_time:
            frame, notes = _epoch_seconds(frame, timestamp_unit)
        frame, invalid = _invalid_rows(frame, "weight" in frame.columns, has_time, drop_invalid_rows, source)
        frame, dropped = _weighted(frame, event_weights, drop_unknown_events, source)
        aggregates = [sf.sum("weight").cast("float").alias("weight")]
        if has_time:
            aggregates.append(sf.max("timestamp").alias("timestamp"))
        pairs = frame.groupBy(
            sf.col("user_id").cast("string").alias("user_id"),
            sf.col("item_id").cast("string").alias("item_id"),
        ).agg(*aggregates)
        table = pairs.toArrow()
    except (PySparkException, Py4JJavaError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise TrainingInputError(f"{source}: Spark could not read it ({first}).") from None
    if table.num_rows == 0:
        raise NoInteractionsError(
            f"No interactions found in {source}. Record some events (views, likes, ...) first."
        )
    log = from_table(table, {}, source=source, timestamp_unit=EpochUnit.s)
    return replace(log, dropped_unknown_events=dropped, dropped_invalid_rows=invalid, notes=tuple(notes))
