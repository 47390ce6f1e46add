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
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from training.errors import NoInteractionsError, TrainingInputError
from training.events import unknown_events_error
from training.interaction_log import REQUIRED, InteractionLog, from_table
from training.readers.dispatch import is_sql_url, read_source_table
from training.readers.sql import DEFAULT_QUERY

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


def _epoch_seconds(frame: DataFrame) -> DataFrame:
    """The `timestamp` column as epoch seconds, from numbers, Spark timestamps or ISO strings."""
    from pyspark.sql import functions as sf
    from pyspark.sql.types import DateType, NumericType, StringType, TimestampType

    kind = frame.schema["timestamp"].dataType
    col = sf.col("timestamp")
    if isinstance(kind, NumericType):
        seconds = col.cast("long")
    elif isinstance(kind, (TimestampType, DateType)):
        seconds = sf.unix_timestamp(col.cast("timestamp"))
    elif isinstance(kind, StringType):
        as_number = col.try_cast("double")
        seconds = sf.when(as_number.isNotNull(), as_number.cast("long")).otherwise(
            sf.unix_timestamp(sf.try_to_timestamp(col))
        )
    else:
        raise TrainingInputError(f"Column 'timestamp' has an unusable type {kind.simpleString()}.")
    frame = frame.withColumn("timestamp", seconds)
    bad = frame.filter(sf.col("timestamp").isNull()).count()
    if bad:
        raise TrainingInputError(
            f"Column 'timestamp' has {bad} empty or unparseable values; use epoch seconds or ISO 8601 "
            "(2024-05-01T12:00:00), or drop the column."
        )
    return frame


def _weighted(
    frame: DataFrame, event_weights: dict[str, float], drop_unknown: bool, source: str
) -> tuple[DataFrame, dict[str, int]]:
    """A numeric `weight` per row: the given column, or the event type's weight."""
    from pyspark.sql import functions as sf

    if "weight" in frame.columns:
        frame = frame.withColumn("weight", sf.col("weight").try_cast("double"))
        empty = frame.filter(sf.col("weight").isNull() | sf.isnan("weight")).count()
        if empty:
            raise TrainingInputError(f"{source}: column 'weight' has {empty} empty or non-numeric values.")
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
        null_ids = frame.filter(sf.col("user_id").isNull() | sf.col("item_id").isNull()).count()
        if null_ids:
            raise TrainingInputError(
                f"{source}: {null_ids} rows without a user_id or item_id; ids are required."
            )
        frame, dropped = _weighted(frame, event_weights, drop_unknown_events, source)
        has_time = "timestamp" in frame.columns
        if has_time:
            frame = _epoch_seconds(frame)
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
    return replace(from_table(table, {}, source=source), dropped_unknown_events=dropped)
