"""Item metadata read by one set of rules in every format: lists, missing values, ids, types."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_store.item_attributes import ColumnKind
from training.errors import TrainingInputError
from training.item_attributes import build_attributes
from training.readers import read_items
from training.readers.items import DuplicatePolicy, ItemOptions, prepare_items


def _csv(tmp_path, text: str):
    path = tmp_path / "items.csv"
    path.write_text(text)
    return path


def test_a_minority_of_delimited_tags_still_makes_the_column_multi_valued(tmp_path) -> None:
    rows = [f"i{n},{'sale|new' if n < 29 else 'sale'}" for n in range(200)]
    prepared = read_items(str(_csv(tmp_path, "item_id,tags\n" + "\n".join(rows) + "\n")))
    assert prepared.table["tags"].to_pylist()[:2] == [["sale", "new"], ["sale", "new"]]
    assert prepared.table["tags"].to_pylist()[-1] == ["sale"]
    assert any("tags: multi-valued" in n and "29 of 200" in n for n in prepared.notes)
    [tags] = build_attributes(prepared.table, np.array([f"i{n}" for n in range(200)], dtype=object))
    assert tags.kind is ColumnKind.multi and sorted(tags.values) == ["new", "sale"]


def test_categorical_keeps_a_delimited_value_whole(tmp_path) -> None:
    path = _csv(tmp_path, "item_id,category\na,Food | Drink\nb,Books\n")
    prepared = read_items(str(path), ItemOptions(categorical=("category",)))
    assert prepared.table["category"].to_pylist() == ["Food | Drink", "Books"]


def test_empty_cells_and_parquet_nulls_are_both_missing(tmp_path) -> None:
    from_csv = read_items(str(_csv(tmp_path, "item_id,category,price\na,x,1\nb,,\nc, ,3\n"))).table
    pq.write_table(
        pa.table({"item_id": ["a", "b", "c"], "category": ["x", None, ""], "price": [1.0, None, 3.0]}),
        tmp_path / "items.parquet",
    )
    from_parquet = read_items(str(tmp_path / "items.parquet")).table
    assert from_csv["category"].to_pylist() == from_parquet["category"].to_pylist() == ["x", None, None]
    assert from_csv["price"].to_pylist() == from_parquet["price"].to_pylist()
    [category, _] = build_attributes(from_csv, np.array(["a", "b", "c"], dtype=object))
    assert category.values == ["x"]  # no "" category to match


def test_duplicate_ids_stop_the_run_unless_a_policy_is_given(tmp_path) -> None:
    path = _csv(tmp_path, "item_id,price\na,1\nb,2\na,3\n")
    with pytest.raises(
        TrainingInputError, match=r"1 item_ids appear on more than one row.*'a'.*--item-duplicates"
    ):
        read_items(str(path))
    first = read_items(str(path), ItemOptions(duplicates=DuplicatePolicy.first))
    last = read_items(str(path), ItemOptions(duplicates=DuplicatePolicy.last))
    assert (
        dict(zip(first.table["item_id"].to_pylist(), first.table["price"].to_pylist(), strict=True))["a"] == 1
    )
    assert (
        dict(zip(last.table["item_id"].to_pylist(), last.table["price"].to_pylist(), strict=True))["a"] == 3
    )
    assert "1 duplicate rows" in first.notes[0]


def test_one_word_in_a_number_column_is_reported_with_both_ways_out(tmp_path) -> None:
    path = _csv(tmp_path, "item_id,price\na,1.5\nb,abc\nc,3\n")
    with pytest.raises(TrainingInputError) as err:
        read_items(str(path))
    assert "'price' mixes numbers (2 values) and text (1 values, e.g. 'abc')" in str(err.value)
    assert "--numeric price" in str(err.value) and "--categorical price" in str(err.value)
    numeric = read_items(str(path), ItemOptions(numeric=("price",)))
    assert numeric.table["price"].to_pylist() == [1.5, None, 3.0]
    [price] = build_attributes(numeric.table, np.array(["a", "b", "c"], dtype=object))
    assert price.kind is ColumnKind.numeric


def test_rows_without_an_item_id_follow_the_drop_option(tmp_path) -> None:
    path = _csv(tmp_path, "item_id,category\na,x\n,y\n")
    with pytest.raises(TrainingInputError, match="1 of 2 item rows have no item_id.*--drop-invalid-rows"):
        read_items(str(path))
    assert read_items(str(path), ItemOptions(drop_invalid_rows=True)).table.num_rows == 1


def test_a_folder_without_metadata_is_an_error_not_a_silent_skip(tmp_path) -> None:
    with pytest.raises(TrainingInputError, match="no item metadata found there"):
        read_items(str(tmp_path))


def test_options_naming_missing_columns_are_refused() -> None:
    with pytest.raises(TrainingInputError, match="does not have: \\['colour'\\]"):
        prepare_items(pa.table({"item_id": ["a"]}), ItemOptions(numeric=("colour",)))


def test_preparing_twice_changes_nothing() -> None:
    table = pa.table({"item_id": ["a", "b"], "tags": ["x|y", None], "lst": [[" p", ""], None]})
    once = prepare_items(table, ItemOptions()).table
    assert prepare_items(once, ItemOptions()).table.equals(once)
    assert once["lst"].to_pylist() == [["p"], None]
