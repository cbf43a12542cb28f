"""Classical baselines reported beside every recommendation run: same split, same catalogue, same metrics.

Ranking (implicit feedback), scored by :func:`recipezoo.recsys.metrics.rank_targets` exactly as the models are:

- ``popularity``: every user gets the items with the most training interactions.
- ``itemknn``: item-based collaborative filtering (Sarwar et al., 2001; Deshpande & Karypis, 2004): cosine similarity
  between the items' training-user columns, each item's ``neighbors`` most similar items kept; a user's score for an
  item is the sum of its similarities to the items the user has (their known items at evaluation time).
- ``svd``: PureSVD (Cremonesi et al., 2010): a truncated SVD of the binary user-item training matrix (scikit-learn's
  randomized ``TruncatedSVD``), a user's scores ``x V^T V`` from their known items ``x``.

Rating prediction (explicit feedback), RMSE and MAE on the same test ratings:

- ``global_mean``: the training mean rating.
- ``bias``: the baseline predictor ``mu + b_u + b_i`` of Koren (2008), fitted by regularised alternating least
  squares.
- ``svd``: ``bias`` plus a truncated SVD (scikit-learn ``TruncatedSVD``) of the training residuals, missing entries
  read as zero (the classical "SVD on the residual matrix" baseline).

Written here rather than taken from a recommender library because each is a few lines over scipy/scikit-learn, and
the point is that they are scored by the very same evaluation code as the models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recipezoo.core.errors import ConfigError
from recipezoo.recsys import metrics as M

log = logging.getLogger(__name__)

RANKING = ("popularity", "itemknn", "svd")
RATING = ("global_mean", "bias", "svd")


def _profiles(seen: torch.Tensor, n_cols: int) -> Any:
    """The padded item lists ``(B, S)`` as a binary scipy CSR matrix ``(B, n_cols)``."""
    from scipy.sparse import csr_matrix

    s = seen.numpy()
    rows, cols = np.nonzero(s > 0)
    return csr_matrix((np.ones(len(rows), np.float32), (rows, s[rows, cols])), shape=(s.shape[0], n_cols))


def item_knn_similarity(x: Any, neighbors: int = 100, block: int = 1024) -> Any:
    """Cosine item-item similarities of a binary user-item matrix, the top ``neighbors`` per item kept (sparse).

    Returns:
        A CSR matrix ``S`` ``(n_items, n_items)`` with ``S[j, i]`` the similarity of item i to the user's item j
        (no self-similarity), so a user's scores are ``profile @ S``.
    """
    from scipy.sparse import csr_matrix, diags

    x = x.tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(x.power(2).sum(0)).ravel())
    xn = (x @ diags(1.0 / np.maximum(norms, 1e-12))).tocsc()
    xt = xn.T.tocsr()
    n = x.shape[1]
    rows, cols, vals = [], [], []
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        sims = (xt @ xn[:, b0:b1]).toarray()  # (n, B): similarity of every item to the block's items
        sims[np.arange(b0, b1), np.arange(b1 - b0)] = 0.0
        k = min(neighbors, n - 1)
        if k <= 0:
            continue
        top = np.argpartition(-sims, k - 1, axis=0)[:k]  # (k, B)
        v = np.take_along_axis(sims, top, 0)
        keep = v > 0
        rows.append(top[keep])
        cols.append(np.broadcast_to(np.arange(b0, b1), top.shape)[keep])
        vals.append(v[keep])
    if not rows:
        return csr_matrix((n, n), dtype=np.float32)
    return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


class _Scorer:
    """A baseline's scores for a batch of users as the two functions rank_targets needs."""

    def __init__(self, dense: torch.Tensor) -> None:
        self.dense = dense  # (B, n_items + 1)

    def score_range(self, start: int, end: int) -> torch.Tensor:
        return self.dense[:, start:end]

    def score_items(self, items: torch.Tensor) -> torch.Tensor:
        return self.dense.gather(1, items)


def _evaluate_ranking(
    datamodule: Any, split: str, scores_for: Any, excluded: torch.Tensor, pct: torch.Tensor, ks: Sequence[int]
) -> dict[str, float]:
    n_cols = len(excluded)
    metric = M.RankingMetrics(n_cols, ks, sync_on_compute=False)  # baselines run in one process (rank 0 under DDP)
    metric.set_popularity(pct, int((~excluded).sum()))
    for batch in datamodule.eval_dataloader(split):
        scorer = _Scorer(scores_for(batch, n_cols))
        ranks, top, _ = M.rank_targets(
            scorer.score_range,
            scorer.score_items,
            n_cols,
            batch["targets"],
            batch["seen"],
            excluded,
            max(ks),
            chunk=n_cols,
        )
        sampled = None
        if "negatives" in batch:
            sampled = (
                scorer.score_items(batch["targets"]).masked_fill(excluded[batch["targets"]], float("-inf")),
                scorer.score_items(batch["negatives"]).masked_fill(excluded[batch["negatives"]], float("-inf")),
            )
        metric.update(ranks, batch["targets"], top, sampled)
    return {f"{split}/{k}": v for k, v in metric.compute().items()}


