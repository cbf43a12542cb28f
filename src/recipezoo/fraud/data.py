"""Fraud-detection data: transaction tables (CSV, TSV, JSON lines, Parquet) and their synthetic twin.

:class:`TabularDataModule` reads one table with a binary target, splits it by time, by group or at random
(stratified), fits :class:`~recipezoo.runtime.tabular.TabularPreprocessor` on the training rows only, and yields
``(x_num, x_cat, y)`` batches: ``x_num`` float32 ``(B, n_num)``, ``x_cat`` int64 ``(B, n_cat)`` (0 =
out-of-vocabulary), ``y`` float32 ``(B,)`` with 1 for the positive (fraud) class. Its ``info`` carries the fitted
preprocessing into checkpoints and exports, and :meth:`TabularDataModule.restore` reuses it instead of refitting.
With ``synthetic=True`` it generates a transaction table with a rare, drifting fraud class instead of reading a file.
"""

from __future__ import annotations

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
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler, default_collate

from recipezoo.core.data import loader_settings, stratified_split
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.runtime.tabular import (
    SCALINGS,
    MissingColumnsError,
    PreprocessingError,
    TabularPreprocessor,
    canonical_category,
    factorize_categories,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SAMPLERS = ("none", "balanced", "ratio")
# Target values that name the positive class when the user did not say which one it is (compared lower-cased).
POSITIVE_WORDS = frozenset({"1", "true", "yes", "y", "fraud", "fraudulent", "positive", "pos", "chargeback"})
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")
_READERS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
_READERS.update({".parquet": "parquet", ".pq": "parquet"})


class _Batch(tuple):
    """Rows already gathered into batch tensors by :meth:`_GatherRows.__getitems__`."""


class _GatherRows(TensorDataset):
    """The loaders' view of a split's tensors: a DataLoader fetches a whole batch with one gather per tensor.

    PyTorch's DataLoader calls ``__getitems__`` with a batch's indices when a dataset has it. One fancy index per
    tensor is 5-30x faster than indexing rows one by one and stacking them, which would otherwise dominate the step
    time of small tabular models. Only used with :func:`collate_rows`, which knows such batches are complete.
    """

    def __getitems__(self, indices: list[int]) -> _Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return _Batch(t[idx] for t in self.tensors)


def collate_rows(batch: Any) -> Any:
    """Collate function of the loaders: batches gathered by ``__getitems__`` as they are, else the default."""
    if isinstance(batch, _Batch):
        return list(batch)  # a list, as default_collate returns for tuples of tensors
    return default_collate(batch)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV, TSV, JSON lines or Parquet file (chosen by extension, optionally compressed) as a DataFrame.

    Raises:
        DataError: the file is missing, empty or cannot be parsed.
        ConfigError: the extension is not one we read.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(
            f"data file not found: {p}. Pass data.path=<CSV, TSV, JSON lines or Parquet file>, "
            "or data.synthetic=true to try the recipe on generated transactions."
        )
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    kind = _READERS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise ConfigError(
            f"cannot tell the format of {p.name}: use a .csv, .tsv, .jsonl (JSON lines) or .parquet file "
            "(optionally .gz compressed)."
        )
    try:
        if kind in ("csv", "tsv"):
            # low_memory=False reads each column in one go, so a column's type does not change between chunks.
            frame = pd.read_csv(p, sep="\t" if kind == "tsv" else ",", low_memory=False)
        elif kind == "jsonl":
            frame = pd.read_json(p, lines=True)
        elif kind == "json":
            try:
                frame = pd.read_json(p, lines=True)
            except ValueError:  # a JSON array of records rather than one record per line
                frame = pd.read_json(p)
        else:
            try:
                frame = pd.read_parquet(p)
            except ImportError:
                raise DataError(
                    f"reading {p.name} needs a Parquet engine: pip install pyarrow (or save the table as CSV)."
                ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{p} is empty; expected a header row and one row per transaction.") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read {p} as {kind.upper()}: {first}") from None
    if len(frame) == 0:
        raise DataError(f"{p} has a header but no rows.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def make_synthetic_frame(
    rows: int = 4000,
    positive_rate: float = 0.03,
    seed: int = 42,
    *,
    target: str = "is_fraud",
    time_column: str = "time",
    group_column: str = "customer_id",
    id_column: str | None = None,
    extra_numeric: Sequence[str] = (),
    extra_categorical: Sequence[str] = (),
    positive_label: Any = None,
    segments: Sequence[float] = (0.7, 0.85),
) -> pd.DataFrame:
    """A transaction table with a rare, learnable and drifting fraud class; a function of its arguments alone.

    Columns: ``time`` (seconds over 30 days; fraud grows more frequent and amounts inflate over time), ``amount``
    (log-normal, larger for fraud), ``hour`` (from ``time``; fraud is likelier at night), ``merchant_category``
    (a few risky categories), ``country``, ``card_present`` (bool), ``tx_last_24h`` (a small count),
    ``noise_1``..``noise_3`` (noise with NaNs and a few infinities), ``customer_id`` (groups of about 8 rows), the
    target (1 = fraud) and, when ``id_column`` is set, a unique transaction id. Names listed in ``extra_numeric`` /
    ``extra_categorical`` that are not among these are added with a weak signal, so a recipe written for another
    schema runs on the twin unchanged.

    Args:
        rows: number of transactions.
        positive_rate: share of fraud rows.
        seed: the generator's seed.
        target: name of the target column.
        time_column: name of the time column.
        group_column: name of the customer column.
        id_column: name of a unique id column to add, if any.
        extra_numeric: further numeric columns to generate.
        extra_categorical: further categorical columns to generate.
        positive_label: the value marking fraud in the target (default 1; negatives are 0, or ``"legit"`` when the
            positive label is not a number).
        segments: time-order fractions (train end, val end); each time segment is given at least one fraud so a
            time split of a tiny table still has positives everywhere.
    """
    n = int(rows)
    if n < 20:
        raise ConfigError(f"data.synthetic_rows={rows} is too small; use at least 20 (the default is 4000).")
    if not 0 < positive_rate < 0.5:
        raise ConfigError(f"data.synthetic_positive_rate={positive_rate} must be in (0, 0.5).")
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 30 * 86400, n))  # seconds over 30 days
    drift = t / t[-1]  # 0 at the start, 1 at the end
    hour = ((t % 86400) // 3600).astype(np.int64)
    night = hour < 6
    # Concept drift: fraud becomes more frequent over time, and it concentrates at night.
    w = (0.5 + drift) * np.where(night, 3.0, 1.0)
    k = min(n // 2, max(3, int(round(positive_rate * n))))
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, size=k, replace=False, p=w / w.sum())] = 1
    bounds = [0, *(int(round(f * n)) for f in segments), n]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo and not y[lo:hi].any():
            y[rng.integers(lo, hi)] = 1
    fraud = y == 1

    amount = np.where(fraud, rng.lognormal(4.3, 1.1, n), rng.lognormal(3.2, 1.0, n)) * (1 + 0.5 * drift)
    categories = ["grocery", "fuel", "restaurant", "travel", "online_retail", "electronics", "gift_cards", "crypto"]
    p_legit = [0.25, 0.15, 0.2, 0.08, 0.2, 0.07, 0.03, 0.02]
    p_fraud = [0.05, 0.05, 0.05, 0.1, 0.2, 0.2, 0.2, 0.15]
    merchant = np.where(fraud, rng.choice(categories, n, p=p_fraud), rng.choice(categories, n, p=p_legit))
    countries = ["US", "CA", "GB", "DE", "FR", "MX", "BR", "JP"]
    p_home, p_away = [0.85] + [0.15 / 7] * 7, [0.4] + [0.6 / 7] * 7
    country = np.where(fraud, rng.choice(countries, n, p=p_away), rng.choice(countries, n, p=p_home))
    card_present = np.where(fraud, rng.random(n) < 0.15, rng.random(n) < 0.7)
    tx_last_24h = np.where(fraud, rng.poisson(4.0, n), rng.poisson(1.5, n))
    noise_1 = rng.normal(size=n)
    noise_1[rng.random(n) < 0.08] = np.nan
    noise_2 = rng.normal(size=n)
    noise_2[rng.choice(n, size=max(1, n // 500), replace=False)] = np.inf
    noise_3 = rng.integers(0, 1000, n).astype(np.int64)
    customers = rng.integers(0, max(2, n // 8), n)

    wanted = None if positive_label is None else canonical_category(positive_label)
    if wanted in (None, "1"):
        target_values: Any = y
    elif wanted == "True":
        target_values = fraud
    else:
        target_values = np.where(fraud, positive_label, "legit" if positive_label != "legit" else "ok").astype(object)
    data: dict[str, Any] = {
        time_column: t.round(3),
        "amount": amount.round(2),
        "hour": hour,
        "merchant_category": merchant,
        "country": country,
        "card_present": card_present,
        "tx_last_24h": tx_last_24h,
        "noise_1": noise_1,
        "noise_2": noise_2,
        "noise_3": noise_3,
        group_column: np.array([f"C{c:05d}" for c in customers], dtype=object),
    }
    if id_column:
        data[id_column] = np.array([f"T{i:07d}" for i in range(n)], dtype=object)
    for name in extra_numeric:
        if name not in data and name != target:
            data[name] = rng.normal(size=n) + 0.75 * y
    for name in extra_categorical:
        if name not in data and name != target:
            data[name] = np.where(
                fraud, rng.choice(list("abcd"), n, p=[0.1, 0.2, 0.3, 0.4]), rng.choice(list("abcd"), n)
            )
    data[target] = target_values
    frame = pd.DataFrame(data)
    # Shuffled rows: a time split has to sort by the time column rather than trust the file's order.
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


class TabularDataModule(L.LightningDataModule):
    """A table of transactions with a binary target, as ``(x_num, x_cat, y)`` batches.

    Splits: with ``time_column`` the earliest rows train, the next validate, the latest test (the honest setting for
    fraud, whose patterns drift); else with ``group_column`` whole groups (customers, cards) go to one split, so no
    group is seen in two; else a seeded stratified split. The preprocessing is fitted on the training split only.
    Validation and test are never resampled; only training batches follow ``sampler``.

    Args:
        path: a CSV, TSV, JSON lines or Parquet file (by extension).
        target: the target column.
        positive_label: the target value marking the positive (fraud) class. Default: 1 or True for 0/1 and boolean
            targets; for two text labels, the one that reads positive (``fraud``, ``yes``, ``true``, ...).
        time_column: split by this column's order (numbers or dates). Not a feature unless listed in
            ``numeric_columns``.
        group_column: split by groups of this column (when there is no time column). Not a feature unless listed.
        id_column: a row id kept for prediction output, never a feature.
        numeric_columns: columns forced to be numeric; unlisted columns have their type detected.
        categorical_columns: columns forced to be categorical.
        drop_columns: columns that are not features.
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
        restore_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path, self.target, self.positive_label = path, str(target), positive_label
        self.time_column, self.group_column, self.id_column = time_column, group_column, id_column
        self.numeric_columns = list(numeric_columns) if numeric_columns is not None else None
        self.categorical_columns = list(categorical_columns) if categorical_columns is not None else None
        self.drop_columns = list(drop_columns or [])
        self.scaling, self.min_category_count, self.max_categories = scaling, int(min_category_count), max_categories
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.sampler, self.sampler_ratio = sampler, float(sampler_ratio)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.synthetic, self.synthetic_rows = bool(synthetic), int(synthetic_rows)
        self.synthetic_positive_rate = float(synthetic_positive_rate)
        self._check_settings()

        self.preprocessor: TabularPreprocessor | None = None
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
        return read_table(self.path)

    def _check_columns(self, frame: pd.DataFrame) -> None:
        found = list(frame.columns)
        shown = ", ".join(found[:40]) + (f" ... ({len(found)} in all)" if len(found) > 40 else "")
        if self.target not in frame.columns:
            hint = close_matches(self.target, found)
            if len(found) == 1 and any(sep in found[0] for sep in ";|\t"):
                hint += " The file seems to use another delimiter: save it with commas, or as .tsv for tabs."
            raise DataError(
                f"target column '{self.target}' not found in {self.describe()}; its columns are: {shown}. "
                f"Set data.target=<column>.{hint}"
            )
        for key in ("time_column", "group_column", "id_column"):
            name = getattr(self, key)
            if name and name not in frame.columns:
                raise ConfigError(
                    f"data.{key}='{name}' is not a column of {self.describe()}; its columns are: {shown}."
                    + close_matches(name, found)
                )
        for key in ("numeric_columns", "categorical_columns", "drop_columns"):
            names = getattr(self, key) or []
            absent = [c for c in names if c not in frame.columns]
            if absent and not (self.synthetic and key == "drop_columns"):
                raise ConfigError(
                    f"data.{key} names column(s) missing from {self.describe()}: {', '.join(map(str, absent))}. "
                    f"Its columns are: {shown}."
                )

    def _labels(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Drop rows without a target; return the frame and ``y`` (1 = positive) as int64."""
        uniques, inverse = factorize_categories(frame[self.target])
        canon = np.array(uniques, dtype=object)[inverse] if len(inverse) else np.zeros(0, object)
        missing = np.array([c is None for c in canon], dtype=bool)
        if missing.all():
            raise DataError(f"target column '{self.target}' of {self.describe()} has no values.")
        if missing.any():
            log.warning("Dropped %d row(s) with no '%s' value.", int(missing.sum()), self.target)
            frame, canon = frame.loc[~missing].reset_index(drop=True), canon[~missing]
        values, counts = np.unique(canon.astype(str), return_counts=True)
        values = [str(v) for v in values]
        order = np.argsort(-counts, kind="stable")
        summary = ", ".join(f"{values[i]!r}: {counts[i]}" for i in order[:6]) + (" ..." if len(values) > 6 else "")
        if len(values) > 2:
            raise DataError(
                f"target column '{self.target}' has {len(values)} distinct values ({summary}); fraud detection needs "
                "two classes. Map the labels to fraud / not fraud, or set data.target to a 0/1 column."
            )
        if len(values) < 2:
            message = (
                f"target column '{self.target}' has a single value ({summary}); fraud detection needs examples of "
                "both classes."
            )
            if not self._restored:
                raise DataError(message)
            log.warning("%s Scores are computed, but metrics that need both classes are undefined.", message)
        positive = self._positive_label(list(values), summary)
        return frame, (canon == positive).astype(np.int64)

    def _positive_label(self, values: list[str], summary: str) -> str:
        """The canonical string of the positive class among the target's (canonical) values."""
        if self.positive_label is not None:
            wanted = factorize_categories(np.array([self.positive_label], dtype=object))[0][0]
            if wanted not in values and not (self._restored and len(values) < 2):
                raise ConfigError(
                    f"data.positive_label={self.positive_label!r} is not a value of target '{self.target}' "
                    f"(found {summary}); set it to the value that marks fraud."
                )
            return str(wanted)
        pair = set(values)
        if pair <= {"0", "1"}:
            choice = "1"
        elif pair <= {"False", "True"}:
            choice = "True"
        else:
            candidates = [v for v in values if v.lower() in POSITIVE_WORDS]
            if len(values) != 2 or len(candidates) != 1:
                raise ConfigError(
                    f"cannot tell which value of target '{self.target}' marks fraud (found {summary}); "
                    "set data.positive_label=<that value>."
                )
            choice = candidates[0]
        # Record it as a plain value (1, True, "fraud") so checkpoints and exports can say what "positive" meant.
        self.positive_label = True if choice == "True" else int(choice) if choice.lstrip("-").isdigit() else choice
        return choice

    def _time_values(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """The time column as sortable floats (numbers as they are, dates as microseconds since 1970)."""
        s = frame[column]
        n_missing = int(s.isna().sum())
        if n_missing:
            raise DataError(
                f"time column '{column}' has {n_missing} missing value(s); fill or drop those rows, or split "
                "without time (data.time_column=null)."
            )
        if pd.api.types.is_bool_dtype(s):
            raise DataError(f"time column '{column}' holds booleans; expected numbers or dates.")
        if pd.api.types.is_numeric_dtype(s):
            return s.to_numpy(dtype=np.float64)
        if pd.api.types.is_datetime64_any_dtype(s):
            return s.astype("int64").to_numpy(dtype=np.float64)
        numbers = pd.to_numeric(s, errors="coerce")
        n_numbers = int(numbers.notna().sum())
        if n_numbers == len(s):
            return numbers.to_numpy(dtype=np.float64)
        if n_numbers:
            examples = ", ".join(repr(v) for v in s[numbers.isna()].astype(str).unique()[:3])
            raise DataError(
                f"time column '{column}' mixes numbers and text ({n_numbers} numbers; also {examples}); use one "
                "format: numbers (e.g. seconds) or dates like 2024-01-31 12:00:00."
            )
        try:
            dates = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
        except (ValueError, TypeError) as e:
            raise DataError(f"time column '{column}' cannot be read as dates: {str(e)[:200]}") from None
        bad = dates.isna()
        if bad.any():
            examples = ", ".join(repr(v) for v in s[bad].astype(str).unique()[:3])
            raise DataError(
                f"time column '{column}': {int(bad.sum())} of {len(s)} values are neither numbers nor dates "
                f"(e.g. {examples}); use numbers (e.g. seconds) or dates like 2024-01-31 12:00:00."
            )
        return dates.astype("int64").to_numpy(dtype=np.float64)

    def _split(self, frame: pd.DataFrame, y: np.ndarray) -> dict[str, np.ndarray]:
        n = len(frame)
        time_column, group_column = self._split_columns()
        if self.group_column and self.time_column:
            log.info("Both a time and a group column are set: splitting by time; groups may span splits.")
        if time_column:
            self.split_by = f"time column '{time_column}'"
            order = np.argsort(self._time_values(frame, time_column), kind="stable")
            n_test = int(round(self.test_fraction * n))
            n_val = int(round(self.val_fraction * n))
            n_train = n - n_val - n_test
            if n_train < 1 or n_val < 1:
                raise DataError(
                    f"{self.describe()}: {n} rows are too few for val_fraction={self.val_fraction} and "
                    f"test_fraction={self.test_fraction}; add data or change the fractions."
                )
            return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        if group_column:
            self.split_by = f"groups of '{group_column}'"
            return self._group_split(frame[group_column], y)
        self.split_by = f"a stratified random split (seed {self.seed})"
        parts = stratified_split(y.tolist(), [self.val_fraction, self.test_fraction], self.seed, self.describe())
        return {s: np.asarray(p, dtype=np.int64) for s, p in zip(SPLITS, parts)}

    def _group_split(self, groups: pd.Series, y: np.ndarray) -> dict[str, np.ndarray]:
        """Whole groups to test, then val, the rest to train; groups with and without positives are split
        separately so that every split gets its share of positives."""
        codes, _ = pd.factorize(groups, use_na_sentinel=True)
        codes = codes.astype(np.int64)
        na = codes < 0
        if na.any():
            # A row without a group is its own group: lumping them together would make one giant group.
            log.info("%d row(s) have no '%s'; each is treated as its own group.", int(na.sum()), groups.name)
            codes[na] = codes.max(initial=-1) + 1 + np.arange(int(na.sum()))
        sizes = np.bincount(codes)
        has_pos = np.bincount(codes, weights=y, minlength=len(sizes)) > 0
        rng = np.random.default_rng(self.seed)
        assign = np.zeros(len(sizes), dtype=np.int64)  # 0 train, 1 val, 2 test
        for stratum in (np.flatnonzero(has_pos), np.flatnonzero(~has_pos)):
            perm = rng.permutation(stratum)
            total = int(sizes[perm].sum())
            targets = {2: self.test_fraction * total, 1: self.val_fraction * total}
            filled = {2: 0, 1: 0}
            for i, g in enumerate(perm):
                remaining = len(perm) - i
                for part in (2, 1):
                    # Never give away the last group of a stratum: training must keep some of each.
                    if filled[part] + sizes[g] / 2 <= targets[part] and remaining > 1:
                        assign[g] = part
                        filled[part] += int(sizes[g])
                        break
        row_part = assign[codes]
        out = {s: np.flatnonzero(row_part == k) for s, k in (("train", 0), ("val", 1), ("test", 2))}
        if len(out["val"]) == 0:
            raise DataError(
                f"{self.describe()}: the groups of '{groups.name}' are too few or too large to split off "
                f"val_fraction={self.val_fraction}; use more groups, a larger fraction, or no group column."
            )
        return out

    def _feature_candidates(self, frame: pd.DataFrame) -> list[str]:
        explicit = set(self.numeric_columns or []) | set(self.categorical_columns or [])
        not_features = {self.target, self.id_column, *self.drop_columns}
        time_column, group_column = self.time_column, self.group_column
        if self.synthetic:
            time_column, group_column = time_column or "time", group_column or "customer_id"
        # Time stamps and group ids describe where a row sits, not what it is: as features they would make the
        # model extrapolate in time or memorise customers. They stay features only when listed explicitly.
        for name in (time_column, group_column):
            if name and name not in explicit:
                not_features.add(name)
        return [c for c in frame.columns if c not in not_features]

    # -- Lightning hooks --------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        frame = self.load_frame()
        self._check_columns(frame)
        frame, y = self._labels(frame)
        parts = self._split(frame, y)
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
        ``positive_rate`` (in train), ``positive_label``, ``target``, ``id_column``, ``sampler``, ``split_counts``.
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
        return self._frame.iloc[self.split_indices[self._check_split(split)]].reset_index(drop=True)

    @staticmethod
    def _check_split(split: str) -> str:
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
        return split

    # -- loaders ----------------------------------------------------------------------------------------------
    def _train_sampler(self) -> WeightedRandomSampler | None:
        if self.sampler == "none":
            return None
        y = self._y[self.split_indices["train"]]
        n_pos = int(y.sum())
        if n_pos == 0:
            return None
        share = 0.5 if self.sampler == "balanced" else self.sampler_ratio
        # Each positive drawn with probability share / n_pos, each negative (1 - share) / n_neg: the expected
        # positive share of a batch is `share`. Draws use torch's global RNG, which checkpoints save and restore.
        weights = np.where(y == 1, share / n_pos, (1 - share) / max(len(y) - n_pos, 1))
        return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(y), replacement=True)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds = self.datasets["train"]
        sampler = self._train_sampler()
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
            _GatherRows(*self.datasets[self._check_split(split)].tensors),
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
