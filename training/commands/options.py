"""Training options, declared once: on their TrainSettings field.

A command states the settings groups it takes (`@settings_options(READING, ALS, ...)`) and
receives one validated `settings: TrainSettings`. From each field come the option's name
(`--field-name`, or the flags in the field's `json_schema_extra["cli"]`), its type (enum choices,
repeatable lists), its help text (the field's description plus its RECSYS_ variable), the default
shown in --help, and its bounds (checked by pydantic, reported as one line by `friendly_errors`).
The options appear in the command's --help where its `settings` parameter stands.

Adding a training option is one declaration: a field on TrainSettings whose
`json_schema_extra={"group": ...}` names its group; every command that takes the group gets it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Annotated, Any

import typer

from training.events import parse_weight_overrides
from training.settings import SEED_DEFAULTS, TrainSettings

_FIELDS = TrainSettings.model_fields
_ENV_PREFIX = TrainSettings.model_config.get("env_prefix", "")

# -- options that only shape the settings (they are not fields themselves) --------------------------
EventWeightOpt = Annotated[
    list[str] | None,
    typer.Option("--event-weight", help="Override or add an event weight: NAME=VALUE (repeatable)."),
]
SeedDefaultsOpt = Annotated[
    bool,
    typer.Option(
        "--seed-defaults",
        help="The training guide's values: factors 128, "
        "regularization 0.01, iterations 20, alpha 40, linear scaling, no popularity discount.",
    ),
]
_EXTRAS: dict[str, tuple[Any, Any]] = {
    "event_weight": (EventWeightOpt, None),
    "seed_defaults": (SeedDefaultsOpt, False),
}

# -- the settings groups: each field names its group (`json_schema_extra={"group": ...}`) ---------


def fields_in(group: str) -> tuple[str, ...]:
    """The TrainSettings fields of a group, in declaration order."""
    return tuple(
        name
        for name, field in _FIELDS.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("group") == group
    )


READING = (*fields_in("reading"), "event_weight")
ITEMS = fields_in("items")
FILTERS = fields_in("filters")
ALS = fields_in("als")
ALS_FIT = fields_in("als_fit")
HOLDOUT = fields_in("holdout")
INDEX = fields_in("index")
MODELS = fields_in("models")
TIERS = fields_in("tiers")
SPARK = fields_in("spark")
RETRAIN = fields_in("retrain")

Group = str | tuple[str, ...]


def _shown_default(name: str) -> str:
    value = _FIELDS[name].get_default(call_default_factory=True)
    return "auto (chosen on validation)" if value is None else str(value)


def _flags(name: str) -> tuple[str, ...]:
    extra = _FIELDS[name].json_schema_extra
    flags = extra.get("cli") if isinstance(extra, dict) else None
    if isinstance(flags, list | tuple):
        return tuple(str(flag) for flag in flags)
    return (f"--{name.replace('_', '-')}",)


def env_var(name: str) -> str:
    return f"{_ENV_PREFIX}{name}".upper()


def field_parameter(name: str) -> inspect.Parameter:
    """The CLI option of one TrainSettings field: unset (None) unless given, so the environment
    and the field's default apply; the field's help, variable and default in --help."""
    if name in _EXTRAS:
        annotation, default = _EXTRAS[name]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
    field = _FIELDS[name]
    option = typer.Option(
        None,
        *_flags(name),
        help=f"{field.description} (env {env_var(name)})",
        show_default=_shown_default(name),
    )
    value_type: Any = field.annotation
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=value_type | None, default=option
    )


def build_settings(
    event_weight: list[str] | None = None, seed_defaults: bool = False, **options: Any
) -> TrainSettings:
    """Given options over the environment over the defaults; `--seed-defaults` fills what is
    not given, `--event-weight` updates the event weights."""
    values = {k: v for k, v in options.items() if v is not None}
    if seed_defaults:
        values = {**SEED_DEFAULTS, **values}
    settings = TrainSettings(**values)
    if event_weight:
        settings = settings.model_copy(
            update={"event_weights": {**settings.event_weights, **parse_weight_overrides(event_weight)}}
        )
    return settings


def _names(groups: Iterable[Group]) -> tuple[str, ...]:
    names: list[str] = []
    for group in groups:
        for name in (group,) if isinstance(group, str) else group:
            if name not in _FIELDS and name not in _EXTRAS:
                raise TypeError(f"{name!r} is not a TrainSettings field")
            if name not in names:
                names.append(name)
    return tuple(names)


def settings_options(*groups: Group) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the options of these settings groups (or single field names); the command
    declares `settings: TrainSettings` (keyword-only) where the options belong in its --help."""
    names = _names(groups)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        if "settings" not in own.parameters:
            raise TypeError(f"{fn.__name__} takes no `settings` parameter")
        parameters: list[inspect.Parameter] = []
        for param in own.parameters.values():
            if param.name == "settings":
                parameters.extend(field_parameter(name) for name in names)
            else:
                parameters.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @wraps(fn)
        def command(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            return fn(**kwargs, settings=build_settings(**given))

        command.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {
            p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty
        }
        return command

    return decorate
