"""The shared data layer (recipezoo.data): each stage alone, on tiny tables and temporary files."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data import columns as C
from recipezoo.data import folders as F
from recipezoo.data import labels as LB
from recipezoo.data import splits as S
from recipezoo.data import tables as T
from recipezoo.data.contract import DataModuleContract
from recipezoo.data.timeparse import parse_times

# -- tables -------------------------------------------------------------------------------------------------------


def test_formats_by_extension(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    with gzip.open(tmp_path / "t.csv.gz", "wt") as f:
        frame.to_csv(f, index=False)
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_json(tmp_path / "t.json", orient="records")  # an array of records
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.csv.gz", "t.jsonl", "t.json", "t.parquet"):
        got = T.read_table(tmp_path / name)
        assert got["a"].tolist() == [1, 2] and got["b"].tolist() == ["x", "y"], name
    assert T.table_kind("x.TSV.gz") == "tsv" and T.table_kind("x.xlsx") is None and T.table_kind("x") == "text"


def test_semicolon_csv_is_sniffed_unless_the_separator_is_fixed(tmp_path: Path) -> None:
    # The UCI bank-marketing table: a ".csv" separated by ';' with quoted names.
    p = tmp_path / "bank.csv"
    p.write_text('"age";"job";"y"\n30;"admin.";"no"\n41;"services";"yes"\n')
    assert list(T.read_table(p).columns) == ["age", "job", "y"]
    one = T.read_table(p, sep=None)  # by extension only: one column, and the hint names the separator
    assert one.shape[1] == 1 and "semicolon (';')" in T.wrong_separator_hint(one, p)
    assert list(T.read_table(p, sep=";").columns) == ["age", "job", "y"]


def test_text_files_are_sniffed(tmp_path: Path) -> None:
    (tmp_path / "r.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    frame = T.read_table(tmp_path / "r.dat", header=False, names=["user", "item"], dtype=str)
    assert list(frame.columns) == ["user", "item", "column_2", "column_3"] and frame["item"].tolist() == ["1193", "661"]
    (tmp_path / "ws.txt").write_text("1 2 3\n4 5 6\n")
    assert T.read_table(tmp_path / "ws.txt", header=False, default_sep=r"\s+").shape == (2, 3)
    (tmp_path / "sms").write_text("ham\thello there\nspam\tWIN a prize now\n")
    by_position = T.read_table(tmp_path / "sms", header=False, text=True)
    assert list(by_position.columns) == ["0", "1"] and by_position["1"].tolist()[1] == "WIN a prize now"


def test_header_auto_and_header_callable(tmp_path: Path) -> None:
    (tmp_path / "u.tsv").write_text("1\t5\t3.5\t100\n2\t6\t4\t101\n")
    frame = T.read_table(tmp_path / "u.tsv", header="auto", names=["user", "item", "rating", "timestamp"])
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"] and frame["user"].tolist() == ["1", "2"]
    (tmp_path / "m.csv").write_text("a.wav,up\nb.wav,down\n")
    frame = T.read_table(
        tmp_path / "m.csv", header=lambda cols: str(cols[0]).endswith(".wav"), names=["path", "value"], text=True
    )
    assert frame.to_dict("records") == [{"path": "a.wav", "value": "up"}, {"path": "b.wav", "value": "down"}]


def test_text_mode_keeps_strings_and_empty_cells(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,text\n007,NA\n8,\n")
    frame = T.read_table(tmp_path / "t.csv", text=True)
    assert frame["id"].tolist() == ["007", "8"] and frame["text"].tolist() == ["NA", ""]
    (tmp_path / "t.jsonl").write_text('{"text": "a", "n": 1}\n\n{"text": null}\n')
    frame = T.read_table(tmp_path / "t.jsonl", text=True)
    assert frame.to_dict("records") == [{"text": "a", "n": "1"}, {"text": "", "n": ""}]
    (tmp_path / "q.tsv").write_text('label\tsentence\n1\t"quoted" start and a lone " quote\n')
    assert T.read_table(tmp_path / "q.tsv", text=True, quote_tabs=False)["sentence"].tolist() == [
        '"quoted" start and a lone " quote'
    ]


def test_str_columns_keep_ids_exact(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("User-ID,ISBN,rating\n001,034545104X,5\n2,0002,4\n")
    frame = T.read_table(tmp_path / "t.csv", str_columns=["user_id", "isbn"])
    assert frame["User-ID"].tolist() == ["001", "2"] and frame["ISBN"].tolist() == ["034545104X", "0002"]
    assert frame["rating"].tolist() == [5, 4]


def test_encodings(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes("text,label\ngood,pos\ncaf\xe9 bad,neg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not valid utf-8: byte 0xe9 on line 3.*data.encoding=latin-1"):
        T.read_table(p)
    assert T.read_table(p, encoding="latin-1")["text"].tolist() == ["good", "café bad"]
    assert T.read_table(p, encoding="auto")["text"].tolist() == ["good", "café bad"]
    with pytest.raises(ConfigError, match="unknown encoding 'nope'"):
        T.read_table(p, encoding="nope")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffa,b\n1,2\n".encode())
    assert list(T.read_table(bom).columns) == ["a", "b"]
    assert T.read_text_file(bom) == "a,b\n1,2\n"


def test_table_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nope.csv\. Pass data.path"):
        T.read_table(tmp_path / "nope.csv", missing_hint=" Pass data.path=<file>.")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ConfigError, match=r"\.csv, \.tsv, \.jsonl"):
        T.read_table(tmp_path / "t.xlsx")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="interactions file .*e.csv is empty"):
        T.read_table(tmp_path / "e.csv", what="interactions")
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="has no rows"):
        T.read_table(tmp_path / "h.csv")
    assert len(T.read_table(tmp_path / "h.csv", allow_empty=True)) == 0
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not valid JSON"):
        T.read_table(tmp_path / "bad.jsonl", text=True)
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match="cannot read data file .*ragged.csv") as e:
        T.read_table(tmp_path / "ragged.csv")
    assert "\n" not in str(e.value)


def test_sniff_separator() -> None:
    assert T.sniff_separator(["a\tb,c", "d\te,f"]) == "\t"
    assert T.sniff_separator(["a;b", "c;d", ""]) == ";"
    assert T.sniff_separator(["a b", "c d"]) is None


# -- columns ------------------------------------------------------------------------------------------------------


def test_find_column_by_name_alternatives_position_and_candidates() -> None:
    cols = ["label", "sentence", "User_ID"]
    assert C.find_column(cols, "sentence") == "sentence"
    assert C.find_column(cols, ["content", "sentence"]) == "sentence"
    assert C.find_column(cols, 1) == "sentence" and C.find_column(cols, "-1") == "User_ID"
    assert C.find_column(cols, 5) is None and C.find_column(cols, "1", positions=False) is None
    assert C.find_column(cols, candidates=["userid", "user"]) == "User_ID"
    assert C.find_column(cols, candidates=["userid"], match="lower") is None
    assert C.find_column(cols, candidates=["user_id"], match="lower") == "User_ID"


def test_resolve_column_errors_list_the_columns_found() -> None:
    with pytest.raises(DataError, match=r"d.csv has no text column 'review'; columns found: text, label\."):
        C.resolve_column(["text", "label"], "review", "text", where="d.csv")
    with pytest.raises(ConfigError, match="Did you mean: label"):
        C.resolve_column(["text", "label"], "labl", "label", error=ConfigError)
    with pytest.raises(DataError, match=r"holds the item ids .*columns found: a;b;c.*data.item_column.*delimiter"):
        C.resolve_column(["a;b;c"], None, "item ids", candidates=["item"], key="data.item_column")
    assert C.resolve_column(["x"], None, "time", required=False, candidates=["ts"]) is None
    assert C.shown_columns([f"c{i}" for i in range(50)], 3) == "c0, c1, c2 ... (50 in all)"
    assert C.missing_columns(["a", "b"], ["b", "z", "y"]) == ["z", "y"]


def test_column_values_names_a_wrong_separator(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("text\tlabel\ngood film\tpos\nbad film\tneg\n")
    frame = T.read_table(p, sep=None, text=True)
    with pytest.raises(DataError, match=r"looks tab \('\\t'\)-separated: pass data.sep='\\t'\."):
        C.column_values(frame, "text", "text", p)
    good = T.read_table(p, sep="\t", text=True)
    assert C.column_values(good, ["sentence", "text"], "text", p) == ["good film", "bad film"]
    with pytest.raises(DataError, match=r"no label column 'y'; columns found: text, label\..*data.label_column"):
        C.column_values(good, "y", "label", p)


# -- times --------------------------------------------------------------------------------------------------------


def test_times_numbers_datetimes_and_mixed_formats() -> None:
    assert parse_times(pd.Series([3, 1, 2]), "t")[0].tolist() == [3.0, 1.0, 2.0]
    secs, note = parse_times(pd.Series(pd.to_datetime(["1970-01-02", "1970-01-01"])), "t")
    assert secs.tolist() == [86400.0, 0.0] and note == "datetimes"
    values = pd.Series(["2021-01-05 10:00:00", "Jan 6 2021", "2021-01-07T00:00:00Z", "1609459200"])
    secs, note = parse_times(values, "when")
    assert np.argsort(secs).tolist() == [3, 0, 1, 2] and "Unix seconds" in note
    secs, note = parse_times(pd.Series(["2021-01-05", "1609459200000"]), "when")
    assert secs[1] == 1609459200 and "milliseconds" in note


def test_time_errors_follow_the_mixed_policy() -> None:
    with pytest.raises(DataError, match="mixes numbers .* and dates .* not Unix times"):
        parse_times(pd.Series(["2021-01-05", "17"]), "when")
    with pytest.raises(DataError, match="time column 'time' mixes numbers and text.*yesterday"):
        parse_times(pd.Series(["1", "2", "yesterday"]), "time", mixed="error")
    with pytest.raises(DataError, match=r"1 of 3 values are neither numbers nor dates \(e.g. 'soon'\); use Unix"):
        parse_times(pd.Series(["2021-01-05", "soon", "2021-01-07"]), "when")
    with pytest.raises(DataError, match=r"neither numbers nor dates.*soon.*use numbers \(e.g. seconds\)"):
        parse_times(pd.Series(["2024-01-01", "soon"]), "time", mixed="error")
    with pytest.raises(DataError, match=r"1 missing value\(s\); fill or drop those rows, or split without time"):
        parse_times(pd.Series(["2021-01-05", None]), "t", without="split without time (data.time_column=null)")
    with pytest.raises(DataError, match="booleans"):
        parse_times(pd.Series([True, False]), "t")


# -- splits -------------------------------------------------------------------------------------------------------


def test_split_names() -> None:
    assert [S.canonical_split(n) for n in ("Train", "dev", "validation", " testing ", "other")] == [
        "train",
        "val",
        "val",
        "test",
        None,
    ]


def test_split_files_and_paths(tmp_path: Path) -> None:
    for name in ("train.csv", "dev.tsv", "val.csv", "test.jsonl", "notes.md"):
        (tmp_path / name).write_text("x\n")
    files = S.find_split_files(tmp_path)
    assert {k: v.name for k, v in files.items()} == {"train": "train.csv", "val": "dev.tsv", "test": "test.jsonl"}
    with pytest.raises(DataError, match=r"test file not found: .*nope.tsv \(data.test_path\)"):
        S.split_paths(tmp_path / "train.csv", test_path=tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="data path not found"):
        S.split_paths(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no training file in folder"):
        S.find_split_files(empty)


def test_stratified_split_is_seeded_and_stratified() -> None:
    labels = [0] * 80 + [1] * 20
    a = S.stratified_split(labels, [0.1, 0.2], seed=3)
    assert a == S.stratified_split(labels, [0.1, 0.2], seed=3)
    assert [len(p) for p in a] == [70, 10, 20]
    assert sorted(i for p in a for i in p) == list(range(100))
    assert sum(labels[i] for i in a[2]) == 4  # a fifth of the test part is positive, as in the data
    with pytest.raises(DataError, match="too few to split off"):
        S.stratified_split([0, 1], [0.9], seed=0)


def test_random_and_time_splits() -> None:
    part = S.random_split(100, 0.1, 0.2, seed=0)
    assert np.bincount(part).tolist() == [70, 10, 20]
    assert np.array_equal(part, S.random_split(100, 0.1, 0.2, seed=0))
    with pytest.raises(DataError, match="too few"):
        S.random_split(3, 0.1, 0.1, seed=0)
    times = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 6.0, 7.0, 9.0, 8.0])
    train, val, test = S.time_split(times, 0.2, 0.2)
    assert train.tolist() == [5, 1, 3, 2, 4, 0] and val.tolist() == [6, 7] and test.tolist() == [9, 8]
    ties = S.time_split(np.zeros(4), 0.25, 0.25, tiebreak=np.array([3, 2, 1, 0]))
    assert [t.tolist() for t in ties] == [[3, 2], [1], [0]]
    with pytest.raises(DataError, match="2 interactions are too few"):
        S.time_split(np.arange(2.0), 0.3, 0.3, require_test=True, unit="interactions")


def test_leave_last_out() -> None:
    users = np.array([0, 0, 0, 1, 1, 2])
    times = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 1.0])
    part, counts = S.leave_last_out(users, times)
    assert part.tolist() == [2, 0, 1, 2, 0, 0]
    assert counts == {"users_train_only": 1, "users_without_val": 1}


def test_group_split_keeps_groups_whole() -> None:
    rng = np.random.default_rng(0)
    groups = [f"g{int(g)}" for g in rng.integers(0, 30, 400)]
    parts = S.group_split(groups, [0.2, 0.1], seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(400))
    owners = [{groups[i] for i in p} for p in parts]
    assert not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
    assert abs(len(parts[1]) - 80) < 40 and len(parts[2]) > 0
    for order, fill in (("natural", "first_first"), ("appearance", "last_first")):
        again = S.group_split(groups, [0.2, 0.1], seed=1, group_order=order, fill=fill)
        assert all(
            np.array_equal(a, b)
            for a, b in zip(again, S.group_split(groups, [0.2, 0.1], 1, group_order=order, fill=fill))
        )


def test_group_split_strata_and_missing_groups() -> None:
    groups = pd.Series([1, 1, 2, 2, 3, 3, 4, 4, None, None] * 5, dtype=object)
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 5)
    parts = S.group_split(groups, [0.3, 0.3], seed=0, strata=y)
    # Rows without a group are groups of their own, so they can land in any part.
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))
    # Only one group has positives: it stays in train (the last group of a stratum always does).
    assert set(np.flatnonzero(y)) <= set(parts[0].tolist())


def test_group_split_take_first_puts_a_big_group_in_an_empty_part() -> None:
    groups = ["a"] * 6 + ["b"] * 6 + ["c"] * 6
    plain = S.group_split(groups, [0.1], seed=0, group_order="natural")
    taken = S.group_split(groups, [0.1], seed=0, group_order="natural", take_first=True)
    assert len(plain[1]) == 0 and len(taken[1]) == 6


def test_carve_missing() -> None:
    splits = {"train": list(range(50)), "test": [1]}
    assert S.missing_splits(splits) == ["val"]
    assert S.missing_splits({"train": [1], "val": [], "test": [2]}, empty=True) == ["val"]
    keys = [i % 2 for i in range(50)]
    assert S.carve_missing(keys, [0.2], seed=0) == S.stratified_split(keys, [0.2], 0)
    groups = [f"s{i % 5}" for i in range(50)]
    parts = S.carve_missing(keys, [0.2], seed=0, groups=groups, group_order="natural", fill="first_first")
    assert {groups[i] for i in parts[1]}.isdisjoint({groups[i] for i in parts[0]})
    assert S.group_overlap({"train": [{"s": 1}], "test": [{"s": 1}, {"s": 2}]}, "s") == ["1"]


# -- labels -------------------------------------------------------------------------------------------------------


def test_label_orders() -> None:
    assert LB.sort_labels(["10", "2", "1"], "numeric") == ["1", "2", "10"]
    assert LB.sort_labels(["b", "10", "a"], "numeric") == ["10", "a", "b"]
    assert LB.sort_labels(["class_10", "class_2"], "natural") == ["class_2", "class_10"]
    assert LB.sort_labels(["class_10", "class_2"], "text") == ["class_10", "class_2"]
    assert LB.sort_labels(["I-PER", "B-LOC", "O", "B-PER"], "tags") == ["O", "B-LOC", "B-PER", "I-PER"]
    assert LB.sort_labels(["b", "a", "b"], "none") == ["b", "a"]
    with pytest.raises(ConfigError, match="unknown label order"):
        LB.sort_labels(["a"], "random")


def test_label_map_encodes_and_applies_the_unseen_policy(caplog: pytest.LogCaptureFixture) -> None:
    lm = LB.LabelMap.fit(["pos", "neg", "pos"])
    assert lm.labels == ["neg", "pos"] and lm.num_classes == 2
    assert lm.encode(["pos", "neg"]) == ([1, 0], [0, 1])
    with pytest.raises(DataError, match=r"labels in the test split that training never saw: 'meh' \(2 rows\)"):
        lm.encode(["pos", "meh", "meh"], split="test")
    with caplog.at_level(logging.WARNING):
        assert lm.encode(["pos", "meh"], split="test", unseen="drop") == ([1], [0])
    assert "dropped 1 rows with labels unseen in training" in caplog.text
    with pytest.raises(DataError, match="train split"):
        lm.encode(["meh"], split="train", unseen="drop")
    assert lm.decode([1, 0]) == ["pos", "neg"]
    with pytest.raises(DataError, match="no labels in the training split"):
        LB.LabelMap.fit([])


def test_multi_label_and_label_names(tmp_path: Path) -> None:
    lm = LB.LabelMap.fit([("b", "a"), (), ("c",)], multi_label=True, delimiter="|")
    assert lm.labels == ["a", "b", "c"] and lm.parse(" a | c |") == ("a", "c")
    assert lm.encode([("c", "a"), ()])[0] == [(2, 0), ()]
    (tmp_path / "names.txt").write_text("zero\none\n\ntwo\n")
    names = LB.read_label_names(str(tmp_path / "names.txt"))
    assert names == ["zero", "one", "two"] and LB.read_label_names(["x", 1]) == ["x", "1"]
    assert LB.read_label_names(None) is None
    with pytest.raises(DataError, match="label names file not found"):
        LB.read_label_names(str(tmp_path / "nope.txt"))
    by_id = LB.LabelMap.fit(["2", "0", "2"], names=names)
    assert by_id.labels == ["zero", "two"] and by_id.encode(["2", "0"])[0] == [1, 0]
    assert LB.LabelMap.fit(["1"], names=names, multi_label=True).labels == names
    with pytest.raises(DataError, match="label_names has 3 names, but the labels include 7"):
        LB.LabelMap.fit(["7"], names=names)


def test_label_map_info_round_trip_and_checkpoint_check() -> None:
    lm = LB.LabelMap(["cat", "dog"])
    info = lm.to_info()
    assert info == {"num_classes": 2, "labels": ["cat", "dog"], "multi_label": False}
    assert LB.LabelMap.from_info(info) == lm and LB.LabelMap.from_info({}) is None
    lm.check_known(["dog"])
    with pytest.raises(DataError, match=r"label mismatch: the data has classes \['emu'\] that the checkpoint"):
        lm.check_known(["dog", "emu"])


# -- folders ------------------------------------------------------------------------------------------------------


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_class_folders_and_split_folders(tmp_path: Path) -> None:
    for rel in ("train/cat/1.png", "train/cat/sub/2.JPG", "train/dog/3.png", "train/dog/.hidden.png", "Val/dog/4.png"):
        _touch(tmp_path / rel)
    _touch(tmp_path / "train" / "dog" / "notes.txt")
    _touch(tmp_path / "train" / "dog" / "broken.png", b"")
    found = F.split_folders(tmp_path)
    assert found is not None and set(found) == {"train", "val"}
    items, labels, bad = F.scan_class_folders(found["train"], F.IMAGE_EXTENSIONS, check=lambda f: f.stat().st_size > 0)
    assert [Path(i).name for i in items] == ["1.png", "2.JPG", "3.png"] and labels == ["cat", "cat", "dog"]
    assert [Path(b).name for b in bad] == ["broken.png"]
    assert F.split_folders(tmp_path / "train") is None
    with pytest.raises(DataError, match="has no class sub-folders"):
        F.scan_class_folders(tmp_path / "train" / "cat" / "sub", F.IMAGE_EXTENSIONS)
    assert ".wav" in F.AUDIO_EXTENSIONS and ".sph" in F.AUDIO_READ_EXTENSIONS


def test_file_name_patterns(tmp_path: Path) -> None:
    pattern = F.compile_pattern("{label}_{speaker}_{index}.wav")
    assert F.match_pattern(pattern, "{label}_{speaker}_{index}.wav", "sub/yes_theo_3.wav") == {
        "label": "yes",
        "speaker": "theo",
        "index": "3",
    }
    assert F.match_pattern(pattern, "{label}_{speaker}_{index}.wav", "yes.wav") is None
    nested = F.compile_pattern("{speaker}/{label}_{_}.wav")
    assert F.match_pattern(nested, "{speaker}/{label}_{_}.wav", "ann/no_7.wav") == {"speaker": "ann", "label": "no"}
    with pytest.raises(ConfigError, match="twice"):
        F.compile_pattern("{a}_{a}.wav")
    with pytest.raises(ConfigError, match="plain name"):
        F.compile_pattern("{a-b}.wav")
    assert F.label_from_folder("up/1.wav") == "up" and F.label_from_folder("1.wav") is None
    _touch(tmp_path / "a" / "1.wav")
    _touch(tmp_path / ".x.wav")
    assert [f.name for f in F.list_files(tmp_path, F.AUDIO_EXTENSIONS)] == ["1.wav"]


def test_bad_file_budget(caplog: pytest.LogCaptureFixture) -> None:
    bad = {"missing": [], "unreadable": ["c.wav"], "empty": ["e.wav"]}
    with caplog.at_level(logging.WARNING):
        F.check_bad_files(40, bad, 0.05, where="audio folder r", noun="audio files", total=43)
    assert "skipped 2 of 43 audio files: 1 unreadable (c.wav); 1 empty (e.wav)." in caplog.text
    with pytest.raises(DataError, match=r"2 of 43 audio files cannot be used \(4.7% > data.max_bad_fraction=0.01\)"):
        F.check_bad_files(40, bad, 0.01, where="r", noun="audio files", total=43)
    with pytest.raises(
        DataError, match=r"none of the 8 audio files can be used: 8 missing \(m0, m1, m2 \.\.\.\)\. Hint"
    ):
        F.check_bad_files(0, {"missing": [f"m{i}" for i in range(8)]}, 0.5, where="r", noun="audio files", hint=" Hint")
    F.check_bad_files(0, {}, 0.05, where="r", empty_ok=True)  # nothing bad: the caller says what is wrong
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        F.check_bad_files(24, {"unreadable": ["g/t.png"]}, 0.05, where="root", messages=F.IMAGE_BAD_FILE_MESSAGES)
    assert "Skipped 1 unreadable image(s) in root: g/t.png" in caplog.text
    with pytest.raises(DataError, match=r"9 of 15 images in root cannot be read .* b0, b1, b2, b3, b4 and 4 more"):
        F.check_bad_files(
            6, {"unreadable": [f"b{i}" for i in range(9)]}, 0.05, where="root", messages=F.IMAGE_BAD_FILE_MESSAGES
        )
    with pytest.raises(DataError, match=r"image folder root holds no readable images \(2 unreadable\); expected"):
        F.check_bad_files(
            0, {"unreadable": ["a", "b"]}, 0.05, where="root", hint="expected ...", messages=F.IMAGE_BAD_FILE_MESSAGES
        )


# -- contract -----------------------------------------------------------------------------------------------------


def test_datamodules_keep_the_contract() -> None:
    from recipezoo.fraud.data import TabularDataModule

    assert isinstance(TabularDataModule(synthetic=True), DataModuleContract)
    assert not isinstance(object(), DataModuleContract)


def test_data_layer_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, recipezoo.data; "
        "bad = [m for m in ('torch', 'lightning', 'transformers', 'torchaudio', 'timm') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_json_array_of_records(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert T.read_table(tmp_path / "a.json", text=True)["a"].tolist() == ["1", "2"]
    assert T.read_table(tmp_path / "a.json")["a"].tolist() == [1, 2]
