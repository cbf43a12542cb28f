"""Lightning's per-step bookkeeping, made cheaper without changing what it does.

A training step under Lightning 2.6 calls some 50 hooks (every callback's ``on_train_batch_start``,
``on_before_backward``... whether it overrides them or not). Around each call the Trainer enters its profiler's
``profile()`` context and sets ``pl_module._current_fx_name`` twice. With no profiler chosen the context is a
generator-based no-op, and the attribute goes through ``nn.Module.__setattr__`` (3 us instead of 0.3 us): together
about 0.3 ms a step, which is 5-10% of a small tabular or recommendation model's step on CPU (docs/performance.md).

Every Trainer built from a config also gets its distributed process group destroyed when the process exits (see
``destroy_process_group_at_exit``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from typing import Any

import torch.distributed as dist
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


def _destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@functools.cache
def destroy_process_group_at_exit() -> None:
    """Destroy ``torch.distributed``'s process groups when the interpreter exits (registered once per process).

    Lightning creates the process group of a DDP run and registers its destruction at exit for NCCL only. A gloo
    group (DDP on CPU processes) left alive is torn down during interpreter finalization, where its worker threads
    intermittently end the process with ``terminate called without an active exception`` (status 134) after a run
    that succeeded. An ``atexit`` handler runs while the interpreter is still whole (as Lightning's NCCL one does);
    it does nothing in a process that never joined a group, or after Lightning's handler.
    """
    atexit.register(_destroy_process_group)


def trainer_extras(trainer_cfg: Any) -> dict[str, Any]:
    """Keyword arguments to add to a Trainer built from ``trainer_cfg``: the null profiler unless one is chosen.

    Also makes sure a process group the Trainer may create is destroyed at exit (``destroy_process_group_at_exit``).
    """
    destroy_process_group_at_exit()
    return {} if trainer_cfg.get("profiler") else {"profiler": NullProfiler()}
