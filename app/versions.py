"""One model version loaded for serving: verified files, item index, attributes, popularity, fold-in.

Loading is blocking work (sha256 of every file, reading the index, building lookup tables), so the
registry runs it on a thread beside the version that is serving; nothing here touches the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.retrieval.attributes import AttributeTable
from app.retrieval.foldin import FoldInModel
from app.retrieval.fusion import FusionParams
from app.retrieval.popularity import PopularityRanking
from app.retrieval.search import ItemIndex
from app.retrieval.user_tower import UserTower
from feature_store.confidence import Scaling
from feature_store.index_files import IndexMeta, read_index_meta
from feature_store.manifest import ArtifactError, Manifest, verify_version
from feature_store.version_files import (
    ITEM_CONFIDENCE_WEIGHTS,
    ITEM_MAPPING,
    POPULARITY_SCORES,
    PROFILE_SEEN_ITEMS,
    TWO_TOWER_USER_TOWER,
    load_array,
    load_mapping,
)


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


def _foldin_model(manifest: Manifest, index: ItemIndex, folder: Path) -> FoldInModel | None:
    """Fold-in needs the ALS hyperparameters the version was trained with; without them (an
    imported model) run-time users wait for the next training run instead of getting a guess.
    A version fitted with a popularity discount carries its per-item weights, which fold-in
    applies the same way."""
    hyper = manifest.hyperparameters
    item_weights = None
    if float(hyper.get("popularity_discount") or 0.0):
        item_weights = load_array(folder, ITEM_CONFIDENCE_WEIGHTS, mmap=False)
        if item_weights.shape != (index.n,):
            raise ArtifactError(
                f"{folder / ITEM_CONFIDENCE_WEIGHTS}: shape {item_weights.shape}, the version has "
                f"{index.n} items."
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


def _optional_index(folder: Path, metas: dict[str, IndexMeta], name: str, n_items: int) -> ItemIndex | None:
    if name not in metas:
        return None
    index = ItemIndex.load(folder, metas[name])
    if index.n != n_items:
        raise ArtifactError(f"{folder}: the '{name}' index holds {index.n} items, the version {n_items}.")
    return index


def load_serving_version(
    artifacts: Path, name: str, default_event_weights: dict[str, float]
) -> ServingVersion:
    """Verify and load `artifacts/name`; raise ArtifactError naming the bad file otherwise."""
    folder = artifacts / name
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such version folder on this server (is RECSYS_ARTIFACTS right?)")
    manifest = verify_version(folder)
    metas = read_index_meta(folder)
    if "als" not in metas:
        raise ArtifactError(f"{folder}: indexes.json has no 'als' index.")
    index = ItemIndex.load(folder, metas["als"])
    item_ids = load_mapping(folder, ITEM_MAPPING)
    if len(item_ids) != index.n:
        raise ArtifactError(f"{folder / ITEM_MAPPING}: {len(item_ids)} items, the index holds {index.n}.")
    hyper = manifest.hyperparameters
    weights = hyper.get("event_weights") or default_event_weights
    if (folder / POPULARITY_SCORES).is_file():
        popularity = PopularityRanking(load_array(folder, POPULARITY_SCORES, mmap=False))
    else:
        popularity = PopularityRanking.from_seen_items(load_array(folder, PROFILE_SEEN_ITEMS), index.n)
    two_tower = _optional_index(folder, metas, "two_tower", index.n)
    try:
        fusion = FusionParams.from_dict(hyper["fusion"]) if "fusion" in hyper else None
    except ValueError as exc:
        raise ArtifactError(f"{folder}: manifest fusion settings: {exc}") from exc
    content = _optional_index(folder, metas, "content", index.n)
    if fusion is not None and fusion.method == "blend":
        # Here, while loading, not on the event loop at the first ensemble request.
        for blended in (index, two_tower, content):
            if blended is not None:
                _ = blended.moments
    return ServingVersion(
        name=name,
        folder=folder,
        manifest=manifest,
        item_ids=item_ids,
        item_rows={item: row for row, item in enumerate(item_ids)},
        als=index,
        attributes=AttributeTable.load(folder, index.n),
        popularity=popularity,
        foldin=_foldin_model(manifest, index, folder),
        event_weights={str(k).lower(): float(v) for k, v in weights.items()},
        content=content,
        content_prior=float(hyper.get("content", {}).get("popularity_prior", 0.0)),
        two_tower=two_tower,
        user_tower=UserTower.load(folder / TWO_TOWER_USER_TOWER) if two_tower is not None else None,
        fusion=fusion if two_tower is not None else None,
    )
