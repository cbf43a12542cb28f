"""NLP metrics that torchmetrics does not have: entity-level span F1 and a multi-label threshold sweep.

Both are ``torchmetrics.Metric`` subclasses whose states are counts summed across processes, so they are exact
under DDP. (seqeval computes the same entity scores, but on Python lists gathered at the end of an epoch and
without distributed reduction; ``tests/test_nlp_metrics.py`` checks ours against it.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchmetrics as tm


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, start, end)`` (end inclusive) of a tag sequence, conlleval / seqeval-default style.

    Works for IOB1, IOB2 (BIO) and BIOES tags; an ``I-`` (or ``E-``) tag that does not continue an entity of its
    type starts a new one, as in the CoNLL evaluation script.
    """
    entities = []
    prev_tag, prev_type, start = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag = chunk[0] if chunk != "O" else "O"
        type_ = chunk.split("-", 1)[-1] if chunk != "O" else ""
        if tag in ("L", "U"):  # BILOU spelled as BIOES
            tag = "E" if tag == "L" else "S"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            entities.append((prev_type, start, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            start = i
        prev_tag, prev_type = tag, type_
    return entities


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != type_


class SpanF1(tm.Metric):
    """Entity-level precision, recall and F1 (exact span and type match), micro-averaged, plus per-type F1.

    ``update(preds, target, mask)`` takes tag indices ``(B, W)`` per word and a boolean mask of real words.

    Args:
        labels: the tag names, in index order.
    """

    full_state_update = False

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__()
        self.labels = list(labels)
        self.types = sorted({t.split("-", 1)[1] for t in self.labels if t != "O" and "-" in t})
        n = len(self.types)
        self.add_state("tp", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_pred", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_gold", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        index = {t: i for i, t in enumerate(self.types)}
        tp = torch.zeros(len(self.types), dtype=torch.long)
        n_pred, n_gold = tp.clone(), tp.clone()
        for p_row, t_row, m_row in zip(preds.cpu().tolist(), target.cpu().tolist(), mask.cpu().tolist()):
            n = sum(m_row)
            pred = set(get_entities([self.labels[k] for k in p_row[:n]]))
            gold = set(get_entities([self.labels[k] for k in t_row[:n]]))
            for kind, *_ in pred:
                n_pred[index[kind]] += 1
            for kind, *_ in gold:
                n_gold[index[kind]] += 1
            for kind, *_ in pred & gold:
                tp[index[kind]] += 1
        self.tp += tp.to(self.tp.device)
        self.n_pred += n_pred.to(self.tp.device)
        self.n_gold += n_gold.to(self.tp.device)

    def compute(self) -> dict[str, torch.Tensor]:
        tp, n_pred, n_gold = (x.sum().double() for x in (self.tp, self.n_pred, self.n_gold))
        precision = tp / n_pred if n_pred > 0 else torch.tensor(0.0, dtype=torch.float64)
        recall = tp / n_gold if n_gold > 0 else torch.tensor(0.0, dtype=torch.float64)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else precision * 0
        out = {"precision": precision.float(), "recall": recall.float(), "f1": f1.float()}
        per_type = 2 * self.tp.double() / (self.n_pred + self.n_gold).clamp(min=1).double()
        for kind, v in zip(self.types, per_type):
            out[f"f1_{kind}"] = v.float()
        return out


class MultilabelThresholdSweep(tm.Metric):
    """Multi-label true/false positives and false negatives at a grid of thresholds, per label.

    ``compute()`` gives the counts (reduced across processes); :meth:`f1_at` scores given thresholds and
    :meth:`best` picks the threshold (one for all labels, or one per label) that maximises macro F1 (the usual
    GoEmotions-style tuning on a validation split).

    Args:
        num_labels: number of labels.
        thresholds: the grid of probability thresholds.
    """

    full_state_update = False

    def __init__(self, num_labels: int, thresholds: Sequence[float] | None = None) -> None:
        super().__init__()
        grid = torch.tensor(thresholds if thresholds is not None else [i / 100 for i in range(5, 96, 5)])
        self.register_buffer("grid", grid.float(), persistent=False)
        shape = (len(grid), num_labels)
        self.add_state("tp", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("fp", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("fn", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:  # (B, L) probabilities, (B, L) 0/1
        pred = probs.unsqueeze(0) >= self.grid.to(probs.device)[:, None, None]  # (T, B, L)
        gold = target.bool().unsqueeze(0)
        self.tp += (pred & gold).sum(1)
        self.fp += (pred & ~gold).sum(1)
        self.fn += (~pred & gold).sum(1)

    @staticmethod
    def _f1(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        return 2 * tp.double() / (2 * tp + fp + fn).clamp(min=1).double()

    def compute(self) -> dict[str, torch.Tensor]:
        """The counts ``tp``, ``fp``, ``fn`` (``(T, L)`` each), summed over processes: pass them to :meth:`f1_at`
        and :meth:`best` (torchmetrics syncs states only inside ``compute``)."""
        return {"tp": self.tp.clone(), "fp": self.fp.clone(), "fn": self.fn.clone()}

    def f1_at(self, counts: dict[str, torch.Tensor], thresholds: torch.Tensor) -> dict[str, float]:
        """Micro and macro F1 with one threshold per label (``(L,)``, each snapped to the nearest grid point)."""
        grid = self.grid.to(counts["tp"].device)
        idx = (grid[:, None] - thresholds.to(grid.device)[None, :]).abs().argmin(0)  # (L,)
        cols = torch.arange(counts["tp"].shape[1], device=grid.device)
        tp, fp, fn = (counts[k][idx, cols] for k in ("tp", "fp", "fn"))
        return {
            "micro_f1": float(self._f1(tp.sum(), fp.sum(), fn.sum())),
            "macro_f1": float(self._f1(tp, fp, fn).mean()),
        }

    def best(self, counts: dict[str, torch.Tensor], per_label: bool = False) -> torch.Tensor:
        """Thresholds ``(L,)`` maximising macro F1: the same for every label, or chosen label by label."""
        f1 = self._f1(counts["tp"], counts["fp"], counts["fn"])  # (T, L)
        grid = self.grid.to(f1.device)
        if per_label:
            return grid[f1.argmax(0)].cpu()
        return grid[f1.mean(1).argmax()].repeat(f1.shape[1]).cpu()
