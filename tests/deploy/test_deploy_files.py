"""The scheduling files in deploy/ are checked by the tools their platforms use: yamllint, the
Compose specification's schema, Kubernetes' own schemas, `systemd-analyze verify`; and every
`recsys retrain` option they pass is one the command has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from yamllint import linter
from yamllint.config import YamlLintConfig

from training.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
YAMLS = sorted(DEPLOY.rglob("*.yaml"))


def test_every_yaml_file_is_yamllint_clean() -> None:
    config = YamlLintConfig("{extends: default, rules: {line-length: {max: 120}, document-start: disable}}")
    problems = [f"{p.name}:{e.line}: {e.message}" for p in YAMLS for e in linter.run(p.read_text(), config)]
    assert YAMLS and problems == []


def test_the_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cronjob_is_a_valid_kubernetes_object_that_never_overlaps() -> None:
    import kubernetes_validate

    manifest = yaml.safe_load((DEPLOY / "kubernetes" / "retrain-cronjob.yaml").read_text())
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = manifest["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units name /srv/recsys; verify checks that ExecStart exists, so the same units are
    verified with that folder pointing at this checkout's environment."""
    root = tmp_path / "srv"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / "artifacts").mkdir()
    (root / ".venv" / "bin" / "recsys").symlink_to(Path(sys.executable).with_name("recsys"))
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/srv/recsys", str(root)))
        units.append(str(copy))
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _retrain_options() -> set[str]:
    shown = CliRunner().invoke(app, ["retrain", "--help"], env={"COLUMNS": "300"}).output
    return set(re.findall(r"--[a-z][a-z-]+", shown))


def _invocations() -> dict[str, list[str]]:
    """The arguments each schedule passes to `recsys`, read where each platform keeps them."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    cronjob = yaml.safe_load((DEPLOY / "kubernetes" / "retrain-cronjob.yaml").read_text())
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    service = (DEPLOY / "systemd" / "recsys-retrain.service").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    cron = (DEPLOY / "cron" / "recsys-retrain").read_text()
    cron_line = next(line for line in cron.splitlines() if line[:1].isdigit())
    return {
        "compose": compose["services"]["retrain"]["command"],
        "kubernetes": container["args"],
        "systemd": exec_start.split("recsys retrain", 1)[1].split(),
        "cron": cron_line.split("recsys retrain", 1)[1].split(">>")[0].split(),
    }


def test_every_option_the_schedules_pass_to_recsys_retrain_exists() -> None:
    known = _retrain_options()
    for platform, args in _invocations().items():
        options = {a for a in args if a.startswith("--")}
        assert "--interactions" in options, platform
        assert options <= known, (platform, options - known)


def test_the_cron_line_has_five_time_fields_a_user_and_the_retrain() -> None:
    lines = [
        line
        for line in (DEPLOY / "cron" / "recsys-retrain").read_text().splitlines()
        if line and line[0].isdigit()
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    minute, hour, day, month, weekday, user, command = fields
    assert (
        0 <= int(minute) < 60
        and 0 <= int(hour) < 24
        and (day, month) == ("*", "*")
        and 0 <= int(weekday) <= 7
    )
    assert user == "recsys" and "recsys retrain" in command
