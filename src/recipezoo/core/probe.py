"""The linear probe: logistic regression on a pretrained backbone's frozen pooled features.

It is the classical baseline of a fine-tuning recipe (what the gradient-boosted trees are to the tabular ones): if
fine-tuning cannot beat a logistic regression on the features it started from, the run says so. It is also the
first half of LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): a head set to the probe's
solution gives fine-tuning a head that already fits, so the first gradients do not tear the features apart.

How it works, for any task whose network exposes ``head`` (the fine-tuning contract) and which implements
``Task.logits_and_labels(batch)``:

1. a forward hook on the head's final ``nn.Linear`` collects its input (the pooled features) over the train,
   validation and test splits, read without augmentation (``datamodule.eval_dataloader(split)``);
2. scikit-learn's ``LogisticRegression`` is fitted on the standardised train features for a few values of ``C``;
   the one with the best validation accuracy is kept (the sweep CLIP's linear-probe protocol does);
3. its val and test predictions are scored with the task's own metric set, so ``val/acc`` and ``test/f1`` mean the
   same thing for the probe and the fine-tuned model;
4. the standardisation is folded into the weights, so the probe *is* a linear head over the pooled features
   (:class:`ProbeHead`): copied into the network it gives a checkpoint, and so an export, of the probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

# Values of the inverse regularisation strength tried; the best on validation is kept.
DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)
HEAD_INITS = ("default", "zero", "probe")


def head_linear(net: nn.Module) -> nn.Linear | None:
    """The final ``nn.Linear`` of ``net.head`` (the head itself, or the last Linear of a head container)."""
    head = getattr(net, "head", None)
    if head is None:
        return None
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _qualified_name(root: nn.Module, target: nn.Module) -> str:
    for name, m in root.named_modules():
        if m is target:
            return name
    raise ValueError("module not found under root")


@torch.no_grad()
def pooled_features(module: Any, loader: Iterable, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The inputs of the head's final Linear (the pooled features) and the labels, over every batch of ``loader``.

    The module is put in eval mode for the pass (no dropout, BatchNorm running statistics) and left as it was.
    """
    linear = head_linear(module.net)
    if linear is None:
        raise ValueError(f"{type(module.net).__name__} has no linear head to probe")
    feats: list[torch.Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _m, args: feats.append(args[0].detach().float().cpu()))
    was_training = module.training
    module.eval()
    labels: list[torch.Tensor] = []
    try:
        for batch in loader:
            batch = _to(batch, device)
            _, y = module.logits_and_labels(batch)
            labels.append(y.detach().cpu())
    finally:
        hook.remove()
        module.train(was_training)
    if not feats:
        return np.zeros((0, linear.in_features), np.float32), np.zeros((0,), np.int64)
    x = torch.cat([f.reshape(f.shape[0], -1) for f in feats]).numpy()
    return x, torch.cat(labels).numpy().astype(np.int64)


def _to(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


@dataclass
class ProbeHead:
    """The probe as a linear head over the raw pooled features: ``logits = x @ weight.T + bias``."""

    weight: np.ndarray  # (num_classes, features)
    bias: np.ndarray  # (num_classes,)
    C: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def copy_into(self, linear: nn.Linear) -> None:
        """Set ``linear``'s weight and bias to the probe's (shapes must match)."""
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(self.weight, dtype=linear.weight.dtype))
            linear.bias.copy_(torch.as_tensor(self.bias, dtype=linear.bias.dtype))


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    Cs: Sequence[float] = DEFAULT_CS,
    max_iter: int = 1000,
    seed: int = 0,
) -> ProbeHead:
    """Fit logistic regression on standardised features for each ``C``; keep the best on validation accuracy.

    Returns the chosen model as a linear head over the *unstandardised* features (the scaler folded in), with
    ``num_classes`` rows even when the training split lacks a class (its row stays at zero weight and a very
    negative bias) and two symmetric rows for a binary problem.
    """
    from sklearn.linear_model import LogisticRegression

    # Standardised here rather than with scikit-learn's StandardScaler: its scale of a near-constant feature is
    # float noise (1e-30 is not 0), and folding 1/scale into the head then gives weights of 1e30 that are infinite
    # in float32 and stall fine-tuning from the probe. Scales are floored at a tenth of the median feature's.
    mean = x_train.mean(0, dtype=np.float64)
    std = x_train.std(0, dtype=np.float64)
    positive = std[std > 0]
    floor = max(1e-6, 0.1 * float(np.median(positive))) if positive.size else 1.0
    scale = np.maximum(std, floor)
    xs_train, xs_val = (x_train - mean) / scale, (x_val - mean) / scale
    best: tuple[float, float, Any] | None = None
    for C in Cs:
        clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(xs_train, y_train)
        acc = float((clf.predict(xs_val) == y_val).mean()) if len(y_val) else 0.0
        log.debug("linear probe C=%g: val acc %.4f", C, acc)
        if best is None or acc > best[0]:
            best = (acc, C, clf)
    assert best is not None
    _, C, clf = best
    coef, intercept = np.asarray(clf.coef_, np.float64), np.asarray(clf.intercept_, np.float64)
    if coef.shape[0] == 1:  # binary: one decision function z -> logits (-z/2, +z/2), the same softmax
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight_std = coef / scale  # fold the standardisation: w·(x - mu)/s + b = (w/s)·x + (b - (w/s)·mu)
    bias_std = intercept - weight_std @ mean
    weight = np.zeros((num_classes, x_train.shape[1]))
    bias = np.full((num_classes,), -30.0)  # classes the training split lacks: never predicted
    weight[clf.classes_] = weight_std
    bias[clf.classes_] = bias_std
    return ProbeHead(weight.astype(np.float32), bias.astype(np.float32), float(C))


