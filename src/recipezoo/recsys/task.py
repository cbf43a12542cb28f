"""Recommender: the LightningModule for recommendation, whatever the network.

One module for both task families, chosen by ``objective``:

- ``rating`` (explicit feedback): squared error on ratings plus an L2 penalty on the rows each batch uses;
  evaluated with RMSE and MAE (torchmetrics) on predictions clipped to the training rating range.
- ranking objectives (implicit feedback), evaluated by full-catalogue ranking (:mod:`recipezoo.recsys.metrics`):
  ``bce`` (pointwise log loss on each positive and its sampled negatives: NCF), ``sampled_softmax`` (in-batch
  negatives with the logQ correction: two-tower), ``softmax`` (full softmax over the catalogue: SASRec, any dot
  model). With ``train_batches=sequences`` every position of every user's sequence is a training example.

The catalogue's item popularity (training counts) is a buffer: it drives the logQ correction, the popularity@K
metric and, for id-only networks, which items can be ranked at all (items without training interactions cannot).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics as tm
from torch import nn

from recipezoo.core.errors import ConfigError
from recipezoo.core.task import Task
from recipezoo.recsys import metrics as M

log = logging.getLogger(__name__)

OBJECTIVES = ("rating", "bce", "sampled_softmax", "softmax")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Graph(nn.Module):
    """A network method as an exportable module: positional inputs named ``names`` (a tower, or the pair scorer)."""

    def __init__(self, net: nn.Module, what: str, names: tuple[str, ...]) -> None:
        super().__init__()
        self.net, self.what, self.names = net, what, tuple(names)

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor | None = None,
        x2: torch.Tensor | None = None,
        x3: torch.Tensor | None = None,
        x4: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kw = dict(zip(self.names, (x0, x1, x2, x3, x4)))
        if self.what == "user_tower":
            return self.net.user_vectors(**kw)
        if self.what == "item_tower":
            return self.net.item_tower(**kw)
        item = kw.pop("item")
        return self.net.score(kw, item.unsqueeze(1)).squeeze(1)


class Recommender(Task):
    """Trains a recommendation network and evaluates it as a reviewer would (see the module docstring).

    Logged: ``train/loss_step``, ``train/loss_epoch``;
    ranking: ``val/`` and ``test/`` ``hr@K``, ``ndcg@K``, ``recall@K``, ``mrr``,
    ``coverage@K``, ``popularity@K``, ``users`` (and ``sampled_hr@K``, ``sampled_ndcg@K`` when the data samples
    negatives); rating: ``val/rmse``, ``val/mae``, ``test/rmse``, ``test/mae``.

    Args:
        net: a network from :mod:`recipezoo.recsys.models`.
        optimizer: a partial optimizer taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler``, or None / ``{}``.
        objective: ``rating``, ``bce``, ``sampled_softmax`` or ``softmax``.
        n_items: catalogue size (the data's ``n_items``).
        l2: weight of the network's ``penalty`` (the L2 norm of the rows a batch uses), when it has one.
        logq: subtract log(sampling probability) from in-batch logits (``sampled_softmax``): popular items are
            over-represented as in-batch negatives, and the correction undoes that bias.
        ks: ranking cut-offs.
        ranking_chunk: scores held at once while ranking (users x items; pair networks use a 32nd of it).
        feedback: the data's feedback (``implicit`` / ``explicit``), checked against the objective.
        rating_range: ``[min, max]`` of training ratings (predictions are clipped to it).
        preprocessing: the data's preprocessing facts, carried into exports.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        objective: str = "bce",
        n_items: int | None = None,
        l2: float = 0.0,
        logq: bool = True,
        ks: tuple[int, ...] | list[int] = (10, 20),
        ranking_chunk: int = 2**22,
        feedback: str | None = None,
        rating_range: list[float] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown model.objective '{objective}'; choose one of {', '.join(OBJECTIVES)}.")
        if objective in ("sampled_softmax", "softmax") and net.kind != "dot":
            raise ConfigError(
                f"objective={objective} needs a dot-product network (mf, two_tower, sasrec); "
                f"{type(net).__name__} scores pairs: use objective=bce with data.negatives > 0."
            )
        if feedback == "explicit" and objective != "rating":
            raise ConfigError(
                f"the data has explicit ratings (data.feedback=explicit) but model.objective={objective} ranks: use "
                "model.objective=rating, or data.feedback=implicit."
            )
        if feedback == "implicit" and objective == "rating":
            raise ConfigError(
                "model.objective=rating predicts ratings, but the data is implicit feedback: set "
                "data.feedback=explicit (with a rating column), or a ranking objective."
            )
        # No fine-tuning policy: weight decay on dense weight matrices only, never on embedding tables (their rows
        # are regularised by the objective's own L2 on the rows a batch uses), biases or norms (core.optim).
        super().__init__(net, optimizer, scheduler)
        self.objective = objective
        self.n_items = int(n_items if n_items is not None else net.n_items)
        self.l2, self.logq = float(l2), bool(logq)
        self.ks = sorted({int(k) for k in ks})
        self.ranking_chunk = int(ranking_chunk)
        self.rating_range = [float(x) for x in rating_range] if rating_range and None not in rating_range else None
        self.preprocessing = _plain(preprocessing or {})
        self.register_buffer("item_count", torch.zeros(self.n_items + 1))
        if objective == "rating":
            self.val_rmse, self.test_rmse = tm.MeanSquaredError(squared=False), tm.MeanSquaredError(squared=False)
            self.val_mae, self.test_mae = tm.MeanAbsoluteError(), tm.MeanAbsoluteError()
        else:
            self.val_ranking = M.RankingMetrics(self.n_items + 1, self.ks)
            self.test_ranking = M.RankingMetrics(self.n_items + 1, self.ks)
        self._item_matrix: torch.Tensor | None = None
        self.test_results: dict[str, float] = {}

    # -- data hand-over ---------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Before training: take the catalogue's popularity and side features from the DataModule (a resumed run's
        checkpoint then overwrites them with the same values). Evaluation reads them from the weights."""
        super().setup(stage)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage != "fit" or dm is None or not hasattr(dm, "feature_tables"):
            return
        tables = dm.feature_tables()
        self.item_count.copy_(tables["popularity"].float())
        if hasattr(self.net, "set_item_features"):
            self.net.set_item_features(
                tables.get("item_num"), tables.get("item_cat"), tables.get("item_text"), tables.get("item_warm")
            )
        if hasattr(self.net, "set_user_features"):
            self.net.set_user_features(tables.get("user_num"), tables.get("user_cat"))

    def excluded_items(self) -> torch.Tensor:
        """Items that cannot be recommended: padding, and for id-only networks items without training data."""
        out = torch.zeros(self.n_items + 1, dtype=torch.bool, device=self.item_count.device)
        out[0] = True
        if not getattr(self.net, "uses_item_features", False) and bool((self.item_count > 0).any()):
            out |= self.item_count <= 0
        return out

    # -- training ---------------------------------------------------------------------------------------------------
    def _query(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: batch[k] for k in self.net.user_inputs if k in batch}

    def forward(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, M)`` of ``items`` ``(B, M)`` for the users in ``query``."""
        return self.net.score(query, items)

    def _train_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return self._sequence_loss(batch) if "target" in batch else self._pair_loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch, without logging (what a plain PyTorch loop computes)."""
        return self._train_loss(batch)[0]

    def _penalty(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        if self.l2 and hasattr(self.net, "penalty"):
            return self.l2 * self.net.penalty(query, items).mean()
        return torch.zeros((), device=items.device)

    def _pair_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        query, item = self._query(batch), batch["item"]
        b = item.shape[0]
        if self.objective == "rating":
            pred = self.net.score(query, item.unsqueeze(1)).squeeze(1)
            loss = F.mse_loss(pred.float(), batch["rating"].float())
            return loss + self._penalty(query, item.unsqueeze(1)), b
        if self.objective == "bce":
            if "neg" not in batch:
                raise ConfigError("objective=bce needs sampled negatives: set data.negatives (e.g. 4).")
            items = torch.cat([item.unsqueeze(1), batch["neg"]], 1)  # (B, 1 + n)
            logits = self.net.score(query, items).float()
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            weight = torch.cat([torch.ones_like(item, dtype=torch.bool).unsqueeze(1), batch["neg_ok"]], 1).float()
            loss = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weight).sum()
            return loss / weight.sum().clamp(min=1.0) + self._penalty(query, items), b
        user_vec = self.net.user_vectors(**query)  # (B, D)
        if self.objective == "sampled_softmax":
            item_vec = self.net.item_vectors(item)  # (B, D): the batch's positives are each other's negatives
            logits = (user_vec @ item_vec.T).float() / getattr(self.net, "temperature", 1.0)  # (B, B)
            if self.logq:
                q = self.item_count[item].clamp(min=1.0) / self.item_count.sum().clamp(min=1.0)
                logits = logits - torch.log(q).unsqueeze(0)
            # The same item twice in a batch: the other copy is not a negative.
            same = item.unsqueeze(0) == item.unsqueeze(1)
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
            labels = torch.arange(b, device=item.device)
            return F.cross_entropy(logits, labels) + self._penalty(query, item.unsqueeze(1)), b
        # softmax over the whole catalogue
        logits = self._catalogue_logits(user_vec)
        return F.cross_entropy(logits, item) + self._penalty(query, item.unsqueeze(1)), b

    def _catalogue_logits(self, vectors: torch.Tensor) -> torch.Tensor:
        all_items = self.net.item_vectors(torch.arange(self.n_items + 1, device=vectors.device))  # (N + 1, D)
        logits = (vectors @ all_items.T).float() / getattr(self.net, "temperature", 1.0)
        return logits.masked_fill(self.excluded_items().unsqueeze(0), float("-inf"))

    def _sequence_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        if not hasattr(self.net, "sequence_vectors"):
            raise ConfigError(
                f"data.train_batches=sequences needs a sequential network (sasrec), not {type(self.net).__name__}."
            )
        hidden = self.net.sequence_vectors(batch["history"])  # (B, L, D)
        target = batch["target"]
        valid = target > 0
        h, t = hidden[valid], target[valid]  # (P, D), (P,)
        if self.objective == "bce":
            if "neg" not in batch:
                raise ConfigError("objective=bce needs sampled negatives: set data.negatives (e.g. 1).")
            pos = (h * self.net.item_vectors(t)).sum(-1).float()
            neg = (h * self.net.item_vectors(batch["neg"][valid])).sum(-1).float()
            ok = batch["neg_ok"][valid].float()
            loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + (
                F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none") * ok
            ).sum() / ok.sum().clamp(min=1.0)
        elif self.objective == "softmax":
            loss = F.cross_entropy(self._catalogue_logits(h), t)
        else:
            raise ConfigError(f"objective={self.objective} is not available for sequences; use softmax or bce.")
        return loss, int(valid.sum())

    # -- evaluation -------------------------------------------------------------------------------------------------
    def _ranking_metric(self, stage: str) -> M.RankingMetrics:
        return self.val_ranking if stage == "val" else self.test_ranking

    def _start_ranking(self, stage: str) -> None:
        metric = self._ranking_metric(stage)
        excluded = self.excluded_items()
        metric.set_popularity(M.popularity_percentiles(self.item_count), int((~excluded).sum()))
        if self.net.kind == "dot":
            with torch.no_grad():
                # Every catalogue item's vector once per epoch, in chunks; each batch of users is then one matmul.
                idx = torch.arange(self.n_items + 1, device=self.item_count.device)
                self._item_matrix = torch.cat([self.net.item_vectors(c) for c in idx.split(65536)])

    def on_validation_epoch_start(self) -> None:
        if self.objective != "rating":
            self._start_ranking("val")

    def on_test_epoch_start(self) -> None:
        if self.objective != "rating":
            self._start_ranking("test")

    def rank_batch(self, batch: dict[str, torch.Tensor], k: int | None = None) -> tuple[torch.Tensor, ...]:
        """Full-catalogue ranks of the batch's targets and the users' top-k lists (see :func:`metrics.rank_targets`)."""
        query = self._query(batch)
        k = k or max(self.ks)
        excluded = self.excluded_items()
        scale = 1.0 / getattr(self.net, "temperature", 1.0)
        if self.net.kind == "dot":
            if self._item_matrix is None:
                self._start_ranking("test")
            assert self._item_matrix is not None
            user_vec = self.net.user_vectors(**query)
            matrix = self._item_matrix

            def score_range(start: int, end: int) -> torch.Tensor:
                return (user_vec @ matrix[start:end].T) * scale

            def score_items(items: torch.Tensor) -> torch.Tensor:
                return torch.einsum("bd,bmd->bm", user_vec, matrix[items]) * scale

            chunk = max(256, self.ranking_chunk // max(1, user_vec.shape[0]))
        else:
            b = batch["targets"].shape[0]

            def score_range(start: int, end: int) -> torch.Tensor:
                items = torch.arange(start, end, device=excluded.device).unsqueeze(0).expand(b, -1)
                return self.net.score(query, items)

            def score_items(items: torch.Tensor) -> torch.Tensor:
                return self.net.score(query, items)

            chunk = max(64, self.ranking_chunk // 32 // max(1, b))
        ranks, top, _ = M.rank_targets(
            score_range, score_items, self.n_items + 1, batch["targets"], batch["seen"], excluded, k, chunk
        )
        sampled = None
        if "negatives" in batch:
            sampled = (score_items(batch["targets"]), score_items(batch["negatives"]))
            sampled = (sampled[0].masked_fill(excluded[batch["targets"]], float("-inf")), sampled[1])
        return ranks, top, sampled

    def eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        if self.objective == "rating":
            pred = self.predict_ratings(batch)
            rmse, mae = (self.val_rmse, self.val_mae) if stage == "val" else (self.test_rmse, self.test_mae)
            rmse.update(pred, batch["rating"].float())
            mae.update(pred, batch["rating"].float())
            return
        ranks, top, sampled = self.rank_batch(batch)
        self._ranking_metric(stage).update(ranks, batch["targets"], top, sampled)

    def predict_ratings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Predicted ratings ``(B,)`` for the batch's (user, item) pairs, clipped to the training rating range."""
        pred = self.net.score(self._query(batch), batch["item"].unsqueeze(1)).squeeze(1).float()
        if self.rating_range:
            pred = pred.clamp(self.rating_range[0], self.rating_range[1])
        return pred

    def _end(self, stage: str) -> None:
        self._item_matrix = None
        if self.objective == "rating":
            rmse, mae = (self.val_rmse, self.val_mae) if stage == "val" else (self.test_rmse, self.test_mae)
            if not rmse.update_called:
                return
            out = {f"{stage}/rmse": float(rmse.compute()), f"{stage}/mae": float(mae.compute())}
            rmse.reset()
            mae.reset()
        else:
            metric = self._ranking_metric(stage)
            if not metric.update_called:
                return
            out = {f"{stage}/{k}": v for k, v in metric.compute().items()}
            metric.reset()
        monitored = f"{stage}/rmse" if self.objective == "rating" else f"{stage}/ndcg@{self.ks[0]}"
        self.log(monitored, out.pop(monitored), prog_bar=True, sync_dist=True)
        self.log_dict(out, sync_dist=True)
        if stage == "test":
            self.test_results = {monitored: float(self.trainer.callback_metrics.get(monitored, math.nan)), **out}

    def on_validation_epoch_end(self) -> None:
        self._end("val")

    def on_test_epoch_end(self) -> None:
        self._end("test")

    # -- export -----------------------------------------------------------------------------------------------------
    def make_inputs(self, names: tuple[str, ...], n: int) -> dict[str, torch.Tensor]:
        """Example inputs of ``n`` rows for the named inputs: valid indices, histories with left padding."""
        net, g = self.net, torch.Generator().manual_seed(n)
        n_users = int(getattr(net, "n_users", 0) or 0)
        length = int(self.preprocessing.get("history_len") or getattr(net, "max_len", 0) or 1)
        out: dict[str, torch.Tensor] = {}
        for name in names:
            if name == "user":
                out[name] = torch.randint(0, n_users + 1, (n,), generator=g)
            elif name in ("item", "item_id"):
                out[name] = torch.randint(0, self.n_items + 1, (n,), generator=g)
            elif name == "history":
                h = torch.randint(1, self.n_items + 1, (n, length), generator=g)
                pad = torch.arange(length).unsqueeze(0) < torch.randint(0, length, (n, 1), generator=g)
                out[name] = h.masked_fill(pad, 0)
            elif name in ("item_num", "user_num"):
                out[name] = torch.randn(n, getattr(net, f"{name}_dim"), generator=g)
            elif name in ("item_cat", "user_cat"):
                tables = (net.item_cat_emb if name == "item_cat" else net.user_cat_emb).tables
                out[name] = (
                    torch.stack([torch.randint(0, t.num_embeddings, (n,), generator=g) for t in tables], 1)
                    if len(tables)
                    else torch.zeros(n, 0, dtype=torch.long)
                )
            elif name == "item_text":
                out[name] = F.normalize(torch.randn(n, net.item_text_dim, generator=g), dim=-1)
        return out

    def _spec(self, what: str, names: tuple[str, ...], output: str, batch_size: int) -> Any:
        from recipezoo.core.export import ExportSpec

        names = tuple(names)
        return ExportSpec(
            model=_Graph(self.net, what, names).eval(),
            inputs=self.make_inputs(names, batch_size),
            output_names=[output],
            dynamic_axes={**{n: {0: "batch"} for n in names}, output: {0: "batch"}},
            make_inputs=lambda m: self.make_inputs(names, m),
        )

    @torch.no_grad()
    def known_user_query(self, users: torch.Tensor, histories: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """The user inputs for known user indices with the given histories (most recent last)."""
        length = int(self.preprocessing.get("history_len") or 0)
        query: dict[str, torch.Tensor] = {}
        if "user" in self.net.user_inputs:
            query["user"] = users
        if "history" in self.net.user_inputs:
            h = torch.zeros(len(users), max(1, length), dtype=torch.long)
            for r, items in enumerate(histories):
                items = items[-h.shape[1] :]
                if len(items):
                    h[r, -len(items) :] = torch.as_tensor(items)
            query["history"] = h
        return query

    def export_metadata(self) -> dict[str, Any]:
        """What serving needs to know besides the graphs (also used when predicting from a checkpoint)."""
        net = self.net
        metadata: dict[str, Any] = {
            "task": "recommendation",
            "kind": net.kind,
            "network": type(net).__name__,
            "objective": self.objective,
            "n_items": self.n_items,
            "n_users": int(getattr(net, "n_users", 0) or 0),
            "user_inputs": list(net.user_inputs),
            "item_inputs": list(net.item_inputs),
            "history_len": int(self.preprocessing.get("history_len") or 0),
            "mask_cold_items": not getattr(net, "uses_item_features", False),
            "rating_range": self.rating_range,
            "preprocessing": self.preprocessing,
            "postprocessing": "top-K by score, the user's known items and unrecommendable items excluded",
        }
        if net.kind == "dot":
            metadata["score_scale"] = 1.0 / getattr(net, "temperature", 1.0)
        return metadata

    def export_spec(self, batch_size: int = 8) -> Any:
        """The scoring model ``(user inputs..., item) -> score`` and, for dot-product networks, the user and item
        towers, plus the item (and user) embedding matrices for an ANN index; the id maps come from the data files."""
        import io

        self.eval()
        net = self.net
        main = self._spec("score", (*net.user_inputs, "item"), "score", batch_size)
        parts = {}
        files: dict[str, bytes] = {}
        metadata = self.export_metadata()
        if net.kind == "dot":
            parts["user_tower"] = self._spec("user_tower", tuple(net.user_inputs), "user_vector", batch_size)
            parts["item_tower"] = self._spec("item_tower", tuple(net.item_inputs), "item_vector", batch_size)
            scale = metadata["score_scale"]
            metadata["embeddings"] = (
                "item_embeddings.npy: one row per line of item_ids.txt; user_embeddings.npy: one row per line of "
                f"user_ids.txt (known users, their full history); score = {scale:g} * (user . item)"
            )
            with torch.no_grad():
                items = torch.cat([net.item_vectors(c) for c in torch.arange(1, self.n_items + 1).split(65536)])
                users = torch.arange(1, int(getattr(net, "n_users", 0) or 0) + 1)
                histories = self._known_histories()
                user_vecs = []
                for start in range(0, len(users), 4096):
                    chunk = users[start : start + 4096]
                    query = self.known_user_query(chunk, [histories.get(int(u), np.zeros(0, np.int64)) for u in chunk])
                    user_vecs.append(net.user_vectors(**query))
                user_matrix = torch.cat(user_vecs) if user_vecs else torch.zeros(0, net.vector_dim)
            for name, matrix in (("item_embeddings.npy", items), ("user_embeddings.npy", user_matrix)):
                buf = io.BytesIO()
                np.save(buf, matrix.float().numpy())
                files[name] = buf.getvalue()
        if getattr(net, "user_num_dim", 0) or ("user_cat" in net.user_inputs):
            buf = io.BytesIO()
            np.savez(buf, user_num=net.user_num.numpy(), user_cat=net.user_cat.numpy())
            files["user_features.npz"] = buf.getvalue()
            from recipezoo.runtime import tabular

            # The bundle's loader preprocesses a new user's raw features with this copy of the tabular runtime.
            with open(tabular.__file__, "rb") as f:
                files["tabular.py"] = f.read()
        main.parts = parts
        main.files = files
        main.metadata = metadata
        return main

    def _known_histories(self) -> dict[int, np.ndarray]:
        """Each known user's items (time order) from the checkpoint's ``interactions.npz``; empty without files."""
        files = getattr(self, "files", None) or {}
        if "interactions.npz" not in files:
            return {}
        import io

        data = np.load(io.BytesIO(files["interactions.npz"]))
        ptr, items = data["indptr"], data["items"]
        return {u: items[ptr[u] : ptr[u + 1]] for u in range(1, len(ptr) - 1)}
