"""One model version loaded for serving: verified files, item index, attributes, popularity, fold-in.

Loading is blocking work (sha256 of every file, reading the index, building lookup tables), so the
registry runs it on a thread beside the version that is serving; nothing here touches the loop.

A version is data from whoever can write the artifacts folder, so loading is also validation:
the name follows the version rule, every file opened is an entry of the verified manifest inside
the folder (`version_paths.manifest_scope`), and the content is checked for type, shape and range
(mappings, event weights, index settings, popularity, attributes) before the version is handed
to anyone. Whatever goes wrong, the caller gets one ArtifactError, never another exception: the
registry turns it into a refusal and keeps serving what it had.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.ranking import ServingRanker, load_ranker
from app.retrieval.attributes import AttributeTable
from app.retrieval.content_encoder import ContentEncoder
from app.retrieval.foldin import FoldInModel
from app.retrieval.popularity import PopularityRanking
from app.retrieval.search import ItemIndex
from feature_store.confidence import Scaling
from feature_store.fusion import FusionParams
from feature_store.index_files import IndexMeta, read_index_meta
from feature_store.item_attributes import ATTRIBUTES_META
from feature_store.live_view import LiveView
from feature_store.manifest import ArtifactError, Manifest, verify_version
from feature_store.user_tower import UserTower
from feature_store.version_files import (
    ITEM_CONFIDENCE_WEIGHTS,
    ITEM_MAPPING,
    POPULARITY_SCORES,
    PROFILE_SEEN_ITEMS,
    TWO_TOWER_USER_TOWER,
    check_item_rows,
    load_array,
    load_mapping,
    load_profile_table,
)
from feature_store.version_names import is_version_name
from feature_store.version_paths import entry_path, has_entry, manifest_scope

log = logging.getLogger("recsys.versions")


@dataclass
class ServingVersion:
    name: str
    folder: Path
    manifest: Manifest
    item_ids: list[str]
    item_rows: dict[str, int]
    als: ItemIndex
    attributes: AttributeTable
    popularity: PopularityRanking
    foldin: FoldInModel | None
    event_weights: dict[str, float]
    # The other models of a train-all version; None where the version has none (plain `train`).
    content: ItemIndex | None = None  # content vectors with the popularity column (content.py)
    content_prior: float = 0.0  # weight of that column in a content query
    two_tower: ItemIndex | None = None
    user_tower: UserTower | None = None  # encodes a history the training run never saw
    fusion: FusionParams | None = None
    live_view: LiveView | None = None  # how run-time events fold into this version (live_view.py)
    content_encoder: ContentEncoder | None = None  # new items' metadata -> content vectors
    ranker: ServingRanker | None = None  # orders every source's candidates (ranking.py)


def _live_since(manifest: Manifest) -> float | None:
    """Run-time events after this time are not in the version's training data: its newest event
    time, or, for a log without times, when the version was written (events before that may or
    may not be in it; counting them again is the smaller error than dropping newer ones)."""
    until = manifest.hyperparameters.get("data_until")
    if isinstance(until, int | float) and not isinstance(until, bool):
        return float(until)
    try:
        return datetime.fromisoformat(manifest.created).timestamp()
    except (TypeError, ValueError):
        return None


def _data_until(hyper: dict[str, Any]) -> float | None:
    until = hyper.get("data_until")
    return float(until) if isinstance(until, int | float) and not isinstance(until, bool) else None


def _foldin_model(manifest: Manifest, index: ItemIndex, folder: Path) -> FoldInModel | None:
    """Fold-in needs the ALS hyperparameters the version was trained with; without them (an
    imported model) run-time users wait for the next training run instead of getting a guess.
    A version fitted with a popularity discount carries its per-item weights, which fold-in
    applies the same way."""
    hyper = manifest.hyperparameters
    item_weights = None
    if _number(hyper, "popularity_discount", 0.0):
        item_weights = load_array(folder, ITEM_CONFIDENCE_WEIGHTS, mmap=False)
        if item_weights.shape != (index.n,) or not np.isfinite(item_weights).all():
            raise ArtifactError(
                f"{folder / ITEM_CONFIDENCE_WEIGHTS}: shape {item_weights.shape}, the version has "
                f"{index.n} items (or values are not finite).",
                public=f"{ITEM_CONFIDENCE_WEIGHTS}: does not match the item mapping",
            )
    try:
        return FoldInModel.from_factors(
            index.vectors,
            regularization=float(hyper["regularization"]),
            alpha=float(hyper["alpha"]),
            scaling=Scaling(hyper.get("scaling", Scaling.linear)),
            biased=bool(hyper.get("biases", False)),
            item_weights=item_weights,
        )
    except (KeyError, ValueError, TypeError):
        return None


def _number(settings: dict[str, Any], key: str, default: float) -> float:
    """A finite number from the manifest's settings (the default when absent or null); a string,
    a list or a boolean there is refused, not turned into an error at request time."""
    value = settings.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArtifactError(
            f"manifest hyperparameters.{key}: {value!r:.80} is not a finite number.",
            public=f"manifest hyperparameters.{key} is not a number",
        )
    return float(value)


def _event_weights(hyper: dict[str, Any], default: dict[str, float]) -> dict[str, float]:
    """The version's event weights (an object of event type -> finite number), else the default."""
    weights = hyper.get("event_weights") or default
    public = "manifest hyperparameters.event_weights is not an object of event type -> number"
    if not isinstance(weights, dict):
        raise ArtifactError(f"manifest event_weights: a {type(weights).__name__}.", public=public)
    out = {}
    for key, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ArtifactError(f"manifest event weight {key!r:.40}: {value!r:.40}.", public=public)
        out[str(key).lower()] = float(value)
    return out


