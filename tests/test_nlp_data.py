"""NLP data: reading tables, bad input, label maps, tokenization cache, sub-word alignment, batching."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from recipezoo.core.errors import DataError, PretrainedError
from recipezoo.nlp import data as D
from tests.conftest import make_tiny_bert, tiny_bert


def _dm(path: Path | None = None, **kwargs: Any) -> D.TextClassificationDataModule:
    defaults: dict[str, Any] = {
        "path": str(path) if path else None,
        "backbone": tiny_bert(),
        "pretrained": tiny_bert(),
        "cache_dir": None,
        "batch_size": 4,
    }
    return D.TextClassificationDataModule(**{**defaults, **kwargs})


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _reviews(n: int = 40) -> str:
    rows = ["text,label"]
    for i in range(n):
        rows.append(f"a really good movie {i},positive" if i % 2 else f"a bad dull film {i},negative")
    return "\n".join(rows) + "\n"


# -- reading ---------------------------------------------------------------------------------------------------


def test_tsv_is_read_without_quote_processing(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.tsv", 'label\tsentence\n1\t"quoted" start and a lone " quote\n0\tplain\n')
    frame = D.read_text_table(p)
    assert frame["sentence"].tolist() == ['"quoted" start and a lone " quote', "plain"]


def test_headerless_file_with_column_names_and_positions(tmp_path: Path) -> None:
    p = _write(tmp_path / "sms", "ham\thello there\nspam\tWIN a prize now\n")  # no extension, no header
    frame = D.read_text_table(p, sep="\t", header=False, columns=["label", "text"])
    assert frame["label"].tolist() == ["ham", "spam"]
    by_position = D.read_text_table(p, sep="\t", header=False)
    assert D.column(by_position, 1, p, "text") == ["hello there", "WIN a prize now"]


def test_column_alternatives_take_whichever_the_file_has(tmp_path: Path) -> None:
    a = D.read_text_table(_write(tmp_path / "a.tsv", "label\tsentence\n1\tx\n"))
    b = D.read_text_table(_write(tmp_path / "b.tsv", "label\tcontent\n1\ty\n"))
    assert D.column(a, ["sentence", "content"], tmp_path / "a.tsv", "text") == ["x"]
    assert D.column(b, ["sentence", "content"], tmp_path / "b.tsv", "text") == ["y"]


def test_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.jsonl", '{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": "neg"}\n')
    frame = D.read_text_table(p)
    assert frame["text"].tolist() == ["good", "bad"]


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", _reviews())
    with pytest.raises(DataError, match=r"no text column 'review'; columns found: text, label"):
        _dm(p, text_column="review").setup()


def test_wrong_separator_is_detected_and_named(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "text\tlabel\ngood film\tpos\nbad film\tneg\n")  # a .csv that is tab-separated
    with pytest.raises(DataError, match=r"looks tab \('\\t'\)-separated: pass data.sep='\\t'\."):
        _dm(p).setup()


def test_non_utf8_bytes_give_the_line_and_the_fix(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "text,label\ngood,pos\ncaf\xe9 bad,neg\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"not valid utf-8: byte 0xe9 on line 3.*data.encoding=latin-1"):
        D.read_text_table(p)
    assert D.read_text_table(p, encoding="latin-1")["text"].tolist() == ["good", "café bad"]


def test_empty_texts_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = _reviews(40) + ",positive\n   ,negative\n"
    dm = _dm(_write(tmp_path / "d.csv", text), val_fraction=0.2, test_fraction=0.2)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert sum(dm.counts.values()) == 40
    assert "skipped 2 of 42 rows (empty text)" in caplog.text


def test_labels_unseen_in_training_are_an_error_or_dropped(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _reviews(20))
    test = _write(tmp_path / "test.csv", "text,label\ngood,positive\nmeh,neutral\nso so,neutral\n")
    with pytest.raises(DataError, match=r"labels in the test split that training never saw: 'neutral' \(2 rows\)"):
        _dm(train, test_path=str(test)).setup()
    dm = _dm(train, test_path=str(test), drop_unseen_labels=True)
    dm.setup()
    assert dm.counts["test"] == 1 and dm.labels == ["negative", "positive"]


def test_single_class_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "text,label\n" + "".join(f"t {i},same\n" for i in range(20)))
    with pytest.raises(DataError, match="single label"):
        _dm(p).setup()


def test_missing_path_and_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data path not found"):
        _dm(tmp_path / "nope.csv").setup()
    with pytest.raises(DataError, match=r"test file not found: .*nope.tsv \(data.test_path\)"):
        _dm(_write(tmp_path / "d.csv", _reviews()), test_path=str(tmp_path / "nope.tsv")).setup()


def test_folder_with_train_dev_test(tmp_path: Path) -> None:
    for name, n in (("train", 30), ("dev", 8), ("test", 10)):
        _write(tmp_path / f"{name}.csv", _reviews(n))
    dm = _dm(tmp_path)
    dm.setup()
    assert dm.counts == {"train": 30, "val": 8, "test": 10}


def test_numeric_labels_sort_numerically_and_label_names_map_ids(tmp_path: Path) -> None:
    rows = "text,label\n" + "".join(f"t{i},{i % 12}\n" for i in range(48))
    dm = _dm(_write(tmp_path / "d.csv", rows))
    dm.setup()
    assert dm.labels == [str(i) for i in range(12)]
    names = _write(tmp_path / "labels.txt", "\n".join(f"name{i}" for i in range(12)) + "\n")
    dm = _dm(tmp_path / "d.csv", label_names=str(names))
    dm.setup()
    assert dm.labels[:3] == ["name0", "name1", "name2"]


def test_multi_label_targets_are_multi_hot(tmp_path: Path) -> None:
    rows = ["text\tlabels"] + [f"text {i}\t{i % 3},{(i + 1) % 3}" if i % 4 else f"text {i}\t" for i in range(40)]
    p = _write(tmp_path / "d.tsv", "\n".join(rows) + "\n")
    dm = _dm(p, label_column="labels", multi_label=True, label_names=["zero", "one", "two"])
    dm.setup()
    assert dm.labels == ["zero", "one", "two"]
    ds = dm.datasets["train"]
    batch = dm.collator()([ds[i] for i in range(len(ds))])
    y = batch["labels"]
    assert y.shape == (len(ds), 3) and y.dtype == torch.float32
    assert set(y.sum(1).tolist()) <= {0.0, 2.0} and (y.sum(1) == 0).any()  # rows with no label stay all-zero


# -- tokenization ----------------------------------------------------------------------------------------------


def test_truncation_is_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = "text,label\n" + "".join(f"{'good ' * (30 if i < 5 else 2)}film,{i % 2}\n" for i in range(40))
    dm = _dm(_write(tmp_path / "d.csv", rows), max_length=16, val_fraction=0.0, test_fraction=0.0)
    dm.val_path = dm.test_path = str(tmp_path / "d.csv")
    with caplog.at_level(logging.INFO):
        dm.setup()
    assert "train: 5 of 40 examples (12.5%) are longer than max_length=16 tokens and were truncated" in caplog.text
    assert max(dm.datasets["train"].lengths()) == 16


def test_second_run_loads_the_tokenized_splits_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path / "d.csv", _reviews())
    calls = []
    real = D.encode
    monkeypatch.setattr(D, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = _dm(p, cache_dir=str(tmp_path / "cache"))
    first.setup()
    assert len(calls) == 3  # train, val, test
    second = _dm(p, cache_dir=str(tmp_path / "cache"))
    second.setup()
    assert len(calls) == 3  # nothing re-tokenized
    for split in D.SPLITS:
        a, b = first.datasets[split].enc, second.datasets[split].enc
        assert np.array_equal(a.ids.flat, b.ids.flat) and np.array_equal(a.ids.offsets, b.ids.offsets)
    # Another max_length is another key: tokenized again.
    _dm(p, cache_dir=str(tmp_path / "cache"), max_length=8).setup()
    assert len(calls) == 6


def test_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", _reviews())
    _dm(p, cache_dir=str(tmp_path / "cache")).setup()
    for f in (tmp_path / "cache").iterdir():
        f.write_bytes(b"not a torch file")
    dm = _dm(p, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.counts["train"] > 0


def test_subword_labels_go_to_the_first_subtoken_only(tmp_path: Path) -> None:
    sentences = [["alice", "visited", "xyzzy", "paris"], ["bob", "met", "qwert"]]
    tags = [["B-PER", "O", "B-LOC", "I-LOC"], ["B-PER", "O", "B-ORG"]]
    lines = []
    for ws, ts in zip(sentences, tags):
        lines += [f"{w} {t}" for w, t in zip(ws, ts)] + [""]
    p = _write(tmp_path / "train.conll", "\n".join(lines * 10))
    dm = D.TokenClassificationDataModule(
        path=str(p), backbone=tiny_bert(), pretrained=tiny_bert(), cache_dir=None, val_fraction=0.2, test_fraction=0.2
    )
    dm.setup()
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "B-PER"]
    assert dm.info["scheme"] == "BIO"
    tok = D.rt.load_tokenizer(dm.tok.json, 64)
    enc = D.rt.encode_words(tok, sentences[:1])[0]
    # "xyzzy" is not in the tiny vocabulary: it becomes several sub-tokens (characters and ##pieces).
    assert sum(1 for w in enc.word_ids if w == 2) > 1
    item = (enc.ids, enc.type_ids, [dm.labels.index(t) for t in tags[0]], D.rt.first_subtokens(enc.word_ids, 4))
    batch = dm.collator()([item])
    labels = batch["labels"][0].tolist()
    first = {w: enc.word_ids.index(w) for w in range(4)}
    for pos, w in enumerate(enc.word_ids):
        if w is not None and first[w] == pos:
            assert labels[pos] == dm.labels.index(tags[0][w])
        else:
            assert labels[pos] == -100  # specials and the other sub-tokens of a word
    assert batch["word_index"][0].tolist() == [first[w] for w in range(4)]


def test_truncated_words_have_no_first_subtoken() -> None:
    tok = D.rt.load_tokenizer(Path(tiny_bert()) / "tokenizer.json", 5)  # [CLS] + 3 words + [SEP]
    enc = D.rt.encode_words(tok, [["alice", "met", "bob", "in", "paris"]])[0]
    assert D.rt.first_subtokens(enc.word_ids, 5).tolist() == [1, 2, 3, -1, -1]


def test_conll_bad_line_and_jsonl_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: expected a token and a tag"):
        D.read_conll(_write(tmp_path / "a.conll", "alice B-PER\nlonely\n"))
    with pytest.raises(DataError, match=r"line 1: 2 tokens but 1 tags"):
        D.read_token_jsonl(_write(tmp_path / "a.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n'), "tokens", "tags")


def test_tags_unseen_in_training_are_an_error(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.txt", "alice B-PER\nmet O\n\n" * 20)
    test = _write(tmp_path / "test.txt", "paris B-LOC\n\n")
    dm = D.TokenClassificationDataModule(
        path=str(train), test_path=str(test), backbone=tiny_bert(), pretrained=tiny_bert(), cache_dir=None
    )
    with pytest.raises(DataError, match=r"tags in the test split that training never saw: 'B-LOC'"):
        dm.setup()


def test_plain_tags_are_not_entities() -> None:
    assert D.tag_scheme(["O", "B-PER", "I-PER"]) == "BIO"
    assert D.tag_scheme(["O", "S-PER", "E-LOC", "B-LOC"]) == "BIOES"
    assert D.tag_scheme(["NN", "VB", "DT"]) == "tags"


def test_length_grouped_sampler_is_a_permutation_of_similar_length_batches() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000)
    torch.manual_seed(0)
    order = list(D.LengthGroupedSampler(lengths, batch_size=10, mega=20))
    assert sorted(order) == list(range(1000))
    spread = [np.ptp(lengths[order[i : i + 10]]) for i in range(0, 1000, 10)]
    random_spread = [np.ptp(lengths[i : i + 10]) for i in range(0, 1000, 10)]
    assert np.mean(spread) < np.mean(random_spread) / 5
    assert lengths[order[:10]].max() == lengths.max()  # the longest batch first: out of memory shows at once
    torch.manual_seed(1)
    assert list(D.LengthGroupedSampler(lengths, batch_size=10, mega=20)) != order  # reshuffled per seed


def test_dynamic_padding_pads_to_the_longest_in_the_batch(tmp_path: Path) -> None:
    dm = _dm(_write(tmp_path / "d.csv", _reviews()))
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == lengths.max()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == dm.tok.pad_id).all()
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}


def test_scratch_tokenizer_is_trained_on_train_and_restored_from_files(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", _reviews())
    dm = _dm(p, backbone="textcnn", pretrained=False, vocab_size=120)
    dm.setup()
    assert dm.tok.source == "trained on the training split" and dm.info["encoder_config"] is None
    assert set(dm.files) == {"tokenizer.json"}
    again = _dm(p, backbone="textcnn", pretrained=False, vocab_size=5000)  # another size: must not be refitted
    again.restore({**dm.info, "files": dm.files})
    again.setup()
    assert again.tok.json == dm.tok.json
    assert np.array_equal(again.datasets["test"].enc.ids.flat, dm.datasets["test"].enc.ids.flat)


# -- tokenizer and model ---------------------------------------------------------------------------------------


def test_tokenizer_larger_than_the_model_vocabulary_is_refused(tmp_path: Path) -> None:
    from recipezoo.nlp.models import create_text_classifier

    big = make_tiny_bert(tmp_path / "big", extra_words=[f"word{i}" for i in range(300)])
    dm = _dm(_write(tmp_path / "d.csv", _reviews()), tokenizer=str(big))
    dm.setup()
    with pytest.raises(PretrainedError, match=r"tokenizer/model mismatch: the tokenizer has \d+ tokens"):
        create_text_classifier(tiny_bert(), 2, tiny_bert(), vocab_size=dm.info["vocab_size"])
