"""One local Spark session for the Spark tests (a JVM start costs seconds), or a skip saying why."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES
from training.settings import TrainSettings

SPARK_SETTINGS = TrainSettings(spark_master="local[2]", spark_driver_memory="1g", spark_partitions=2)


def require_spark() -> None:
    """Skip (or fail, where CI promises Spark) when pyspark or Java is missing."""
    reasons = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        reasons.append("pyspark is not installed (the [spark] extra)")
    if shutil.which("java") is None:
        reasons.append("no java on PATH (Spark needs Java 17+)")
    if reasons:
        if REQUIRE_SERVICES:
            pytest.fail("; ".join(reasons))
        pytest.skip("; ".join(reasons))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    require_spark()
    from training.spark.session import spark_session

    with spark_session(SPARK_SETTINGS) as session:
        yield session
