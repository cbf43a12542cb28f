"""Top-K recommendation from an exported bundle with numpy and onnxruntime alone (no torch, no pandas).

This file is copied into every ONNX recommendation bundle as ``loader.py``, so a bundle recommends on a machine
without recipezoo::

    from loader import BundleRecommender              # or: from recipezoo.runtime.recsys import ...
    rec = BundleRecommender("path/to/bundle")
    rec.recommend(["42", "7"], k=10)                   # one list of (item id, score, source) per user
    rec.recommend(["new-user"], histories=[["1", "50", "260"]])   # an unknown user with a few items

or from the shell: ``python loader.py path/to/bundle users.csv [k]`` (a CSV with the training's user column, or a
plain list of user ids; prints ``user,rank,item,score,source``).

What a bundle holds (see ``metadata.json``): ``user_ids.txt`` / ``item_ids.txt`` (the id maps: line i is index
i + 1; index 0 is "unknown"), ``interactions.npz`` (every known user's items in time order, ``indptr``/``items``, and
the training ``popularity`` of each item), the exported graphs, and for dot-product models ``item_embeddings.npy``
(one row per line of ``item_ids.txt``: the vectors to put in an ANN index) and ``user_embeddings.npy`` (one row per
line of ``user_ids.txt``); the inner product of a user row and an item row is the model's score.

How a user is served (the ``source`` of each recommendation):

- ``model``: a known user; the items they interacted with are never recommended again.
- ``history``: an unknown user with items given (``histories``), for models that read a user's items (SASRec, the
  two-tower with history): the model runs on those items.
- ``features``: an unknown user with side features given, for models with user features (two-tower).
- ``popularity``: anyone else (an unknown user the model cannot represent): the most popular training items.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_log = logging.getLogger(__name__)

SOURCES = ("model", "history", "features", "popularity")
_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")
MISSING_IDS = frozenset({"", "nan", "none", "null", "na", "n/a", "<na>", "nat"})


TASKS = ("recommendation",)  # the tasks this loader serves (metadata.json's "task")


class BundleError(ValueError):
    """A path this loader cannot serve: missing, not an export folder, another task's bundle, a damaged bundle."""