def _content_prior(hyper: dict[str, Any]) -> float:
    content = hyper.get("content")
    if content is None:
        return 0.0
    if not isinstance(content, dict):
        raise ArtifactError(
            f"manifest hyperparameters.content: a {type(content).__name__}.",
            public="manifest hyperparameters.content is not an object",
        )
    return _number(content, "popularity_prior", 0.0)


def _popularity(folder: Path, n_items: int) -> PopularityRanking:
    """The time-decayed scores of a train-all version, else distinct users per item."""
    if has_entry(folder, POPULARITY_SCORES):
        scores = load_array(folder, POPULARITY_SCORES, mmap=False)
        numeric = np.issubdtype(scores.dtype, np.number)
        if scores.shape != (n_items,) or not numeric or not np.isfinite(scores).all():
            raise ArtifactError(
                f"{folder / POPULARITY_SCORES}: shape {scores.shape}, dtype {scores.dtype}; the version has "
                f"{n_items} items (finite numbers expected).",
                public=f"{POPULARITY_SCORES}: does not match the item mapping",
            )
        return PopularityRanking(scores)
    seen = load_array(folder, PROFILE_SEEN_ITEMS)
    if seen.ndim != 1 or not np.issubdtype(seen.dtype, np.integer) or (len(seen) and int(seen.min()) < 0):
        raise ArtifactError(
            f"{folder / PROFILE_SEEN_ITEMS}: not a 1-D array of item rows.",
            public=f"{PROFILE_SEEN_ITEMS}: not item rows",
        )
    return PopularityRanking.from_seen_items(seen, n_items)


def _attributes(folder: Path, n_items: int) -> AttributeTable:
    """The attribute table, read only when the manifest lists it (a file lying there unlisted is
    refused by has_entry), with every column as long as the catalog."""
    if not has_entry(folder, ATTRIBUTES_META):
        return AttributeTable(n_items, {})
    entry_path(folder, ATTRIBUTES_META)  # contained in the folder: no symlink out
    table = AttributeTable.load(folder, n_items)
    for name, column in table.columns.items():
        lengths = [len(a) for a in (column.numbers, column.order) if a is not None]
        if any(n != n_items for n in lengths):
            raise ArtifactError(
                f"{folder / ATTRIBUTES_META}: column {name!r:.40} has {lengths} values, the version "
                f"{n_items} items.",
                public="item attributes do not match the item mapping",
            )
    return table


def _optional_index(folder: Path, metas: dict[str, IndexMeta], name: str, n_items: int) -> ItemIndex | None:
    if name not in metas:
        return None
    index = ItemIndex.load(folder, metas[name])
    if index.n != n_items:
        raise ArtifactError(f"{folder}: the '{name}' index holds {index.n} items, the version {n_items}.")
    return index


