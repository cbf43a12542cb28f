"""Tabular preprocessing and scoring of exported fraud models with numpy and onnxruntime alone (no torch, no pandas).

This file is copied into every ONNX fraud bundle as ``loader.py``, so a bundle scores raw transactions on a machine
without recipezoo::

    from loader import OnnxFraudScorer               # or: from recipezoo.runtime.tabular import ...
    scorer = OnnxFraudScorer("path/to/bundle")
    out = scorer.score({"amount": [12.5, 990.0], "merchant_category": ["grocery", "crypto"]})
    out["probability"], out["decision"]               # numpy arrays, one value per row

or from the shell: ``python loader.py path/to/bundle transactions.csv`` (prints ``score,probability,decision``).

``columns`` is anything where ``columns[name]`` gives a 1-D array-like: a dict of lists or arrays, or a pandas
DataFrame (used duck-typed; pandas is never imported here).

What :class:`TabularPreprocessor` does, fitted on the training rows only:

- Numeric columns: ``inf``/``-inf`` and unparseable strings become missing; a ``<name>__missing`` 0/1 indicator is
  added for every column that had missing values in training; missing values are imputed with the training median;
  then ``standard`` scaling (training mean and std of the imputed values; a zero std becomes 1) or ``quantile``
  scaling (101 training quantiles map a value to its training CDF ``u`` in [0, 1] by linear interpolation, then the
  standard normal's inverse CDF maps ``u`` to a Gaussian score; ``u`` is clipped to [0.001, 0.999] so values beyond
  the training range stay bounded at +-3.09).
- Categorical columns: values are compared as canonical strings (``1``, ``1.0`` and ``"1"`` are the same category;
  so are ``True`` and ``"true"``). The vocabulary holds the categories seen at least ``min_category_count`` times in
  training (at most ``max_categories``, most frequent first); index 0 is out-of-vocabulary, rare or missing.
- Columns that never vary in training (a single value and no missing values, or only missing values), and
  categorical columns with no category frequent enough to enter the vocabulary, are dropped and named in the log.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Strings that mean "no value" in CSV exports (compared lower-cased, stripped).
MISSING_STRINGS = frozenset({"", "nan", "none", "null", "na", "n/a", "<na>", "nat", "?"})
# Integer columns with at most this many distinct values are categorical when the type is detected automatically.
MAX_DISCRETE_NUMERIC = 20
# The quantile scaler's bounds on the training CDF: values beyond the training range map to +-3.09, not +-inf.
QUANTILE_CLIP = 1e-3
SCALINGS = ("standard", "quantile")


TASKS = ("fraud_detection",)  # the tasks this loader serves (metadata.json's "task")


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


class PreprocessingError(ValueError):
    """Data the preprocessor cannot use (unparseable numeric values, no usable column, unknown settings)."""


class MissingColumnsError(PreprocessingError):
    """Columns the preprocessor was fitted with are absent from the data to transform.

    Attributes:
        missing: the absent column names.
    """

    def __init__(self, missing: Sequence[str], available: Iterable[str] = ()) -> None:
        self.missing = list(missing)
        found = list(available)
        shown = ", ".join(map(str, found[:30])) + (f" ... ({len(found)} in all)" if len(found) > 30 else "")
        super().__init__(
            f"missing column(s) {', '.join(map(str, self.missing))}: the model was trained with them"
            + (f"; the data has {shown}" if found else "")
            + ". Add them (empty values are allowed and treated as missing)."
        )


# -- value conversion -------------------------------------------------------------------------------------------
def _column(columns: Any, name: str) -> np.ndarray:
    values = np.asarray(columns[name])
    if values.ndim != 1:
        values = values.reshape(-1)
    return values


def _has_column(columns: Any, name: str) -> bool:
    try:
        return name in columns  # a dict's keys, a DataFrame's columns
    except TypeError:
        return False


def _column_names(columns: Any) -> list[str]:
    return [str(c) for c in (columns.columns if hasattr(columns, "columns") else columns.keys())]


def _is_missing_scalar(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float | np.floating):
        return math.isnan(v)
    if isinstance(v, bool | int | np.bool_ | np.integer):
        return False
    # pandas' NA and NaT print as <NA> / NaT: matching the text keeps pandas out of this module.
    return str(v).strip().lower() in MISSING_STRINGS


def to_float(values: Any) -> tuple[np.ndarray, list[Any]]:
    """A 1-D array-like as float64, with missing markers (None, NaN, '', 'nan', ...) as NaN.

    Args:
        values: numbers, numeric strings or a mix.

    Returns:
        The floats (``inf`` kept) and the values that could not be parsed (each also NaN in the floats).
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64).reshape(-1), []
    try:
        # The fast path: a numeric or clean string array converts in C.
        return arr.astype(np.float64).reshape(-1), []
    except (TypeError, ValueError):
        pass
    items = arr.reshape(-1).tolist()
    out = np.empty(len(items), dtype=np.float64)
    bad: list[Any] = []
    for i, v in enumerate(items):
        if isinstance(v, str):
            s = v.strip()
            if s.lower() in MISSING_STRINGS:
                out[i] = np.nan
                continue
            try:
                out[i] = float(s)
            except ValueError:
                out[i] = np.nan
                bad.append(v)
            continue
        if _is_missing_scalar(v):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
            bad.append(v)
    return out, bad


