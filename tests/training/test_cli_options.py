"""Training options come from TrainSettings: one declaration gives every command that takes the
field its flag, type, help, RECSYS_ variable and bounds."""

import pytest
import typer
from typer.testing import CliRunner

from training.cli import app
from training.commands import options as o
from training.commands.common import friendly_errors
from training.commands.options import settings_options
from training.settings import TrainSettings

runner = CliRunner()
ALL = (
    o.READING,
    "artifacts",
    o.FILTERS,
    o.ALS,
    o.ALS_FIT,
    "split",
    o.HOLDOUT,
    o.ITEMS,
    o.INDEX,
    o.MODELS,
    o.TIERS,
    o.SPARK,
)


def _probe(*groups) -> tuple[typer.Typer, list[TrainSettings]]:
    probe = typer.Typer()
    seen: list[TrainSettings] = []

    @probe.command()
    @friendly_errors
    @settings_options(*groups)
    def run(name: str = "x", *, settings: TrainSettings) -> None:
        seen.append(settings)

    return probe, seen


def test_given_options_reach_the_settings_and_unset_ones_keep_env_and_defaults(monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_K", "7")
    monkeypatch.setenv("RECSYS_FACTORS", "33")
    probe, seen = _probe(*ALL, "seed_defaults")
    args = ["--factors", "12", "--no-refit", "--no-gpu", "--biases", "--master", "local[2]"]
    args += ["--categorical", "a", "--categorical", "b", "--scaling", "log", "--drop-invalid-rows"]
    args += ["--event-weight", "view=0.5"]
    result = runner.invoke(probe, args)
    assert result.exit_code == 0, result.output
    [s] = seen
    assert (s.factors, s.k, s.refit, s.use_gpu, s.biases) == (12, 7, False, False, True)
    assert s.spark_master == "local[2]" and s.categorical == ["a", "b"] and s.drop_invalid_rows
    assert s.scaling == "log" and s.event_weights["view"] == 0.5
    assert s.alpha is None and s.two_tower is True  # unset: chosen on validation / the default


def test_seed_defaults_fill_only_what_is_not_given() -> None:
    probe, seen = _probe(o.ALS, "seed_defaults")
    assert runner.invoke(probe, ["--seed-defaults", "--alpha", "2"]).exit_code == 0
    assert (seen[0].factors, seen[0].alpha, seen[0].regularization) == (128, 2.0, 0.01)


def test_a_bad_value_is_one_line_naming_option_and_variable(monkeypatch) -> None:
    probe, _ = _probe(o.HOLDOUT)
    result = runner.invoke(probe, ["--k", "0"])
    assert result.exit_code == 2
    assert "--k / RECSYS_K: Input should be greater than or equal to 1 (got 0)" in result.output
    monkeypatch.setenv("RECSYS_TEST_SPLIT", "1.5")
    result = runner.invoke(probe, [])
    assert result.exit_code == 2 and "--test-split / RECSYS_TEST_SPLIT" in result.output


def test_an_unknown_field_in_a_group_is_refused_when_the_command_is_defined() -> None:
    with pytest.raises(TypeError, match="factor_budget"):
        _probe(("factors", "factor_budget"))


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ("dataset", o.READING + o.FILTERS),
        (
            "train",
            (
                *o.READING,
                "artifacts",
                *o.FILTERS,
                *o.ALS,
                *o.ALS_FIT,
                "split",
                *o.HOLDOUT,
                *o.ITEMS,
                *o.INDEX,
                *o.SPARK,
            ),
        ),
        (
            "train-all",
            (*o.READING, "artifacts", "min_interactions", *o.ALS, *o.HOLDOUT, *o.MODELS, *o.TIERS, *o.ITEMS),
        ),
        (
            "evaluate-tiers",
            (*o.READING, "min_interactions", "factors", "two_tower", "device", *o.HOLDOUT, *o.TIERS),
        ),
        ("evaluate", o.READING + o.ALS + ("split", "biases") + o.HOLDOUT),
        ("tune", (*o.READING, "seed")),
        ("demo", ("two_tower",)),
    ],
)
def test_every_command_shows_its_settings_with_their_variables(command, fields) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for name in fields:
        if name in TrainSettings.model_fields:
            assert f"(env RECSYS_{name.upper()})" in result.output, name
