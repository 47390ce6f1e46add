"""PNG plots a person would rather look at than read: the loss curve and validation by iteration."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.als import IterationRecord

_preload: threading.Thread | None = None


def preload() -> None:
    """Start importing matplotlib on a thread of its own. The import costs ~0.3 s of a
    `recsys train` on ML-1M (`python -X importtime`); begun before the fit, whose solver runs in
    native code without the GIL, it is done by the time the curve is drawn instead of adding to
    the command's time. Not a daemon: an interpreter never exits in the middle of it."""
    global _preload
    if _preload is None and "matplotlib.figure" not in sys.modules:
        _preload = threading.Thread(target=_import_figure, name="matplotlib-import")
        _preload.start()


def _import_figure() -> None:
    """The object-oriented API only: a `Figure` renders with Agg on `savefig` without pyplot,
    whose import (GUI backend resolution, global figure manager) is half of matplotlib's cost
    and whose global state is not thread-safe."""
    import matplotlib.figure  # noqa: F401


def _figure(width: float, height: float) -> Any:
    if _preload is not None:
        _preload.join()
    _import_figure()  # a no-op once the preload has run
    return sys.modules["matplotlib.figure"].Figure(figsize=(width, height), dpi=100)


def plot_training_curve(
    history: list[IterationRecord],
    path: Path,
    title: str,
    loss_label: str = "training loss",
    validation_label: str = "validation",
) -> Path | None:
    """Loss per iteration (left axis) and the validation metric where measured (right axis)."""
    losses = [(h.iteration, h.loss) for h in history if h.loss is not None]
    vals = [(h.iteration, h.validation_score) for h in history if h.validation_score is not None]
    if not losses and not vals:
        return None
    fig = _figure(7, 4)
    ax = fig.subplots()
    if losses:
        ax.plot([i for i, _ in losses], [v for _, v in losses], marker="o", ms=3, color="tab:blue")
        ax.set_ylabel(loss_label, color="tab:blue")
    ax.set_xlabel("iteration")
    ax.grid(alpha=0.3)
    if vals:
        ax2 = ax.twinx()
        ax2.plot([i for i, _ in vals], [v for _, v in vals], marker="s", color="tab:orange")
        ax2.set_ylabel(validation_label, color="tab:orange")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_tuning(rows: list[dict[str, float | str]], metric: str, path: Path) -> Path:
    """One bar per configuration tried, best highlighted: what the search saw."""
    labels = [str(r["label"]) for r in rows]
    values = [float(r[metric]) for r in rows]
    best = max(range(len(values)), key=values.__getitem__)
    fig = _figure(max(6, 0.35 * len(rows) + 2), 4)
    ax = fig.subplots()
    colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(rows))]
    ax.bar(range(len(rows)), values, color=colors)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=75, fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"hyperparameter search ({metric}, best in orange)")
    fig.tight_layout()
    fig.savefig(path)
    return path
