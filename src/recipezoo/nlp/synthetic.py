"""Synthetic twins of the NLP data: tiny, offline and learnable, with the same contract as real files.

Sentiment sentences (or, multi-label, topic sentences; optionally as sentence pairs) for text classification, and
sentences with person, place and organisation mentions tagged in IOB2 for token classification.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from recipezoo.nlp.sources import Split

__all__ = ["SYNTHETIC_WORDS", "make_synthetic_texts", "make_synthetic_tokens", "synthetic_splits"]

POSITIVE = ["good", "great", "excellent", "wonderful", "lovely", "superb", "delightful", "brilliant"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dreadful", "poor", "dull", "horrible"]
TOPICS = {
    "sport": ["match", "goal", "team", "coach"],
    "music": ["song", "band", "guitar", "album"],
    "food": ["pizza", "soup", "bread", "cheese"],
    "travel": ["train", "hotel", "beach", "flight"],
}
FILLER = ["the", "a", "this", "movie", "film", "story", "was", "is", "really", "quite", "very", "and", "plot", "it"]
PERSONS = ["alice", "bob", "carol", "dave", "erin", "frank"]
PLACES = ["paris", "london", "berlin", "madrid", "rome"]
ORGS = ["acme", "globex", "initech", "umbrella"]
VERBS = ["visited", "met", "left", "joined", "saw", "called"]

#: Every word the synthetic twins use (tests build tiny tokenizers from it).
SYNTHETIC_WORDS = sorted(
    set(POSITIVE + NEGATIVE + FILLER + PERSONS + PLACES + ORGS + VERBS + [w for ws in TOPICS.values() for w in ws])
    | {"in", "at", "with", "today"}
)


def make_synthetic_texts(n: int, seed: int, multi_label: bool = False, pairs: bool = False) -> Split:
    """Sentences whose label is carried by a few words: sentiment (positive/negative) or, multi-label, topics."""
    rng = random.Random(seed)
    texts, targets, seconds = [], [], []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(3, 9))
        if multi_label:
            topics = sorted(rng.sample(sorted(TOPICS), k=rng.randint(0, 2)))
            for t in topics:
                words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[t]))
            targets.append(tuple(topics))
        else:
            label = rng.choice(["negative", "positive"])
            for _ in range(rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
            targets.append(label)
        texts.append(" ".join(words))
        seconds.append(" ".join(rng.choices(FILLER, k=3)))
    return Split((texts, seconds) if pairs else texts, targets, "synthetic")


def make_synthetic_tokens(n: int, seed: int) -> Split:
    """Sentences with person, place and organisation mentions, tagged in IOB2 (``B-PER``, ``I-ORG``, ``O``)."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words: list[str] = []
        ws_tags: list[str] = []
        _mention(rng, words, ws_tags, PERSONS, "PER", rng.randint(1, 2))
        words.append(rng.choice(VERBS))
        ws_tags.append("O")
        if rng.random() < 0.5:
            _mention(rng, words, ws_tags, ORGS, "ORG", rng.randint(1, 2))
        else:
            words.append("the")
            ws_tags.append("O")
        words.append(rng.choice(["in", "at"]))
        ws_tags.append("O")
        _mention(rng, words, ws_tags, PLACES, "LOC", 1)
        if rng.random() < 0.5:
            words.append("today")
            ws_tags.append("O")
        sentences.append(words)
        tags.append(ws_tags)
    return Split(sentences, tags, "synthetic")


def _mention(rng: random.Random, words: list[str], tags: list[str], names: list[str], kind: str, length: int) -> None:
    for j in range(length):
        words.append(rng.choice(names))
        tags.append(("B-" if j == 0 else "I-") + kind)


def synthetic_splits(make: Callable[[int, int], Split], size: int, seed: int) -> dict[str, Split]:
    """Train, val and test splits from ``make(n, seed)``: ``size`` training examples, a quarter of that for each
    held-out split, each split with its own seed."""
    sizes = (("train", size), ("val", size // 4), ("test", size // 4))
    return {name: make(n, seed + k) for k, (name, n) in enumerate(sizes)}
