"""Recommendation prediction: top-K items for users, or scores for (user, item) pairs, into a CSV.

``ckpt`` is a ``.ckpt`` (eager PyTorch) or an export folder (ONNX through :mod:`recipezoo.runtime.recsys`, the code a
torch-free deployment runs; or TorchScript). All three go through the same serving logic
(:class:`~recipezoo.runtime.recsys.RecommenderCore`): the user's known items are excluded, unknown users are served
from the history or side features given for them, else by popularity, and each row says which (``source``).

``input`` is:

- a table (CSV / TSV / Parquet / JSON lines) with the training's user column: one top-K list per row. Optional
  columns: ``history`` (item ids separated by spaces, ``|``, ``;`` or commas, oldest first: the items of a new user,
  or extra items of a known one) and the user side-feature columns the model was trained with (for new users);
- a table with the training's user *and* item columns: one score per row (the predicted rating for rating models);
- a ``.txt`` file with one user id per line.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import ConfigError, DataError, new_output_file
from recipezoo.runtime.recsys import BundleRecommender, RecommenderCore, read_ids, split_history

log = logging.getLogger("recipezoo")

TASKS = ("recommendation",)


class TorchBackend:
    """Scores with a trained :class:`~recipezoo.recsys.task.Recommender` (eager PyTorch, CPU)."""

    def __init__(self, module: Any) -> None:
        import torch

        self.torch = torch
        self.module = module.eval()
        self.net = module.net
        self.n_items = module.n_items
        self.scale = 1.0 / getattr(self.net, "temperature", 1.0)
        self._items = None
        if self.net.kind == "dot":
            with torch.no_grad():
                idx = torch.arange(self.n_items + 1)
                self._items = torch.cat([self.net.item_vectors(c) for c in idx.split(65536)])

    def _query(self, query: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in query.items()}

    def score_all(self, query: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            q = self._query(query)
            if self._items is not None:
                return ((self.net.user_vectors(**q) @ self._items.T) * self.scale).float().numpy()
            b = len(next(iter(q.values())))
            out = []
            per = max(1, 65536 // max(b, 1))
            for start in range(0, self.n_items + 1, per):
                items = torch.arange(start, min(self.n_items + 1, start + per)).unsqueeze(0).expand(b, -1)
                out.append(self.net.score(q, items).float())
            return torch.cat(out, 1).numpy()

    def score_pairs(self, query: dict[str, np.ndarray], items: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            q = self._query(query)
            item = torch.from_numpy(np.asarray(items, dtype=np.int64)).unsqueeze(1)
            return self.net.score(q, item).squeeze(1).float().numpy()


class TorchScriptBackend:
    """Scores with a TorchScript bundle: the user tower against ``item_embeddings.npy``, or the pair scorer."""

    def __init__(self, bundle: Path, metadata: dict[str, Any]) -> None:
        import torch

        self.torch = torch
        self.kind = metadata.get("kind", "dot")
        self.scorer = torch.jit.load(str(bundle / metadata["model_file"]), map_location="cpu").eval()
        self.scorer_inputs = list(metadata["inputs"])
        self.n_items = int(metadata["n_items"])
        if self.kind == "dot":
            tower = metadata["parts"]["user_tower"]
            self.tower = torch.jit.load(str(bundle / tower["model_file"]), map_location="cpu").eval()
            self.tower_inputs = list(tower["inputs"])
            items = np.load(bundle / "item_embeddings.npy")
            self.items = torch.from_numpy(np.vstack([np.zeros((1, items.shape[1]), items.dtype), items]))
            self.scale = float(metadata.get("score_scale", 1.0))

    def score_all(self, query: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            if self.kind == "dot":
                uv = self.tower(*[torch.from_numpy(query[n]) for n in self.tower_inputs])
                return ((uv @ self.items.T) * self.scale).numpy()
            b = len(next(iter(query.values())))
            out = np.empty((b, self.n_items + 1), dtype=np.float32)
            per = max(1, 65536 // max(b, 1))
            for start in range(0, self.n_items + 1, per):
                items = np.arange(start, min(self.n_items + 1, start + per), dtype=np.int64)
                m = len(items)
                args = [
                    torch.from_numpy(np.repeat(query[n], m, axis=0))
                    if n != "item"
                    else torch.from_numpy(np.tile(items, b))
                    for n in self.scorer_inputs
                ]
                out[:, start : start + m] = self.scorer(*args).numpy().reshape(b, m)
            return out

    def score_pairs(self, query: dict[str, np.ndarray], items: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            args = [
                torch.from_numpy(np.asarray(items, dtype=np.int64)) if n == "item" else torch.from_numpy(query[n])
                for n in self.scorer_inputs
            ]
            return self.scorer(*args).numpy()


def load_recommender(ckpt: str | Path | Loaded) -> RecommenderCore:
    """A ready-to-serve recommender from a checkpoint or an export bundle (ONNX or TorchScript)."""
    loaded = load(ckpt, TASKS)
    if loaded.is_checkpoint:
        module = loaded.module
        files = module.files
        if "user_ids.txt" not in files:
            raise ConfigError(
                f"{loaded.path} carries no id maps (user_ids.txt); it was not trained by a recommendation recipe."
            )
        metadata = module.export_metadata() if hasattr(module, "export_metadata") else {}
        data = np.load(io.BytesIO(files["interactions.npz"]))
        features = None
        net = module.net
        if "user_num" in net.user_inputs or "user_cat" in net.user_inputs:
            features = {"user_num": net.user_num.numpy(), "user_cat": net.user_cat.numpy()}

        def text(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        return RecommenderCore(
            metadata,
            text(files["user_ids.txt"]).split("\n")[:-1],
            text(files["item_ids.txt"]).split("\n")[:-1],
            {k: data[k] for k in ("indptr", "items", "popularity")},
            TorchBackend(module),
            features,
        )
    bundle, metadata = loaded.bundle, dict(loaded.metadata)
    if loaded.format == "onnx":
        return BundleRecommender(bundle)
    metadata["_bundle_dir"] = str(bundle)
    data = np.load(bundle / "interactions.npz")
    features = dict(np.load(bundle / "user_features.npz")) if (bundle / "user_features.npz").is_file() else None
    return RecommenderCore(
        metadata,
        read_ids(bundle / "user_ids.txt"),
        read_ids(bundle / "item_ids.txt"),
        {k: data[k] for k in ("indptr", "items", "popularity")},
        TorchScriptBackend(bundle, metadata),
        features,
    )


def read_requests(path: str | Path, user_column: str, item_column: str) -> tuple[Any, str]:
    """The input table and its mode: ``topk`` (users) or ``pairs`` (users and items)."""
    import pandas as pd

    from recipezoo.recsys.readers import read_table

    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(
            f"input not found: {p}. Pass input=<table with a '{user_column}' column, or a .txt of user ids>."
        )
    if p.suffix.lower() == ".txt":
        users = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not users:
            raise DataError(f"{p} lists no user ids.")
        return pd.DataFrame({user_column: users}, dtype=object), "topk"
    frame = read_table(p, "input", str_columns=[user_column, item_column])
    if user_column not in frame.columns:
        from recipezoo.core.errors import close_matches

        raise DataError(
            f"input {p} has no '{user_column}' column (the user column the model was trained with); its columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}.{close_matches(user_column, [str(c) for c in frame.columns])}"
        )
    return frame, ("pairs" if item_column in frame.columns else "topk")


def recommend_table(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "recommendations.csv",
    k: int = 10,
    batch_size: int = 256,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Write ``user,rank,item,score,source`` rows (top-``k`` per user) or ``user,item,score,source`` rows (pairs).

    Returns the rows written.
    """
    import pandas as pd

    out = new_output_file(output, overwrite)
    if int(k) < 1:
        raise ConfigError(f"k must be at least 1, got {k}.")
    rec = load_recommender(ckpt)
    pp = rec.metadata.get("preprocessing") or {}
    user_column, item_column = pp.get("user_column") or "user", pp.get("item_column") or "item"
    frame, mode = read_requests(input, user_column, item_column)
    users = frame[user_column].tolist()
    if mode == "pairs":
        scores, source = rec.score_pairs(users, frame[item_column].tolist(), batch_size=max(1, int(batch_size)))
        table = pd.DataFrame({user_column: users, item_column: frame[item_column].tolist(), "score": scores})
        table["source"] = source
    else:
        histories = [split_history(h) for h in frame["history"].tolist()] if "history" in frame.columns else None
        lists = rec.recommend(users, int(k), histories=histories, features=frame, batch_size=max(1, int(batch_size)))
        rows = [
            (user, rank, item, score, source)
            for user, recs in zip(users, lists)
            for rank, (item, score, source) in enumerate(recs, 1)
        ]
        table = pd.DataFrame(rows, columns=[user_column, "rank", item_column, "score", "source"])
        counts = pd.Series([r[0][2] if r else "none" for r in lists]).value_counts().to_dict()
        log.info("Served %d user(s): %s", len(users), ", ".join(f"{v} by {k_}" for k_, v in counts.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    log.info("Wrote %d row(s) to %s", len(table), out)
    return table.to_dict("records")
