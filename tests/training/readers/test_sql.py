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
