"""Starting (and stopping) Spark from TrainSettings, with errors that say what to install."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from training.errors import TrainingInputError
from training.settings import TrainSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Debian's libpostgresql-jdbc-java puts the driver here; Spark's JDBC reader needs it on the classpath.
DEBIAN_POSTGRES_JAR = Path("/usr/share/java/postgresql.jar")


def spark_jars(settings: TrainSettings) -> str | None:
    """The jars to ship: the configured ones, else the Debian PostgreSQL driver when installed."""
    if settings.spark_jars:
        return settings.spark_jars
    return str(DEBIAN_POSTGRES_JAR) if DEBIAN_POSTGRES_JAR.exists() else None


def _check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and shutil.which("java") is None:
        raise TrainingInputError(
            "--engine spark needs Java 17 or newer: install it (apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME."
        )


@contextmanager
def spark_session(settings: TrainSettings) -> Iterator[SparkSession]:
    """A Spark session for one training run; stopped at the end so the JVM does not linger.

    The UI is off (nobody watches a batch job's port), and ALS's long lineage is cut by
    checkpoints in a temporary folder, as MLlib advises for more than a handful of iterations.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise TrainingInputError(
            "--engine spark needs pyspark: pip install 'recsys-candidates[spark]'."
        ) from None
    _check_java()
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName("recsys-train")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.maxResultSize", "0")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # Parquet TIMESTAMP(NANOS), what pandas writes, is otherwise unreadable to Spark: as epoch
        # nanoseconds it reaches the reader's unit inference like any other epoch number.
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
    )
    if settings.spark_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(settings.spark_partitions))
        builder = builder.config("spark.default.parallelism", str(settings.spark_partitions))
    jars = spark_jars(settings)
    if jars:
        builder = builder.config("spark.jars", jars)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    checkpoints = tempfile.mkdtemp(prefix="recsys-spark-checkpoints-")
    spark.sparkContext.setCheckpointDir(checkpoints)
    try:
        yield spark
    finally:
        spark.stop()
        shutil.rmtree(checkpoints, ignore_errors=True)
