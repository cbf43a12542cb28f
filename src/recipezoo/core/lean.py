"""Lightning's per-step bookkeeping, made cheaper without changing what it does.

A training step under Lightning 2.6 calls some 50 hooks (every callback's ``on_train_batch_start``,
``on_before_backward``... whether it overrides them or not). Around each call the Trainer enters its profiler's
``profile()`` context and sets ``pl_module._current_fx_name`` twice. With no profiler chosen the context is a
generator-based no-op, and the attribute goes through ``nn.Module.__setattr__`` (3 us instead of 0.3 us): together
about 0.3 ms a step, which is 5-10% of a small tabular or recommendation model's step on CPU (docs/performance.md).
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.profilers import PassThroughProfiler

_NULL = contextlib.nullcontext()  # reusable and reentrant


class NullProfiler(PassThroughProfiler):
    """Lightning's default no-op profiler, with ``profile()`` returning one shared no-op context instead of a
    fresh generator-based one on each of the step's hook calls. ``trainer.profiler=simple`` (or any Lightning
    profiler) still replaces it."""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager[Any]:  # type: ignore[override]
        return _NULL


class LeanHookName:
    """Mixin for LightningModules (put it before ``L.LightningModule``): the Trainer's hook-name bookkeeping
    (``_current_fx_name``, a string) skips ``nn.Module.__setattr__``'s parameter/module/buffer checks, which
    cannot apply to a string. Every other attribute goes through them as usual."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def trainer_extras(trainer_cfg: Any) -> dict[str, Any]:
    """Keyword arguments to add to a Trainer built from ``trainer_cfg``: the null profiler unless one is chosen."""
    return {} if trainer_cfg.get("profiler") else {"profiler": NullProfiler()}
