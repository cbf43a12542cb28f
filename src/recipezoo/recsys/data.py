"""Recommendation data: interaction logs (any table, or MovieLens by name), side-feature tables, splits, id maps.

:class:`InteractionsDataModule` reads a log of (user, item[, rating][, timestamp]) rows, cleans it (missing ids,
duplicates, non-numeric ratings, mixed timestamp formats: each counted and logged, or a one-line error), splits it
without leakage, maps ids to indices fitted on the training split, and serves in-memory batches:

- training, ``train_batches=pairs``: dicts with ``user`` ``(B,)``, ``item`` ``(B,)``, ``rating`` ``(B,)`` (explicit
  feedback), ``history`` ``(B, L)`` (the user's training items *before* this one, when ``history_len > 0``) and
  ``neg`` / ``neg_ok`` ``(B, n)`` (sampled negatives and whether each is a real negative, when ``negatives > 0``);
- training, ``train_batches=sequences``: ``history`` ``(B, L)`` inputs and ``target`` ``(B, L)`` next items (0 =
  padding), one row per user (SASRec);
- evaluation, implicit feedback: one row per user with targets in the split: ``user``, ``history``, ``targets``
  ``(B, T)`` and ``seen`` ``(B, S)`` (items never ranked: training items, plus validation items when testing),
  and ``negatives`` ``(B, n)`` for the sampled protocol when ``sampled_negatives > 0``;
- evaluation, explicit feedback: ``user``, ``item``, ``rating`` rows (ids unseen in training are index 0).

Indices start at 1; 0 is padding and "unknown". The id maps travel in checkpoints and bundles as ``files``
(``user_ids.txt``, ``item_ids.txt``: line i is index i + 1) with ``interactions.npz`` (each known user's items in time
order, and the training popularity of each item), which prediction uses to exclude seen items and to fall back on
popularity. ``info`` keeps counts and small facts only.

The DataModule composes small stages, each a module of its own and testable alone: reading
(:mod:`~recipezoo.recsys.readers`, over :mod:`recipezoo.data.tables`), cleaning (:mod:`~recipezoo.recsys.cleaning`),
splitting (:mod:`~recipezoo.recsys.splits`, over :mod:`recipezoo.data.splits`), id maps and index structures
(:mod:`~recipezoo.recsys.indexing`), negative sampling (:mod:`~recipezoo.recsys.sampling`), side features and item
texts (:mod:`~recipezoo.recsys.features`) and batches (:mod:`~recipezoo.recsys.datasets`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data.splits import SPLITS, check_split
from recipezoo.recsys.cleaning import (
    DUPLICATES,
    canonical_ids,
    clean_interactions,
    parse_ratings,
    parse_times,
    resolve_columns,
)
from recipezoo.recsys.datasets import Batch, PairRows, RankingRows, RatingRows, SequenceRows, collate, gather_rows
from recipezoo.recsys.features import FeatureColumns, embed_item_texts, encode_table
from recipezoo.recsys.indexing import csr, fit_id_maps, ranking_split, table_keys, time_order, to_indices, training_rows
from recipezoo.recsys.readers import (
    CANDIDATES,
    ML100K_GENRES,
    MOVIELENS,
    MOVIELENS_URL,
    download_movielens,
    id_column_candidates,
    movielens_kind,
    read_movielens,
    read_table,
)
from recipezoo.recsys.sampling import SortedKeys, sample_negatives
from recipezoo.recsys.splits import SPLIT_METHODS, check_evaluable, split_interactions
from recipezoo.recsys.synthetic import _CLUSTER_WORDS, _TITLE_STARTS, make_synthetic
from recipezoo.runtime.recsys import read_ids

log = logging.getLogger(__name__)

FEEDBACK = ("implicit", "explicit")
TRAIN_BATCHES = ("pairs", "sequences")


class InteractionsDataModule(L.LightningDataModule):
    """An interaction log (and optional item / user tables) as recommendation batches; see the module docstring.

    Splits, all computed after cleaning:

    - ``leave_last_out`` (the standard for HR/NDCG): per user, by time, the last interaction is the test target and
      the one before it the validation target; users with two interactions have no validation target, users with
      one are kept in training only (both counted).
    - ``time``: one global cut; the earliest interactions train, the next ``val_fraction`` validate, the latest
      ``test_fraction`` test. Evaluation users without training interactions are counted and skipped (predict
      serves them by popularity).
    - ``random``: a seeded random split of interactions (rating prediction).

    Args:
        path: the interactions file: CSV / TSV / JSON lines / Parquet, or a MovieLens file by name (``u.data``,
            ``ratings.dat``, ``ratings.csv``).
        dataset: a MovieLens release read from (or, with ``download``, fetched into) ``root``: ``ml-100k``,
            ``ml-1m``, ``ml-latest-small``. Its item (and user) table is used when feature columns are configured.
        root: where MovieLens releases live.
        download: download ``dataset`` when it is not in ``root``.
        user_column: the user id column (default: detected among common names such as userId, user_id).
        item_column: the item id column (default: detected: itemId, item_id, movieId, product_id, ...).
        rating_column: the rating column (default: detected; needed for explicit feedback).
        time_column: the timestamp column (default: detected; without one, the file's row order is the time order).
        feedback: ``implicit`` (every interaction is a positive) or ``explicit`` (predict the rating).
        min_rating: implicit feedback from ratings: keep interactions rated at least this as positives.
        duplicates: repeated (user, item) rows: keep the ``last`` or ``first`` (by time), or the ``mean`` / ``max``
            rating (at the last time). Counted and logged.
        min_user_interactions: drop users with fewer interactions (repeated with ``min_item_interactions`` until
            both hold: a k-core).
        min_item_interactions: drop items with fewer interactions.
        split: ``leave_last_out``, ``time`` or ``random``.
        val_fraction: validation share (``time`` and ``random``).
        test_fraction: test share (``time`` and ``random``).
        item_features: an item table (or a MovieLens item file: movies.csv, movies.dat, u.item).
        item_key: its item id column (default: the interactions' item column name, else detected).
        item_categorical_columns: categorical item features.
        item_numeric_columns: numeric item features.
        item_multi_columns: multi-valued item features (``"Action|Comedy"``) encoded multi-hot.
        multi_separator: the separator of multi-valued cells.
        item_text_column: a text column (e.g. a title) embedded by the pretrained ``text_encoder``.
        user_features: a user table (or a MovieLens user file: users.dat, u.user).
        user_key: its user id column (default: the interactions' user column name, else detected).
        user_categorical_columns: categorical user features.
        user_numeric_columns: numeric user features.
        text_encoder: hub id or local folder of the sentence encoder for ``item_text_column``.
        text_pretrained: the encoder's weights (see :func:`recipezoo.core.backbones.hf.load_encoder`).
        text_max_length: tokens per text.
        text_batch_size: texts per encoder pass.
        feature_min_count: categories (and multi-hot tokens) seen fewer times share the out-of-vocabulary slot.
        history_len: items of each user's history in batches (0: none; SASRec's ``max_len``).
        train_batches: ``pairs`` (one row per interaction) or ``sequences`` (one row per user, SASRec).
        sequence_windows: ``random`` (a window ending at a random point of the user's history, each epoch) or
            ``last`` (always the most recent items), for ``train_batches=sequences``.
        negatives: sampled negatives per training row (NCF's pointwise loss, SASRec with BCE); 0 for none.
        sampled_negatives: also evaluate with this many sampled negatives per user (0: full ranking only).
        batch_size: training batch size.
        eval_batch_size: users (or rating rows) per evaluation batch.
        num_workers: DataLoader workers, or ``auto``.
        pin_memory: pin host memory, or ``auto``.
        seed: seed of the random split, of the sampled negatives and of the synthetic twin.
        synthetic: generate the log and tables (see :func:`make_synthetic`) instead of reading files.
        synthetic_users: users of the synthetic twin.
        synthetic_items: items with interactions in the synthetic twin.
        synthetic_cold_items: items of the synthetic item table with no interaction.
        restore_info: a checkpoint's ``data_info`` (with ``files``), as for :meth:`restore`.
    """

    def __init__(
        self,
        path: str | None = None,
        dataset: str | None = None,
        root: str = "data/movielens",
        download: bool = False,
        user_column: str | None = None,
        item_column: str | None = None,
        rating_column: str | None = None,
        time_column: str | None = None,
        feedback: str = "implicit",
        min_rating: float | None = None,
        duplicates: str = "last",
        min_user_interactions: int = 1,
        min_item_interactions: int = 1,
        split: str = "leave_last_out",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        item_features: str | None = None,
        item_key: str | None = None,
        item_categorical_columns: Sequence[str] | None = None,
        item_numeric_columns: Sequence[str] | None = None,
        item_multi_columns: Sequence[str] | None = None,
        multi_separator: str = "|",
        item_text_column: str | None = None,
        user_features: str | None = None,
        user_key: str | None = None,
        user_categorical_columns: Sequence[str] | None = None,
        user_numeric_columns: Sequence[str] | None = None,
        text_encoder: str | None = None,
        text_pretrained: Any = True,
        text_max_length: int = 64,
        text_batch_size: int = 128,
        feature_min_count: int = 2,
        history_len: int = 0,
        train_batches: str = "pairs",
        sequence_windows: str = "random",
        negatives: int = 0,
        sampled_negatives: int = 0,
        batch_size: int = 256,
        eval_batch_size: int = 256,
        num_workers: int | str = 0,
        pin_memory: bool | str = "auto",
        seed: int = 42,
        synthetic: bool = False,
        synthetic_users: int = 300,
        synthetic_items: int = 200,
        synthetic_cold_items: int = 20,
        restore_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path, self.dataset, self.root, self.download = path, dataset, root, bool(download)
        self.user_column, self.item_column = user_column, item_column
        self.rating_column, self.time_column = rating_column, time_column
        self.feedback, self.min_rating, self.duplicates = feedback, min_rating, duplicates
        self.min_user_interactions, self.min_item_interactions = int(min_user_interactions), int(min_item_interactions)
        self.split, self.val_fraction, self.test_fraction = split, float(val_fraction), float(test_fraction)
        self.item_features, self.item_key = item_features, item_key
        self.item_categorical_columns = list(item_categorical_columns or [])
        self.item_numeric_columns = list(item_numeric_columns or [])
        self.item_multi_columns = list(item_multi_columns or [])
        self.multi_separator = str(multi_separator)
        self.item_text_column = item_text_column
        self.user_features, self.user_key = user_features, user_key
        self.user_categorical_columns = list(user_categorical_columns or [])
        self.user_numeric_columns = list(user_numeric_columns or [])
        self.text_encoder, self.text_pretrained = text_encoder, text_pretrained
        self.text_max_length, self.text_batch_size = int(text_max_length), int(text_batch_size)
        self.feature_min_count = int(feature_min_count)
        self.history_len, self.train_batches = int(history_len or 0), train_batches
        self.sequence_windows = sequence_windows
        self.negatives, self.sampled_negatives = int(negatives or 0), int(sampled_negatives or 0)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.seed = int(seed)
        self.synthetic = bool(synthetic)
        self.synthetic_users, self.synthetic_items = int(synthetic_users), int(synthetic_items)
        self.synthetic_cold_items = int(synthetic_cold_items)
        self._check_settings()

        self._restored: dict[str, Any] = {}
        self._ready = False
        self.user_ids: list[str] = []
        self.item_ids: list[str] = []
        self.counts: dict[str, Any] = {}
        self._tables: dict[str, torch.Tensor] | None = None
        self._feature_info: dict[str, Any] = {}
        if restore_info:
            self.restore(restore_info)

    def _check_settings(self) -> None:
        choices = {
            "feedback": (self.feedback, FEEDBACK),
            "duplicates": (self.duplicates, DUPLICATES),
            "split": (self.split, SPLIT_METHODS),
            "train_batches": (self.train_batches, TRAIN_BATCHES),
            "sequence_windows": (self.sequence_windows, ("random", "last")),
        }
        for key, (value, options) in choices.items():
            if value not in options:
                raise ConfigError(
                    f"unknown data.{key} '{value}'; choose one of {', '.join(options)}."
                    + close_matches(str(value), options)
                )
        if self.dataset is not None and self.dataset not in MOVIELENS:
            raise ConfigError(
                f"unknown data.dataset '{self.dataset}'; choose one of {', '.join(MOVIELENS)}, or pass "
                "data.path=<file>."
            )
        if self.split != "leave_last_out" and not (
            0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} must be fractions "
                "above 0 that sum to less than 1 (e.g. 0.1 and 0.1)."
            )
        if min(self.batch_size, self.eval_batch_size) < 1 or self.negatives < 0 or self.sampled_negatives < 0:
            raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1; negatives counts >= 0.")
        if self.history_len < 0:
            raise ConfigError(f"data.history_len must be >= 0, got {self.history_len}.")
        if self.train_batches == "sequences" and self.history_len < 1:
            raise ConfigError("data.train_batches=sequences needs data.history_len >= 1 (the sequence length).")

    # -- checkpoints --------------------------------------------------------------------------------------------
    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt what a checkpoint's data fitted, before ``setup``: the id maps (from ``files``) and the side-feature
        preprocessing, never refitted. An empty ``info`` changes nothing."""
        if not info:
            return
        if OmegaConf.is_config(info):
            info = OmegaConf.to_container(info, resolve=True)
        files = info.get("files") or {}
        if "user_ids.txt" not in files or "item_ids.txt" not in files:
            log.warning("The checkpoint carries no id maps; they are refitted on this data.")
            return

        def text(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        self._restored = {
            "user_ids": _split_lines(text(files["user_ids.txt"])),
            "item_ids": _split_lines(text(files["item_ids.txt"])),
            "preprocessing": info.get("preprocessing") or {},
            "item_text_dim": info.get("item_text_dim"),
        }

    @property
    def restored(self) -> bool:
        return bool(self._restored)

    # -- reading --------------------------------------------------------------------------------------------------
    def describe(self) -> str:
        if self.synthetic:
            return "synthetic interactions"
        return f"interactions {self._interactions_path()}"

    def _release_folder(self) -> Path:
        assert self.dataset is not None
        folder = Path(os.path.expanduser(self.root)) / self.dataset
        if (folder / MOVIELENS[self.dataset]["ratings"]).is_file():
            return folder
        if self.download:
            return download_movielens(self.dataset, self.root, MOVIELENS_URL)
        raise DataError(
            f"MovieLens {self.dataset} not found in {folder}. Pass data.download=true to fetch it, or "
            f"data.path=<its {MOVIELENS[self.dataset]['ratings']}> for a copy you have."
        )

    def _interactions_path(self) -> str:
        if self.path:
            return os.path.expanduser(str(self.path))
        if self.dataset:
            return str(self._release_folder() / MOVIELENS[self.dataset]["ratings"])
        raise ConfigError(
            "no interactions given: pass data.path=<CSV / TSV / Parquet / MovieLens file>, data.dataset=ml-100k "
            "(with data.download=true), or data.synthetic=true to try the recipe on generated interactions."
        )

    def prepare_data(self) -> None:
        if self.dataset and self.download and not self.path and not self.synthetic:
            download_movielens(self.dataset, self.root, MOVIELENS_URL)

    def _load(self) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
        """The interactions, and the item / user tables when feature columns ask for them."""
        wants_items = bool(
            self.item_categorical_columns
            or self.item_numeric_columns
            or self.item_multi_columns
            or self.item_text_column
        )
        wants_users = bool(self.user_categorical_columns or self.user_numeric_columns)
        if self.synthetic:
            frame, items, users = make_synthetic(
                self.synthetic_users, self.synthetic_items, self.synthetic_cold_items, self.seed
            )
            return frame, items if wants_items else None, users if wants_users else None
        path = self._interactions_path()
        id_columns = [c for c in (self.user_column, self.item_column) if c]
        frame = read_table(path, "interactions", str_columns=id_columns or id_column_candidates())
        item_path, user_path = self.item_features, self.user_features
        if self.dataset and not self.path:
            folder = self._release_folder()
            item_path = item_path or (folder / MOVIELENS[self.dataset]["items"] if wants_items else None)
            users_file = MOVIELENS[self.dataset]["users"]
            user_path = user_path or (folder / users_file if wants_users and users_file else None)
        items = users = None
        if item_path and wants_items:
            items = read_table(item_path, "item features", str_columns=[self.item_key or self.item_column or ""])
        elif item_path:
            log.info("data.item_features is set but no item feature column is: the item table is not used.")
        elif wants_items:
            log.info("Item feature columns are set but there is no item table (data.item_features): id features only.")
        if user_path and wants_users:
            users = read_table(user_path, "user features", str_columns=[self.user_key or self.user_column or ""])
        elif wants_users:
            log.info("User feature columns are set but there is no user table (data.user_features): id features only.")
        return frame, items, users

    # -- setup: read -> clean -> split -> index -> features ---------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        raw, item_table, user_table = self._load()
        given = {
            "user": self.user_column,
            "item": self.item_column,
            "rating": self.rating_column,
            "time": self.time_column,
        }
        self.columns = resolve_columns(raw, given, self.feedback, self.min_rating, self.describe())
        frame, self._uniques, self.counts = clean_interactions(
            raw,
            self.columns,
            duplicates=self.duplicates,
            min_rating=self.min_rating,
            min_user_interactions=self.min_user_interactions,
            min_item_interactions=self.min_item_interactions,
            where=self.describe(),
        )
        part, split_counts = split_interactions(
            frame, self.split, self.val_fraction, self.test_fraction, self.seed, self.describe()
        )
        self.counts.update(split_counts)
        per_user = np.bincount(frame["u"]) if len(frame["u"]) else np.zeros(0, np.int64)
        check_evaluable(  # before ids, features and text embeddings are built: a refusal costs a second
            {"interactions": int((part == 2).sum())},
            self.split,
            self.feedback,
            users_with_history=int((per_user >= 2).sum()),
            n_users=int((per_user > 0).sum()),
            what=self.describe(),
            user_column=self.columns.get("user"),
        )
        self._build(frame, part, item_table, user_table)
        self._ready = True

    def _side_keys(self, table: pd.DataFrame | None, role: str) -> tuple[np.ndarray | None, pd.DataFrame | None]:
        if table is None:
            return None, None
        key = self.item_key if role == "item" else self.user_key
        keys, table, dropped = table_keys(table, role, key, self.columns.get(role))
        self.counts[f"{role}_table_rows_dropped"] = dropped
        return keys, table

    def _build(
        self,
        f: dict[str, np.ndarray],
        part: np.ndarray,
        item_table: pd.DataFrame | None,
        user_table: pd.DataFrame | None,
    ) -> None:
        """Id maps, training rows, evaluation structures and side features of the split interactions."""
        train = part == 0
        item_keys, item_table = self._side_keys(item_table, "item")
        user_keys, user_table = self._side_keys(user_table, "user")
        if self._restored:
            self.user_ids = list(self._restored["user_ids"])
            self.item_ids = list(self._restored["item_ids"])
        else:
            self.user_ids, self.item_ids = fit_id_maps(f, train, self._uniques, item_keys)
        self.n_users, self.n_items = len(self.user_ids), len(self.item_ids)
        u = to_indices(f["u"], self._uniques["user"], self.user_ids)
        i = to_indices(f["i"], self._uniques["item"], self.item_ids)
        r, t, o = f["r"], f["t"], f["o"]
        unknown_train = train & ((u == 0) | (i == 0))
        if unknown_train.any():
            log.warning(
                "%d training interaction(s) have a user or item unknown to the checkpoint's id maps: not trained on.",
                int(unknown_train.sum()),
            )
        self.counts["train_unknown_ids"] = int(unknown_train.sum())

        rows = training_rows(u, i, r, t, o, train, self.n_users, self.n_items)
        self._train, self._train_ptr, self._train_items = rows["train"], rows["ptr"], rows["items"]
        self._popularity, self._warm_items = rows["popularity"], rows["warm"]
        if len(self._warm_items) == 0:
            raise DataError(f"{self.describe()}: no training interaction is left to learn from.")
        self._train_keys = SortedKeys(u[rows["rows"]], i[rows["rows"]], self.n_items + 1)
        ratings = r[rows["rows"]]
        self.rating_stats = (
            {"mean": float(ratings.mean()), "min": float(ratings.min()), "max": float(ratings.max())}
            if self.feedback == "explicit"
            else {}
        )

        known = time_order(np.flatnonzero((u > 0) & (i > 0)), u, t, o)
        self._known_ptr, self._known_items = csr(u[known], i[known], self.n_users + 1)
        all_keys = SortedKeys(u[known], i[known], self.n_items + 1)
        self._eval: dict[str, dict[str, Any]] = {}
        self.split_counts: dict[str, Any] = {}
        for name, code in (("train", 0), ("val", 1), ("test", 2)):
            in_split = np.flatnonzero(part == code)
            counts: dict[str, Any] = {"interactions": int(len(in_split))}
            self.split_counts[name] = counts
            if self.feedback == "explicit":
                self._eval[name] = {"user": u[in_split], "item": i[in_split], "rating": r[in_split]}
                counts["unknown_user_rows"] = int((u[in_split] == 0).sum())
                counts["unknown_item_rows"] = int((i[in_split] == 0).sum())
                continue
            self._eval[name], more = ranking_split(name, in_split, u, i, t, o, part)
            counts.update(more)
            users = self._eval[name]["users"]
            if self.sampled_negatives and name != "train" and len(users):
                self._eval[name]["negatives"] = sample_negatives(
                    users,
                    all_keys,
                    self.n_items,
                    self.sampled_negatives,
                    self.seed + (1 if name == "val" else 2),
                    self._known_ptr,
                    self._known_items,
                )
        self._features(item_table, item_keys, user_table, user_keys)
        log.info(
            "%s: %d users, %d items (%d with training interactions), split %s: %s",
            self.describe(),
            self.n_users,
            self.n_items,
            len(self._warm_items),
            self.split,
            "; ".join(
                f"{s} {c['interactions']} interactions" + (f", {c['users']} users evaluated" if "users" in c else "")
                for s, c in self.split_counts.items()
            ),
        )

    # -- side features ------------------------------------------------------------------------------------------
    def _features(
        self,
        items: pd.DataFrame | None,
        item_keys: np.ndarray | None,
        users: pd.DataFrame | None,
        user_keys: np.ndarray | None,
    ) -> None:
        """Fit (or restore) the side-feature preprocessing and build the catalogue's feature arrays."""
        pp = (self._restored.get("preprocessing") or {}) if self._restored else {}
        self._feature_info = {"item": None, "user": None}
        self._item_arrays: dict[str, np.ndarray] = {}
        self._user_arrays: dict[str, np.ndarray] = {}
        self._item_texts: list[str] | None = None
        settings = {"min_count": self.feature_min_count, "multi_separator": self.multi_separator}
        if items is not None and item_keys is not None:
            rows = pd.Index(item_keys).get_indexer(pd.Index(self.item_ids))  # catalogue order; -1 = not in table
            missing = int((rows < 0).sum())
            if missing:
                log.info("%d catalogue item(s) are not in the item table: their features are missing.", missing)
            self.counts["items_without_features"] = missing
            columns = FeatureColumns(
                self.item_categorical_columns, self.item_numeric_columns, self.item_multi_columns, self.item_text_column
            )
            text = {
                "encoder": str(self.text_encoder),
                "max_length": self.text_max_length,
                "dim": (self._restored or {}).get("item_text_dim"),
            }
            info, arrays, texts = encode_table(
                items, rows, "item", columns, pp.get("item_features"), text_settings=text, **settings
            )
            self._feature_info["item"], self._item_arrays, self._item_texts = info, arrays, texts
        if users is not None and user_keys is not None:
            rows = pd.Index(user_keys).get_indexer(pd.Index(self.user_ids))
            self.counts["users_without_features"] = int((rows < 0).sum())
            columns = FeatureColumns(self.user_categorical_columns, self.user_numeric_columns)
            info, arrays, _ = encode_table(users, rows, "user", columns, pp.get("user_features"), **settings)
            self._feature_info["user"], self._user_arrays = info, arrays
        if self._item_texts is not None and not (self._restored and self._restored.get("item_text_dim")):
            self._embed_texts()  # fresh fits need the width now (the model is built from it)

    def _embed_texts(self) -> np.ndarray:
        if self._item_arrays.get("item_text") is not None:
            return self._item_arrays["item_text"]
        assert self._item_texts is not None
        vectors = embed_item_texts(
            self._item_texts, self.text_encoder, self.text_pretrained, self.text_batch_size, self.text_max_length
        )
        self._item_arrays["item_text"] = vectors
        if self._feature_info.get("item") and self._feature_info["item"].get("text"):
            self._feature_info["item"]["text"]["dim"] = int(vectors.shape[1])
        return vectors

    def feature_tables(self) -> dict[str, torch.Tensor]:
        """The catalogue's item features and the known users' features (row 0 = padding), and item popularity.

        Keys: ``item_num``, ``item_cat``, ``item_text``, ``item_warm`` (has training interactions), ``user_num``,
        ``user_cat``, ``popularity``; feature keys only when configured. Text embeddings are computed here on
        first use when setup did not need them (a restored run).
        """
        self.setup()
        if self._tables is not None:
            return self._tables

        def padded(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([np.zeros((1, *a.shape[1:]), a.dtype), a]))

        tables: dict[str, torch.Tensor] = {
            "popularity": torch.from_numpy(self._popularity.copy()),
            "item_warm": torch.from_numpy(self._popularity > 0),
        }
        if self._item_texts is not None:
            self._embed_texts()
        for name, a in {**self._item_arrays, **self._user_arrays}.items():
            tables[name] = padded(a)
        self._tables = tables
        return tables

    # -- facts for the model and checkpoints ------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """Counts and small facts: sizes, feature widths, split counts, cleaning counts, the preprocessing."""
        self.setup()
        item_f, user_f = self._feature_info.get("item") or {}, self._feature_info.get("user") or {}
        text = item_f.get("text") or {}
        text_dim = text.get("dim") or 0
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_warm_items": int(len(self._warm_items)),
            "n_train_interactions": int(len(self._train["user"])),
            "feedback": self.feedback,
            "rating_mean": self.rating_stats.get("mean"),
            "rating_min": self.rating_stats.get("min"),
            "rating_max": self.rating_stats.get("max"),
            "history_len": self.history_len,
            "item_num_dim": int(item_f.get("num_dim", 0)),
            "item_cardinalities": list(item_f.get("cardinalities", [])),
            "item_text_dim": int(text_dim),
            "user_num_dim": int(user_f.get("num_dim", 0)),
            "user_cardinalities": list(user_f.get("cardinalities", [])),
            "split": self.split,
            "split_counts": self.split_counts,
            "cleaning": self.counts,
            "preprocessing": {
                "user_column": self.columns["user"],
                "item_column": self.columns["item"],
                "rating_column": self.columns["rating"],
                "time_column": self.columns["time"],
                "feedback": self.feedback,
                "history_len": self.history_len,
                "rating_range": [self.rating_stats["min"], self.rating_stats["max"]] if self.rating_stats else None,
                "id_files": {"users": "user_ids.txt", "items": "item_ids.txt", "interactions": "interactions.npz"},
                "item_features": self._feature_info.get("item"),
                "user_features": self._feature_info.get("user"),
            },
        }

    @property
    def files(self) -> dict[str, str | bytes]:
        """The id maps and every known user's items, stored in checkpoints and bundles (see the module docstring)."""
        self.setup()
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            indptr=self._known_ptr.astype(np.int64),
            items=self._known_items.astype(np.int64),
            popularity=self._popularity.astype(np.int64),
        )
        return {
            "user_ids.txt": "".join(f"{x}\n" for x in self.user_ids),
            "item_ids.txt": "".join(f"{x}\n" for x in self.item_ids),
            "interactions.npz": buf.getvalue(),
        }

    # -- matrices for baselines ---------------------------------------------------------------------------------
    def train_matrix(self, binary: bool = True) -> Any:
        """The training interactions as a scipy CSR matrix ``(n_users + 1, n_items + 1)``: ones, or ratings."""
        from scipy.sparse import csr_matrix

        self.setup()
        t = self._train
        values = np.ones(len(t["user"]), np.float32) if binary else t["rating"].astype(np.float32)
        return csr_matrix((values, (t["user"], t["item"])), shape=(self.n_users + 1, self.n_items + 1))

    def popularity(self) -> np.ndarray:
        self.setup()
        return self._popularity.copy()

    # -- loaders --------------------------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds: PairRows | SequenceRows = SequenceRows(self) if self.train_batches == "sequences" else PairRows(self)
        if len(ds) == 0:
            raise DataError(f"{self.describe()}: no training rows (sequences need users with 2+ interactions).")
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(ds) > self.batch_size,
            collate_fn=collate,
            **self.loader_kwargs,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in a fixed order: ranking rows (implicit feedback) or rating rows (explicit)."""
        self.setup()
        split = check_split(split)
        ds = RatingRows(self, split) if self.feedback == "explicit" else RankingRows(self, split)
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, collate_fn=collate, **self.loader_kwargs)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


def _split_lines(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else (text.split("\n") if text else [])


# Names other modules and tests import from here (the stages live in their own modules).
__all__ = [
    "CANDIDATES",
    "DUPLICATES",
    "FEEDBACK",
    "ML100K_GENRES",
    "MOVIELENS",
    "MOVIELENS_URL",
    "SPLITS",
    "SPLIT_METHODS",
    "TRAIN_BATCHES",
    "_CLUSTER_WORDS",
    "_TITLE_STARTS",
    "Batch",
    "InteractionsDataModule",
    "PairRows",
    "RankingRows",
    "RatingRows",
    "SequenceRows",
    "canonical_ids",
    "collate",
    "csr",
    "download_movielens",
    "gather_rows",
    "make_synthetic",
    "movielens_kind",
    "parse_ratings",
    "parse_times",
    "read_ids",
    "read_movielens",
    "read_table",
]
