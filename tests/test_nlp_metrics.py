"""Entity-level span F1 and the multi-label threshold sweep, against hand-computed values (and seqeval)."""

from __future__ import annotations

import random

import pytest
import torch

from recipezoo.nlp.metrics import MultilabelThresholdSweep, SpanF1, get_entities


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["O", "B-PER", "I-PER", "O", "B-LOC"], [("PER", 1, 2), ("LOC", 4, 4)]),
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),  # B starts a new entity
        (["O", "I-ORG", "I-ORG", "O"], [("ORG", 1, 2)]),  # IOB1 / a stray I- opens an entity (conlleval)
        (["B-PER", "I-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 1)]),  # a type change ends one and starts another
        (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 3)]),  # BIOES
        (["B-MISC", "E-MISC", "E-MISC"], [("MISC", 0, 1), ("MISC", 2, 2)]),
        (["O", "O"], []),
        ([], []),
        (["I-PER"], [("PER", 0, 0)]),  # an entity that runs to the end of the sentence
    ],
)
def test_get_entities(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert get_entities(tags) == expected


def test_get_entities_matches_seqeval_on_random_sequences() -> None:
    seqeval = pytest.importorskip("seqeval.metrics.sequence_labeling")
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-PER", "I-ORG"]
    for _ in range(500):
        seq = rng.choices(tags, k=rng.randint(0, 12))
        assert get_entities(seq) == seqeval.get_entities(seq), seq


LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _ids(tags: list[str], width: int) -> list[int]:
    return [LABELS.index(t) for t in tags] + [0] * (width - len(tags))


def test_span_f1_hand_computed() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "B-PER"]]
    # gold entities: PER(0-1), LOC(3), LOC(0); predicted: PER(0-1), LOC(0), PER(2) -> tp 2, pred 3, gold 3.
    m = SpanF1(LABELS)
    width = 4
    m.update(
        torch.tensor([_ids(p, width) for p in pred]),
        torch.tensor([_ids(g, width) for g in gold]),
        torch.tensor([[True] * 4, [True, True, True, False]]),
    )
    out = m.compute()
    assert out["precision"].item() == pytest.approx(2 / 3)
    assert out["recall"].item() == pytest.approx(2 / 3)
    assert out["f1"].item() == pytest.approx(2 / 3)
    # per type: PER tp 1, pred 2, gold 1 -> 2/3; LOC tp 1, pred 1, gold 2 -> 2/3
    assert out["f1_PER"].item() == pytest.approx(2 * 1 / (2 + 1))
    assert out["f1_LOC"].item() == pytest.approx(2 * 1 / (1 + 2))


def test_span_f1_partial_span_is_a_miss_and_padding_is_ignored() -> None:
    m = SpanF1(LABELS)
    gold = torch.tensor([_ids(["B-PER", "I-PER", "O"], 5)])
    pred = torch.tensor([[3, 0, 0, 3, 4]])  # B-PER only on the first word (partial), entities in the padding
    m.update(pred, gold, torch.tensor([[True, True, True, False, False]]))
    out = m.compute()
    assert out["f1"].item() == 0.0 and out["precision"].item() == 0.0 and out["recall"].item() == 0.0


def test_span_f1_matches_seqeval() -> None:
    metrics = pytest.importorskip("seqeval.metrics")
    rng = random.Random(1)
    gold = [rng.choices(LABELS, weights=[6, 1, 1, 1, 1], k=rng.randint(1, 10)) for _ in range(200)]
    pred = [[t if rng.random() < 0.8 else rng.choice(LABELS) for t in g] for g in gold]
    width = max(map(len, gold))
    m = SpanF1(LABELS)
    m.update(
        torch.tensor([_ids(p, width) for p in pred]),
        torch.tensor([_ids(g, width) for g in gold]),
        torch.tensor([[i < len(g) for i in range(width)] for g in gold]),
    )
    out = m.compute()
    assert out["f1"].item() == pytest.approx(metrics.f1_score(gold, pred), abs=1e-6)
    assert out["precision"].item() == pytest.approx(metrics.precision_score(gold, pred), abs=1e-6)
    assert out["recall"].item() == pytest.approx(metrics.recall_score(gold, pred), abs=1e-6)


def test_threshold_sweep_hand_computed() -> None:
    sweep = MultilabelThresholdSweep(2, thresholds=[0.3, 0.5, 0.7])
    probs = torch.tensor([[0.6, 0.2], [0.4, 0.8], [0.9, 0.35]])
    target = torch.tensor([[1, 0], [1, 1], [0, 1]])
    sweep.update(probs, target)
    counts = sweep.compute()
    # label 0 at 0.3: pred [1,1,1] gold [1,1,0] -> tp 2 fp 1 fn 0; at 0.5: pred [1,0,1] -> tp 1 fp 1 fn 1;
    # at 0.7: pred [0,0,1] -> tp 0 fp 1 fn 2.  label 1 at 0.3: pred [0,1,1] gold [0,1,1] -> tp 2;
    # at 0.5: pred [0,1,0] -> tp 1 fn 1; at 0.7: same as 0.5.
    assert counts["tp"].tolist() == [[2, 2], [1, 1], [0, 1]]
    assert counts["fp"].tolist() == [[1, 0], [1, 0], [1, 0]]
    assert counts["fn"].tolist() == [[0, 0], [1, 1], [2, 1]]
    f1_03 = sweep.f1_at(counts, torch.tensor([0.3, 0.3]))
    assert f1_03["macro_f1"] == pytest.approx((4 / 5 + 1.0) / 2)
    assert f1_03["micro_f1"] == pytest.approx(8 / 9)  # tp 4, fp 1, fn 0
    assert sweep.best(counts).tolist() == pytest.approx([0.3, 0.3])
    assert sweep.best(counts, per_label=True).tolist() == pytest.approx([0.3, 0.3])
    mixed = sweep.f1_at(counts, torch.tensor([0.5, 0.7]))
    assert mixed["macro_f1"] == pytest.approx((2 / 4 + 2 / 3) / 2)


def test_threshold_sweep_per_label_picks_each_labels_best() -> None:
    sweep = MultilabelThresholdSweep(2, thresholds=[0.25, 0.5, 0.75])
    # label 0 separates at 0.75 only (F1 0.8, 0.8, 1.0); label 1 at 0.25 only (F1 1.0, 0, 0)
    probs = torch.tensor([[0.8, 0.35], [0.55, 0.2], [0.9, 0.4], [0.1, 0.1]])
    target = torch.tensor([[1, 1], [0, 0], [1, 1], [0, 0]])
    sweep.update(probs, target)
    counts = sweep.compute()
    assert sweep.best(counts, per_label=True).tolist() == pytest.approx([0.75, 0.25])
    assert sweep.best(counts).tolist() == pytest.approx([0.25, 0.25])  # macro F1 0.9 beats 0.4 and 0.5
    assert sweep.f1_at(counts, torch.tensor([0.75, 0.25]))["macro_f1"] == pytest.approx(1.0)
