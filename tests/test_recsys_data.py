"""Recommendation data: file formats, bad input (one clear error or a counted fix), splits that do not leak, id maps
fitted on training, side features, restoring a checkpoint's maps, and the batches the loaders build."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.recsys import data as D
from recipezoo.recsys.data import InteractionsDataModule, canonical_ids, make_synthetic, parse_times
from recipezoo.runtime.recsys import canonical_id

ROOT = Path(__file__).resolve().parents[1]


def log(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def small_log(n_users: int = 12, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(30, per_user, replace=False)
        for j, i in enumerate(items):
            rows.append((f"u{u}", int(i), float(rng.integers(1, 6)), 1_000_000 + 100 * u + 10 * j))
    return log(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def dm_for(frame: pd.DataFrame, tmp_path: Path, name: str = "log.csv", **kwargs) -> InteractionsDataModule:
    path = tmp_path / name
    frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    dm = InteractionsDataModule(path=str(path), **kwargs)
    dm.setup()
    return dm


# -- reading ------------------------------------------------------------------------------------------------------


def test_movielens_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n")
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978301968\n")
    (tmp_path / "movies.dat").write_bytes("1193::One Flew: Cuckoo's Nest (1975)::Drama\n".encode("latin-1"))
    for path in ("u.data", "ratings.dat"):
        frame = D.read_table(tmp_path / path)
        assert list(frame.columns) == ["userId", "movieId", "rating", "timestamp"]
        assert frame["userId"].tolist()[0] == "1"
    items = D.read_table(tmp_path / "movies.dat")
    assert items["title"].tolist() == ["One Flew: Cuckoo's Nest (1975)"] and items["genres"].tolist() == ["Drama"]
    genres = ["0"] * 19
    genres[1] = genres[5] = "1"
    (tmp_path / "u.item").write_bytes(("10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(genres) + "\n").encode())
    assert D.read_table(tmp_path / "u.item")["genres"].tolist() == ["Action|Comedy"]


def test_headerless_and_other_delimiters(tmp_path: Path) -> None:
    (tmp_path / "plain.tsv").write_text("1\t5\t3.5\t100\n1\t6\t4\t101\n2\t5\t2\t102\n")
    frame = D.read_table(tmp_path / "plain.tsv")
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    (tmp_path / "semi.csv").write_text("uid;sku;stars\na;x;4\nb;y;5\n")
    assert list(D.read_table(tmp_path / "semi.csv").columns) == ["uid", "sku", "stars"]
    # Book-Crossing style: ';' separated, quoted, Latin-1.
    (tmp_path / "books.csv").write_bytes('"User-ID";"ISBN";"Book-Rating"\n"276725";"034545104X";"0"\n"2";"x";"5"\n'
                                         .replace('"2"', '"Andr\xe9"').encode("latin-1"))  # fmt: skip
    books = D.read_table(tmp_path / "books.csv", str_columns=["User-ID", "ISBN"])
    assert books["User-ID"].tolist() == ["276725", "Andr\xe9"] and books["ISBN"].tolist()[0] == "034545104X"


def test_columns_are_detected_or_named(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_id": ["a", "a", "b", "b"], "product_id": [1, 2, 1, 3], "ts": [1, 2, 3, 4]})
    dm = dm_for(frame, tmp_path)
    assert dm.columns == {"user": "customer_id", "item": "product_id", "rating": None, "time": "ts"}
    with pytest.raises(ConfigError, match="data.user_column='custmer_id' is not a column.*customer_id"):
        dm_for(frame, tmp_path, user_column="custmer_id")
    with pytest.raises(DataError, match="which column .* holds the item ids.*data.item_column"):
        dm_for(pd.DataFrame({"user": ["a", "b"], "what": [1, 2]}), tmp_path)
    with pytest.raises(ConfigError, match="feedback=explicit needs ratings"):
        dm_for(frame, tmp_path, feedback="explicit")


def test_missing_file_and_no_path_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="interactions file not found"):
        InteractionsDataModule(path=str(tmp_path / "nope.csv")).setup()
    with pytest.raises(ConfigError, match="no interactions given: pass data.path"):
        InteractionsDataModule().setup()
    with pytest.raises(DataError, match="MovieLens ml-100k not found .* data.download=true"):
        InteractionsDataModule(dataset="ml-100k", root=str(tmp_path)).setup()


def test_download_unpacks_a_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,10\n1,2,3,11\n1,3,5,12\n")
        z.writestr("ml-latest-small/movies.csv", "movieId,title,genres\n1,A (1990),Drama\n")
    (tmp_path / "release.zip").write_bytes(buf.getvalue())
    monkeypatch.setattr(D, "MOVIELENS_URL", (tmp_path / "release.zip").as_uri().replace("release", "{name}"))
    (tmp_path / "ml-latest-small.zip").write_bytes(buf.getvalue())
    dm = InteractionsDataModule(dataset="ml-latest-small", root=str(tmp_path / "root"), download=True)
    dm.prepare_data()
    dm.setup()
    assert (tmp_path / "root" / "ml-latest-small" / "ratings.csv").is_file()
    assert dm.n_users == 1 and dm.split_counts["test"]["interactions"] == 1


# -- cleaning: bad input ----------------------------------------------------------------------------------------------


def test_string_and_huge_integer_ids_are_exact(tmp_path: Path) -> None:
    huge = 123456789012345678901234567890
    frame = log([(huge, "item-a", 4, 1), (huge + 1, "item-a", 3, 2), (huge, "007", 5, 3), (huge, "7", 5, 4)])
    dm = dm_for(frame, tmp_path, split="random", val_fraction=0.25, test_fraction=0.25)
    ids = set(dm.user_ids) | set(dm._restored.get("user_ids", []))
    assert ids <= {str(huge), str(huge + 1)}
    all_items = set(dm._uniques["item"])
    assert {"item-a", "007", "7"} == all_items  # "007" and "7" stay two items
    codes, uniques = canonical_ids(pd.Series([1, "1", "1.0", 1.0, " 1 ", None, float("nan")], dtype=object))
    assert list(uniques) == ["1"] and codes.tolist() == [0, 0, 0, 0, 0, -1, -1]
    assert canonical_id("12.0") == "12" and canonical_id(str(huge)) == str(huge) and canonical_id("") is None


def test_duplicates_are_merged_and_counted(tmp_path: Path) -> None:
    frame = log([("a", 1, 2.0, 10), ("a", 1, 4.0, 20), ("a", 2, 5.0, 5), ("b", 1, 3.0, 1), ("b", 2, 1.0, 2)])
    for policy, expected in (("last", 4.0), ("first", 2.0), ("mean", 3.0), ("max", 4.0)):
        dm = dm_for(frame, tmp_path, feedback="explicit", split="random", val_fraction=0.25, test_fraction=0.25,
                    duplicates=policy)  # fmt: skip
        assert dm.counts["duplicates_merged"] == 1
        merged = {}
        for s in ("train", "val", "test"):
            e = dm._eval[s]
            for u, i, r in zip(e["user"], e["item"], e["rating"]):
                merged[(u, i)] = r
        a1 = (dm.user_ids.index("a") + 1, dm.item_ids.index("1") + 1) if "1" in dm.item_ids else None
        if a1 in merged:
            assert merged[a1] == expected, policy
    with pytest.raises(ConfigError, match="unknown data.duplicates 'newest'"):
        InteractionsDataModule(path="x.csv", duplicates="newest")


def test_non_numeric_ratings_name_examples(tmp_path: Path) -> None:
    frame = log([("a", 1, "4", 1), ("a", 2, "five", 2), ("b", 1, "3 stars", 3), ("b", 2, "", 4)])
    with pytest.raises(
        DataError, match=r"rating column 'rating' has 2 non-numeric value\(s\) \(e.g. 'five', '3 stars'"
    ):
        dm_for(frame, tmp_path, feedback="explicit", split="random")
    # Implicit feedback ignores the rating column: nothing to complain about.
    dm_for(frame, tmp_path)


def test_missing_ids_and_ratings_are_dropped_and_counted(tmp_path: Path) -> None:
    frame = log([("a", 1, 4, 1), ("a", 2, None, 2), (None, 2, 3, 3), ("b", 1, 3, 4), ("b", 2, 2, 5), ("b", 3, 5, 6)])
    dm = dm_for(frame, tmp_path, feedback="explicit", split="random", val_fraction=0.25, test_fraction=0.25)
    assert dm.counts["dropped_missing_id"] == 1 and dm.counts["dropped_missing_rating"] == 1


def test_timestamps_in_mixed_formats() -> None:
    values = pd.Series(["2021-01-05 10:00:00", "Jan 6 2021", "2021-01-07T00:00:00Z", "1609459200"])
    seconds, note = parse_times(values, "when")
    assert np.argsort(seconds).tolist() == [3, 0, 1, 2]  # 1609459200 is 2021-01-01
    assert "Unix seconds" in note
    with pytest.raises(
        DataError, match=r"time column 'when': 1 of 3 values are neither numbers nor dates \(e.g. 'soon'\)"
    ):
        parse_times(pd.Series(["2021-01-05", "soon", "2021-01-07"]), "when")
    with pytest.raises(DataError, match="mixes numbers .* and dates"):
        parse_times(pd.Series(["2021-01-05", "17", "2021-01-07"]), "when")
    with pytest.raises(DataError, match="missing value"):
        parse_times(pd.Series(["2021-01-05", None]), "when")


def test_empty_or_wrong_item_tables(tmp_path: Path) -> None:
    frame = small_log()
    (tmp_path / "items.csv").write_text("item_id,title\n")
    with pytest.raises(DataError, match="item features file .* has no rows|item features file .* is empty"):
        dm_for(frame, tmp_path, item_features=str(tmp_path / "items.csv"), item_categorical_columns=["title"])
    pd.DataFrame({"item_id": [1, 2], "name": ["x", "y"]}).to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(ConfigError, match="feature column\\(s\\) titel are not in the item table.*name"):
        dm_for(frame, tmp_path, item_features=str(tmp_path / "items.csv"), item_categorical_columns=["titel"])


# -- splits ----------------------------------------------------------------------------------------------------------


def _times(dm: InteractionsDataModule, frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(str(u), str(i)): float(t) for u, i, t in zip(frame.user_id, frame.item_id, frame.timestamp)}


def test_leave_last_out_does_not_leak(tmp_path: Path) -> None:
    frame = small_log()
    common = frame["item_id"].value_counts().index[:2].tolist()  # surely in training
    extra = [("solo", common[0], 4.0, 5), ("pair", common[0], 4.0, 5), ("pair", common[1], 4.0, 6)]
    frame = pd.concat([frame, log(extra)])
    dm = dm_for(frame, tmp_path)
    when = _times(dm, frame)
    uid, iid = dm.user_ids, dm.item_ids
    assert dm.counts["users_train_only"] == 1 and dm.counts["users_without_val"] == 1
    train = {}
    for u, i in zip(dm._train["user"], dm._train["item"]):
        train.setdefault(uid[u - 1], []).append(when[(uid[u - 1], iid[i - 1])])
    for split in ("val", "test"):
        e = dm._eval[split]
        for r, u in enumerate(e["users"]):
            targets = e["target_items"][e["target_ptr"][r] : e["target_ptr"][r + 1]]
            seen = set(e["seen_items"][e["seen_ptr"][r] : e["seen_ptr"][r + 1]].tolist())
            assert len(targets) == 1 and not seen & set(targets.tolist())  # a target is never masked
            t = when[(uid[u - 1], iid[targets[0] - 1])]
            assert max(train[uid[u - 1]]) <= t  # nothing of the user's future is in training
    assert "solo" in dm.user_ids and "solo" not in {uid[u - 1] for u in dm._eval["test"]["users"]}
    assert "pair" in {uid[u - 1] for u in dm._eval["test"]["users"]}
    assert "pair" not in {uid[u - 1] for u in dm._eval["val"]["users"]}


def test_time_split_is_one_global_cut(tmp_path: Path) -> None:
    frame = small_log()
    dm = dm_for(frame, tmp_path, split="time")
    when = _times(dm, frame)
    uid, iid = dm.user_ids, dm.item_ids
    train_max = max(when[(uid[u - 1], iid[i - 1])] for u, i in zip(dm._train["user"], dm._train["item"]))
    for split in ("val", "test"):
        e = dm._eval[split]
        for r, u in enumerate(e["users"]):
            for i in e["target_items"][e["target_ptr"][r] : e["target_ptr"][r + 1]]:
                assert when[(uid[u - 1], iid[i - 1])] >= train_max
    # Items first seen after the cut are not in the training id map, and are counted.
    counts = dm.split_counts["test"]
    assert counts["interactions"] >= counts["users"]


def test_random_split_partitions_interactions(tmp_path: Path) -> None:
    frame = small_log()
    dm = dm_for(frame, tmp_path, feedback="explicit", split="random", val_fraction=0.2, test_fraction=0.2)
    pairs = {
        s: {(u, i) for u, i in zip(dm._eval[s]["user"].tolist(), dm._eval[s]["item"].tolist()) if u and i}
        for s in ("train", "val", "test")
    }  # ids unknown to training (index 0) are not pairs
    assert not (pairs["train"] & pairs["test"]) and not (pairs["val"] & pairs["test"])
    assert sum(len(dm._eval[s]["user"]) for s in pairs) == len(frame)
    # Same seed, same split; another seed, another split.
    again = dm_for(frame, tmp_path, feedback="explicit", split="random", val_fraction=0.2, test_fraction=0.2)
    assert np.array_equal(again._eval["test"]["rating"], dm._eval["test"]["rating"])


def test_id_maps_are_fitted_on_training_only(tmp_path: Path) -> None:
    # Item 99 appears only as one user's last interaction: it is not in the catalogue and its target is counted.
    before = dm_for(small_log(), tmp_path).split_counts["test"]["unknown_item_targets"]
    frame = pd.concat([small_log(), log([("u0", 99, 5.0, 9_999_999)])])
    dm = dm_for(frame, tmp_path)
    assert "99" not in dm.item_ids
    assert dm.split_counts["test"]["unknown_item_targets"] == before + 1


# -- batches -----------------------------------------------------------------------------------------------------------


def test_training_history_holds_only_earlier_items(tmp_path: Path) -> None:
    dm = InteractionsDataModule(synthetic=True, synthetic_users=20, synthetic_items=30, history_len=5, negatives=3)
    dm.setup()
    ptr, seq = dm._train_ptr, dm._train_items
    batch = D.collate(D.PairRows(dm).__getitems__(list(range(len(dm._train["user"])))))
    for r in range(0, len(batch["user"]), 7):
        u, item, pos = int(batch["user"][r]), int(batch["item"][r]), int(dm._train["pos"][r])
        earlier = seq[ptr[u] : ptr[u] + pos][-5:].tolist()
        assert [x for x in batch["history"][r].tolist() if x] == earlier and item not in earlier
    # Negatives flagged as real are never the user's training items.
    train = set(zip(dm._train["user"].tolist(), dm._train["item"].tolist()))
    for u, negs, ok in zip(batch["user"].tolist(), batch["neg"].tolist(), batch["neg_ok"].tolist()):
        for n, good in zip(negs, ok):
            assert good == ((u, n) not in train)


def test_sequence_rows_predict_the_next_item(tmp_path: Path) -> None:
    dm = InteractionsDataModule(synthetic=True, synthetic_users=20, synthetic_items=30, history_len=4,
                                train_batches="sequences", sequence_windows="last")  # fmt: skip
    dm.setup()
    batch = D.SequenceRows(dm).__getitems__([0])
    u = int(batch["user"][0])
    seq = dm._train_items[dm._train_ptr[u] : dm._train_ptr[u + 1]].tolist()
    inputs = ([0] * 4 + seq[:-1])[-4:]  # the last 4 inputs, left-padded
    assert batch["history"][0].tolist() == inputs
    # Each real input position's target is the item that follows it; padding positions have none (0).
    following = {seq[j]: seq[j + 1] for j in range(len(seq) - 1)}
    assert batch["target"][0].tolist() == [following[x] if x else 0 for x in inputs]
    # Random windows: always consecutive items of the user's history, ending anywhere, never empty.
    dm.sequence_windows = "random"
    rows = D.SequenceRows(dm)
    ends = set()
    for _ in range(30):
        b = rows.__getitems__([0])
        h, t = b["history"][0].tolist(), b["target"][0].tolist()
        real = [x for x in h if x]
        assert real and all(following[x] == y for x, y in zip(h, t) if x)
        start = seq.index(real[0])
        assert seq[start : start + len(real)] == real
        ends.add(t[-1])
    assert len(ends) > 1


def test_ranking_rows_and_sampled_negatives(tmp_path: Path) -> None:
    dm = InteractionsDataModule(synthetic=True, synthetic_users=30, synthetic_items=40, sampled_negatives=10,
                                history_len=3)  # fmt: skip
    dm.setup()
    batch = next(iter(dm.eval_dataloader("test")))
    known = {}
    for u in range(1, dm.n_users + 1):
        known[u] = set(dm._known_items[dm._known_ptr[u] : dm._known_ptr[u + 1]].tolist())
    for u, negs, targets, seen, hist in zip(
        batch["user"].tolist(),
        batch["negatives"].tolist(),
        batch["targets"].tolist(),
        batch["seen"].tolist(),
        batch["history"].tolist(),
    ):
        negs = [x for x in negs if x]  # 0 pads users who know almost every item
        assert not set(negs) & known[u] and len(set(negs)) == len(negs) == min(10, dm.n_items - len(known[u]))
        assert set(x for x in seen if x) | set(x for x in targets if x) == known[u]  # test: train + val seen
        assert [x for x in hist if x] == [x for x in seen if x][-3:]


def test_restore_keeps_the_id_maps(tmp_path: Path) -> None:
    frame = small_log()
    dm = dm_for(frame, tmp_path)
    info = {**dm.info, "files": dm.files}
    # The same users in another order, plus a new user and item: indices stay, new ids are unknown (0).
    other = pd.concat([frame.iloc[::-1], log([("new-user", 5, 3.0, 1), ("u1", 777, 2.0, 2_000_000_000)])])
    restored = InteractionsDataModule(path=str(tmp_path / "other.csv"))
    other.to_csv(tmp_path / "other.csv", index=False)
    restored.restore(info)
    restored.setup()
    assert restored.user_ids == dm.user_ids and restored.item_ids == dm.item_ids
    assert restored.counts["train_unknown_ids"] >= 1
    npz = np.load(io.BytesIO(dm.files["interactions.npz"]))
    assert npz["popularity"].shape == (dm.n_items + 1,) and npz["indptr"].shape == (dm.n_users + 2,)


# -- side features and the synthetic twin ----------------------------------------------------------------------------


def test_item_features_and_cold_items() -> None:
    dm = InteractionsDataModule(
        synthetic=True, synthetic_users=30, synthetic_items=30, synthetic_cold_items=4,
        item_categorical_columns=["studio"], item_numeric_columns=["year"], item_multi_columns=["genres"],
        user_categorical_columns=["country"], user_numeric_columns=["age"],
    )  # fmt: skip
    dm.setup()
    assert dm.n_items == 34  # the table's 4 cold items join the catalogue
    assert dm.info["n_warm_items"] == len(set(dm._train["item"].tolist())) <= 30
    tables = dm.feature_tables()
    assert tables["item_num"].shape[0] == dm.n_items + 1 and tables["item_warm"][1:].sum() == dm.info["n_warm_items"]
    info = dm.info
    assert info["item_num_dim"] >= 1 + 4 and info["item_cardinalities"] and info["user_cardinalities"]
    genres = info["preprocessing"]["item_features"]["multi"]["genres"]["vocab"]
    assert {"SciFi", "Romance", "Crime", "Fantasy"} <= set(genres)
    assert tables["user_num"].shape == (dm.n_users + 1, info["user_num_dim"])
    assert torch.equal(tables["item_num"][0], torch.zeros_like(tables["item_num"][0]))  # padding row


def test_synthetic_twin_is_deterministic_with_planted_structure() -> None:
    a, items, users = make_synthetic(60, 80, 5, seed=3)
    b, _, _ = make_synthetic(60, 80, 5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(items) == 85 and set(a["item_id"]) <= set(items["item_id"][:80])
    # Each user's items concentrate in few title clusters: the planted low-rank preferences.
    cluster = {i: g.split("|")[0] for i, g in zip(items.item_id, items.genres)}
    share = (
        a.assign(c=a.item_id.map(cluster)).groupby("user_id")["c"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    )
    assert share.mean() > 0.45  # four clusters: 0.25 without structure
