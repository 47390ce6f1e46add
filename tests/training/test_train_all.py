"""`recsys train-all` and `recsys evaluate-tiers` as a user runs them: files in, a version with
every model out, the per-tier table printed."""

import json

import pytest
from typer.testing import CliRunner

from feature_store.manifest import verify_version
from training.cli import app
from training.synthetic import SyntheticConfig, generate, write

runner = CliRunner()
FAST = [
    "--factors",
    "8",
    "--alpha",
    "4",
    "--regularization",
    "1",
    "--iterations",
    "3",
    "--scaling",
    "log",
    "--popularity-discount",
    "0",
]
FAST_TT = ["--two-tower-epochs", "2", "--two-tower-dim", "16"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic-all")
    return write(generate(SyntheticConfig(users=1_200, items=300, interactions=30_000, clusters=6)), folder)


def test_train_all_writes_one_verified_version_with_every_model_and_the_tier_table(tmp_path, files) -> None:
    inter, items = files
    result = runner.invoke(
        app,
        ["train-all", "-i", str(inter), "--items", str(items), "--artifacts", str(tmp_path), *FAST, *FAST_TT],
    )
    assert result.exit_code == 0, result.output
    assert "content_based" in result.stdout and "ensemble" in result.stdout
    assert "cold: content_based > popularity" in result.stdout
    manifest = verify_version(tmp_path / "als_v1")
    assert manifest.hyperparameters["models"] == ["als", "popularity", "content", "two_tower", "ensemble"]
    tiers = manifest.metrics["tiers"]
    assert {r["tier"] for r in tiers["rows"]} == {"cold", "warm", "hot"}
    assert (tmp_path / "LATEST").read_text().strip() == "als_v1"


def test_without_item_metadata_the_content_model_is_skipped_honestly(tmp_path, files) -> None:
    inter, _ = files
    result = runner.invoke(
        app,
        [
            "train-all",
            "-i",
            str(inter),
            "--artifacts",
            str(tmp_path),
            "--test-split",
            "0",
            "--no-two-tower",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "content model is skipped" in result.output
    manifest = verify_version(tmp_path / "als_v1")
    assert manifest.hyperparameters["models"] == ["als", "popularity"]
    assert not (tmp_path / "als_v1" / "content_vectors.npy").exists()


def test_evaluate_tiers_prints_the_table_and_writes_json(tmp_path, files) -> None:
    inter, items = files
    out = tmp_path / "tiers.json"
    result = runner.invoke(
        app,
        [
            "evaluate-tiers",
            "-i",
            str(inter),
            "--items",
            str(items),
            "--json",
            str(out),
            "--factors",
            "8",
            *FAST_TT[:2],
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    methods = {(r["tier"], r["method"]) for r in report["rows"]}
    assert (
        ("cold", "content_based") in methods and ("hot", "ensemble") in methods and ("warm", "als") in methods
    )
    assert (
        "| tier | users | method | P@10 | R@10 | NDCG@10 | coverage | diversity | Gini | novelty |"
        in result.stdout
    )
    assert not list(tmp_path.glob("als_v*"))  # evaluation writes no version


def test_item_metadata_that_matches_no_item_is_a_one_line_error(tmp_path, files) -> None:
    inter, _ = files
    bad = tmp_path / "items.csv"
    bad.write_text("item_id,category\nnope,x\n")
    result = runner.invoke(
        app,
        [
            "train-all",
            "-i",
            str(inter),
            "--items",
            str(bad),
            "--artifacts",
            str(tmp_path),
            "--no-two-tower",
            *FAST,
        ],
    )
    assert result.exit_code == 2
    assert "item_id" in result.output and "Traceback" not in result.output