def ranking(
    datamodule: Any,
    methods: Sequence[str] = RANKING,
    ks: Sequence[int] = (10, 20),
    neighbors: int = 100,
    factors: int = 64,
    seed: int = 0,
    split: str = "test",
) -> dict[str, Any]:
    """Fit each ranking baseline on the training split and score it on ``split`` with the models' metrics.

    Returns:
        ``{"name", "methods": {method: {"params", "fit_time_s", "eval_time_s", "test": {...}}}, "test": {...}}``
        where the flat ``test`` dict names each metric ``<method>/test/<metric>``.
    """
    unknown = [m for m in methods if m not in RANKING]
    if unknown:
        raise ConfigError(f"unknown ranking baseline(s) {unknown}; choose from {', '.join(RANKING)}.")
    if datamodule.feedback != "implicit":
        raise ConfigError("ranking baselines need implicit-feedback data; use the rating baselines for ratings.")
    x = datamodule.train_matrix(binary=True)
    counts = torch.from_numpy(datamodule.popularity()).float()
    excluded = counts <= 0
    excluded[0] = True
    pct = M.popularity_percentiles(counts)
    out: dict[str, Any] = {"name": "+".join(methods), "methods": {}, "test": {}}
    for method in methods:
        start = time.perf_counter()
        params: dict[str, Any] = {}
        if method == "popularity":

            def scores_for(batch: dict, n: int, c: torch.Tensor = counts) -> torch.Tensor:
                return c.unsqueeze(0).expand(batch["targets"].shape[0], -1)

        elif method == "itemknn":
            params = {"neighbors": neighbors, "similarity": "cosine"}
            sim = item_knn_similarity(x, neighbors)

            def scores_for(batch: dict, n: int, s: Any = sim) -> torch.Tensor:
                return torch.from_numpy(np.asarray((_profiles(batch["seen"], n) @ s).todense(), dtype=np.float32))

        else:
            from sklearn.decomposition import TruncatedSVD

            f = max(1, min(factors, min(x.shape) - 1))
            params = {"factors": f, "implementation": "sklearn.decomposition.TruncatedSVD (randomized)"}
            v = TruncatedSVD(f, random_state=seed).fit(x).components_.astype(np.float32)  # (f, n_items + 1)

            def scores_for(batch: dict, n: int, v: np.ndarray = v) -> torch.Tensor:
                return torch.from_numpy(np.asarray((_profiles(batch["seen"], n) @ v.T) @ v, dtype=np.float32))

        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        metrics = _evaluate_ranking(datamodule, split, scores_for, excluded, pct, ks)
        out["methods"][method] = {
            "params": params,
            "fit_time_s": round(fit_time, 2),
            "eval_time_s": round(time.perf_counter() - start, 2),
            split: metrics,
        }
        out["test"].update({f"{method}/{k}": v for k, v in metrics.items() if not k.endswith("/users")})
    return out


def _bias_fit(
    users: np.ndarray,
    items: np.ndarray,
    r: np.ndarray,
    n_users: int,
    n_items: int,
    reg_item: float = 25.0,
    reg_user: float = 10.0,
    iterations: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Koren's baseline predictor by alternating regularised least squares."""
    mu = float(r.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n_i = np.bincount(items, minlength=n_items)
    n_u = np.bincount(users, minlength=n_users)
    for _ in range(iterations):
        bi = np.bincount(items, weights=r - mu - bu[users], minlength=n_items) / (reg_item + n_i)
        bu = np.bincount(users, weights=r - mu - bi[items], minlength=n_users) / (reg_user + n_u)
    bu[0] = bi[0] = 0.0  # unknown users and items
    return mu, bu, bi


def rating(
    datamodule: Any,
    methods: Sequence[str] = RATING,
    factors: int = 50,
    seed: int = 0,
    split: str = "test",
) -> dict[str, Any]:
    """Fit each rating baseline on the training ratings and report RMSE / MAE on ``split`` (clipped like the model).

    Returns:
        As :func:`ranking`: ``methods`` with per-method details, and a flat ``test`` dict of ``<method>/test/rmse``...
    """
    unknown = [m for m in methods if m not in RATING]
    if unknown:
        raise ConfigError(f"unknown rating baseline(s) {unknown}; choose from {', '.join(RATING)}.")
    if datamodule.feedback != "explicit":
        raise ConfigError("rating baselines need explicit ratings (data.feedback=explicit).")
    datamodule.setup()
    t = datamodule._train
    ev = datamodule._eval[split]
    n_u, n_i = datamodule.n_users + 1, datamodule.n_items + 1
    lo, hi = datamodule.rating_stats["min"], datamodule.rating_stats["max"]
    out: dict[str, Any] = {"name": "+".join(methods), "methods": {}, "test": {}}
    for method in methods:
        start = time.perf_counter()
        params: dict[str, Any] = {}
        if method == "global_mean":
            pred = np.full(len(ev["user"]), float(t["rating"].mean()))
        else:
            mu, bu, bi = _bias_fit(t["user"], t["item"], t["rating"], n_u, n_i)
            params = {"reg_item": 25.0, "reg_user": 10.0}
            pred = mu + bu[ev["user"]] + bi[ev["item"]]
            if method == "svd":
                from scipy.sparse import csr_matrix
                from sklearn.decomposition import TruncatedSVD

                resid = t["rating"] - (mu + bu[t["user"]] + bi[t["item"]])
                r = csr_matrix((resid, (t["user"], t["item"])), shape=(n_u, n_i))
                f = max(1, min(factors, min(r.shape) - 1))
                svd = TruncatedSVD(f, random_state=seed)
                user_f = svd.fit_transform(r)  # (n_users + 1, f) = U * S
                pred = pred + np.einsum("nf,fn->n", user_f[ev["user"]], svd.components_[:, ev["item"]])
                params.update({"factors": f, "implementation": "sklearn.decomposition.TruncatedSVD (randomized)"})
        pred = np.clip(pred, lo, hi)
        err = pred - ev["rating"]
        metrics = {f"{split}/rmse": float(np.sqrt(np.mean(err**2))), f"{split}/mae": float(np.mean(np.abs(err)))}
        out["methods"][method] = {"params": params, "fit_time_s": round(time.perf_counter() - start, 2), split: metrics}
        out["test"].update({f"{method}/{k}": v for k, v in metrics.items()})
    return out
