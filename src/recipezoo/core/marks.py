"""Wall-clock marks of a run's start-up stages (imports, Hydra, data, model, Trainer), for the benchmark.

Deliberately import-free: ``train.py`` marks the moment the interpreter reaches it, before any heavy import.
"""

from __future__ import annotations

import time

MARKS: dict[str, float] = {}


def mark(stage: str) -> None:
    """Record that ``stage`` is done now (the first time only)."""
    MARKS.setdefault(stage, time.time())
