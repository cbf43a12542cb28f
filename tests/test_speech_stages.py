"""Speech data stages, each alone: manifests and folders as items, targets, the file check, splits, labels and the
character vocabulary, synthetic items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data.folders import compile_pattern
from recipezoo.speech import sources, stages, synthetic


def write(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.ones(int(seconds * rate), np.float32), rate)
    return path


def items(n: int, **fields) -> list[dict]:
    return [{"path": f"f{i}.wav", **{k: v(i) for k, v in fields.items()}} for i in range(n)]


# -- sources ------------------------------------------------------------------------------------------------------
def test_headerless_manifest_reads_path_and_value(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("a.wav,yes\nb.wav,no\n")
    assert sources.read_manifest(tmp_path / "m.csv") == [
        {"path": "a.wav", "value": "yes"},
        {"path": "b.wav", "value": "no"},
    ]


def test_pick_column_recognises_names_and_lists_columns() -> None:
    assert sources.pick_column(["Audio", "Label"], None, sources.PATH_COLUMNS, "path", "m") == "Audio"
    assert sources.pick_column(["path", "value"], None, sources.TEXT_COLUMNS, "text", "m") == "value"
    with pytest.raises(ConfigError, match="column 'labl' not found in m.*Did you mean: label"):
        sources.pick_column(["path", "label"], "labl", sources.LABEL_COLUMNS, "label", "m")
    with pytest.raises(DataError, match="m has no text column .*data.text_column"):
        sources.pick_column(["path", "speaker"], None, sources.TEXT_COLUMNS, "text", "m")


def test_manifest_items_resolve_paths_and_keep_fields(tmp_path: Path) -> None:
    (tmp_path / "m.tsv").write_text("file\tspeaker\trate\nsub/a.wav\tann\t8000\n")
    found, columns, where = sources.manifest_items(tmp_path / "m.tsv", None, None)
    assert columns == ["file", "speaker", "rate"] and where == str(tmp_path / "m.tsv")
    # "rate" is a key the code sets itself: a column with that name is dropped.
    assert found == [{"speaker": "ann", "path": str(tmp_path / "sub" / "a.wav"), "dir": "sub"}]


def test_folder_items_split_folders_labels_and_patterns(tmp_path: Path) -> None:
    write(tmp_path / "Train" / "yes" / "1_ann.wav")
    write(tmp_path / "dev" / "no" / "2_bob.wav")
    write(tmp_path / "Train" / "loose.wav")
    found = sources.folder_items(
        tmp_path,
        label_folders=True,
        pattern=compile_pattern("{index}_{speaker}.wav"),
        pattern_text="{index}_{speaker}.wav",
        layout_hint="hint.",
    )
    assert sorted((i["split"], i["label"], i["speaker"], i["index"]) for i in found) == [
        ("train", "yes", "ann", "1"),
        ("val", "no", "bob", "2"),
    ]
    with pytest.raises(DataError, match="hint. None of the 3 audio files fits it"):
        sources.folder_items(
            tmp_path, label_folders=False, pattern=compile_pattern("x{a}"), pattern_text="x{a}", layout_hint="hint."
        )


# -- targets and files --------------------------------------------------------------------------------------------
def test_targets_from_columns() -> None:
    assert stages.label_items([{"path": "a", "class": " yes "}], "class", "m") == [{"path": "a", "label": "yes"}]
    with pytest.raises(DataError, match="1 row\\(s\\) have an empty 'label'"):
        stages.label_items([{"path": "a", "label": ""}], "label", "m")
    kept = stages.transcript_items(
        [{"path": "a", "value": "Hello,  World!"}, {"path": "b", "value": " "}], "value", "m", True, True
    )
    assert kept == [{"path": "a", "text": "hello world"}]


def test_check_files_skips_bad_files_within_the_budget(tmp_path: Path) -> None:
    good = [{"path": str(write(tmp_path / f"{i}.wav"))} for i in range(9)]
    (tmp_path / "bad.wav").write_text("not audio")
    found = [*good, {"path": str(tmp_path / "bad.wav")}]
    kept = stages.check_files(
        found, sample_rate=16000, min_seconds=0.0, max_seconds=None, skip_long=True, max_bad_fraction=0.2, where="w"
    )
    assert len(kept) == 9 and kept[0]["rate"] == 8000 and kept[0]["seconds"] == pytest.approx(0.2)
    with pytest.raises(DataError, match="w: 1 of 10 audio files cannot be used .*1 unreadable"):
        stages.check_files(
            found,
            sample_rate=16000,
            min_seconds=0.0,
            max_seconds=None,
            skip_long=True,
            max_bad_fraction=0.05,
            where="w",
        )


# -- splits -------------------------------------------------------------------------------------------------------
def test_where_rules_and_split_fields() -> None:
    rule = stages.where_rule({"index": [0, 1]}, "test_where")
    assert rule == {"index": {"0", "1"}}
    data = items(6, index=str, split=lambda i: ["train", "dev", ""][i % 3])
    splits = stages.assign_splits(data, {}, rule, "d")
    assert [i["index"] for i in splits["test"]] == ["0", "1"]
    assert [i["index"] for i in splits["val"]] == ["4"] and [i["index"] for i in splits["train"]] == ["2", "3", "5"]
    with pytest.raises(ConfigError, match="data.val_where uses field 'speakr'.*Did you mean: speaker"):
        stages.check_rule_fields(items(2, speaker=str), {"val_where": {"speakr": {"1"}}}, None)
    with pytest.raises(DataError, match="unknown split 'holdout'"):
        stages.assign_splits(items(1, split=lambda i: "holdout"), {}, {}, "d")


def test_group_carving_keeps_every_speaker_in_one_split() -> None:
    data = items(40, speaker=lambda i: f"spk{i % 8}", label=lambda i: "ab"[i % 2])
    splits = {"train": list(data), "val": [], "test": []}
    how = stages.carve_splits(
        splits, 40, val_fraction=0.2, test_fraction=0.2, seed=0, group_by="speaker", stratify_by="label", what="d"
    )
    assert how == "val/test carved by speaker (seed 0)"
    speakers = [{i["speaker"] for i in splits[s]} for s in ("train", "val", "test")]
    assert all(speakers) and not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    with pytest.raises(DataError, match="2 distinct speaker value\\(s\\) are too few"):
        stages.carve_splits(
            {"train": items(4, speaker=lambda i: str(i % 2)), "val": [], "test": []},
            4,
            val_fraction=0.2,
            test_fraction=0.2,
            seed=0,
            group_by="speaker",
            stratify_by=None,
            what="d",
        )


def test_split_items_stratifies_by_label_and_is_seeded() -> None:
    data = items(60, label=lambda i: "abc"[i % 3])
    kwargs = dict(val_where={}, test_where={}, group_by=None, val_fraction=0.2, test_fraction=0.2, stratify_by="label")
    first = stages.split_items([dict(i) for i in data], seed=3, what="d", **kwargs)
    again = stages.split_items([dict(i) for i in data], seed=3, what="d", **kwargs)
    assert [i["path"] for i in first["test"]] == [i["path"] for i in again["test"]]
    assert sorted(i["label"] for i in first["val"]) == ["a"] * 4 + ["b"] * 4 + ["c"] * 4


# -- labels and vocabulary ----------------------------------------------------------------------------------------
def test_labels_in_natural_order_and_checked_against_a_checkpoint() -> None:
    splits = {"train": items(3, label=lambda i: f"class_{[10, 2, 1][i]}"), "val": [], "test": []}
    labels = stages.fit_labels(splits, None, "d")
    assert labels == ["class_1", "class_2", "class_10"]
    assert stages.encode_labels(splits["train"], labels) == [2, 1, 0]
    with pytest.raises(DataError, match="label mismatch: the data has classes \\['class_10'\\]"):
        stages.fit_labels(splits, ["class_1", "class_2"], "d")
    with pytest.raises(DataError, match="has only one class"):
        stages.fit_labels({"train": items(2, label=lambda i: "x"), "val": [], "test": []}, None, "d")


def test_vocabulary_blank_first_space_next_and_unknown_characters() -> None:
    train = items(2, text=lambda i: ["ab a", "ca"][i])
    tokens = stages.fit_tokens(train, None, True)
    assert tokens[1:] == [" ", "a", "b", "c"] and tokens[0] != " "
    splits = {"train": train, "val": items(1, text=lambda i: "abz"), "test": []}
    assert stages.unknown_characters(splits, tokens) == {"z": 1}
    assert stages.encode_transcripts(splits["val"], tokens) == [[2, 3]]
    with pytest.raises(DataError, match="outside data.vocabulary: 'c' \\(1\\)"):
        stages.fit_tokens(train, "ab", True)


def test_synthetic_items_are_seeded_and_labelled() -> None:
    a, b = synthetic.tone_classes(3, 4, 8000, 0), synthetic.tone_classes(3, 4, 8000, 0)
    assert len(a) == 12 and {i["label"] for i in a} == {"class_0", "class_1", "class_2"}
    assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b))
    words = synthetic.tone_words(5, 8000, 1)
    assert len(words) == 5 and all(set(i["text"]) <= set("abcdef ") for i in words)
