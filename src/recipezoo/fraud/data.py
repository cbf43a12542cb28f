"""Fraud-detection data: transaction tables (CSV, TSV, JSON lines, Parquet) and their synthetic twin.

:class:`TabularDataModule` reads one table with a binary target, splits it by time, by group or at random
(stratified), fits :class:`~recipezoo.runtime.tabular.TabularPreprocessor` on the training rows only, and yields
``(x_num, x_cat, y)`` batches: ``x_num`` float32 ``(B, n_num)``, ``x_cat`` int64 ``(B, n_cat)`` (0 =
out-of-vocabulary), ``y`` float32 ``(B,)`` with 1 for the positive (fraud) class. Its ``info`` carries the fitted
preprocessing into checkpoints and exports, and :meth:`TabularDataModule.restore` reuses it instead of refitting.
With ``synthetic=True`` it generates a transaction table with a rare, drifting fraud class instead of reading a file.

Columns that must not be features (row keys such as a policy or transaction number, row numbers, raw dates) are
detected on the training split, left out of the features of every model (the GBDT baseline included), named in one
log line with the way to keep them (``keep_columns``), and recorded in ``info["excluded_columns"]`` and in the
preprocessing's ``dropped``, so prediction and exported bundles read the same features.

The DataModule only orchestrates: reading, the column check, the binary target, the split, the feature columns and
the excluded columns are the pure stages of :mod:`recipezoo.fraud.stages` (on top of :mod:`recipezoo.data`), the
synthetic twin is :mod:`recipezoo.fraud.synthetic`, and the batch gathering and training sampler are
:mod:`recipezoo.fraud.datasets`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data.splits import SPLITS, check_split
from recipezoo.fraud.datasets import SAMPLERS, collate_rows, train_sampler
from recipezoo.fraud.datasets import GatherRows as _GatherRows
from recipezoo.fraud.stages import (
    POSITIVE_WORDS,
    binary_target,
    check_columns,
    excluded_columns,
    exclusion_message,
    feature_columns,
    read_table,
    split_rows,
)
from recipezoo.fraud.synthetic import make_synthetic_frame
from recipezoo.runtime.tabular import SCALINGS, MissingColumnsError, PreprocessingError, TabularPreprocessor

log = logging.getLogger(__name__)


class TabularDataModule(L.LightningDataModule):
    """A table of transactions with a binary target, as ``(x_num, x_cat, y)`` batches.

    Splits: with ``time_column`` the earliest rows train, the next validate, the latest test (the honest setting for
    fraud, whose patterns drift); else with ``group_column`` whole groups (customers, cards) go to one split, so no
    group is seen in two; else a seeded stratified split. The preprocessing is fitted on the training split only.
    Validation and test are never resampled; only training batches follow ``sampler``.

    Args:
        path: a CSV, TSV, JSON lines or Parquet file (by extension, optionally compressed).
        target: the target column.
        positive_label: the target value marking the positive (fraud) class. Default: 1 or True for 0/1 and boolean
            targets; for two text labels, the one that reads positive (``fraud``, ``yes``, ``true``, ...).
        time_column: split by this column's order (numbers or dates). Not a feature unless listed in
            ``numeric_columns``.
        group_column: split by groups of this column (when there is no time column). Not a feature unless listed.
        id_column: a row id kept for prediction output, never a feature.
        numeric_columns: columns forced to be numeric; unlisted columns have their type detected. Never excluded.
        categorical_columns: columns forced to be categorical. Never excluded.
        drop_columns: columns that are not features.
        keep_columns: columns kept as features although they look like row keys or raw dates (which are otherwise
            excluded: see :func:`recipezoo.fraud.stages.exclusion_reason`); also makes a time or group column a
            feature.
        scaling: ``standard`` or ``quantile`` (robust to heavy tails such as amounts).
        min_category_count: categories seen fewer times in training share index 0 with unseen ones.
        max_categories: the largest vocabulary per categorical column.
        val_fraction: share of rows for validation.
        test_fraction: share of rows for test.
        sampler: ``none`` (shuffle), ``balanced`` (half the training examples positive) or ``ratio``.
        sampler_ratio: the positive share of training batches with ``sampler=ratio``.
        batch_size: batch size.
        num_workers: DataLoader workers, or ``auto``.
        pin_memory: pin host memory, or ``auto`` (on when a GPU is present).
        seed: seed of the split (and of the synthetic twin).
        synthetic: generate transactions instead of reading ``path``.
        synthetic_rows: rows of the synthetic twin.
        synthetic_positive_rate: fraud rate of the synthetic twin.
        sep: the separator of delimited text: ``auto`` (sniffed, so a ``.csv`` written with ``;`` reads), or the
            separator itself (``;``, ``\\t``, ``|``).
        encoding: the text encoding: ``auto`` (UTF-8, falling back on Latin-1), or a name (``latin-1``, ``cp1252``).
        restore_info: a checkpoint's ``data_info``, as for :meth:`restore`.
    """

    def __init__(
        self,
        path: str | None = None,
        target: str = "is_fraud",
        positive_label: Any = None,
        time_column: str | None = None,
        group_column: str | None = None,
        id_column: str | None = None,
        numeric_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        drop_columns: Sequence[str] = (),
        keep_columns: Sequence[str] = (),
        scaling: str = "standard",
        min_category_count: int = 5,
        max_categories: int = 1000,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        sampler: str = "none",
        sampler_ratio: float = 0.1,
        batch_size: int = 512,
        num_workers: int | str = 0,
        pin_memory: bool | str = "auto",
        seed: int = 42,
        synthetic: bool = False,
        synthetic_rows: int = 4000,
        synthetic_positive_rate: float = 0.03,
        sep: str | None = "auto",
        encoding: str = "auto",
        restore_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path, self.target, self.positive_label = path, str(target), positive_label
        self.time_column, self.group_column, self.id_column = time_column, group_column, id_column
        self.numeric_columns = list(numeric_columns) if numeric_columns is not None else None
        self.categorical_columns = list(categorical_columns) if categorical_columns is not None else None
        self.drop_columns = list(drop_columns or [])
        self.keep_columns = list(keep_columns or [])
        self.scaling, self.min_category_count, self.max_categories = scaling, int(min_category_count), max_categories
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.sampler, self.sampler_ratio = sampler, float(sampler_ratio)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.synthetic, self.synthetic_rows = bool(synthetic), int(synthetic_rows)
        self.synthetic_positive_rate = float(synthetic_positive_rate)
        self.sep, self.encoding = sep, str(encoding or "auto")
        self._check_settings()

        self.preprocessor: TabularPreprocessor | None = None
        # Candidate columns left out as row keys or raw dates: {column: why}.
        self.excluded: dict[str, str] = {}
        self._restored = False
        self.datasets: dict[str, TensorDataset] = {}
        self.split_indices: dict[str, np.ndarray] = {}
        self.split_by = "stratified"
        self._frame: pd.DataFrame | None = None
        self._y: np.ndarray | None = None
        if restore_info:
            self.restore(restore_info)

    def _check_settings(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown data.sampler '{self.sampler}'; choose one of {', '.join(SAMPLERS)}.")
        if self.sampler == "ratio" and not 0 < self.sampler_ratio < 1:
            raise ConfigError(f"data.sampler_ratio={self.sampler_ratio} must be between 0 and 1 (e.g. 0.1).")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown data.scaling '{self.scaling}'; choose one of {', '.join(SCALINGS)}.")
        if not (
            0 < self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} must be "
                "fractions with val_fraction > 0 and val_fraction + test_fraction < 1 (e.g. 0.15 and 0.15)."
            )
        if self.min_category_count < 1 or self.batch_size < 1:
            raise ConfigError("data.min_category_count and data.batch_size must be at least 1.")
        both = sorted(set(self.numeric_columns or []) & set(self.categorical_columns or []))
        if both:
            raise ConfigError(
                f"column(s) {', '.join(both)} are in both data.numeric_columns and data.categorical_columns."
            )
        both = sorted(set(self.keep_columns) & set(self.drop_columns))
        if both:
            raise ConfigError(f"column(s) {', '.join(both)} are in both data.keep_columns and data.drop_columns.")
        special = {"target": self.target, "time_column": self.time_column, "group_column": self.group_column}
        special["id_column"] = self.id_column
        named = [(k, v) for k, v in special.items() if v]
        for i, (k, v) in enumerate(named):
            for k2, v2 in named[i + 1 :]:
                if v == v2:
                    raise ConfigError(f"data.{k} and data.{k2} are both '{v}'; they must be different columns.")

    # -- checkpoints ------------------------------------------------------------------------------------------
    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt what a checkpoint's data fitted, before ``setup``: the preprocessor (never refitted) and the
        positive label. Called when evaluating or resuming a checkpoint; an empty ``info`` changes nothing."""
        if not info:
            return
        if OmegaConf.is_config(info):
            info = OmegaConf.to_container(info, resolve=True)
        if info.get("preprocessing"):
            try:
                self.preprocessor = TabularPreprocessor.from_dict(info["preprocessing"])
            except PreprocessingError as e:
                raise DataError(f"the checkpoint's preprocessing cannot be used: {e}") from None
            self._restored = True
            # Checkpoints from before the exclusion of row keys have no such entry: nothing was excluded.
            self.excluded = dict(info.get("excluded_columns") or {})
        if info.get("positive_label") is not None:
            self.positive_label = info["positive_label"]

    # -- reading and checking ---------------------------------------------------------------------------------
    def describe(self) -> str:
        return "synthetic transactions" if self.synthetic else f"table {self.path}"

    def _split_columns(self) -> tuple[str | None, str | None]:
        """The (time, group) columns that decide the split; the synthetic twin splits by time by default."""
        if self.synthetic and not self.time_column and not self.group_column:
            return "time", None
        return self.time_column, (None if self.time_column else self.group_column)

    def load_frame(self) -> pd.DataFrame:
        """The whole table: read from ``path`` or generated by the synthetic twin."""
        if self.synthetic:
            return make_synthetic_frame(
                self.synthetic_rows,
                self.synthetic_positive_rate,
                self.seed,
                target=self.target,
                time_column=self.time_column or "time",
                group_column=self.group_column or "customer_id",
                id_column=self.id_column,
                extra_numeric=self.numeric_columns or (),
                extra_categorical=self.categorical_columns or (),
                positive_label=self.positive_label,
                segments=(1 - self.val_fraction - self.test_fraction, 1 - self.test_fraction),
            )
        if not self.path:
            raise ConfigError(
                "no data file given: pass data.path=<CSV, TSV, JSON lines or Parquet file of transactions>, "
                "or data.synthetic=true to try the recipe on generated transactions."
            )
        return read_table(self.path, self.sep, self.encoding)

    def _feature_candidates(self, frame: pd.DataFrame) -> list[str]:
        time_column, group_column = self.time_column, self.group_column
        if self.synthetic:
            time_column, group_column = time_column or "time", group_column or "customer_id"
        return feature_columns(
            frame,
            target=self.target,
            id_column=self.id_column,
            drop_columns=self.drop_columns,
            explicit=self._explicit_features(),
            position_columns=(time_column, group_column),
        )

    def _explicit_features(self) -> list[str]:
        """The columns the settings make features: never excluded."""
        return [*(self.numeric_columns or []), *(self.categorical_columns or []), *self.keep_columns]

    # -- Lightning hooks --------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        frame = self.load_frame()
        where = self.describe()
        check_columns(
            frame,
            self.target,
            where=where,
            named={key: getattr(self, key) for key in ("time_column", "group_column", "id_column")},
            listed={
                key: getattr(self, key)
                for key in ("numeric_columns", "categorical_columns", "drop_columns", "keep_columns")
            },
            # The synthetic twin generates the listed numeric and categorical columns, but none to drop or keep.
            optional=("drop_columns", "keep_columns") if self.synthetic else (),
        )
        frame, y, self.positive_label = binary_target(
            frame, self.target, self.positive_label, where=where, restored=self._restored
        )
        time_column, group_column = self._split_columns()
        if self.group_column and self.time_column:
            log.info("Both a time and a group column are set: splitting by time; groups may span splits.")
        parts, self.split_by = split_rows(
            frame,
            y,
            time_column=time_column,
            group_column=group_column,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            where=where,
        )
        counts = {s: (len(idx), int(y[idx].sum())) for s, idx in parts.items()}
        log.info(
            "%s: %d rows split by %s: %s",
            self.describe(),
            len(frame),
            self.split_by,
            ", ".join(f"{s} {n} ({p} positive, {p / max(n, 1):.2%})" for s, (n, p) in counts.items()),
        )
        if counts["train"][1] == 0:
            message = (
                f"the training split of {self.describe()} has no positive ('{self.positive_label}') rows "
                f"(split by {self.split_by}; val has {counts['val'][1]}, test {counts['test'][1]}). The model needs "
                "fraud examples to learn from: use a different split (another data.time_column, smaller "
                "val/test fractions, or no time column) or more data."
            )
            if not self._restored:
                raise DataError(message)
            log.warning(message)
        for s in ("val", "test"):
            if counts[s][0] and counts[s][1] == 0:
                log.warning("The %s split has no positive rows: its AUPRC and recall are undefined.", s)

        features = self._feature_candidates(frame)
        train_frame = frame.iloc[parts["train"]]
        if self.preprocessor is None:
            # In the file's row order: a row number or a sorted counter shows itself by rising row by row.
            in_order = frame.iloc[np.sort(parts["train"])]
            self.excluded = excluded_columns(in_order, features, keep=self._explicit_features())
            if self.excluded:
                log.warning(exclusion_message(self.excluded))
                features = [c for c in features if c not in self.excluded]
        try:
            if self.preprocessor is None:
                self.preprocessor = TabularPreprocessor.fit(
                    train_frame[features],
                    numeric=self.numeric_columns,
                    categorical=self.categorical_columns,
                    scaling=self.scaling,
                    max_categories=self.max_categories,
                    min_category_count=self.min_category_count,
                    log=log,
                    left_out=self.excluded,
                )
            else:
                log.info("Using the checkpoint's preprocessing (not refitted): %r", self.preprocessor)
            arrays = {s: self._transform(frame.iloc[idx], s) for s, idx in parts.items()}
        except MissingColumnsError as e:
            where = "the checkpoint was trained with them" if self._restored else "they are needed"
            raise DataError(
                f"{self.describe()} lacks column(s) {', '.join(e.missing)}: {where}. Its columns are: "
                f"{', '.join(frame.columns[:40])}."
            ) from None
        except PreprocessingError as e:
            raise DataError(f"{self.describe()}: {e}") from None
        self._frame, self._y, self.split_indices = frame, y, parts
        for s, (x_num, x_cat) in arrays.items():
            ys = torch.from_numpy(y[parts[s]].astype(np.float32))
            self.datasets[s] = TensorDataset(torch.from_numpy(x_num), torch.from_numpy(x_cat), ys)

    def _transform(self, rows: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.preprocessor is not None
        x_num, x_cat = self.preprocessor.transform(rows)
        if self.preprocessor.last_missing_counts:
            log.info("%s: missing/infinite values imputed: %s", split, self.preprocessor.last_missing_counts)
        if split != "train" and self.preprocessor.last_unknown_counts:
            log.info(
                "%s: categories unseen in training (mapped to 0): %s", split, self.preprocessor.last_unknown_counts
            )
        return x_num, x_cat

    @property
    def info(self) -> dict[str, Any]:
        """What the model, the checkpoint and exports need to know about this data (after ``setup``).

        Keys: ``preprocessing`` (the preprocessor's ``to_dict()``), ``n_num``, ``n_cat``, ``cardinalities``,
        ``numeric_features``, ``categorical_features``, ``pos_weight`` (negatives / positives in train),
        ``positive_rate`` (in train), ``positive_label``, ``target``, ``id_column``, ``sampler``, ``split_counts``,
        ``excluded_columns`` (candidate columns left out as row keys or raw dates, with why; also in the
        preprocessing's ``dropped``).
        """
        self.setup()
        assert self.preprocessor is not None and self._y is not None
        y_train = self._y[self.split_indices["train"]]
        n_pos = int(y_train.sum())
        n_neg = len(y_train) - n_pos
        return {
            "preprocessing": self.preprocessor.to_dict(),
            "n_num": self.preprocessor.n_num,
            "n_cat": len(self.preprocessor.cardinalities),
            "cardinalities": self.preprocessor.cardinalities,
            "numeric_features": self.preprocessor.numeric_features,
            "categorical_features": self.preprocessor.categorical_features,
            "pos_weight": float(n_neg / max(n_pos, 1)),
            "positive_rate": float(n_pos / max(len(y_train), 1)),
            "positive_label": self.positive_label,
            "target": self.target,
            "id_column": self.id_column,
            "sampler": self.sampler,
            "excluded_columns": dict(self.excluded),
            "split_counts": {
                s: {"rows": int(len(idx)), "positives": int(self._y[idx].sum())}
                for s, idx in self.split_indices.items()
            },
        }

    # -- raw rows for baselines and prediction ----------------------------------------------------------------
    def raw_splits(self) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
        """Per split, the raw feature columns the preprocessor reads (before preprocessing) and ``y`` (int64 0/1),
        in the same row order as the loaders; for models that do their own preprocessing (gradient boosting)."""
        self.setup()
        assert self.preprocessor is not None and self._frame is not None and self._y is not None
        columns = self.preprocessor.input_columns
        return {
            s: (self._frame.iloc[idx][columns].reset_index(drop=True), self._y[idx].copy())
            for s, idx in self.split_indices.items()
        }

    def split_frame(self, split: str) -> pd.DataFrame:
        """The raw rows of a split, every column included, in the order of ``eval_dataloader(split)``."""
        self.setup()
        assert self._frame is not None
        return self._frame.iloc[self.split_indices[check_split(split)]].reset_index(drop=True)

    # -- loaders ----------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds = self.datasets["train"]
        sampler = train_sampler(self._y[self.split_indices["train"]], self.sampler, self.sampler_ratio)
        return DataLoader(
            _GatherRows(*ds.tensors),
            batch_size=self.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            # A last batch of a handful of rows gives noisy gradients (and breaks batch norm with one row).
            drop_last=len(ds) > self.batch_size,
            collate_fn=collate_rows,
            **self.loader_kwargs,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in a fixed order, never shuffled or resampled: for validation, evaluation and prediction."""
        self.setup()
        return DataLoader(
            _GatherRows(*self.datasets[check_split(split)].tensors),
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=collate_rows,
            **self.loader_kwargs,
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


# Names that callers (prediction, scripts, tests) import from here.
__all__ = [
    "POSITIVE_WORDS",
    "SAMPLERS",
    "SPLITS",
    "TabularDataModule",
    "collate_rows",
    "make_synthetic_frame",
    "read_table",
]
