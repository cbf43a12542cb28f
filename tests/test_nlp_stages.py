"""NLP data stages, each alone: text rows, subsets, token files, the tokenization cache, synthetic twins."""

from __future__ import annotations

import ast
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from recipezoo.core.errors import DataError
from recipezoo.nlp import cache, conll, sources, synthetic, tokenization
from recipezoo.nlp.sources import Split


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- text rows -----------------------------------------------------------------------------------------------------


def test_labelled_texts_skip_and_count_empty_rows(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "text,label\ngood,pos\n  ,neg\nbad,\nfine,neg\n")
    s = sources.read_labelled_texts(p, "text", "label", str.strip)
    assert s.texts == ["good", "fine"] and s.targets == ["pos", "neg"]
    assert s.dropped == Counter({"empty text": 1, "empty label": 1}) and s.source == "d.csv"


def test_labelled_texts_multi_label_keeps_rows_without_labels_and_reads_pairs(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.tsv", "q\ta\ty\nhi\tthere\tx;z\nyo\tyou\t\nempty\t\tx\n")
    s = sources.read_labelled_texts(
        p, "q", "y", lambda v: tuple(t for t in v.split(";") if t), pair_column="a", empty_labels=True
    )
    assert s.texts == (["hi", "yo"], ["there", "you"])
    assert s.targets == [("x", "z"), ()] and s.dropped == Counter({"empty text": 1})


def test_headerless_rows_by_position(tmp_path: Path) -> None:
    p = _write(tmp_path / "sms", "ham\thello\nspam\tWIN now\n")
    s = sources.read_labelled_texts(p, "1", "0", str.strip, sep="\t", header=False)
    assert s.texts == ["hello", "WIN now"] and s.targets == ["ham", "spam"]


def test_subset_and_seeded_subsample_keep_pairs_aligned() -> None:
    split = Split(([f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]), list(range(10)), "f.csv")
    part = sources.subset(split, [3, 1])
    assert part.texts == (["a3", "a1"], ["b3", "b1"]) and part.targets == [3, 1] and part.source == "f.csv"
    half = sources.subsample(split, 0.5, seed=0)
    assert len(half.targets) == 5 and half.targets == sorted(half.targets)
    assert [f"a{t}" for t in half.targets] == half.texts[0]
    assert sources.subsample(split, 0.5, seed=0).targets == half.targets  # a function of the seed
    assert sources.subsample(split, None, seed=0) is split and sources.subsample(split, 50, seed=0) is split


def test_flat_texts_per_kind() -> None:
    assert sources.flat_texts((["a"], ["b"]), "pairs") == ["a", "b"]
    assert sources.flat_texts([["new", "york"]], "words") == ["new york"]
    assert sources.flat_texts(["x"], "texts") == ["x"]


# -- token files ---------------------------------------------------------------------------------------------------


def test_conll_skips_docstart_and_reads_the_chosen_columns(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.conll", "-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\n")
    s = conll.read_conll(p)
    assert s.texts == [["EU", "rejects"], ["Peter"]] and s.targets == [["B-ORG", "O"], ["B-PER"]]
    assert conll.read_conll(p, tag_column=1).targets == [["NNP", "VBZ"], ["NNP"]]
    with pytest.raises(DataError, match="holds no sentences"):
        conll.read_conll(_write(tmp_path / "e.conll", "-DOCSTART- O\n\n"))


def test_token_jsonl_reads_ner_tags_and_counts_empty_lines(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.jsonl", '{"tokens": ["a", "b"], "ner_tags": ["O", "B-X"]}\n{"tokens": [], "tags": []}\n')
    s = conll.read_token_jsonl(p, "tokens", "tags")
    assert s.texts == [["a", "b"]] and s.targets == [["O", "B-X"]] and s.dropped == Counter({"no tokens": 1})
    with pytest.raises(DataError, match="expected fields 'words' and 'tags'"):
        conll.read_token_jsonl(p, "words", "tags")


# -- tokenization cache --------------------------------------------------------------------------------------------


def _encoded() -> tokenization.Encoded:
    ids = tokenization.Packed.pack([[2, 5, 3], [2, 3]])
    return tokenization.Encoded(ids, None, 1, tokenization.Packed.pack([[1, -1], [1]], dtype=np.int64))


def test_cache_key_depends_on_everything_the_tokens_depend_on() -> None:
    base = cache.cache_key("{tok}", 16, ["a b", "c"], "texts", False)
    assert base == cache.cache_key("{tok}", 16, ["a b", "c"], "texts", False)
    others = [
        cache.cache_key("{tok2}", 16, ["a b", "c"], "texts", False),
        cache.cache_key("{tok}", 32, ["a b", "c"], "texts", False),
        cache.cache_key("{tok}", 16, ["a b", "d"], "texts", False),
        cache.cache_key("{tok}", 16, ["a b", "c"], "texts", True),
        cache.cache_key("{tok}", 16, [["a", "b"], ["c"]], "words", False),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_cache_round_trip_and_damaged_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = cache.cache_path(tmp_path / "c", "f" * 64)
    assert path.name == "f" * 32 + ".pt" and cache.load_cached(path, "train split") is None
    cache.save_cached(path, _encoded(), "train split")
    back = cache.load_cached(path, "train split")
    assert back is not None and back.truncated == 1 and back.type_ids is None
    assert [back.ids[i].tolist() for i in range(2)] == [[2, 5, 3], [2, 3]] and back.first_index[0].tolist() == [1, -1]
    path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        assert cache.load_cached(path, "train split") is None
    assert "ignoring unreadable cache file" in caplog.text


def test_tokenizer_info_from_a_checkpoint() -> None:
    info = {
        "vocab_size": 30,
        "files": {tokenization.TOKENIZER_FILE: b"{}"},
        "preprocessing": {"pad_id": 1, "model_inputs": ["input_ids", "attention_mask", "token_type_ids"]},
    }
    tok = tokenization.TokenizerInfo.from_info(info)
    assert tok is not None and (tok.json, tok.pad_id, tok.vocab_size, tok.source) == ("{}", 1, 30, "the checkpoint")
    assert tokenization.TokenizerInfo.from_info({"labels": ["a", "b"]}) is None


# -- synthetic twins and the layout ------------------------------------------------------------------------------


def test_synthetic_splits_sizes_and_seeds() -> None:
    splits = synthetic.synthetic_splits(synthetic.make_synthetic_texts, 40, seed=3)
    assert {k: len(v.targets) for k, v in splits.items()} == {"train": 40, "val": 10, "test": 10}
    assert splits["val"].texts != splits["test"].texts[:10]  # each split has its own seed
    again = synthetic.synthetic_splits(synthetic.make_synthetic_texts, 40, seed=3)
    assert again["train"].texts == splits["train"].texts


def test_nlp_reads_tables_only_through_the_shared_reader() -> None:
    """No pandas reader is called in the domain: tables go through recipezoo.data.tables."""
    readers = {"read_csv", "read_parquet", "read_json", "read_table"}
    for f in Path(sources.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in readers:
                owner = node.func.value
                assert isinstance(owner, ast.Name) and owner.id == "T", f"{f.name}:{node.lineno}"
