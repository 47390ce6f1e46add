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
    """Loss per iteration (left axis) and the validation metric where measured (right axis, or
    the only axis for a fit that recorded no loss: the search's winner kept by `--no-refit`)."""
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
        ax2 = ax.twinx() if losses else ax
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


def plot_selection(
    rows: list[dict[str, Any]], metric: str, path: Path, chosen: tuple[int, float, float] | None = None
) -> Path | None:
    """What the automatic search saw: the validation metric of every trial against the model
    size (left) and the L2 penalty (right), coloured by alpha, the chosen trial (factors, L2,
    alpha) circled: it may sit under a larger model that did not win by enough to be worth its
    cost. A score still rising at the largest size tried says `--max-factors` held it back."""
    if not rows:
        return None
    import numpy as np

    fig = _figure(10, 4)
    by_size, by_reg = fig.subplots(1, 2, sharey=True)
    scores = [float(r["validation_score"]) for r in rows]
    alphas = np.log10([float(r["alpha"]) for r in rows])
    keys = [(int(r["factors"]), float(r["regularization"]), float(r["alpha"])) for r in rows]
    best = keys.index(chosen) if chosen in keys else int(np.argmax(scores))
    points = None
    for ax, key, base in ((by_size, "factors", 2), (by_reg, "regularization", 10)):
        x = [max(float(r[key]), 1e-6) for r in rows]
        points = ax.scatter(x, scores, c=alphas, cmap="viridis", s=28)
        ax.scatter([x[best]], [scores[best]], s=160, facecolors="none", edgecolors="red")
        ax.set_xscale("log", base=base)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    by_size.set_ylabel(metric)
    fig.colorbar(points, ax=by_reg, label="log10(alpha)")
    fig.suptitle(f"automatic selection: {len(rows)} trials, the chosen one circled")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_embeddings(user_factors: Any, item_factors: Any, popularity: Any, path: Path) -> Path:
    """The shape of the learned space: user and item vector norms (the dot product the service
    ranks by grows with the item norm, so a long tail of large norms means popular items
    dominate), and the items projected on their first two principal components, coloured by
    log popularity (a gradient along one axis means that axis is mostly popularity)."""
    import numpy as np

    fig = _figure(15, 4)
    user_norms, item_norms, projection = fig.subplots(1, 3)
    for ax, name, vectors, colour in (
        (user_norms, "users", user_factors, "tab:blue"),
        (item_norms, "items", item_factors, "tab:orange"),
    ):
        values = np.linalg.norm(np.asarray(vectors, np.float32), axis=1)
        ax.hist(values, bins=50, color=colour)
        ax.set_title(f"{name}: vector norms (median {np.median(values):.3g})")
        ax.set_xlabel("norm")
        ax.set_ylabel("count")
    # Components from (and points drawn for) at most 10,000 items: the picture is the same. They
    # are the top eigenvectors of the factors x factors covariance, the same directions as an SVD
    # of the items (up to sign) at a tenth of its cost: 0.1 s instead of 1 s at 512 factors.
    shown = np.random.default_rng(0).permutation(len(item_factors))[:10_000]
    items = np.asarray(item_factors, np.float64)[shown]
    centred = items - items.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    xy = centred @ vectors[:, ::-1][:, :2]
    counts = np.asarray(popularity, np.float64)[shown]
    order = np.argsort(counts)  # popular items drawn last, on top
    points = projection.scatter(xy[order, 0], xy[order, 1], c=np.log1p(counts[order]), s=3, cmap="viridis")
    fig.colorbar(points, ax=projection, label="log(1 + training users)")
    projection.set_xlabel("principal component 1")
    projection.set_ylabel("principal component 2")
    projection.set_title("items, first two principal components")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_importance(importance: dict[str, float], path: Path, title: str) -> Path:
    """The ranker's features by their share of the total split gain, largest on top."""
    ordered = sorted(importance.items(), key=lambda kv: kv[1])
    fig = _figure(7, 0.3 * len(ordered) + 1.2)
    ax = fig.subplots()
    ax.barh([name for name, _ in ordered], [share for _, share in ordered], color="tab:blue")
    ax.set_xlabel("share of the total split gain")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
