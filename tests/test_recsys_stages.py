"""The recommendation data stages, each alone: reading, cleaning, splitting, id maps and index structures, negative
sampling, side features and batch gathering (the DataModule only composes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.recsys import cleaning, datasets, features, indexing, readers, sampling, splits


def frame_of(rows: list[tuple]) -> dict[str, np.ndarray]:
    u, i, t = (np.asarray(c) for c in zip(*rows))
    return {"u": u.astype(np.int64), "i": i.astype(np.int64), "r": np.ones(len(u)), "t": t.astype(float),
            "o": np.arange(len(u))}  # fmt: skip


# -- reading ------------------------------------------------------------------------------------------------------


def test_readers_read_movielens_and_headerless_logs(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    ml = readers.read_table(tmp_path / "ratings.dat")
    assert ml.values.tolist() == [["1", "1193", "5", "978300760"], ["2", "661", "3", "978302109"]]
    (tmp_path / "log.txt").write_text("7 10 4\n8 11 5\n")
    assert list(readers.read_table(tmp_path / "log.txt").columns) == ["user", "item", "rating"]
    with pytest.raises(DataError, match="item features file not found"):
        readers.read_table(tmp_path / "nope.csv", "item features")
    assert "movieId" in readers.id_column_candidates() and readers.movielens_kind(Path("U.DATA")) == "ml-100k-ratings"


# -- cleaning -----------------------------------------------------------------------------------------------------


def test_resolve_columns_detects_names_and_explains_misses() -> None:
    frame = pd.DataFrame(columns=["Customer ID", "SKU", "Stars", "created_at"])
    cols = cleaning.resolve_columns(frame, {}, "explicit", None, "log.csv")
    assert cols == {"user": "Customer ID", "item": "SKU", "rating": "Stars", "time": "created_at"}
    assert cleaning.resolve_columns(frame, {}, "implicit", None, "log.csv")["rating"] is None
    with pytest.raises(ConfigError, match="data.item_column='skew' is not a column of log.csv.*SKU"):
        cleaning.resolve_columns(frame, {"item": "skew"}, "implicit", None, "log.csv")
    with pytest.raises(DataError, match="holds the user ids.*another delimiter"):
        cleaning.resolve_columns(pd.DataFrame(columns=["a;b;c"]), {}, "implicit", None, "log.csv")


def test_duplicates_and_k_core() -> None:
    f = frame_of([(0, 0, 1), (0, 0, 2), (0, 1, 3), (1, 0, 4)])
    f["r"] = np.array([1.0, 3.0, 5.0, 4.0])
    for how, rating in (("last", 3.0), ("first", 1.0), ("mean", 2.0), ("max", 3.0)):
        merged, n = cleaning.merge_duplicates(f, how, n_items=2)
        assert n == 1 and merged["r"][0] == rating and len(merged["u"]) == 3
    kept, dropped = cleaning.k_core(merged, min_user=2, min_item=1)
    assert dropped == 1 and set(kept["u"].tolist()) == {0}


# -- splitting ----------------------------------------------------------------------------------------------------


def test_split_interactions_methods() -> None:
    f = frame_of([(0, j, 10 - j) for j in range(4)] + [(1, 0, 1), (2, 0, 1), (2, 1, 2)])
    part, counts = splits.split_interactions(f, "leave_last_out", 0.1, 0.1, seed=0)
    assert part[:4].tolist() == [2, 1, 0, 0]  # user 0's latest (time 10) tests, the one before validates
    assert counts == {"users_train_only": 1, "users_without_val": 1}
    f = frame_of([(0, j, j) for j in range(10)])
    part, _ = splits.split_interactions(f, "time", 0.2, 0.2, seed=0)
    assert part.tolist() == [0] * 6 + [1] * 2 + [2] * 2
    part, _ = splits.split_interactions(f, "random", 0.2, 0.2, seed=0)
    assert np.bincount(part).tolist() == [6, 2, 2]
    with pytest.raises(DataError, match="too few"):
        splits.split_interactions(frame_of([(0, 0, 0), (0, 1, 1)]), "time", 0.2, 0.2, seed=0)


# -- id maps and index structures ---------------------------------------------------------------------------------


def test_id_maps_and_csr() -> None:
    f = frame_of([(1, 0, 1), (0, 1, 2), (1, 2, 3)])
    uniques = {"user": np.array(["a", "b"], dtype=object), "item": np.array(["x", "y", "z"], dtype=object)}
    train = np.array([True, True, False])
    users, items = indexing.fit_id_maps(f, train, uniques, item_keys=np.array(["w", "x"], dtype=object))
    assert users == ["b", "a"] and items == ["x", "y", "w"]  # z is only in held-out data; w is a cold item
    assert indexing.to_indices(f["i"], uniques["item"], items).tolist() == [1, 2, 0]
    ptr, values = indexing.csr(np.array([0, 0, 2]), np.array([5, 6, 7]), 3)
    assert ptr.tolist() == [0, 2, 2, 3] and values.tolist() == [5, 6, 7]
    ptr, values = indexing.csr_for(np.array([1, 3]), np.array([3, 2, 1, 3]), np.array([9, 8, 7, 6]))
    assert ptr.tolist() == [0, 1, 3] and values.tolist() == [7, 9, 6]


def test_table_keys_keep_the_first_row_per_id() -> None:
    table = pd.DataFrame({"movie_id": [1, "1.0", None, 2], "title": ["a", "b", "c", "d"]})
    keys, kept, dropped = indexing.table_keys(table, "item", None, "item_id")
    assert keys.tolist() == ["1", "2"] and kept["title"].tolist() == ["a", "d"] and dropped == 2
    with pytest.raises(ConfigError, match="data.item_key='titel'.*title"):
        indexing.table_keys(table, "item", "titel", None)


# -- negative sampling --------------------------------------------------------------------------------------------


def test_sorted_keys_and_sampled_negatives() -> None:
    keys = sampling.SortedKeys(np.array([1, 1, 2]), np.array([3, 4, 1]), stride=6)
    found = keys.contains(torch.tensor([1, 2]), torch.tensor([[3, 1], [1, 5]]))
    assert found.tolist() == [[True, False], [True, False]]
    known_ptr, known_items = np.array([0, 0, 2, 3]), np.array([3, 4, 1])
    negs = sampling.sample_negatives(np.array([1, 2]), keys, 5, 3, 0, known_ptr, known_items)
    assert not set(negs[0].tolist()) & {3, 4} and len(set(negs[0].tolist())) == 3 and 1 not in negs[1]
    again = sampling.sample_negatives(np.array([1, 2]), keys, 5, 3, 0, known_ptr, known_items)
    assert np.array_equal(negs, again)  # fixed by the seed


# -- side features ------------------------------------------------------------------------------------------------


def test_encode_table_aligns_rows_and_restores() -> None:
    table = pd.DataFrame({"genres": ["A|B", "B", None], "year": [1990, 2000, 2010], "studio": ["x", "x", "y"]})
    columns = features.FeatureColumns(categorical=["studio"], numeric=["year"], multi=["genres"])
    rows = np.array([2, -1, 0])  # catalogue order; the second item is not in the table
    info, arrays, texts = features.encode_table(table, rows, "item", columns, None, min_count=1, multi_separator="|")
    assert texts is None and info["multi"]["genres"]["vocab"] == ["A", "B"]
    assert arrays["item_num"].shape == (3, info["num_dim"]) and arrays["item_cat"].shape == (3, 1)
    assert arrays["item_num"][:, -2:].tolist() == [[0, 0], [0, 0], [1, 1]]  # the multi-hot columns come last
    again, arrays2, _ = features.encode_table(table, rows, "item", columns, info, min_count=5, multi_separator="|")
    assert again == info and np.array_equal(arrays2["item_num"], arrays["item_num"])
    with pytest.raises(ConfigError, match="titel are not in the item table"):
        features.encode_table(table, rows, "item", features.FeatureColumns(text="titel"), None, min_count=1,
                              multi_separator="|")  # fmt: skip
    with pytest.raises(ConfigError, match="no text encoder"):
        features.embed_item_texts(["a"], None, True, 8, 16)


# -- batches ------------------------------------------------------------------------------------------------------


def test_gather_rows_pads_left_or_right() -> None:
    ptr, values = torch.tensor([0, 3, 3, 4]), torch.tensor([5, 6, 7, 8])
    assert datasets.gather_rows(ptr, values, torch.tensor([0, 1, 2])).tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]]
    assert datasets.gather_rows(ptr, values, torch.tensor([0, 2]), 2, last=True).tolist() == [[6, 7], [0, 8]]
