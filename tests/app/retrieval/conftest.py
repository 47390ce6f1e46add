"""Small version folders (HNSW, or IVF over PQ codes) with item attributes, for the retrieval tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.retrieval.attributes import AttributeTable
from app.retrieval.search import ItemIndex
from feature_store.index_files import IndexKind, Metric, write_index_meta
from feature_store.item_attributes import AttributeColumn, ColumnKind, write_attributes
from training.indexes import IndexParams, build_index, write_index

N_ITEMS, DIM = 4_000, 16
CATEGORIES = ["a", "b", "c", "d", "rare"]


def build_folder(folder: Path, kind: IndexKind, metric: Metric = Metric.ip) -> Path:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((10, DIM))
    x = (centres[rng.integers(0, 10, N_ITEMS)] + 0.5 * rng.standard_normal((N_ITEMS, DIM))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "item_factors.npy", x, allow_pickle=False)
    queries = rng.standard_normal((200, DIM)).astype(np.float32)  # like the tests' queries
    index, meta = build_index(
        x, IndexParams(kind=kind, metric=metric, ef_search=64), "als", "item_factors.npy", queries=queries
    )
    write_index(index, folder, meta)
    write_index_meta(folder, {"als": meta})
    codes = rng.choice(4, N_ITEMS).astype(np.int32)
    codes[rng.choice(N_ITEMS, 8, replace=False)] = 4  # 0.2% of items are 'rare'
    lengths = rng.integers(0, 3, N_ITEMS)
    write_attributes(
        folder,
        [
            AttributeColumn("category", ColumnKind.categorical, CATEGORIES, codes=codes),
            AttributeColumn(
                "tags",
                ColumnKind.multi,
                ["x", "y", "z"],
                codes=rng.integers(0, 3, lengths.sum()).astype(np.int32),
                indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            ),
            AttributeColumn("price", ColumnKind.numeric, numbers=rng.uniform(0, 100, N_ITEMS)),
        ],
    )
    return folder


@pytest.fixture(scope="package")
def hnsw_folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("hnsw"), IndexKind.hnsw)


@pytest.fixture(scope="package")
def hnsw(hnsw_folder) -> ItemIndex:
    from feature_store.index_files import read_index_meta

    return ItemIndex.load(hnsw_folder, read_index_meta(hnsw_folder)["als"])


@pytest.fixture
def fresh_hnsw(hnsw_folder) -> ItemIndex:
    """The HNSW index loaded for one test: its compact copy (built when the catalog blocks many
    rows, compaction.py) is that test's own."""
    from feature_store.index_files import read_index_meta

    return ItemIndex.load(hnsw_folder, read_index_meta(hnsw_folder)["als"])


@pytest.fixture(scope="package")
def ivf_pq_folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("ivf_pq"), IndexKind.ivf_pq)


@pytest.fixture(scope="package")
def ivf_pq(ivf_pq_folder) -> ItemIndex:
    """The same items in IVF over 4-bit PQ codes (what auto builds for large catalogs)."""
    from feature_store.index_files import read_index_meta

    return ItemIndex.load(ivf_pq_folder, read_index_meta(ivf_pq_folder)["als"])


@pytest.fixture(scope="package")
def attributes(hnsw_folder) -> AttributeTable:
    return AttributeTable.load(hnsw_folder, N_ITEMS)


@pytest.fixture(scope="package")
def item_rows() -> dict[str, int]:
    return {f"item{i}": i for i in range(N_ITEMS)}
