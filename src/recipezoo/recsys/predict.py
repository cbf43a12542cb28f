"""Recommendation prediction: top-K items for users, or scores for (user, item) pairs, into a CSV.

``ckpt`` is a ``.ckpt`` (eager PyTorch) or an export folder (ONNX through :mod:`recipezoo.runtime.recsys`, the code a
torch-free deployment runs; or TorchScript). All three go through the same serving logic
(:class:`~recipezoo.runtime.recsys.RecommenderCore`): the user's known items are excluded, unknown users are served
from the history or side features given for them, else by popularity, and each row says which (``source``).

``input`` is:

- a table (CSV / TSV / Parquet / JSON lines) with the training's user column (or one named ``user`` / ``user_id``;
  files that are not UTF-8 are read as Latin-1 unless ``encoding`` says otherwise): one top-K list per row. Optional
  columns: ``history`` (item ids separated by spaces, ``|``, ``;`` or commas, oldest first: the items of a new user,
  or extra items of a known one) and the user side-feature columns the model was trained with (for new users);
- a table with the training's user *and* item columns: one score per row (the predicted rating for rating models);
- a ``.txt`` file with one user id per line.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import ConfigError, DataError, new_output_file
from recipezoo.data import columns as C
from recipezoo.data import tables as T
from recipezoo.recsys.readers import HEADERLESS_NAMES, id_column_candidates, read_table
from recipezoo.runtime.recsys import BundleRecommender, RecommenderCore, read_ids, split_history

log = logging.getLogger("recipezoo")

TASKS = ("recommendation",)
# Besides the trained column name, what a request table may call its user / item column (see request_column).
_PLAIN_NAMES = {"user": [HEADERLESS_NAMES[0], "user_id"], "item": [HEADERLESS_NAMES[1], "item_id"]}


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


def request_column(columns: Sequence[Any], trained: str, role: str) -> str | None:
    """The column of a request table that holds ``role`` ids (``user`` or ``item``); None when there is none.

    The column the model was trained with wins (compared ignoring case, spaces, ``_`` and ``-``); else the role's
    plain name, ``user`` / ``user_id`` (``item`` / ``item_id``): the names a header-less log's columns get, whatever
    the loader named the training log's columns. A model trained on MovieLens' ``u.data`` (read as ``userId``,
    ``movieId``) thus serves a table whose column is ``user``.
    """
    exact = C.find_column(columns, trained, positions=False)
    if exact is not None:
        return str(exact)
    found = C.find_column(columns, candidates=[trained, *_PLAIN_NAMES[role]], match="loose")
    return None if found is None else str(found)


def _read_lines(p: Path, encoding: str) -> list[str]:
    """The non-empty lines of a text file; ``encoding="auto"``: UTF-8, else Latin-1 (as the table reader does)."""
    if encoding != "auto":
        return [line.strip() for line in T.read_text_file(p, encoding).splitlines() if line.strip()]
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # Latin-1 decodes any byte; older id lists often are Latin-1
        text = raw.decode("latin-1")
        log.info("%s is not UTF-8: read as Latin-1.", p.name)
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_requests(
    path: str | Path, user_column: str, item_column: str, encoding: str = "auto"
) -> tuple[Any, str, str, str | None]:
    """The input table, its mode (``topk``: users; ``pairs``: users and items), and its user and item columns.

    Args:
        path: a table with a user column (see :func:`request_column`), or a ``.txt`` with one user id per line.
        user_column: the user column the model was trained with.
        item_column: the item column the model was trained with.
        encoding: the text encoding of the file (``auto``: UTF-8, else Latin-1).

    Raises:
        DataError: a missing file, no user ids, or no user column (the message says which names are accepted).
    """
    import pandas as pd

    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(
            f"input not found: {p}. Pass input=<table with a '{user_column}' column, or a .txt of user ids>."
        )
    if p.suffix.lower() == ".txt":
        users = _read_lines(p, encoding)
        if not users:
            raise DataError(f"{p} lists no user ids.")
        return pd.DataFrame({user_column: users}, dtype=object), "topk", user_column, None
    names = [user_column, item_column, *id_column_candidates()]
    frame = read_table(p, "input", str_columns=names, encoding=encoding)
    user = request_column(frame.columns, user_column, "user")
    if user is None:
        others = [n for n in _PLAIN_NAMES["user"] if C.normalize(n) != C.normalize(user_column)]
        raise DataError(
            f"input {p} has no '{user_column}' column (the user column the model was trained with)"
            f"{' or ' + ' / '.join(others) if others else ''}; its columns are: {C.shown_columns(frame.columns, 30)}. "
            f"Name its user column {user_column} in the header line, or pass a .txt with one user id per line."
            f"{C.separator_hint(list(frame.columns))}"
        )
    item = request_column([c for c in frame.columns if c != user], item_column, "item")
    return frame, ("pairs" if item is not None else "topk"), user, item


def recommend_table(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "recommendations.csv",
    k: int = 10,
    batch_size: int = 256,
    overwrite: bool = False,
    encoding: str = "auto",
) -> list[dict[str, Any]]:
    """Write ``user,rank,item,score,source`` rows (top-``k`` per user) or ``user,item,score,source`` rows (pairs).

    The output's columns carry the names the model was trained with, whatever the input's user column is called.
    ``encoding`` is the input's text encoding (``auto``: UTF-8, else Latin-1). Returns the rows written.
    """
    import pandas as pd

    out = new_output_file(output, overwrite)
    if int(k) < 1:
        raise ConfigError(f"k must be at least 1, got {k}.")
    rec = load_recommender(ckpt)
    pp = rec.metadata.get("preprocessing") or {}
    user_column, item_column = pp.get("user_column") or "user", pp.get("item_column") or "item"
    frame, mode, user_in, item_in = read_requests(input, user_column, item_column, encoding)
    users = frame[user_in].tolist()
    if mode == "pairs":
        items = frame[item_in].tolist()
        scores, source = rec.score_pairs(users, items, batch_size=max(1, int(batch_size)))
        table = pd.DataFrame({user_column: users, item_column: items, "score": scores})
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