def _score(module: Any, logits: np.ndarray, y: np.ndarray, stage: str) -> dict[str, float]:
    """The task's own metric set on the probe's logits (``val/acc``, ``test/f1``...)."""
    from recipezoo.core.metrics import classification_metrics

    if not len(y):
        return {}
    metrics = classification_metrics(int(module.num_classes), f"{stage}/")
    logits_t, y_t = torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(y)
    metrics.update(logits_t, y_t)
    out = {k: float(v) for k, v in metrics.compute().items()}
    out[f"{stage}/loss"] = float(torch.nn.functional.cross_entropy(logits_t, y_t))
    return out


def _subsample(loader: Any, max_rows: int | None, seed: int) -> Any:
    """``loader`` over at most ``max_rows`` rows of its dataset, drawn at random (seeded)."""
    n = len(loader.dataset)
    if not max_rows or n <= max_rows:
        return loader
    from torch.utils.data import DataLoader, Subset

    idx = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    return DataLoader(
        Subset(loader.dataset, idx.tolist()),
        batch_size=loader.batch_size,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
    )


@dataclass
class ProbeResult:
    head: ProbeHead
    summary: dict[str, Any]  # what summary.json reports under ``baseline``


def run_probe(
    module: Any,
    datamodule: Any,
    device: torch.device | str = "cpu",
    Cs: Sequence[float] = DEFAULT_CS,
    max_train_rows: int | None = 20000,
    seed: int = 0,
) -> ProbeResult:
    """Extract pooled features of the module's (pretrained, not yet fine-tuned) network and fit the probe.

    Args:
        module: a task with ``net.head`` and ``logits_and_labels(batch)``, before fine-tuning.
        datamodule: a set-up DataModule with ``eval_dataloader(split)``.
        device: where the features are computed.
        Cs: the regularisation values tried.
        max_train_rows: fit on at most this many training rows (drawn at random, seeded): the probe costs one
            forward pass per row, and beyond a few thousand rows per class it gains little.
        seed: the subsample's and the solver's seed.
    """
    start = time.perf_counter()
    moved = next(module.parameters()).device
    module.to(device)
    try:
        x_tr, y_tr = pooled_features(module, _subsample(datamodule.eval_dataloader("train"), max_train_rows, seed), device)
        x_va, y_va = pooled_features(module, datamodule.eval_dataloader("val"), device)
        x_te, y_te = pooled_features(module, datamodule.eval_dataloader("test"), device)
    finally:
        module.to(moved)
    features_s = time.perf_counter() - start
    head = fit_probe(x_tr, y_tr, x_va, y_va, int(module.num_classes), Cs=Cs, seed=seed)
    summary = {
        "name": "linear_probe",
        "params": {
            "model": "LogisticRegression on standardised frozen pooled features",
            "C": head.C,
            "Cs_tried": list(Cs),
            "features": int(x_tr.shape[1]),
            "train_rows": int(len(y_tr)),
        },
        "fit_time_s": round(time.perf_counter() - start, 2),
        "feature_time_s": round(features_s, 2),
        "val": _score(module, head.logits(x_va), y_va, "val"),
        "test": _score(module, head.logits(x_te), y_te, "test"),
    }
    return ProbeResult(head, summary)


def init_head(module: Any, how: str, probe: ProbeHead | None = None) -> None:
    """Initialise the head's final Linear of a network about to be fine-tuned.

    ``default``: leave the library's initialisation; ``zero``: weights and bias at zero (the MAE/BEiT/DINOv2
    fine-tuning recipes start the new head at or near zero, so the first logits are 0 and the first gradients
    reaching the backbone are small); ``probe``: the linear probe's solution (LP-FT).
    """
    if how not in HEAD_INITS:
        raise ValueError(f"unknown head init {how!r}")
    linear = head_linear(module.net)
    if how == "default" or linear is None:
        return
    if how == "zero":
        with torch.no_grad():
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
        return
    if probe is None:
        raise ValueError("head init 'probe' needs a fitted probe")
    probe.copy_into(linear)


