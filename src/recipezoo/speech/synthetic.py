"""The synthetic twins of the speech datasets: generated tones that a tiny model learns in seconds.

Items carry in-memory ``audio`` (float32) and its ``rate`` instead of a ``path``, plus the fields real items have
(``label`` or ``text``, ``speaker``, ``index``), so every later stage treats them alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tone_classes(classes: int, per_class: int, rate: int, seed: int) -> list[dict[str, Any]]:
    """Tones with a class-dependent pitch (4 semitones apart), two speaker-dependent harmonics, noise and a random
    onset; durations 0.3-1.3 s so some exceed a 1 s clip. Fields: label, speaker (4), index."""
    rng = np.random.default_rng(seed)
    items = []
    for c in range(classes):
        f0 = 220.0 * 2 ** (4 * c / 12)
        for i in range(per_class):
            speaker = i % 4
            n = int(rng.uniform(0.3, 1.3) * rate)
            t = np.arange(n) / rate
            f = f0 * (1 + 0.02 * (speaker - 1.5)) * (1 + 0.01 * rng.standard_normal())
            wave = np.sin(2 * np.pi * f * t) + (0.2 + 0.15 * speaker) * np.sin(4 * np.pi * f * t)
            onset = int(rng.uniform(0.0, 0.3) * n)
            wave[:onset] = 0
            wave = 0.3 * wave / np.abs(wave).max() + 0.02 * rng.standard_normal(n)
            items.append(
                {
                    "audio": wave.astype(np.float32),
                    "rate": rate,
                    "label": f"class_{c}",
                    "speaker": f"spk{speaker}",
                    "index": str(i),
                }
            )
    return items


def tone_words(size: int, rate: int, seed: int) -> list[dict[str, Any]]:
    """Utterances of 1-3 'words' of 1-3 'letters' from ``abcdef``: each letter a 90 ms tone of its own pitch
    (a speaker-dependent shift), 30 ms gaps, 120 ms pauses between words, noise. Fields: text, speaker (4), index."""
    rng = np.random.default_rng(seed)
    letters = "abcdef"
    items = []
    for i in range(size):
        speaker = i % 4
        words = ["".join(rng.choice(list(letters), rng.integers(1, 4))) for _ in range(rng.integers(1, 4))]
        pieces = [np.zeros(int(0.1 * rate))]
        for w, word in enumerate(words):
            if w:
                pieces.append(np.zeros(int(0.12 * rate)))
            for ch in word:
                n = int(0.09 * rate)
                f = (300.0 + 180.0 * letters.index(ch)) * (1 + 0.03 * (speaker - 1.5))
                pieces += [
                    0.3 * np.sin(2 * np.pi * f * np.arange(n) / rate) * np.hanning(n),
                    np.zeros(int(0.03 * rate)),
                ]
        pieces.append(np.zeros(int(0.1 * rate)))
        wave = np.concatenate(pieces)
        wave = wave + 0.01 * rng.standard_normal(len(wave))
        items.append(
            {
                "audio": wave.astype(np.float32),
                "rate": rate,
                "text": " ".join(words),
                "speaker": f"spk{speaker}",
                "index": str(i),
            }
        )
    return items


__all__ = ["tone_classes", "tone_words"]
