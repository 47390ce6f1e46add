"""The `recsys` commands, one module per group (data, train, evaluate, store); `training.cli`
registers them all on one Typer app. Training options are declared once, on TrainSettings, and
turned into CLI options by `training.commands.options`."""
