"""Tokenized splits as datasets, the samplers that batch them, and the collator that pads a batch.

Batches are dicts: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model takes them), ``(B, T)``
int64, padded to the batch's longest sequence; ``labels``: ``(B,)`` int64 (multi-class), ``(B, L)`` float32
(multi-label) or ``(B, T)`` int64 with -100 on sub-tokens that carry no word label (token classification, which
also gets ``word_index`` and ``word_tags``, ``(B, W)``, for word-level evaluation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from recipezoo.nlp.tokenization import Encoded
from recipezoo.runtime import text as rt

__all__ = ["Collator", "LengthGroupedSampler", "SortedSampler", "TokenizedDataset"]


class TokenizedDataset(Dataset):
    """A tokenized split: item ``i`` is ``(ids, type_ids or None, target)``."""

    def __init__(self, enc: Encoded, targets: Sequence[Any]) -> None:
        self.enc = enc
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        types = self.enc.type_ids[i] if self.enc.type_ids is not None else None
        first = self.enc.first_index[i] if self.enc.first_index is not None else None
        return self.enc.ids[i], types, self.targets[i], first

    def lengths(self) -> np.ndarray:
        return self.enc.ids.lengths()


class LengthGroupedSampler(Sampler[int]):
    """Random order in which each run of ``batch_size`` indices has similar lengths (less padding per batch).

    Like Hugging Face's: shuffle, cut into mega-batches of ``mega * batch_size``, sort each by length, and shuffle
    the order of the resulting batches. The permutation is drawn from torch's global RNG when iteration starts, as
    ``RandomSampler`` does, so seeding and exact resume work the same way.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, mega: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.mega = int(mega)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.lengths))
        size = self.mega * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # The longest batch first: an out-of-memory error shows at the first step, not hours in.
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max()) if batches else 0
        rest = [b for i, b in enumerate(batches) if i != longest]
        rng.shuffle(rest)
        for batch in ([batches[longest]] if batches else []) + rest:
            yield from batch.tolist()


class SortedSampler(Sampler[int]):
    """Evaluation order by length (deterministic): every batch pads little. Metrics do not depend on order."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(lengths), kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


@dataclass
class Collator:
    """Pads a batch to its longest sequence and stacks the targets (see the module docstring)."""

    pad_id: int
    with_types: bool
    target: str  # "class" | "multi_label" | "tokens"
    num_labels: int = 0

    def __call__(self, items: list[tuple[Any, ...]]) -> dict[str, torch.Tensor]:
        ids = [it[0] for it in items]
        batch = rt.pad(ids, self.pad_id, [it[1] for it in items] if self.with_types else None)
        out = {k: torch.from_numpy(v) for k, v in batch.items()}
        targets = [it[2] for it in items]
        if self.target == "class":
            out["labels"] = torch.tensor(targets, dtype=torch.long)
        elif self.target == "multi_label":
            y = torch.zeros(len(items), self.num_labels)
            for i, labels in enumerate(targets):
                y[i, list(labels)] = 1.0
            out["labels"] = y
        else:  # tokens: word tags -> first sub-token labels, the rest ignored
            t = out["input_ids"].shape[1]
            w = max((len(tags) for tags in targets), default=0)
            labels = torch.full((len(items), t), rt.IGNORE, dtype=torch.long)
            word_index = torch.full((len(items), w), -1, dtype=torch.long)
            word_tags = torch.full((len(items), w), -1, dtype=torch.long)
            for i, (tags, first) in enumerate(zip(targets, (it[3] for it in items))):
                first_t = torch.from_numpy(np.asarray(first, dtype=np.int64))
                tags_t = torch.as_tensor(tags, dtype=torch.long)
                kept = first_t >= 0
                labels[i, first_t[kept]] = tags_t[kept]
                word_index[i, : len(tags)] = first_t
                word_tags[i, : len(tags)] = tags_t
            out.update(labels=labels, word_index=word_index, word_tags=word_tags)
        return out
