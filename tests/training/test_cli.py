"""The `recsys` command as a user runs it: real files in, versions out, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from training.cli import app
from training.synthetic import SyntheticConfig, generate, write

runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return write(generate(SyntheticConfig(users=1_500, items=300, interactions=40_000, clusters=6)), folder)


def test_train_with_pinned_parameters_writes_a_version_and_reports_metrics(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app,
        [
            "train",
            "-i",
            str(inter),
            "--artifacts",
            str(tmp_path),
            "--factors",
            "16",
            "--alpha",
            "4",
            "--regularization",
            "10",
            "--iterations",
            "5",
            "--scaling",
            "log",
            "--popularity-discount",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "als" in result.stdout and "popularity" in result.stdout
    metrics = json.loads((tmp_path / "als_v1" / "metrics.json").read_text())
    assert metrics["als"]["ndcg"] > metrics["popularity"]["ndcg"]
    assert "selection" not in metrics  # nothing left to choose


def test_train_by_default_chooses_its_parameters_on_validation(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app,
        ["train", "-i", str(inter), "--artifacts", str(tmp_path), "--factors", "8", "--max-iterations", "5"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "als_v1" / "manifest.json").read_text())
    assert manifest["hyperparameters"]["chosen_on_validation"] == [
        "alpha",
        "iterations",
        "popularity_discount",
        "regularization",
        "scaling",
    ]
    assert len(manifest["metrics"]["selection"]) >= 8


def test_a_spent_search_budget_keeps_the_best_trial_so_far_and_says_so(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app,
        [
            "train",
            "-i",
            str(inter),
            "--artifacts",
            str(tmp_path),
            "--factors",
            "8",
            "--search-seconds",
            "0.001",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "search budget of 0.001s spent after 1 trials" in result.output
    metrics = json.loads((tmp_path / "als_v1" / "metrics.json").read_text())
    assert metrics["selection_stopped_by_budget"] is True
    assert len(metrics["selection"]) == 1


def test_a_search_budget_must_be_positive(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(app, ["train", "-i", str(inter), "--search-seconds", "0"])
    assert result.exit_code == 2 and "--search-seconds / RECSYS_SEARCH_SECONDS: " in result.output


def test_environment_variables_set_options(tmp_path, synthetic_files, monkeypatch) -> None:
    inter, _ = synthetic_files
    monkeypatch.setenv("RECSYS_FACTORS", "12")
    monkeypatch.setenv("RECSYS_TEST_SPLIT", "0")
    result = runner.invoke(
        app,
        [
            "train",
            "-i",
            str(inter),
            "--artifacts",
            str(tmp_path),
            "--alpha",
            "2",
            "--regularization",
            "5",
            "--iterations",
            "2",
            "--scaling",
            "binary",
            "--popularity-discount",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "als_v1" / "manifest.json").read_text())
    assert manifest["hyperparameters"]["factors"] == 12
    assert manifest["metrics"]["trained_on"] == "all"


def test_dataset_writes_the_seed_outputs(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app, ["dataset", "-i", str(inter), "--out", str(tmp_path), "--min-interactions", "5"]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} >= {
        "interactions.npz",
        "user_mapping.json",
        "item_mapping.json",
    }


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("user_id,item_id,event_type\n", [], "No interactions found"),
        ("user_id,item_id,event_type\n1,2,view\n1,3,share\n", [], "Unknown event types: 'share' x1"),
        ("user_id,item_id,weight\n1,2,1\n2,2,1\n", ["--min-interactions", "3"], "Matrix too sparse"),
        ("uid,item_id,weight\n1,2,1\n", [], "missing column(s) user_id"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path, content, args, expected) -> None:
    path = tmp_path / "log.csv"
    path.write_text(content)
    result = runner.invoke(app, ["train", "-i", str(path), "--artifacts", str(tmp_path / "a"), *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "a").exists()


def test_out_of_range_options_are_refused_by_name(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(app, ["train", "-i", str(inter), "--test-split", "1.5"])
    assert result.exit_code == 2 and "--test-split / RECSYS_TEST_SPLIT: " in result.output


def test_help_shows_every_default() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("RECSYS_FACTORS", "default: (64)", "auto (chosen on validation)", "--seed-defaults"):
        assert text in result.output


def test_tune_prints_a_table_and_saves_the_best(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app,
        [
            "tune",
            "-i",
            str(inter),
            "--factors",
            "8",
            "--regularization",
            "1,10",
            "--alpha",
            "4",
            "--iterations",
            "4",
            "--scaling",
            "log",
            "--popularity-discount",
            "0,0.5",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["regularization"] in (1.0, 10.0) and (tmp_path / "tuning.png").is_file()
    assert best["popularity_discount"] in (0.0, 0.5)
    trials = json.loads((tmp_path / "trials.json").read_text())
    assert {(t["regularization"], t["popularity_discount"]) for t in trials} == {
        (1.0, 0.0),
        (1.0, 0.5),
        (10.0, 0.0),
        (10.0, 0.5),
    }


def test_the_entry_point_freezes_the_heap_so_shutdown_skips_the_cycle_collections(monkeypatch) -> None:
    import gc

    from training.cli import main

    monkeypatch.setattr("sys.argv", ["recsys", "--help"])
    try:
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_an_out_of_range_setting_names_its_option_and_variable(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    result = runner.invoke(
        app, ["train", "-i", str(inter), "--artifacts", str(tmp_path), "--popularity-discount", "3"]
    )
    assert result.exit_code == 2
    assert "--popularity-discount / RECSYS_POPULARITY_DISCOUNT" in result.output
    assert "less than or equal to 2 (got 3.0)" in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--factors", "0"], "--factors: Input should be greater than or equal to 1 (got 0)"),
        (["--alpha", "4,-1"], "--alpha: Input should be greater than 0 (got -1.0)"),
        (["--regularization", "-0.5"], "--regularization: Input should be greater than or equal to 0"),
        (["--popularity-discount", "3"], "--popularity-discount: Input should be less than or equal to 2"),
        (["--iterations", "0"], "--iterations: Input should be greater than or equal to 1 (got 0)"),
        (["--factors", "6.5"], "--factors '6.5': expected comma-separated whole numbers"),
    ],
)
def test_tune_refuses_bad_grid_values_before_reading_anything(tmp_path, flags, message) -> None:
    result = runner.invoke(
        app, ["tune", "-i", str(tmp_path / "not-read.csv"), "--out", str(tmp_path), *flags]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "SSYMV" not in result.output


def test_output_paths_of_the_wrong_kind_are_refused_before_the_work(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (["train", "-i", str(inter), "--artifacts", str(a_file)], "--artifacts"),
        (["train-all", "-i", str(inter), "--artifacts", str(a_file / "sub")], "--artifacts"),
        (["tune", "-i", str(inter), "--out", str(a_file)], "--out"),
        (["generate", "--out", str(a_file)], "--out"),
        (["dataset", "-i", str(inter), "--out", str(a_file)], "--out"),
        (["evaluate", "-i", str(inter), "--json", str(tmp_path)], "--json"),
        (["evaluate-tiers", "-i", str(inter), "--json", str(tmp_path)], "--json"),
    ]
    for args, option in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(f"Error: {option} "), (args, result.output)
        assert "reading" not in result.output and len(result.output.splitlines()) == 1


def test_train_and_train_all_say_the_same_of_a_folder_without_metadata(tmp_path, synthetic_files) -> None:
    inter, _ = synthetic_files
    outputs = []
    for command in ("train", "train-all"):
        result = runner.invoke(
            app, [command, "-i", str(inter), "--items", str(tmp_path), "--artifacts", str(tmp_path / "a")]
        )
        assert result.exit_code == 2
        outputs.append(result.output)
    assert outputs[0] == outputs[1] and "no item metadata found there" in outputs[0]


def test_train_reports_how_it_read_times_and_what_it_dropped(tmp_path) -> None:
    rows = ["user_id,item_id,event_type,timestamp"]
    for n in range(400):
        user = "" if n % 50 == 0 else f"u{n % 40}"
        rows.append(f"{user},i{n % 23},like,{(1_767_225_600 + n) * 1000}")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(rows) + "\n")
    base = [
        "train",
        "-i",
        str(path),
        "--artifacts",
        str(tmp_path / "a"),
        "--factors",
        "4",
        "--iterations",
        "2",
    ]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and "8 without a user_id" in refused.output
    result = runner.invoke(app, [*base, "--drop-invalid-rows", "--test-split", "0"])
    assert result.exit_code == 0, result.output
    assert "read: timestamp: epoch milliseconds (inferred from the magnitude" in result.output
    assert "dropped invalid rows (--drop-invalid-rows): 8 without a user_id" in result.output
    metrics = json.loads((tmp_path / "a" / "als_v1" / "metrics.json").read_text())
    assert metrics["data"]["dropped_invalid_rows"] == {"without a user_id": 8}
    assert metrics["data"]["events"] == 392