def read_metadata(
    bundle: str | Path, tasks: Sequence[str] = TASKS, required: Sequence[str] = (), files: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``metadata.json`` of an ONNX bundle folder, checked before anything is opened.

    Args:
        bundle: the folder ``scripts/export.py`` wrote.
        tasks: the tasks this loader serves (a bundle whose metadata names no task is accepted).
        required: metadata keys the caller reads.
        files: files the caller reads besides the model file.

    Raises:
        BundleError: one line saying what ``bundle`` is instead (missing, a file, a folder without metadata.json,
            another task's or format's bundle, a bundle missing a file) and what to pass.
    """
    p = Path(bundle).expanduser()
    export = "pass the folder scripts/export.py wrote (it holds metadata.json and model.onnx)"
    if not p.exists():
        raise BundleError(f"{p} not found; {export}.")
    if p.is_file():
        if (p.parent / "metadata.json").is_file():
            raise BundleError(f"{p} is a file; pass the bundle folder that holds it: {p.parent}")
        if p.suffix == ".ckpt":
            raise BundleError(
                f"{p} is a checkpoint, not an export bundle; export it first (scripts/export.py ckpt={p} "
                "format=onnx) or predict from it with scripts/predict.py."
            )
        raise BundleError(f"{p} is a file, not a bundle folder; {export}.")
    meta_file = p / "metadata.json"
    if not meta_file.is_file():
        inner = sorted(p.glob("*/metadata.json")) + sorted(p.glob("export/*/metadata.json"))
        hint = f"; the bundle inside it is {inner[0].parent}" if inner else f"; {export}"
        raise BundleError(f"{p} holds no metadata.json, so it is not an export bundle{hint}.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(
            f"{meta_file} is damaged ({type(e).__name__}); copy the bundle again or re-export it."
        ) from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_file} holds no bundle metadata; {export}.")
    task, fmt = meta.get("task"), meta.get("format", "onnx")
    if task is not None and task not in tasks:
        own = p / "loader.py"
        where = f": python {own} ..." if own.is_file() else " (scripts/predict.py reads every task's bundle)"
        raise BundleError(
            f"{p} holds a model for '{task}', not {' or '.join(tasks)}; use that bundle's own loader{where}"
        )
    if fmt != "onnx":
        raise BundleError(
            f"{p} is a {fmt} bundle; this loader runs ONNX bundles (export with format=onnx, or predict from this "
            "one with scripts/predict.py)."
        )
    missing = [k for k in ("model_file", *required) if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_file} lacks {', '.join(missing)}: a bundle of another recipezoo version? Re-export it."
        )
    absent = [f for f in (meta["model_file"], *files) if not (p / f).is_file()]
    if absent:
        raise BundleError(f"{p} lacks {', '.join(absent)}: copy the whole folder that scripts/export.py wrote.")
    return meta


def open_session(path: str | Path, providers: Sequence[str]) -> Any:
    """An onnxruntime session on ``path`` (warnings off); a file onnxruntime cannot read raises :class:`BundleError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=list(providers))
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) live in a private module
        text = (str(e).strip().splitlines() or [""])[0]
        reason = text if 0 < len(text) <= 160 else type(e).__name__
        raise BundleError(
            f"cannot open {path} with onnxruntime ({reason}); copy the bundle again or re-export it."
        ) from None


def canonical_id(value: Any) -> str | None:
    """The id a raw value stands for, as text; None when missing.

    Ids are compared as text, so string ids and integers beyond 64 bits are exact. Numbers lose a zero fraction
    (``12``, ``12.0`` and ``"12.0"`` are the id ``"12"``: a column of integer ids with a missing value is read as
    floats), surrounding spaces are dropped, and anything else is kept as written (``"007"`` stays ``"007"``).
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    s = str(value).strip()
    if s.lower() in MISSING_IDS:
        return None
    if _INTEGRAL.match(s):
        s = s.split(".", 1)[0].lstrip("+")
    return s


def read_ids(path: str | Path) -> list[str]:
    """An id-map file: one id per line, line i holding index i + 1."""
    text = Path(path).read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best columns in descending score order (``-inf`` columns last): ``(idx, scores)``."""
    k = min(k, scores.shape[1])
    part = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    )
    vals = np.take_along_axis(scores, part, 1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)


class RecommenderCore:
    """Serving logic shared by checkpoints and bundles: id maps, seen items, cold start, top-K.

    The scoring itself is delegated to a backend with ``score_all(query) -> (B, n_items + 1)`` and
    ``score_pairs(query, items) -> (B,)``, where ``query`` holds numpy arrays named as the model's ``user_inputs``.

    Args:
        metadata: the bundle's metadata (or the same facts from a checkpoint): ``user_inputs``, ``history_len``,
            ``mask_cold_items``, ``rating_range``, ``preprocessing``.
        user_ids: the user id map (index i + 1 at position i).
        item_ids: the item id map.
        interactions: ``indptr``, ``items`` (each known user's items, time order) and ``popularity``.
        backend: the scorer.
        user_features: known users' preprocessed ``user_num`` / ``user_cat`` arrays, when the model has them.
    """

    def __init__(
        self,
        metadata: Mapping[str, Any],
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        interactions: Mapping[str, np.ndarray],
        backend: Any,
        user_features: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.metadata = dict(metadata)
        self.user_ids, self.item_ids = list(user_ids), list(item_ids)
        self.user_index = {u: i + 1 for i, u in enumerate(self.user_ids)}
        self.item_index = {v: i + 1 for i, v in enumerate(self.item_ids)}
        self.indptr = np.asarray(interactions["indptr"], dtype=np.int64)
        self.items = np.asarray(interactions["items"], dtype=np.int64)
        self.popularity = np.asarray(interactions["popularity"], dtype=np.float64)
        self.backend = backend
        self.user_inputs = list(self.metadata.get("user_inputs") or ["user"])
        self.history_len = int(self.metadata.get("history_len") or 0)
        self.n_items = len(self.item_ids)
        # Items nobody can be recommended: padding, and for id-only models items never seen in training.
        self.excluded = np.zeros(self.n_items + 1, dtype=bool)
        self.excluded[0] = True
        if self.metadata.get("mask_cold_items"):
            self.excluded |= self.popularity <= 0
        self.user_features = dict(user_features or {})
        pp = self.metadata.get("preprocessing") or {}
        self.user_preprocessing = (pp.get("user_features") or {}).get("tabular")
        self._user_pre: Any = None
        order = np.argsort(-self.popularity[1:], kind="stable") + 1
        self.popular = order[~self.excluded[order]]
        self.last_unknown_items = 0

    # -- ids and histories ------------------------------------------------------------------------------------
    def user_idx(self, user: Any) -> int:
        key = canonical_id(user)
        return self.user_index.get(key, 0) if key is not None else 0

    def item_idx(self, item: Any) -> int:
        key = canonical_id(item)
        return self.item_index.get(key, 0) if key is not None else 0

    def known_items(self, u: int) -> np.ndarray:
        """The items user index ``u`` interacted with (time order); empty for unknown users."""
        if u <= 0 or u + 1 >= len(self.indptr):
            return np.zeros(0, dtype=np.int64)
        return self.items[self.indptr[u] : self.indptr[u + 1]]

    def _history_array(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), max(1, self.history_len)), dtype=np.int64)
        for r, h in enumerate(histories):
            h = h[-out.shape[1] :]
            if len(h):
                out[r, -len(h) :] = h
        return out

    def _map_items(self, items: Iterable[Any]) -> np.ndarray:
        idx = [self.item_idx(v) for v in items]
        unknown = sum(1 for i in idx if i == 0)
        self.last_unknown_items += unknown
        return np.asarray([i for i in idx if i > 0], dtype=np.int64)

    def _user_feature_rows(self, features: Any, rows: Sequence[int]) -> dict[str, np.ndarray] | None:
        """Preprocessed side features for the given rows of ``features`` (raw columns), or None when unusable.

        ``"given"`` says, per row, whether any feature value is present (a row of empty cells has no features).
        """
        if features is None or not self.user_preprocessing:
            return None
        if self._user_pre is None:
            try:
                from recipezoo.runtime.tabular import TabularPreprocessor
            except ImportError:  # a bundle carries its copy of the tabular runtime as tabular.py
                bundle_dir = self.metadata.get("_bundle_dir")
                if bundle_dir and bundle_dir not in sys.path:
                    sys.path.insert(0, bundle_dir)
                from tabular import TabularPreprocessor  # type: ignore[no-redef]
            self._user_pre = TabularPreprocessor.from_dict(self.user_preprocessing)
        wanted = self._user_pre.input_columns
        if not all(_has(features, c) for c in wanted):
            return None
        sub = {c: [np.asarray(features[c], dtype=object)[r] for r in rows] for c in wanted}
        given = np.zeros(len(rows), dtype=bool)
        for values in sub.values():
            given |= np.asarray([canonical_id(v) is not None for v in values], dtype=bool)
        x_num, x_cat = self._user_pre.transform(sub)
        return {"user_num": x_num.astype(np.float32), "user_cat": x_cat.astype(np.int64), "given": given}

    # -- recommending -----------------------------------------------------------------------------------------
    def plan(
        self, users: Sequence[Any], histories: Sequence[Sequence[Any]] | None = None, features: Any = None
    ) -> tuple[list[int], list[np.ndarray], list[str], dict[str, np.ndarray] | None]:
        """User indices, histories (known + given items), and the source each user will be served by."""
        idx = [self.user_idx(u) for u in users]
        given = [self._map_items(h) for h in histories] if histories is not None else [np.zeros(0, np.int64)] * len(idx)
        hist = [np.concatenate([self.known_items(u), g]) for u, g in zip(idx, given)]
        cold_rows = [r for r, u in enumerate(idx) if u == 0]
        feats = self._user_feature_rows(features, cold_rows) if cold_rows else None
        reads_history = "history" in self.user_inputs
        has_features = "user_num" in self.user_inputs or "user_cat" in self.user_inputs
        sources = []
        for r, u in enumerate(idx):
            if u > 0:
                sources.append("model")
            elif has_features and feats is not None and feats["given"][cold_rows.index(r)]:
                sources.append("features")
            elif reads_history and len(hist[r]):
                sources.append("history")
            else:
                sources.append("popularity")
        return idx, hist, sources, feats

    def _query(
        self,
        idx: list[int],
        hist: list[np.ndarray],
        rows: list[int],
        feats: dict[str, np.ndarray] | None,
        cold_rows: list[int],
    ) -> dict[str, np.ndarray]:
        query: dict[str, np.ndarray] = {}
        if "user" in self.user_inputs:
            query["user"] = np.asarray([idx[r] for r in rows], dtype=np.int64)
        if "history" in self.user_inputs:
            query["history"] = self._history_array([hist[r] for r in rows])
        for name in ("user_num", "user_cat"):
            if name not in self.user_inputs:
                continue
            known = self.user_features.get(name)
            width = known.shape[1] if known is not None else 0
            dtype = np.float32 if name == "user_num" else np.int64
            block = np.zeros((len(rows), width), dtype=dtype)
            for j, r in enumerate(rows):
                if idx[r] > 0 and known is not None:
                    block[j] = known[idx[r]]
                elif feats is not None and r in cold_rows:
                    block[j] = feats[name][cold_rows.index(r)]
            query[name] = block
        return query

    def recommend(
        self,
        users: Sequence[Any],
        k: int = 10,
        histories: Sequence[Sequence[Any]] | None = None,
        features: Any = None,
        exclude_seen: bool = True,
        batch_size: int = 256,
    ) -> list[list[tuple[str, float, str]]]:
        """Top-``k`` ``(item id, score, source)`` per user, the user's known (and given) items excluded.

        Args:
            users: raw user ids (unknown ones are served as the class docstring says).
            k: list length.
            histories: per user, extra items they interacted with (oldest first): for unknown users this is their
                whole history; for known users it is added to what training saw.
            features: raw side-feature columns (``features[column][row]``), one row per user, for unknown users of
                models with user features.
            exclude_seen: never recommend an item the user interacted with.
            batch_size: users scored at a time.
        """
        self.last_unknown_items = 0
        idx, hist, sources, feats = self.plan(users, histories, features)
        cold_rows = [r for r, u in enumerate(idx) if u == 0]
        out: list[list[tuple[str, float, str]]] = [[] for _ in idx]
        model_rows = [r for r, s in enumerate(sources) if s != "popularity"]
        for start in range(0, len(model_rows), batch_size):
            rows = model_rows[start : start + batch_size]
            scores = np.asarray(self.backend.score_all(self._query(idx, hist, rows, feats, cold_rows)), np.float64)
            scores = np.where(np.isnan(scores), -np.inf, scores)
            scores[:, self.excluded] = -np.inf
            if exclude_seen:
                for j, r in enumerate(rows):
                    scores[j, hist[r]] = -np.inf
            best, vals = top_k(scores, k)
            for j, r in enumerate(rows):
                out[r] = [
                    (self.item_ids[i - 1], float(v), sources[r]) for i, v in zip(best[j], vals[j]) if np.isfinite(v)
                ]
        for r, s in enumerate(sources):
            if s == "popularity":
                skip = set(hist[r].tolist()) if exclude_seen else set()
                picks = [i for i in self.popular[: k + len(skip)] if i not in skip][:k]
                out[r] = [(self.item_ids[i - 1], float(self.popularity[i]), "popularity") for i in picks]
        if self.last_unknown_items:
            _log.info("%d history item(s) are not in the model's catalogue and were ignored.", self.last_unknown_items)
        return out

    def score_pairs(
        self, users: Sequence[Any], items: Sequence[Any], batch_size: int = 4096
    ) -> tuple[np.ndarray, list[str]]:
        """The model's score for each (user, item) pair (a predicted rating for rating models) and its source.

        Unknown users and items use the "unknown" index 0 (``source`` says ``unknown_user`` / ``unknown_item``); a
        rating model then predicts from the biases it has (e.g. the global mean plus the user's bias).
        """
        u = np.asarray([self.user_idx(x) for x in users], dtype=np.int64)
        i = np.asarray([self.item_idx(x) for x in items], dtype=np.int64)
        hist = [self.known_items(int(x)) for x in u]
        scores = np.zeros(len(u), dtype=np.float64)
        for start in range(0, len(u), batch_size):
            rows = list(range(start, min(len(u), start + batch_size)))
            query = self._query(u.tolist(), hist, rows, None, [])
            scores[rows] = np.asarray(self.backend.score_pairs(query, i[rows]), np.float64).reshape(-1)
        rating_range = self.metadata.get("rating_range")
        if rating_range:
            scores = np.clip(scores, float(rating_range[0]), float(rating_range[1]))
        source = ["unknown_user" if a == 0 else "unknown_item" if b == 0 else "model" for a, b in zip(u, i)]
        return scores, source


def _has(columns: Any, name: str) -> bool:
    try:
        return name in columns
    except TypeError:
        return False


class OnnxBackend:
    """Scores with the bundle's ONNX graphs: the user tower against ``item_embeddings.npy`` for dot-product models,
    the pair-scoring model over the catalogue in chunks otherwise."""

    def __init__(self, bundle: Path, metadata: Mapping[str, Any], providers: Sequence[str]) -> None:
        def session(name: str) -> Any:
            if not (bundle / name).is_file():
                raise BundleError(f"{bundle} lacks {name}: copy the whole folder that scripts/export.py wrote.")
            return open_session(bundle / name, providers)

        self.kind = metadata.get("kind", "dot")
        self.scorer = session(metadata["model_file"])
        self.scorer_inputs = [i.name for i in self.scorer.get_inputs()]
        self.n_items = int(metadata["n_items"])
        self.tower = None
        if self.kind == "dot":
            parts = metadata.get("parts") or {}
            self.tower = session(parts["user_tower"]["model_file"])
            self.tower_inputs = [i.name for i in self.tower.get_inputs()]
            items = np.load(bundle / "item_embeddings.npy")
            self.item_matrix = np.vstack([np.zeros((1, items.shape[1]), items.dtype), items]).astype(np.float32)
            self.scale = float(metadata.get("score_scale", 1.0))
        self.chunk = 65536

    def score_all(self, query: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.kind == "dot":
            uv = self.tower.run(None, {n: query[n] for n in self.tower_inputs})[0]
            return (uv @ self.item_matrix.T) * self.scale
        b = len(next(iter(query.values())))
        out = np.empty((b, self.n_items + 1), dtype=np.float32)
        per = max(1, self.chunk // max(b, 1))
        for start in range(0, self.n_items + 1, per):
            items = np.arange(start, min(self.n_items + 1, start + per), dtype=np.int64)
            m = len(items)
            feed = {n: np.repeat(v, m, axis=0) for n, v in query.items() if n in self.scorer_inputs}
            feed["item"] = np.tile(items, b)
            out[:, start : start + m] = self.scorer.run(None, feed)[0].reshape(b, m)
        return out

    def score_pairs(self, query: Mapping[str, np.ndarray], items: np.ndarray) -> np.ndarray:
        feed = {n: v for n, v in query.items() if n in self.scorer_inputs}
        feed["item"] = np.asarray(items, dtype=np.int64)
        return self.scorer.run(None, feed)[0]


class BundleRecommender(RecommenderCore):
    """An exported recommendation bundle (ONNX): raw user ids in, top-K item ids out.

    Args:
        bundle: the export folder.
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, bundle: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        self.bundle = Path(bundle).expanduser()
        metadata = read_metadata(
            self.bundle, required=("n_items",), files=("interactions.npz", "user_ids.txt", "item_ids.txt")
        )
        metadata["_bundle_dir"] = str(self.bundle)
        data = np.load(self.bundle / "interactions.npz")
        features = None
        if (self.bundle / "user_features.npz").is_file():
            features = dict(np.load(self.bundle / "user_features.npz"))
        super().__init__(
            metadata,
            read_ids(self.bundle / "user_ids.txt"),
            read_ids(self.bundle / "item_ids.txt"),
            {k: data[k] for k in ("indptr", "items", "popularity")},
            OnnxBackend(self.bundle, metadata, providers),
            features,
        )


def read_users(path: str | Path, user_column: str | None) -> tuple[list[str], dict[str, list[str]]]:
    """Users to recommend for: a CSV with the user column (other columns kept as features / a ``history`` column),
    or a plain list of ids, one per line."""
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        return [], {}
    header = next(csv.reader([lines[0]]))
    if user_column and user_column in header:
        rows = list(csv.reader(lines[1:]))
        columns = {h: [r[j] if j < len(r) else "" for r in rows if r] for j, h in enumerate(header)}
        return columns[user_column], columns
    return [line.strip() for line in lines if line.strip()], {}


def split_history(text: str) -> list[str]:
    """A history cell: item ids separated by spaces, ``|``, ``;`` or commas (oldest first)."""
    return [t for t in re.split(r"[\s|;,]+", str(text or "").strip()) if t]


def main(argv: Sequence[str]) -> int:
    """``python loader.py <bundle folder> <users.csv or users.txt> [k]``: the CSV of recommendations on stdout; a bad
    bundle or input ends in one ``error:`` line and status 2."""
    usage = "usage: python loader.py <bundle folder> <users.csv or users.txt> [k]"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) not in (2, 3):
        print(usage, file=sys.stderr)
        return 2
    k = int(argv[2]) if len(argv) == 3 and argv[2].isdigit() else 10 if len(argv) == 2 else 0
    if k < 1:
        print(f"error: k must be a positive whole number of items, got {argv[2]!r}.", file=sys.stderr)
        return 2
    try:
        rec = BundleRecommender(argv[0])
        pp = rec.metadata.get("preprocessing") or {}
        users, columns = read_users(argv[1], pp.get("user_column"))
        histories = [split_history(h) for h in columns["history"]] if "history" in columns else None
        lists = rec.recommend(users, k, histories=histories, features=columns or None)
    except (BundleError, OSError) as e:  # OSError: a missing or unreadable users file
        print(f"error: {e}", file=sys.stderr)
        return 2
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["user", "rank", "item", "score", "source"])
    for user, recs in zip(users, lists):
        for rank, (item, score, source) in enumerate(recs, 1):
            writer.writerow([user, rank, item, f"{score:.6g}", source])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
