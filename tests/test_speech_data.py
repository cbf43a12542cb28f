"""Speech data: folders, file-name patterns, manifests (CSV, TSV, JSON lines, Sphinx), known datasets, splits by
rule and by speaker, bad files, conversions, vocabularies and batching."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.speech.data import (
    AudioClassificationDataModule,
    BucketBatchSampler,
    SpeechRecognitionDataModule,
    compile_pattern,
    normalize_text,
)


def tone(freq: float, seconds: float = 0.4, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave, 0.5 * wave], 1) if channels == 2 else wave


def write(path: Path, freq: float = 440.0, seconds: float = 0.4, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq, seconds, rate, channels), rate)
    return path


def classification(**kwargs) -> AudioClassificationDataModule:
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("batch_size", 4)
    dm = AudioClassificationDataModule(**kwargs)
    dm.setup()
    return dm


def recognition(**kwargs) -> SpeechRecognitionDataModule:
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("batch_size", 4)
    dm = SpeechRecognitionDataModule(**kwargs)
    dm.setup()
    return dm


def digits_folder(root: Path, speakers=("ann", "bob", "cid", "dan"), per=3) -> Path:
    """``{digit}_{speaker}_{index}.wav``, like the Free Spoken Digit Dataset, at 8 kHz."""
    for digit in range(3):
        for s, speaker in enumerate(speakers):
            for i in range(per):
                write(root / f"{digit}_{speaker}_{i}.wav", 300 + 200 * digit + 10 * s, 0.3, 8000)
    return root


def paths(dm, split: str) -> list[str]:
    return [Path(i["path"]).name for i in dm.split_items[split]]


# -- folders and patterns -------------------------------------------------------------------------------------------
def test_label_folders_with_mixed_formats_rates_and_channels(tmp_path: Path, caplog) -> None:
    for label, freq in (("no", 300), ("yes", 600)):
        for i in range(6):
            write(tmp_path / label / f"a{i}.wav", freq)
        write(tmp_path / label / "b.flac", freq, rate=22050)
        write(tmp_path / label / "c.ogg", freq, rate=44100, channels=2)
    (tmp_path / "yes" / "notes.txt").write_text("not audio")
    with caplog.at_level(logging.INFO):
        dm = classification(root=str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert dm.labels == ["no", "yes"]
    assert sum(len(dm.split_items[s]) for s in ("train", "val", "test")) == 16
    converted = [r.message for r in caplog.records if "converted on load" in r.message]
    assert len(converted) == 1  # said once, with the counts
    assert "4 resampled to 16000 Hz (2 at 22050 Hz, 2 at 44100 Hz)" in converted[0]
    assert "2 multi-channel file(s) mixed to mono" in converted[0]
    batch = next(iter(dm.eval_dataloader("train")))
    assert batch["audio"].dtype == torch.float32 and batch["audio"].ndim == 2
    for row, n in zip(batch["audio"], batch["lengths"].tolist()):
        assert 0 < n <= row.shape[0] and row[n - 100 : n].abs().sum() > 0 and torch.all(row[n:] == 0)
    assert batch["label"].dtype == torch.long


def test_explicit_split_folders(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        for label in ("a", "b"):
            for i in range(2):
                write(tmp_path / split / label / f"{i}.wav")
    dm = classification(root=str(tmp_path))
    assert [len(dm.split_items[s]) for s in ("train", "val", "test")] == [4, 4, 4]
    assert all("/validation/" in i["path"] for i in dm.split_items["val"])


def test_pattern_fields_and_the_conventional_index_split(tmp_path: Path) -> None:
    dm = classification(
        root=str(digits_folder(tmp_path)),
        pattern="{label}_{speaker}_{index}.wav",
        test_where={"index": [0]},
        sample_rate=8000,
    )
    assert dm.labels == ["0", "1", "2"]
    assert {Path(p).stem.split("_")[2] for p in paths(dm, "test")} == {"0"}
    assert len(dm.split_items["test"]) == 12  # 3 digits x 4 speakers
    assert all(i["index"] != "0" for s in ("train", "val") for i in dm.split_items[s])
    assert dm.info["preprocessing"]["sample_rate"] == 8000


def test_speaker_split_keeps_every_speaker_in_one_split(tmp_path: Path) -> None:
    speakers = ("ann", "bob", "cid", "dan", "eve", "fay")
    dm = classification(
        root=str(digits_folder(tmp_path, speakers, per=2)),
        pattern="{label}_{speaker}_{index}.wav",
        group_by="speaker",
        sample_rate=8000,
    )
    by_split = {s: {i["speaker"] for i in dm.split_items[s]} for s in ("train", "val", "test")}
    assert all(by_split.values())
    assert not (
        by_split["train"] & by_split["val"]
        or by_split["train"] & by_split["test"]
        or by_split["val"] & by_split["test"]
    )
    again = classification(
        root=str(tmp_path), pattern="{label}_{speaker}_{index}.wav", group_by="speaker", sample_rate=8000
    )
    assert paths(again, "test") == paths(dm, "test")  # seeded


def test_hold_out_one_speaker_by_rule(tmp_path: Path) -> None:
    dm = classification(
        root=str(digits_folder(tmp_path)),
        pattern="{label}_{speaker}_{index}.wav",
        test_where={"speaker": ["dan"]},
        val_where={"speaker": "cid"},
        sample_rate=8000,
    )
    assert {i["speaker"] for i in dm.split_items["test"]} == {"dan"}
    assert {i["speaker"] for i in dm.split_items["val"]} == {"cid"}
    assert {i["speaker"] for i in dm.split_items["train"]} == {"ann", "bob"}


def test_pattern_and_rule_mistakes_are_named(tmp_path: Path) -> None:
    digits_folder(tmp_path)
    with pytest.raises(DataError, match=r"data.pattern=\{label\}-\{speaker\}.wav.*e.g. 0_ann_0.wav"):
        classification(root=str(tmp_path), pattern="{label}-{speaker}.wav")
    with pytest.raises(ConfigError, match="field 'speker'.*Did you mean: speaker"):
        classification(root=str(tmp_path), pattern="{label}_{speaker}_{index}.wav", test_where={"speker": ["dan"]})
    with pytest.raises(DataError, match="no file has speaker in \\['zed'\\]; its values are: ann, bob, cid, dan"):
        classification(root=str(tmp_path), pattern="{label}_{speaker}_{index}.wav", test_where={"speaker": ["zed"]})
    with pytest.raises(ConfigError, match="group_by='talker'"):
        classification(root=str(tmp_path), pattern="{label}_{speaker}_{index}.wav", group_by="talker")
    with pytest.raises(ConfigError, match="plain name"):
        compile_pattern("{la-bel}.wav")


def test_flat_folder_without_pattern_asks_for_label_folders_or_a_pattern(tmp_path: Path) -> None:
    digits_folder(tmp_path)
    with pytest.raises(DataError, match="one sub-folder per class.*data.pattern"):
        classification(root=str(tmp_path))


def test_no_source_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.root=.*data.manifest=.*data.synthetic=true"):
        classification()
    with pytest.raises(DataError, match="audio folder not found"):
        classification(root=str(tmp_path / "nope"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no audio files"):
        classification(root=str(tmp_path / "empty"))


# -- manifests --------------------------------------------------------------------------------------------------
def labelled_files(root: Path, n: int = 8) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        label = "up" if i % 2 else "down"
        write(root / "clips" / f"{i}.wav", 300 if i % 2 else 700)
        rows.append((f"clips/{i}.wav", label))
    return rows


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "headerless"])
def test_classification_manifests(tmp_path: Path, fmt: str) -> None:
    rows = labelled_files(tmp_path)
    manifest = tmp_path / f"m.{'csv' if fmt == 'headerless' else fmt}"
    if fmt == "jsonl":
        manifest.write_text("".join(json.dumps({"audio_filepath": p, "label": lab}) + "\n" for p, lab in rows))
    elif fmt == "headerless":
        manifest.write_text("".join(f"{p},{lab}\n" for p, lab in rows))
    else:
        sep = "\t" if fmt == "tsv" else ","
        manifest.write_text(f"file{sep}class\n" + "".join(f"{p}{sep}{lab}\n" for p, lab in rows))
    dm = classification(manifest=str(manifest), val_fraction=0.25, test_fraction=0.25)
    assert dm.labels == ["down", "up"]
    assert sum(len(dm.split_items[s]) for s in ("train", "val", "test")) == 8


def test_manifest_split_column_and_unknown_columns(tmp_path: Path) -> None:
    rows = labelled_files(tmp_path)
    splits = ["train"] * 4 + ["dev"] * 2 + ["test"] * 2
    (tmp_path / "m.csv").write_text(
        "path,label,split\n" + "".join(f"{p},{lab},{s}\n" for (p, lab), s in zip(rows, splits))
    )
    dm = classification(manifest=str(tmp_path / "m.csv"))
    assert [len(dm.split_items[s]) for s in ("train", "val", "test")] == [4, 2, 2]
    with pytest.raises(ConfigError, match="column 'labl' not found.*Did you mean: label"):
        classification(manifest=str(tmp_path / "m.csv"), label_column="labl")
    (tmp_path / "odd.csv").write_text("where,what\nclips/0.wav,up\n")
    with pytest.raises(DataError, match="no path column.*data.path_column"):
        classification(manifest=str(tmp_path / "odd.csv"))


def test_missing_manifest_paths_are_listed_with_the_base_folder(tmp_path: Path) -> None:
    rows = labelled_files(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in rows))
    with pytest.raises(DataError, match=r"none of the 8 audio files.*8 missing \(.*clips/0.wav.*data.audio_root"):
        classification(manifest=str(tmp_path / "sub" / "m.csv"))
    dm = classification(manifest=str(tmp_path / "sub" / "m.csv"), audio_root=str(tmp_path))
    assert len(dm.labels) == 2


def test_bad_files_are_skipped_and_counted_or_stop_the_run(tmp_path: Path, caplog) -> None:
    for label in ("a", "b"):
        for i in range(20):
            write(tmp_path / label / f"{i}.wav")
    (tmp_path / "a" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    sf.write(tmp_path / "b" / "empty.wav", np.zeros(0, np.float32), 16000)
    write(tmp_path / "b" / "click.wav", seconds=0.005)
    with caplog.at_level(logging.WARNING):
        dm = classification(root=str(tmp_path))
    assert sum(len(v) for v in dm.split_items.values()) == 40
    text = "\n".join(r.message for r in caplog.records)
    assert "skipped 2 of 43 audio files: 1 unreadable (" in text and "corrupt.wav" in text and "1 empty (" in text
    assert "shorter than data.min_seconds" in text and "click.wav" in text
    with pytest.raises(DataError, match=r"2 of 43 audio files cannot be used \(4.7% > data.max_bad_fraction=0.01\)"):
        classification(root=str(tmp_path), max_bad_fraction=0.01)


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    for i in range(6):
        write(tmp_path / "only" / f"{i}.wav")
    with pytest.raises(DataError, match="only one class"):
        classification(root=str(tmp_path))


def test_crops_random_in_training_and_centred_at_evaluation() -> None:
    dm = classification(synthetic=True, synthetic_size=8, clip_seconds=0.25, sample_rate=8000)
    train, long = dm.datasets["train"], None
    long = next(i for i in range(len(train)) if train.waveform(i).shape[0] > 2000)
    torch.manual_seed(0)
    crops = {tuple(train[long]["audio"][:5].tolist()) for _ in range(5)}
    assert all(train[long]["audio"].shape[0] == 2000 for _ in range(2)) and len(crops) > 1
    test = dm.datasets["test"]
    j = next(i for i in range(len(test)) if test.waveform(i).shape[0] > 2000)
    full = test.waveform(j)
    start = (full.shape[0] - 2000) // 2
    assert torch.equal(test[j]["audio"], full[start : start + 2000])
    assert dm.info["preprocessing"]["clip_samples"] == 2000


def test_restore_keeps_the_checkpoints_labels_and_refuses_new_ones(tmp_path: Path) -> None:
    for label in ("a", "b"):
        for i in range(4):
            write(tmp_path / label / f"{i}.wav")
    dm = AudioClassificationDataModule(root=str(tmp_path), num_workers=0, sample_rate=8000)
    dm.restore({"labels": ["a", "b", "c"], "preprocessing": {"sample_rate": 16000, "clip_samples": 8000}})
    dm.setup()
    assert dm.labels == ["a", "b", "c"] and dm.sample_rate == 16000 and dm.clip_samples == 8000
    dm = AudioClassificationDataModule(root=str(tmp_path), num_workers=0)
    dm.restore({"labels": ["a", "x"]})
    with pytest.raises(DataError, match=r"label mismatch.*\['b'\]"):
        dm.setup()


def test_speechcommands_layout_without_download(tmp_path: Path) -> None:
    base = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    for word in ("yes", "no"):
        for speaker in ("0a1b2c3d", "9f8e7d6c", "11223344"):
            write(base / word / f"{speaker}_nohash_0.wav", 500 if word == "yes" else 900)
    write(base / "_background_noise_" / "white.wav")
    (base / "validation_list.txt").write_text("yes/9f8e7d6c_nohash_0.wav\nno/9f8e7d6c_nohash_0.wav\n")
    (base / "testing_list.txt").write_text("yes/11223344_nohash_0.wav\nno/11223344_nohash_0.wav\n")
    dm = classification(dataset="speechcommands", root=str(tmp_path))
    assert dm.labels == ["no", "yes"]
    assert [len(dm.split_items[s]) for s in ("train", "val", "test")] == [2, 2, 2]
    assert {i["speaker"] for i in dm.split_items["test"]} == {"11223344"}
    with pytest.raises(DataError, match="Speech Commands not found.*data.download=true"):
        classification(dataset="speechcommands", root=str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="unknown data.dataset 'speech_commands'.*speechcommands"):
        AudioClassificationDataModule(dataset="speech_commands")


# -- speech recognition ------------------------------------------------------------------------------------------
def transcribed(root: Path, texts: list[str], speakers: int = 4) -> list[tuple[str, str, str]]:
    rows = []
    for i, text in enumerate(texts):
        speaker = f"s{i % speakers}"
        write(root / "wav" / speaker / f"u{i}.flac", 200 + 30 * i, 0.5 + 0.1 * (i % 5))
        rows.append((f"wav/{speaker}/u{i}.flac", text, speaker))
    return rows


def test_transcript_manifest_vocabulary_and_unknown_characters(tmp_path: Path, caplog) -> None:
    texts = ["Hello World", "one two", "HELLO  there", "two one", "world, one!", "café", "ok", "three"]
    rows = transcribed(tmp_path, texts)
    splits = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    (tmp_path / "m.tsv").write_text(
        "path\ttranscript\tspeaker\tsplit\n" + "".join(f"{p}\t{t}\t{s}\t{sp}\n" for (p, t, s), sp in zip(rows, splits))
    )
    with caplog.at_level(logging.WARNING):
        dm = recognition(manifest=str(tmp_path / "m.tsv"))
    # Built from the training transcripts only, lower-cased, the blank first and the space next.
    assert dm.tokens == ["<blank>", " ", "d", "e", "h", "l", "n", "o", "r", "t", "w"]
    assert "val transcripts hold 6 character(s) absent from the vocabulary: ',' (1), '!' (1), 'c' (1), 'a' (1)" in (
        caplog.text
    )
    assert "test transcripts hold 1 character(s) absent from the vocabulary: 'k' (1)." in caplog.text
    batch = next(iter(dm.eval_dataloader("val")))
    assert batch["text"] == ["world, one!", "café"]  # references keep every character
    index = {c: k for k, c in enumerate(dm.tokens)}
    assert batch["target_lengths"].tolist() == [len("world one"), 0]  # unknown characters dropped from targets
    assert batch["targets"][0, : len("world one")].tolist() == [index[c] for c in "world one"]
    info = dm.info
    assert info["num_tokens"] == len(info["tokens"]) and info["blank"] == 0


def test_text_normalisation() -> None:
    assert normalize_text("  Hello,   WORLD! ") == "hello, world!"
    assert normalize_text("It’s  a test.", remove_punctuation=True) == "it's a test"
    assert normalize_text("Cafe\u0301", lowercase=False) == "Café"


def test_fixed_vocabulary_refuses_other_training_characters(tmp_path: Path) -> None:
    rows = transcribed(tmp_path, ["ab ba", "abc", "ba", "aa", "b", "a"])
    (tmp_path / "m.csv").write_text("path,text\n" + "".join(f"{p},{t}\n" for p, t, _ in rows))
    with pytest.raises(DataError, match=r"outside data.vocabulary: 'c' \(1\)"):
        recognition(manifest=str(tmp_path / "m.csv"), vocabulary="ab", val_fraction=0.2, test_fraction=0.2)


def test_sphinx_transcription_with_fileids_and_speaker_split(tmp_path: Path, monkeypatch) -> None:
    corpus = tmp_path / "an4"
    lines, ids = [], []
    for i in range(12):
        speaker = f"spk{i % 4}"
        uid = f"an{i}-{speaker}-b"
        write(corpus / "wav" / "an4_clstk" / speaker / f"{uid}.flac", 300 + 20 * i, 0.6)
        lines.append(f"<s> WORD {i} </s> ({uid})")
        ids.append(f"an4_clstk/{speaker}/{uid}")
    (corpus / "etc").mkdir()
    (corpus / "etc" / "an4_train.transcription").write_text("\n".join(lines) + "\n")
    (corpus / "etc" / "an4_train.fileids").write_text("\n".join(ids) + "\n")
    monkeypatch.chdir(tmp_path)  # a relative manifest path, as users type it
    dm = recognition(manifest="an4/etc/an4_train.transcription", group_by="speaker")
    speakers = {s: {i["speaker"] for i in dm.split_items[s]} for s in ("train", "val", "test")}
    assert speakers["val"] and speakers["test"] and not (speakers["train"] & (speakers["val"] | speakers["test"]))
    assert sorted(i["text"] for s in dm.split_items.values() for i in s)[0] == "word 0"
    # Without the fileids, the ids are found by searching the corpus's wav folder.
    (corpus / "etc" / "an4_train.fileids").unlink()
    assert len(recognition(manifest=str(corpus / "etc" / "an4_train.transcription")).split_items["train"]) > 0
    (corpus / "etc" / "bad.transcription").write_text("<s> NO ID HERE </s>\n")
    with pytest.raises(DataError, match="line 1: expected '<s> TEXT </s> \\(utterance_id\\)'"):
        recognition(manifest=str(corpus / "etc" / "bad.transcription"))


def test_long_utterances_and_empty_transcripts_are_skipped(tmp_path: Path, caplog) -> None:
    rows = transcribed(tmp_path, [f"w{i}" for i in range(10)])
    write(tmp_path / "wav" / "long.wav", seconds=3.0)
    body = "".join(f"{p},{t}\n" for p, t, _ in rows) + "wav/long.wav,too long\n" + f"{rows[0][0]},\n"
    (tmp_path / "m.csv").write_text("path,sentence\n" + body)
    with caplog.at_level(logging.WARNING):
        dm = recognition(manifest=str(tmp_path / "m.csv"), max_seconds=2.0)
    assert sum(len(v) for v in dm.split_items.values()) == 10
    assert "1 row(s) with an empty transcript" in caplog.text
    assert "longer than data.max_seconds=2.0" in caplog.text and "long.wav" in caplog.text


def test_recognition_needs_a_manifest() -> None:
    with pytest.raises(ConfigError, match="data.manifest=.*data.synthetic=true"):
        recognition()


def test_bucket_batches_cover_every_example_once_with_similar_lengths() -> None:
    lengths = list(np.random.default_rng(0).integers(1, 1000, 103))
    sampler = BucketBatchSampler(range(103), 8, False, lengths, pool=4)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert all(lengths[b[k]] <= lengths[b[k + 1]] for b in batches for k in range(len(b) - 1))
    dropping = BucketBatchSampler(range(103), 8, True, lengths, pool=4)
    assert all(len(b) == 8 for b in dropping) and len(list(dropping)) == len(dropping)


def test_synthetic_twins_have_the_real_contract() -> None:
    dm = recognition(synthetic=True, synthetic_size=16)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"audio", "lengths", "index", "targets", "target_lengths", "text"}
    assert batch["targets"].dtype == torch.long and len(batch["text"]) == batch["audio"].shape[0]
    assert set("".join(batch["text"])) <= set(dm.tokens[1:])
    dm = classification(synthetic=True, synthetic_size=8, synthetic_classes=4, synthetic_sample_rate=8000)
    assert dm.labels == ["class_0", "class_1", "class_2", "class_3"]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"audio", "lengths", "index", "label"}
    assert batch["audio"].shape[1] <= 16000  # cropped to the 1 s clip at the 16 kHz model rate


def test_speed_perturbation_changes_training_clips_only() -> None:
    dm = recognition(synthetic=True, synthetic_size=16, speed_perturb=[1.25])
    train, val = dm.datasets["train"], dm.datasets["val"]
    full = train.waveform(0).shape[0]
    assert train[0]["audio"].shape[0] == pytest.approx(full / 1.25, abs=2)
    assert train[0]["text"] == dm.split_items["train"][0]["text"]
    assert torch.equal(val[0]["audio"], val.waveform(0))
    with pytest.raises(ConfigError, match="speed_perturb"):
        SpeechRecognitionDataModule(speed_perturb=[3.0])
