"""The SQL reader against the real PostgreSQL on this machine (scripts/test.sh starts one)."""

import uuid

import pytest
from sqlalchemy import create_engine, text

from training.errors import NoInteractionsError, TrainingInputError
from training.events import DEFAULT_EVENT_WEIGHTS
from training.readers import read_interactions


@pytest.fixture
def interaction_table(pg_url):
    table = f"UserInteraction_{uuid.uuid4().hex[:8]}"
    engine = create_engine(pg_url)
    users = [str(uuid.UUID(int=i)) for i in range(3)]
    with engine.begin() as conn:
        conn.execute(
            text(
                f'CREATE TABLE "{table}" (id serial primary key, user_id uuid, item_id uuid, '
                'event_type text, "timestamp" timestamptz)'
            )
        )
        rows = [(users[0], users[1], "like"), (users[0], users[2], "view"), (users[1], users[2], "apply")]
        for u, i, e in rows:
            conn.execute(
                text(
                    f'INSERT INTO "{table}" (user_id, item_id, event_type, "timestamp") '
                    "VALUES (:u, :i, :e, '2024-05-01T12:00:00+00')"
                ),
                {"u": u, "i": i, "e": e},
            )
    yield table, users
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{table}"'))
    engine.dispose()


def test_reads_the_seed_table_with_uuid_ids_as_strings(pg_url, interaction_table) -> None:
    table, users = interaction_table
    query = f'SELECT user_id, item_id, event_type, "timestamp" FROM "{table}"'
    log = read_interactions(pg_url, DEFAULT_EVENT_WEIGHTS, query=query)
    assert len(log) == 3
    assert set(log.user_ids.tolist()) == {users[0], users[1]}
    assert sorted(log.weights.tolist()) == [0.5, 2.0, 3.0]
    assert log.timestamps.tolist() == [1714564800] * 3


def test_an_empty_table_says_no_interactions_found(pg_url, interaction_table) -> None:
    table, _ = interaction_table
    query = f'SELECT user_id, item_id, event_type FROM "{table}" WHERE false'
    with pytest.raises(NoInteractionsError, match="No interactions found"):
        read_interactions(pg_url, DEFAULT_EVENT_WEIGHTS, query=query)


def test_a_bad_query_is_one_clear_line_without_the_password(pg_url) -> None:
    with pytest.raises(TrainingInputError) as err:
        read_interactions(pg_url, DEFAULT_EVENT_WEIGHTS, query='SELECT * FROM "NoSuchTable"')
    assert "NoSuchTable" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def web_app_table(pg_url):
    """The seed's table as a web framework writes it: uuid ids, text types, microsecond times,
    anonymous events with a NULL user_id, and a naive `timestamp` column beside the zoned one."""
    table = f"UserInteraction_{uuid.uuid4().hex[:8]}"
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f'CREATE TABLE "{table}" (id serial primary key, user_id uuid, startup_id uuid, '
                "interaction_type text, created_at timestamptz, local_at timestamp)"
            )
        )
        conn.execute(
            text(
                f'INSERT INTO "{table}" (user_id, startup_id, interaction_type, created_at, local_at) '
                "SELECT CASE WHEN g % 10 = 0 THEN NULL ELSE md5('u' || (g % 7))::uuid END, "
                "md5('i' || (g % 5))::uuid, (ARRAY['view','like','click'])[1 + g % 3], "
                "'2026-11-14T12:09:02.900984+00'::timestamptz + g * interval '1.25 seconds', "
                "'2026-11-14T12:09:02.900984'::timestamp + g * interval '1.25 seconds' "
                "FROM generate_series(1, 50) g"
            )
        )
    yield table
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{table}"'))
    engine.dispose()


def _seed_query(table: str, time_column: str = "created_at") -> str:
    return (
        f"SELECT user_id, startup_id AS item_id, interaction_type AS event_type, {time_column} AS timestamp "
        f'FROM "{table}"'
    )


def test_microsecond_timestamptz_and_null_user_ids_stop_with_the_option(pg_url, web_app_table) -> None:
    with pytest.raises(TrainingInputError) as err:
        read_interactions(pg_url, DEFAULT_EVENT_WEIGHTS, query=_seed_query(web_app_table))
    message = str(err.value)
    assert "5 of 50 rows cannot be used (5 without a user_id)" in message
    assert "user_id=None" in message and "--drop-invalid-rows" in message
    assert "would lose data" not in message


def test_microsecond_timestamptz_reads_with_dropped_rows_counted(pg_url, web_app_table) -> None:
    log = read_interactions(
        pg_url, DEFAULT_EVENT_WEIGHTS, query=_seed_query(web_app_table), drop_invalid_rows=True
    )
    assert len(log) == 45 and log.dropped_invalid_rows == {"without a user_id": 5}
    start = (
        1_794_658_142  # 2026-11-14T12:09:02Z; g = 1 is 04.150984, g = 49 (50 is anonymous) is 10:04.150984
    )
    assert log.timestamps.min() == start + 2 and log.timestamps.max() == start + 62
    assert log.notes == ()


def test_a_timestamp_without_zone_is_read_as_utc_and_said_so(pg_url, web_app_table) -> None:
    zoned = read_interactions(
        pg_url, DEFAULT_EVENT_WEIGHTS, query=_seed_query(web_app_table), drop_invalid_rows=True
    )
    naive = read_interactions(
        pg_url, DEFAULT_EVENT_WEIGHTS, query=_seed_query(web_app_table, "local_at"), drop_invalid_rows=True
    )
    assert naive.timestamps.tolist() == zoned.timestamps.tolist()
    assert naive.notes == ("timestamp: times without a time zone taken as UTC",)
