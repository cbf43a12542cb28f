"""Start-up: keep torchmetrics from importing optional backends that no recipezoo metric uses.

torchmetrics imports transformers, torchvision and torchaudio at import time whenever they are installed (for
BERTScore, image and audio metrics recipezoo does not use), which Lightning triggers on ``import lightning.pytorch``:
about 2-3 s of every run's start-up, and a fraud recipe would load transformers for nothing. recipezoo marks those
backends as unavailable *to torchmetrics only* (its availability flags), before torchmetrics is imported. Our own
code imports what it needs directly, so nothing of recipezoo changes. ``RECIPEZOO_EAGER_IMPORTS=1`` turns this off,
e.g. to use torchmetrics' BERTScore or FID in the same process.
"""

from __future__ import annotations

import os
import re
import sys

DEFERRED = frozenset({"transformers", "torchvision", "torchaudio", "timm"})
_DONE = False


def defer_optional_backends() -> None:
    """Install the deferral (idempotent; a no-op once torchmetrics is imported or when opted out)."""
    global _DONE
    if _DONE or "torchmetrics" in sys.modules or os.environ.get("RECIPEZOO_EAGER_IMPORTS", "") not in ("", "0"):
        return
    _DONE = True
    try:
        from lightning_utilities.core import imports as lu
    except ImportError:  # pragma: no cover - lightning always brings it
        return
    original = lu.RequirementCache.__init__

    def __init__(self, requirement: str | None = None, module: str | None = None) -> None:  # noqa: N807
        original(self, requirement, module)
        try:
            caller = sys._getframe(1).f_globals.get("__name__", "")
        except ValueError:  # pragma: no cover
            return
        name = re.split(r"[<>=!~ \[;]", requirement or module or "", maxsplit=1)[0]
        if caller.startswith("torchmetrics") and name in DEFERRED:
            # RequirementCache checks lazily and stops at an existing `available`: torchmetrics sees it missing.
            self.available = False
            self.message = f"{name} is not imported for torchmetrics in recipezoo (RECIPEZOO_EAGER_IMPORTS=1)"

    lu.RequirementCache.__init__ = __init__