def load_serving_version(
    artifacts: Path, name: str, default_event_weights: dict[str, float], check_profiles: bool = False
) -> ServingVersion:
    """Verify, validate and load `artifacts/name`; raise ArtifactError naming the bad file or
    setting otherwise (and nothing else, whatever the content).

    `check_profiles` also validates the user table (the embedded store serves it from the
    folder; on Redis publish validated it before writing)."""
    if not is_version_name(name):
        raise ArtifactError(
            f"version name {name!r:.80} breaks the version name rule; not loaded",
            public="not a valid version name",
        )
    folder = artifacts / name
    try:
        if not folder.is_dir():
            raise ArtifactError(
                f"{folder}: no such version folder on this server (is RECSYS_ARTIFACTS right?)",
                public="no such version folder on this server",
            )
        manifest = verify_version(folder)
        if manifest.version != name:
            raise ArtifactError(
                f"{folder}: the manifest names version {manifest.version!r:.80}; the folder was renamed.",
                public="the manifest names another version",
            )
        with manifest_scope(folder, manifest.files):
            return _load_verified(folder, name, manifest, default_event_weights, check_profiles)
    except ArtifactError:
        raise
    except Exception as exc:  # malformed content, unreadable files: whatever a reader raised is a refusal
        log.debug("version %s: unexpected error while loading", name, exc_info=True)
        raise ArtifactError(
            f"{folder}: content does not load ({exc.__class__.__name__}: {str(exc)[:300]}).",
            public=f"content does not load ({exc.__class__.__name__})",
        ) from exc


def _load_verified(
    folder: Path,
    name: str,
    manifest: Manifest,
    default_event_weights: dict[str, float],
    check_profiles: bool,
) -> ServingVersion:
    metas = read_index_meta(folder)
    if "als" not in metas:
        raise ArtifactError(f"{folder}: indexes.json has no 'als' index.", public="no 'als' index")
    index = ItemIndex.load(folder, metas["als"])
    item_ids = load_mapping(folder, ITEM_MAPPING)
    if len(item_ids) != index.n:
        raise ArtifactError(
            f"{folder / ITEM_MAPPING}: {len(item_ids)} items, the index holds {index.n}.",
            public=f"{ITEM_MAPPING}: does not match the item index",
        )
    hyper = manifest.hyperparameters
    event_weights = _event_weights(hyper, default_event_weights)
    popularity = _popularity(folder, index.n)
    two_tower = _optional_index(folder, metas, "two_tower", index.n)
    try:
        fusion = FusionParams.from_dict(hyper["fusion"]) if "fusion" in hyper else None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ArtifactError(
            f"{folder}: manifest fusion settings: {exc}", public="manifest fusion settings are invalid"
        ) from exc
    if check_profiles:
        table = load_profile_table(folder)
        check_item_rows(table, index.n)
        for model, users in table.embeddings.items():
            if model in metas and users.shape[1] != metas[model].dim:
                raise ArtifactError(
                    f"{folder}: user embedding '{model}' has dimension {users.shape[1]}, its index "
                    f"{metas[model].dim}.",
                    public=f"user embedding '{model}' does not match its item index",
                )
    content = _optional_index(folder, metas, "content", index.n)
    if fusion is not None and fusion.method == "blend":
        # Here, while loading, not on the event loop at the first ensemble request.
        for blended in (index, two_tower, content):
            if blended is not None:
                _ = blended.moments
    item_rows = {item: row for row, item in enumerate(item_ids)}
    return ServingVersion(
        name=name,
        folder=folder,
        manifest=manifest,
        item_ids=item_ids,
        item_rows=item_rows,
        als=index,
        attributes=_attributes(folder, index.n),
        popularity=popularity,
        foldin=_foldin_model(manifest, index, folder),
        event_weights=event_weights,
        content=content,
        content_prior=_content_prior(hyper),
        two_tower=two_tower,
        user_tower=None if two_tower is None else UserTower.load(entry_path(folder, TWO_TOWER_USER_TOWER)),
        fusion=fusion if two_tower is not None else None,
        live_view=LiveView(item_rows, _live_since(manifest)),
        content_encoder=None if content is None else ContentEncoder.load(folder, content.dim - 1),
        ranker=load_ranker(folder, hyper.get("ranker"), index, two_tower, content, _data_until(hyper)),
    )