def state_with_head(module: Any, probe: ProbeHead) -> dict[str, torch.Tensor]:
    """A copy of the module's state dict (on CPU) with the head's final Linear replaced by the probe."""
    linear = head_linear(module.net)
    assert linear is not None
    prefix = "net." + _qualified_name(module.net, linear)
    state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    state[f"{prefix}.weight"] = torch.as_tensor(probe.weight, dtype=state[f"{prefix}.weight"].dtype)
    if f"{prefix}.bias" in state:
        state[f"{prefix}.bias"] = torch.as_tensor(probe.bias, dtype=state[f"{prefix}.bias"].dtype)
    return state


# -- in a training run ------------------------------------------------------------------------------------------


@dataclass
class Transfer:
    """What :func:`before_fit` did: the probe (if it ran) and the state dict of the probe's own checkpoint."""

    probe: ProbeResult | None = None
    baseline_state: dict[str, torch.Tensor] | None = None


def _skip_reason(cfg: Any, module: Any) -> str:
    """Why the probe and head initialisation do not apply to this run ("" when they do)."""
    from recipezoo.core.pretrained import parse_pretrained
    from recipezoo.core.task import Task

    if not cfg.get("train", True):
        return "train=false"
    if cfg.get("ckpt_path"):
        return "the run resumes a checkpoint"
    backbone = cfg.get("backbone") or {}
    if parse_pretrained(backbone.get("pretrained", False)).off:
        return "the backbone is trained from scratch"
    if getattr(module, "policy", None) is None or head_linear(getattr(module, "net", None) or nn.Module()) is None:
        return f"{type(getattr(module, 'net', module)).__name__} has no linear head"
    if getattr(module, "multi_label", False):
        return "multi-label classification"
    if type(module).logits_and_labels is Task.logits_and_labels:
        return f"{type(module).__name__} is not a single-label classifier"
    return ""


def _device(trainer: Any) -> torch.device:
    try:
        device = trainer.strategy.root_device
    except Exception:  # a strategy whose device is only known once fitting starts
        return torch.device("cpu")
    return device if device.type in ("cpu", "cuda") else torch.device("cpu")


def before_fit(cfg: Any, datamodule: Any, module: Any, trainer: Any) -> Transfer:
    """Before fine-tuning a pretrained backbone: fit the linear probe (``probe.enabled``, or ``head_init=probe``)
    and initialise the new head (``finetune.head_init``). Nothing happens for a network trained from scratch or a
    resumed run; the reason is logged when the config asked for something."""
    how = str((cfg.get("finetune") or {}).get("head_init", "default"))
    probe_cfg = cfg.get("probe") or {}
    want_probe = bool(probe_cfg.get("enabled", False)) or how == "probe"
    from recipezoo.core.task import Task

    reason = _skip_reason(cfg, module) if isinstance(module, Task) else f"{type(module).__name__} is not a Task"
    if reason:
        if want_probe:  # said only when asked for: the default head_init needs no word on a run from scratch
            log.info("Linear probe and head init skipped: %s.", reason)
        return Transfer()
    result = None
    if want_probe:
        if hasattr(datamodule, "eval_dataloader"):
            result = run_probe(
                module,
                datamodule,
                device=_device(trainer),
                Cs=tuple(float(c) for c in probe_cfg.get("Cs") or DEFAULT_CS),
                max_train_rows=probe_cfg.get("max_train_rows", 20000),
                seed=int(cfg.get("seed", 0) or 0),
            )
            shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.summary["val"].items()))
            log.info(
                "Linear probe (logistic regression on the frozen pretrained features, C=%g, %.1f s): %s",
                result.head.C,
                result.summary["fit_time_s"],
                shown,
            )
        else:
            log.info("Linear probe skipped: %s has no eval_dataloader(split).", type(datamodule).__name__)
    baseline_state = state_with_head(module, result.head) if result is not None else None
    if how == "probe" and result is None:
        how = "zero"
    init_head(module, how, result.head if result is not None else None)
    if how != "default":
        log.info("New head initialised: %s.", "the linear probe's solution (LP-FT)" if how == "probe" else how)
    return Transfer(result, baseline_state)


def save_baseline_checkpoint(template: str, state: dict[str, torch.Tensor], path: str) -> str:
    """Write the probe as a checkpoint of the same task: ``template`` (the run's best checkpoint) with its weights
    replaced by ``state`` (the pretrained backbone and the probe's head) and no optimizer state. Every tool that
    takes a checkpoint (evaluate, predict, export) takes it."""
    ckpt = torch.load(template, map_location="cpu", weights_only=True)
    ckpt["state_dict"] = state
    for key in ("optimizer_states", "lr_schedulers", "loops"):
        ckpt.pop(key, None)
    ckpt.setdefault("recipezoo", {})["model"] = "baseline"
    torch.save(ckpt, path)
    return path