def canonical_category(v: Any) -> str | None:
    """The category a raw value stands for, as a string; None when the value is missing.

    Integral numbers lose their decimals (``1.0`` and ``"1"`` are ``"1"``) because pandas reads an integer column
    with missing values as floats, while a CSV row read at serving time holds ``"1"``; booleans become
    ``"True"``/``"False"`` whatever their spelling.
    """
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        return "True" if v else "False"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if not math.isfinite(f):
            return None if math.isnan(f) else ("inf" if f > 0 else "-inf")
        return str(int(f)) if f.is_integer() else repr(f)
    s = str(v).strip()
    low = s.lower()
    if low in MISSING_STRINGS:
        return None
    if low in ("true", "false"):
        return "True" if low == "true" else "False"
    try:
        f = float(s)
    except ValueError:
        return s
    if math.isfinite(f):
        return str(int(f)) if f.is_integer() else repr(f)
    return s


def factorize_categories(values: Any) -> tuple[list[str | None], np.ndarray]:
    """Distinct canonical categories of a 1-D array-like and, for every value, the index of its category.

    Returns:
        ``(uniques, inverse)``: ``uniques[inverse[i]]`` is the canonical category of value ``i`` (None = missing).
        Different raw values may share a canonical category (``1`` and ``"1"``), so ``uniques`` may repeat.
    """
    arr = np.asarray(values).reshape(-1)
    if arr.dtype.kind in "biufUS":
        raw_uniques, inverse = np.unique(arr, return_inverse=True)
        return [canonical_category(u) for u in raw_uniques.tolist()], inverse.reshape(-1)
    # Object arrays may mix types that do not sort (str and float NaN): factorize with a dict instead.
    index: dict[Any, int] = {}
    uniques: list[str | None] = []
    inverse = np.empty(len(arr), dtype=np.int64)
    for i, v in enumerate(arr.tolist()):
        # Keyed by type too: True == 1 == 1.0 for a dict, but True is not the category "1".
        key: Any = (type(v), v)
        try:
            k = index.get(key)
        except TypeError:  # unhashable values: key them by their text
            v = str(v)
            key = (str, v)
            k = index.get(key)
        if k is None:
            k = index[key] = len(uniques)
            uniques.append(canonical_category(v))
        inverse[i] = k
    return uniques, inverse


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF for p in (0, 1): Acklam's rational approximation (relative error 1e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    low, high = p < 0.02425, p > 1 - 0.02425
    mid = ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    for mask, sign, pp in ((low, 1.0, p[low]), (high, -1.0, 1 - p[high])):
        q = np.sqrt(-2 * np.log(pp))
        out[mask] = (
            sign
            * (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def _quantile_transform(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    refs = np.linspace(0.0, 1.0, len(quantiles))
    # Interpolating upwards and downwards and averaging puts a value tied with several quantiles (a spike of zeros,
    # say) at the middle of their CDF range instead of at one end of it.
    u = 0.5 * (np.interp(x, quantiles, refs) - np.interp(-x, -quantiles[::-1], -refs[::-1]))
    return _norm_ppf(np.clip(u, QUANTILE_CLIP, 1 - QUANTILE_CLIP))


# -- the preprocessor -------------------------------------------------------------------------------------------
class TabularPreprocessor:
    """Turns raw columns into the ``(x_num, x_cat)`` arrays a fraud model reads; fitted on training rows only.

    Build it with :meth:`fit` (or :meth:`from_dict` for a saved one); see the module docstring for what it does to
    each column. The state is plain data: ``numeric`` (one dict per numeric column), ``categorical`` (one dict per
    categorical column) and ``dropped`` (name -> reason).

    Attributes:
        last_unknown_counts: after :meth:`transform`, per categorical column, how many non-missing values fell
            outside the vocabulary (new or rare categories, all mapped to index 0).
        last_missing_counts: after :meth:`transform`, per numeric column, how many values were missing or infinite
            (imputed with the training median).
        last_invalid_counts: after :meth:`transform`, per numeric column, how many values were not numbers
            (treated as missing); their examples are logged.
    """

    def __init__(
        self,
        numeric: Sequence[Mapping[str, Any]] = (),
        categorical: Sequence[Mapping[str, Any]] = (),
        scaling: str = "standard",
        dropped: Mapping[str, str] | None = None,
    ) -> None:
        if scaling not in SCALINGS:
            raise PreprocessingError(f"unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}.")
        self.scaling = scaling
        self.numeric = [dict(c) for c in numeric]
        self.categorical = [dict(c) for c in categorical]
        self._dropped = dict(dropped or {})
        self._index = [{v: i + 1 for i, v in enumerate(c["vocab"])} for c in self.categorical]
        self.last_unknown_counts: dict[str, int] = {}
        self.last_missing_counts: dict[str, int] = {}
        self.last_invalid_counts: dict[str, int] = {}

    # -- fitting ------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        columns: Any,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        scaling: str = "standard",
        max_categories: int = 1000,
        min_category_count: int = 5,
        log: logging.Logger | None = None,
        n_quantiles: int = 101,
        left_out: Mapping[str, str] | None = None,
    ) -> TabularPreprocessor:
        """Fit on the training rows.

        Args:
            columns: training columns, ``columns[name]`` -> 1-D array-like (a dict or a pandas DataFrame).
            numeric: columns to treat as numeric. Columns named in neither list (and not excluded) have their type
                detected: numbers with more than 20 distinct values, or with fractions, are numeric; strings,
                booleans and integers with few distinct values are categorical.
            categorical: columns to treat as categorical.
            exclude: columns that are not features (target, ids, time).
            scaling: ``standard`` or ``quantile``.
            max_categories: the largest vocabulary per categorical column (most frequent categories kept).
            min_category_count: categories seen fewer times in training map to index 0 with unseen ones.
            log: where to report detected types, dropped columns and missing values (this module's logger by
                default).
            n_quantiles: training quantiles stored per column for ``quantile`` scaling.
            left_out: columns the caller left out of ``columns`` (row keys, raw dates) and why: recorded in
                ``dropped`` beside the columns dropped here, so a saved preprocessor says what it does not read.

        Raises:
            MissingColumnsError: a column named in ``numeric`` or ``categorical`` is absent.
            PreprocessingError: a column named in ``numeric`` holds non-numeric values, a column is named in both
                lists, the scaling is unknown, or no usable feature remains.
        """
        log = log or _log
        if scaling not in SCALINGS:
            raise PreprocessingError(f"unknown scaling '{scaling}'; choose one of {', '.join(SCALINGS)}.")
        names = _column_names(columns)
        numeric_set, categorical_set = list(numeric or []), list(categorical or [])
        both = sorted(set(numeric_set) & set(categorical_set))
        if both:
            raise PreprocessingError(f"column(s) {', '.join(both)} listed as both numeric and categorical.")
        absent = [c for c in numeric_set + categorical_set if c not in names]
        if absent:
            raise MissingColumnsError(absent, names)
        excluded = set(exclude)
        kinds: dict[str, str] = {}
        for name in names:
            if name in numeric_set:
                kinds[name] = "numeric"
            elif name in categorical_set:
                kinds[name] = "categorical"
            elif name not in excluded:
                kinds[name] = _detect_kind(_column(columns, name))
        skipped = [n for n, k in kinds.items() if k == "skip"]
        if skipped:
            log.warning(
                "Date/time column(s) %s are not used as features: derive numbers from them (hour, age) to use them.",
                ", ".join(skipped),
            )
        num_specs, cat_specs, dropped = [], [], {}
        for name, kind in kinds.items():
            if kind == "numeric":
                spec, reason = _fit_numeric(name, _column(columns, name), scaling, n_quantiles, log)
            elif kind == "categorical":
                spec, reason = _fit_categorical(name, _column(columns, name), max_categories, min_category_count)
            else:
                continue
            if reason:
                dropped[name] = reason
            elif kind == "numeric":
                num_specs.append(spec)
            else:
                cat_specs.append(spec)
        if dropped:
            log.warning(
                "Dropped %d column(s) that cannot inform the model: %s",
                len(dropped),
                "; ".join(f"{n} ({r})" for n, r in dropped.items()),
            )
        if not num_specs and not cat_specs:
            raise PreprocessingError(
                "no usable feature column: every candidate was excluded or dropped"
                + (f" ({'; '.join(f'{n}: {r}' for n, r in dropped.items())})" if dropped else "")
                + "."
            )
        log.info(
            "Features: %d numeric (%s scaling) %s; %d categorical %s",
            len(num_specs),
            scaling,
            [s["name"] for s in num_specs][:50],
            len(cat_specs),
            {s["name"]: len(s["vocab"]) + 1 for s in cat_specs},
        )
        return cls(num_specs, cat_specs, scaling, {**dict(left_out or {}), **dropped})

    # -- transforming -------------------------------------------------------------------------------------------
    def transform(self, columns: Any) -> tuple[np.ndarray, np.ndarray]:
        """Raw columns -> ``(x_num, x_cat)``: float32 ``(N, n_num)`` and int64 ``(N, n_cat)``.

        Columns the model does not use are ignored; new categories map to index 0 and are counted in
        ``last_unknown_counts``.

        Raises:
            MissingColumnsError: columns used in training are absent.
        """
        needed = self.input_columns
        absent = [c for c in needed if not _has_column(columns, c)]
        if absent:
            raise MissingColumnsError(absent, _column_names(columns))
        n = self._n_rows(columns)
        values, indicators = [], []
        self.last_missing_counts, self.last_invalid_counts = {}, {}
        for spec in self.numeric:
            x, bad = to_float(_column(columns, spec["name"]))
            if len(x) != n:
                raise PreprocessingError(f"column {spec['name']} has {len(x)} values, other columns {n}.")
            if bad:
                self.last_invalid_counts[spec["name"]] = len(bad)
                _log.warning(
                    "Column %s: %d non-numeric value(s) treated as missing, e.g. %s",
                    spec["name"],
                    len(bad),
                    ", ".join(repr(b) for b in bad[:3]),
                )
            missing = ~np.isfinite(x)
            n_missing = int(missing.sum())
            if n_missing:
                self.last_missing_counts[spec["name"]] = n_missing
                x = np.where(missing, spec["median"], x)
            if self.scaling == "standard":
                x = (x - spec["mean"]) / spec["std"]
            else:
                x = _quantile_transform(x, np.asarray(spec["quantiles"], dtype=np.float64))
            values.append(x)
            if spec["missing_indicator"]:
                indicators.append(missing.astype(np.float64))
        x_num = np.stack(values + indicators, axis=1).astype(np.float32) if values else np.zeros((n, 0), np.float32)
        cats = []
        self.last_unknown_counts = {}
        for spec, index in zip(self.categorical, self._index):
            uniques, inverse = factorize_categories(_column(columns, spec["name"]))
            if len(inverse) != n:
                raise PreprocessingError(f"column {spec['name']} has {len(inverse)} values, other columns {n}.")
            codes = np.array([index.get(u, 0) for u in uniques], dtype=np.int64)
            unknown = np.array([u is not None and u not in index for u in uniques], dtype=bool)
            n_unknown = int(unknown[inverse].sum())
            if n_unknown:
                self.last_unknown_counts[spec["name"]] = n_unknown
            cats.append(codes[inverse])
        x_cat = np.stack(cats, axis=1).astype(np.int64) if cats else np.zeros((n, 0), np.int64)
        return x_num, x_cat

    def _n_rows(self, columns: Any) -> int:
        first = (self.input_columns or _column_names(columns))[:1]
        return len(_column(columns, first[0])) if first else 0

    # -- description --------------------------------------------------------------------------------------------
    @property
    def numeric_columns(self) -> list[str]:
        """The raw numeric columns used, in feature order."""
        return [s["name"] for s in self.numeric]

    @property
    def numeric_features(self) -> list[str]:
        """Names of the ``x_num`` columns: the numeric columns, then their missing indicators (``<name>__missing``)."""
        return self.numeric_columns + [f"{s['name']}__missing" for s in self.numeric if s["missing_indicator"]]

    @property
    def categorical_features(self) -> list[str]:
        """Names of the ``x_cat`` columns (the raw categorical columns used)."""
        return [s["name"] for s in self.categorical]

    @property
    def input_columns(self) -> list[str]:
        """Every raw column :meth:`transform` reads."""
        return self.numeric_columns + self.categorical_features

    @property
    def cardinalities(self) -> list[int]:
        """Per categorical feature, the number of indices (vocabulary size + 1 for index 0)."""
        return [len(s["vocab"]) + 1 for s in self.categorical]

    @property
    def n_num(self) -> int:
        return len(self.numeric_features)

    @property
    def dropped(self) -> list[str]:
        """Columns dropped at fit time (constant, or no frequent category) or excluded by the caller (row keys, raw
        dates); ``dropped_reasons`` says why."""
        return list(self._dropped)

    @property
    def dropped_reasons(self) -> dict[str, str]:
        return dict(self._dropped)

    # -- serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON data (lists, floats, strings)."""
        return {
            "version": FORMAT_VERSION,
            "scaling": self.scaling,
            "numeric": [_plain(s) for s in self.numeric],
            "categorical": [_plain(s) for s in self.categorical],
            "dropped": dict(self._dropped),
            "numeric_features": self.numeric_features,
            "categorical_features": self.categorical_features,
            "cardinalities": self.cardinalities,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a preprocessor saved with :meth:`to_dict` (the derived keys are recomputed, not read)."""
        if not isinstance(d, Mapping) or "numeric" not in d or "categorical" not in d:
            raise PreprocessingError(
                "not a saved tabular preprocessor (expected the 'numeric' and 'categorical' keys of to_dict())."
            )
        if int(d.get("version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise PreprocessingError(
                f"preprocessor format {d['version']} is newer than this code ({FORMAT_VERSION}); update recipezoo."
            )
        return cls(d["numeric"], d["categorical"], d.get("scaling", "standard"), d.get("dropped") or {})

    def __repr__(self) -> str:
        return (
            f"TabularPreprocessor(numeric={self.numeric_features}, categorical={self.categorical_features}, "
            f"scaling={self.scaling!r}, dropped={self.dropped})"
        )


def _plain(obj: Any) -> Any:
    """Numpy scalars and arrays inside dicts/lists -> Python floats, ints and lists (JSON and OmegaConf safe)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_plain(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj)
    return obj


def _detect_kind(values: np.ndarray) -> str:
    """``numeric``, ``categorical`` or ``skip`` (dates) for a column nobody typed explicitly."""
    kind = values.dtype.kind
    if kind == "b":
        return "categorical"
    if kind in "Mm":
        return "skip"
    if kind == "f":
        return "numeric"
    if kind in "iu":
        return "numeric" if len(np.unique(values)) > MAX_DISCRETE_NUMERIC else "categorical"
    if kind == "O" and any(isinstance(v, bool | np.bool_) for v in values[:1000].tolist()):
        return "categorical"
    # Text: parse the distinct values only (canonical strings: "1.50" and "1.5" are one value), not every row.
    uniques, _ = factorize_categories(values)
    x, bad = to_float(np.array([u for u in set(uniques) if u is not None], dtype=object))
    if bad:
        return "categorical"
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return "numeric"  # all missing: dropped as constant either way
    if np.any(finite != np.round(finite)):
        return "numeric"
    return "numeric" if len(np.unique(finite)) > MAX_DISCRETE_NUMERIC else "categorical"


def _fit_numeric(
    name: str, values: np.ndarray, scaling: str, n_quantiles: int, log: logging.Logger
) -> tuple[dict[str, Any], str]:
    x, bad = to_float(values)
    if bad:
        examples = ", ".join(repr(b) for b in bad[:3])
        raise PreprocessingError(
            f"column {name} is listed as numeric but holds {len(bad)} non-numeric value(s), e.g. {examples}; "
            "list it as categorical, or clean the values."
        )
    n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    missing = ~np.isfinite(x)
    finite = x[~missing]
    if finite.size == 0:
        return {}, "no finite value"
    if not missing.any() and finite.min() == finite.max():
        return {}, f"constant {finite[0]:g}"
    if missing.any():
        log.info(
            "Column %s: %d missing and %d infinite value(s) of %d in training: imputed with the median, "
            "indicator %s__missing added.",
            name,
            n_nan,
            n_inf,
            len(x),
            name,
        )
    median = float(np.median(finite))
    x = np.where(missing, median, x)
    spec: dict[str, Any] = {"name": name, "median": median, "missing_indicator": bool(missing.any())}
    mean, std = float(x.mean()), float(x.std())
    # A (nearly) constant column after imputation: scaling by 1 keeps it finite instead of dividing by ~0.
    spec.update(mean=mean, std=std if std > 1e-12 * max(1.0, abs(mean)) else 1.0)
    if scaling == "quantile":
        spec["quantiles"] = [float(q) for q in np.quantile(x, np.linspace(0.0, 1.0, max(2, int(n_quantiles))))]
    return spec, ""


def _fit_categorical(
    name: str, values: np.ndarray, max_categories: int, min_category_count: int
) -> tuple[dict[str, Any], str]:
    uniques, inverse = factorize_categories(values)
    per_unique = np.bincount(inverse, minlength=len(uniques))
    counts: dict[str | None, int] = {}
    for u, c in zip(uniques, per_unique.tolist()):
        counts[u] = counts.get(u, 0) + c
    n_missing = counts.pop(None, 0)
    if not counts:
        return {}, "no value"
    if len(counts) == 1 and not n_missing:
        return {}, f"constant {next(iter(counts))!r}"
    frequent = sorted(((c, v) for v, c in counts.items() if c >= min_category_count), key=lambda t: (-t[0], t[1]))
    vocab = [v for _, v in frequent[: max(0, int(max_categories))]]
    if not vocab:
        return {}, f"no category seen {min_category_count}+ times ({len(counts)} distinct values)"
    return {"name": name, "vocab": vocab}, ""


# -- calibration --------------------------------------------------------------------------------------------------
def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow for large ``|z|``."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


CALIBRATIONS = ("none", "platt", "isotonic")


def calibrate(scores: Any, calibration: Mapping[str, Any] | None) -> np.ndarray:
    """Model scores (logits) -> fraud probabilities, as fitted on validation.

    Args:
        scores: the model's scores, any shape.
        calibration: ``{"kind": "none"}`` (the sigmoid of the score; also for None), ``{"kind": "platt", "a": a,
            "b": b}`` (``sigmoid(a * score + b)``; temperature scaling is ``a = 1/T, b = 0``) or ``{"kind":
            "isotonic", "x": [...], "y": [...]}`` (piecewise-linear through the increasing score knots ``x``,
            constant beyond them, clipped to [0, 1]).

    Returns:
        float64 probabilities, the shape of ``scores``.
    """
    s = np.asarray(scores, dtype=np.float64)
    kind = (calibration or {}).get("kind", "none")
    if kind == "none":
        return sigmoid(s)
    if kind == "platt":
        return sigmoid(float(calibration["a"]) * s + float(calibration.get("b", 0.0)))
    if kind == "isotonic":
        x = np.asarray(calibration["x"], dtype=np.float64)
        y = np.asarray(calibration["y"], dtype=np.float64)
        if x.size == 0 or x.size != y.size:
            raise ValueError(f"isotonic calibration needs as many x as y knots (got {x.size} and {y.size}).")
        return np.clip(np.interp(s, x, y), 0.0, 1.0)
    raise ValueError(f"unknown calibration kind '{kind}'; expected one of {', '.join(CALIBRATIONS)}.")


# -- exported bundles ---------------------------------------------------------------------------------------------
class OnnxFraudScorer:
    """An exported fraud model: raw columns in, score / probability / decision out.

    ``metadata.json`` holds ``model_file``, ``preprocessing`` (:meth:`TabularPreprocessor.to_dict`),
    ``calibration`` (see :func:`calibrate`), ``threshold`` and ``inputs`` (the ONNX input names, a list or a dict
    keyed by name: ``x_num`` and ``x_cat``, or two other names taken in that order). The decision is
    ``score >= threshold`` when the metadata says ``"threshold_on": "score"`` (raw logits, or anomaly scores such as
    an autoencoder's reconstruction error), else ``probability >= threshold``; with no threshold it is all False.

    Args:
        bundle: the export folder.
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, bundle: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        self.bundle = Path(bundle).expanduser()
        self.metadata: dict[str, Any] = read_metadata(self.bundle, required=("preprocessing",))
        self.preprocessor = TabularPreprocessor.from_dict(self.metadata["preprocessing"])
        self.calibration: dict[str, Any] = dict(self.metadata.get("calibration") or {"kind": "none"})
        threshold = self.metadata.get("threshold", 0.5)
        # No threshold (an anomaly model exported before any validation): nothing is flagged, scores still are.
        self.threshold = float("nan") if threshold is None else float(threshold)
        self.threshold_on = self.metadata.get("threshold_on", "probability")
        self.session = open_session(self.bundle / self.metadata["model_file"], providers)
        names = list(self.metadata.get("inputs") or ["x_num", "x_cat"])  # a dict's keys are the names, in order
        self.input_names: list[str] = ["x_num", "x_cat"] if {"x_num", "x_cat"} <= set(names) else names[:2]
        # The exporter may prune an input the graph does not use (x_cat when there is no categorical column).
        self._graph_inputs = {i.name for i in self.session.get_inputs()}

    def scores(self, columns: Any, batch_size: int = 8192) -> np.ndarray:
        """The model's raw scores, ``(N,)`` float64."""
        x_num, x_cat = self.preprocessor.transform(columns)
        out = []
        for i in range(0, len(x_num), batch_size):
            feed = {
                name: arr[i : i + batch_size]
                for name, arr in zip(self.input_names, (x_num, x_cat))
                if name in self._graph_inputs
            }
            out.append(np.asarray(self.session.run(None, feed)[0], dtype=np.float64).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float64)

    def score(self, columns: Any, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """``{"score": (N,), "probability": (N,), "decision": (N,) bool}`` for raw columns."""
        s = self.scores(columns, batch_size)
        p = calibrate(s, self.calibration)
        decision = (s if self.threshold_on == "score" else p) >= self.threshold
        return {"score": s, "probability": p, "decision": decision}


def read_csv_columns(path: str | Path) -> dict[str, list[str]]:
    """A CSV file (with a header) as ``{column: [raw strings]}``, with the standard library's csv module."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        columns: dict[str, list[str]] = {h: [] for h in header}
        for row in reader:
            if not row:
                continue
            for h, v in zip(header, row + [""] * (len(header) - len(row))):
                columns[h].append(v)
    return columns


def main(argv: Sequence[str]) -> int:
    """``python loader.py <bundle folder> <input.csv>``: ``score,probability,decision`` per row on stdout; a bad bundle
    or table ends in one ``error:`` line and status 2."""
    usage = "usage: python loader.py <bundle folder> <input.csv>"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) != 2:
        print(usage, file=sys.stderr)
        return 2
    try:
        scorer = OnnxFraudScorer(argv[0])
        columns = read_csv_columns(argv[1])
        out = scorer.score(columns)
    except (BundleError, PreprocessingError, OSError) as e:  # OSError: a missing or unreadable CSV
        print(f"error: {e}", file=sys.stderr)
        return 2
    id_column = scorer.metadata.get("id_column")
    ids = columns.get(id_column) if id_column else None
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(([id_column] if ids is not None else []) + ["score", "probability", "decision"])
    for i, (s, p, d) in enumerate(zip(out["score"], out["probability"], out["decision"])):
        writer.writerow(([ids[i]] if ids is not None else []) + [f"{s:.6g}", f"{p:.6f}", int(d)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
