"""`recsys recommend`: one user as a table or JSON, a file of users to Parquet, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.inprocess import LocalService
from tests.builders import train_versions
from training.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recommend-cli")
    train_versions(folder, users=300)
    return folder


def test_one_user_prints_a_table_with_the_method_used(artifacts: Path) -> None:
    result = runner.invoke(app, ["recommend", "someone-new", "-k", "4", "--artifacts", str(artifacts)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("user someone-new: tier cold, method_used popularity, version als_v1")
    assert lines[1].split() == ["rank", "item_id", "score", "source"]
    assert len(lines) == 2 + 4 and lines[2].split()[0] == "1"


def test_json_output_is_the_candidates_body(artifacts: Path) -> None:
    result = runner.invoke(app, ["recommend", "u00001", "-k", "3", "--json", "--artifacts", str(artifacts)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    with LocalService(artifacts) as service:
        assert [c["item_id"] for c in body["candidates"]] == service.recommend("u00001", 3).items
    assert set(body) == {"user_id", "tier", "method_used", "model_version", "variant", "candidates"}


def test_a_users_file_becomes_parquet_one_row_per_candidate(artifacts: Path, tmp_path: Path) -> None:
    ids = tmp_path / "users.txt"
    ids.write_text("u00001\n\nu00002\nstranger-ü\n", encoding="utf-8")
    out = tmp_path / "out" / "candidates.parquet"
    result = runner.invoke(
        app,
        ["recommend", "--users-file", str(ids), "--out", str(out), "-k", "5", "--artifacts", str(artifacts)],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 15 candidates of 3 users" in result.output
    table = pq.read_table(out).to_pydict()
    assert table["user_id"] == ["u00001"] * 5 + ["u00002"] * 5 + ["stranger-ü"] * 5
    assert table["rank"][:5] == [1, 2, 3, 4, 5]
    assert set(table["method_used"][10:]) == {"popularity"}
    assert not list(out.parent.glob(".*partial"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a USER_ID, or --users-file"),
        (["u1", "--filters", "{nope"], "--filters is not JSON"),
        (["u1", "--filters", "[1]"], "--filters must be a JSON object"),
        (["u1", "-k", "0"], "limit: must be 1 to"),
        (["u1", "--filters", '{"attributes": {"x": {"gt": 1, "gte": 2}}}'], "give gte or gt, not both"),
        (["--users-file", "missing.txt", "--out", "x.parquet"], "no such file"),
    ],
)
def test_bad_input_is_one_line_saying_what_to_fix(artifacts: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["recommend", *args, "--artifacts", str(artifacts)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_artifacts_folder_without_versions_says_to_train(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recommend", "u1", "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "run `recsys train` first" in result.output


def test_a_version_folder_copied_elsewhere_is_served_and_a_renamed_one_refused(
    artifacts: Path, tmp_path: Path
) -> None:
    shutil.copytree(artifacts / "als_v1", tmp_path / "als_v1")
    result = runner.invoke(app, ["recommend", "someone-new", "--artifacts", str(tmp_path / "als_v1")])
    assert result.exit_code == 0 and "version als_v1" in result.output, result.output
    (tmp_path / "als_v1").rename(tmp_path / "als_v7")
    result = runner.invoke(app, ["recommend", "someone-new", "--artifacts", str(tmp_path / "als_v7")])
    assert result.exit_code == 2 and "the folder was renamed" in result.output, result.output
