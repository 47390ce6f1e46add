"""One model version loaded for serving: verified files, item index, attributes, popularity, fold-in.

Loading is blocking work (sha256 of every file, reading the index, building lookup tables), so the
registry runs it on a thread beside the version that is serving; nothing here touches the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.retrieval.attributes import AttributeTable
from app.retrieval.foldin import FoldInModel
from app.retrieval.popularity import PopularityRanking
from app.retrieval.search import ItemIndex
from feature_store.confidence import Scaling
from feature_store.index_files import read_index_meta
from feature_store.manifest import ArtifactError, Manifest, verify_version
from feature_store.version_files import ITEM_MAPPING, PROFILE_SEEN_ITEMS, load_array, load_mapping


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


def _foldin_model(manifest: Manifest, index: ItemIndex) -> FoldInModel | None:
    """Fold-in needs the ALS hyperparameters the version was trained with; without them (an
    imported model) run-time users wait for the next training run instead of getting a guess."""
    hyper = manifest.hyperparameters
    try:
        return FoldInModel.from_factors(
            index.vectors,
            regularization=float(hyper["regularization"]),
            alpha=float(hyper["alpha"]),
            scaling=Scaling(hyper.get("scaling", Scaling.linear)),
            biased=bool(hyper.get("biases", False)),
        )
    except (KeyError, ValueError, TypeError):
        return None


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
    seen = load_array(folder, PROFILE_SEEN_ITEMS)
    weights = manifest.hyperparameters.get("event_weights") or default_event_weights
    return ServingVersion(
        name=name,
        folder=folder,
        manifest=manifest,
        item_ids=item_ids,
        item_rows={item: row for row, item in enumerate(item_ids)},
        als=index,
        attributes=AttributeTable.load(folder, index.n),
        popularity=PopularityRanking.from_seen_items(seen, index.n),
        foldin=_foldin_model(manifest, index),
        event_weights={str(k).lower(): float(v) for k, v in weights.items()},
    )
