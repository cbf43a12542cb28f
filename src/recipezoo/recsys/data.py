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
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.runtime.recsys import canonical_id, read_ids
from recipezoo.runtime.tabular import MissingColumnsError, PreprocessingError, TabularPreprocessor

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("leave_last_out", "time", "random")
FEEDBACK = ("implicit", "explicit")
DUPLICATES = ("last", "first", "mean", "max")
TRAIN_BATCHES = ("pairs", "sequences")

# MovieLens releases: where they are, and which file holds what.
MOVIELENS = {
    "ml-100k": {"ratings": "u.data", "items": "u.item", "users": "u.user"},
    "ml-1m": {"ratings": "ratings.dat", "items": "movies.dat", "users": "users.dat"},
    "ml-latest-small": {"ratings": "ratings.csv", "items": "movies.csv", "users": None},
}
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
# Column names recognised when data.user_column / item_column / rating_column / time_column are not given
# (compared lower-cased, without '_', '-' and spaces).
CANDIDATES = {
    "user": ["userid", "user", "uid", "customerid", "customer", "visitorid", "reviewerid", "memberid", "accountid",
             "clientid", "useridx", "username", "buyerid", "viewerid", "readerid", "playerid", "sessionid"],
    "item": ["itemid", "item", "movieid", "movie", "productid", "product", "asin", "iid", "articleid", "trackid",
             "songid", "bookid", "isbn", "contentid", "sku", "itemidx", "businessid", "artistid", "animeid",
             "recipeid", "courseid", "videoid", "gameid", "appid", "venueid", "poiid", "newsid", "postid"],
    "rating": ["rating", "ratings", "score", "stars", "star", "overall", "bookrating", "preference"],
    "time": ["timestamp", "time", "ts", "datetime", "date", "eventtime", "unixreviewtime", "createdat",
             "eventtimestamp", "created", "dateadded", "eventdate"],
}  # fmt: skip
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")
_TABLE_KINDS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".dat": "text", ".data": "text"}
_TABLE_KINDS.update({".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"})


# -- reading ------------------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name).lower())


def movielens_kind(path: Path) -> str | None:
    """Which MovieLens file ``path`` is, by its name (u.data, ratings.dat, u.item, movies.dat, u.user, users.dat)."""
    return {
        "u.data": "ml-100k-ratings",
        "ratings.dat": "ml-1m-ratings",
        "u.item": "ml-100k-items",
        "movies.dat": "ml-1m-items",
        "u.user": "ml-100k-users",
        "users.dat": "ml-1m-users",
    }.get(path.name.lower())


def _read_double_colon(path: Path, names: list[str], encoding: str = "latin-1") -> pd.DataFrame:
    """A MovieLens-1M ``::`` file (the python engine: titles contain single colons)."""
    return pd.read_csv(path, sep="::", engine="python", header=None, names=names, dtype=str, encoding=encoding)


def read_movielens(path: Path, kind: str) -> pd.DataFrame:
    """A MovieLens file as a table with the column names of ml-latest (userId, movieId, rating, timestamp, ...)."""
    if kind == "ml-100k-ratings":
        return pd.read_csv(path, sep="\t", header=None, names=["userId", "movieId", "rating", "timestamp"], dtype=str)
    if kind == "ml-1m-ratings":
        # "1::1193::5::978300760": splitting on ':' leaves empty columns between fields; the C engine is fast.
        frame = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6], dtype=str)
        frame.columns = ["userId", "movieId", "rating", "timestamp"]
        return frame
    if kind == "ml-100k-items":
        names = ["movieId", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
        frame = pd.read_csv(path, sep="|", header=None, names=names, dtype=str, encoding="latin-1")
        flags = frame[ML100K_GENRES].fillna("0").eq("1").to_numpy()
        frame["genres"] = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
        return frame[["movieId", "title", "genres", "release_date"]]
    if kind == "ml-1m-items":
        return _read_double_colon(path, ["movieId", "title", "genres"])
    if kind == "ml-100k-users":
        return pd.read_csv(
            path, sep="|", header=None, names=["userId", "age", "gender", "occupation", "zip"], dtype=str
        )
    if kind == "ml-1m-users":
        return _read_double_colon(path, ["userId", "gender", "age", "occupation", "zip"])
    raise ConfigError(f"unknown MovieLens file kind '{kind}'.")


def read_table(path: str | os.PathLike, what: str = "interactions", str_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV / TSV / JSON lines / Parquet file, or a MovieLens file by its name, as a DataFrame.

    Args:
        path: the file (``~`` expanded; ``.gz``/``.zip``/... compression by extension).
        what: how to call the file in messages.
        str_columns: columns read as text (ids: exact for strings and integers beyond 64 bits), when present.

    Raises:
        DataError: the file is missing, empty or unreadable.
        ConfigError: the extension is not one we read.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(f"{what} file not found: {p}.")
    kind = movielens_kind(p)
    try:
        if kind:
            frame = read_movielens(p, kind)
        else:
            try:
                frame = _read_generic(p, what, str_columns)
            except UnicodeDecodeError:  # not UTF-8: many older logs (Book-Crossing, MovieLens) are Latin-1
                frame = _read_generic(p, what, str_columns, encoding="latin-1")
                log.info("%s is not UTF-8: read as Latin-1.", p.name)
    except pd.errors.EmptyDataError:
        raise DataError(f"{what} file {p} is empty.") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read {what} file {p}: {first}") from None
    if len(frame) == 0:
        raise DataError(f"{what} file {p} has no rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_generic(p: Path, what: str, str_columns: Sequence[str], encoding: str = "utf-8") -> pd.DataFrame:
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    kind = _TABLE_KINDS.get(suffixes[-1] if suffixes else "", "text" if not suffixes else None)
    if kind is None:
        raise ConfigError(
            f"cannot tell the format of {what} file {p.name}: use .csv, .tsv, .jsonl (JSON lines) or .parquet "
            "(optionally .gz), or a MovieLens file (u.data, ratings.dat, ratings.csv)."
        )
    if kind == "parquet":
        try:
            frame = pd.read_parquet(p)
        except ImportError:
            raise DataError(f"reading {p.name} needs a Parquet engine: pip install pyarrow (or save as CSV).") from None
        return frame
    if kind == "jsonl":
        return pd.read_json(p, lines=True, dtype=False)
    if kind == "json":
        try:
            return pd.read_json(p, lines=True, dtype=False)
        except ValueError:
            return pd.read_json(p, dtype=False)
    sep = {"csv": ",", "tsv": "\t"}.get(kind)
    if sep is None:  # .txt / .dat: sniff the delimiter from the first line
        with open(p, encoding="utf-8", errors="replace") as f:
            first = f.readline()
        sep = next((s for s in ("::", "\t", ",", ";", "|") if s in first), r"\s+")
    header = pd.read_csv(p, sep=sep, nrows=0, engine="python" if sep == "::" else "c", encoding=encoding).columns
    if len(header) == 1 and kind == "csv":
        with open(p, encoding="utf-8", errors="replace") as f:
            first = f.readline()
        other = next((s for s in ("\t", ";", "|") if s in first), None)
        if other:  # a ".csv" written with another delimiter
            sep = other
            header = pd.read_csv(p, sep=sep, nrows=0, encoding=encoding).columns
    wanted = {_norm(c) for c in str_columns if c}
    dtype = {c: str for c in header if _norm(c) in wanted}
    engine = "python" if sep == "::" else "c"
    kwargs: dict[str, Any] = {"sep": sep, "dtype": dtype or None, "engine": engine, "encoding": encoding}
    if engine == "c":
        kwargs["low_memory"] = False
    frame = pd.read_csv(p, **kwargs)
    if _looks_headerless(list(frame.columns)):
        # No header row (like MovieLens u.data): columns are user, item[, rating[, timestamp]] by position.
        frame = pd.read_csv(p, header=None, dtype=str, **{k: v for k, v in kwargs.items() if k != "dtype"})
        frame.columns = ["user", "item", "rating", "timestamp", *[f"column_{i}" for i in range(4, frame.shape[1])]][
            : frame.shape[1]
        ]
        log.info("%s has no header row: reading its columns as %s.", p.name, ", ".join(frame.columns[:4]))
    return frame


def _looks_headerless(columns: list[Any]) -> bool:
    def numeric(c: Any) -> bool:
        try:
            float(str(c).split(".")[0] if str(c).count(".") > 1 else str(c))
            return True
        except ValueError:
            return False

    return len(columns) >= 2 and all(numeric(c) for c in columns[:2])


def download_movielens(name: str, root: str | os.PathLike) -> Path:
    """Download and unpack a MovieLens release into ``root/<name>`` (skipped when it is already there)."""
    if name not in MOVIELENS:
        raise ConfigError(f"unknown MovieLens release '{name}'; choose one of {', '.join(MOVIELENS)}.")
    folder = Path(os.path.expanduser(str(root))) / name
    if (folder / MOVIELENS[name]["ratings"]).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    url = MOVIELENS_URL.format(name=name)
    log.info("Downloading %s ...", url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https URL
            payload = response.read()
    except OSError as e:
        raise DataError(
            f"could not download {url} ({type(e).__name__}: {str(e)[:120]}). Without network access, download it on "
            f"a connected machine, unzip it and pass data.path=<its {MOVIELENS[name]['ratings']}>."
        ) from None
    tmp = folder.parent / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        archive.extractall(tmp)
    inner = next((d for d in tmp.rglob(MOVIELENS[name]["ratings"])), None)
    if inner is None:
        raise DataError(f"{url} does not hold {MOVIELENS[name]['ratings']}.")
    shutil.move(str(inner.parent), str(folder))
    shutil.rmtree(tmp, ignore_errors=True)
    return folder


# -- cleaning -----------------------------------------------------------------------------------------------------


def canonical_ids(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Ids as codes into canonical text uniques (see :func:`recipezoo.runtime.recsys.canonical_id`); -1 = missing.

    Returns:
        ``(codes (N,) int64, uniques (K,) object)``: distinct raw values that mean the same id (``1`` and ``"1.0"``)
        share a code.
    """
    raw_codes, raw_uniques = pd.factorize(values, use_na_sentinel=True)
    canon = [canonical_id(v) for v in np.asarray(raw_uniques, dtype=object).tolist()]
    canon_codes, uniques = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)
    lookup = np.append(canon_codes.astype(np.int64), -1)  # raw code -1 (missing) -> -1
    return lookup[raw_codes], np.asarray(uniques, dtype=object)


def parse_ratings(values: pd.Series, column: str) -> np.ndarray:
    """Ratings as float64 (NaN = missing); non-numeric text is an error that names examples."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    blank = values.isna() | values.astype(str).str.strip().str.lower().isin(["", "nan", "none", "null", "na"])
    bad = numbers.isna() & ~blank
    if bad.any():
        examples = ", ".join(repr(v) for v in values[bad].astype(str).unique()[:3])
        raise DataError(
            f"rating column '{column}' has {int(bad.sum())} non-numeric value(s) (e.g. {examples}); make them numbers "
            "(or empty), or train on implicit feedback without ratings (data.feedback=implicit)."
        )
    out = numbers.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        raise DataError(f"rating column '{column}' has infinite values; ratings must be finite numbers.")
    return out


def parse_times(values: pd.Series, column: str) -> tuple[np.ndarray, str]:
    """Timestamps as float64 seconds, from numbers (kept as they are), datetimes, or date text in any mix of formats.

    Numbers mixed with date text are taken as Unix seconds (or milliseconds, by magnitude) and said so in the log;
    anything unreadable is an error naming examples.

    Returns:
        The values and a note on how they were read (for the log).
    """
    if values.isna().any():
        raise DataError(
            f"time column '{column}' has {int(values.isna().sum())} missing value(s); fill or drop those rows, or "
            "run without a time column (data.time_column=null: the file's row order is then the time order)."
        )
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"time column '{column}' holds booleans; expected numbers or dates.")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64), "numbers"
    if pd.api.types.is_datetime64_any_dtype(values):
        return _seconds(values), "datetimes"
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    is_number = numbers.notna().to_numpy()
    if is_number.all():
        return numbers.to_numpy(dtype=np.float64), "numbers"
    out = np.empty(len(text), dtype=np.float64)
    note = "dates"
    if is_number.any():
        nums = numbers[is_number].to_numpy(dtype=np.float64)
        if np.all((nums >= 1e8) & (nums < 1e10)):
            out[is_number], unit = nums, "seconds"
        elif np.all((nums >= 1e11) & (nums < 1e13)):
            out[is_number], unit = nums / 1e3, "milliseconds"
        else:
            examples = ", ".join(repr(v) for v in text[~is_number].unique()[:2])
            raise DataError(
                f"time column '{column}' mixes numbers ({int(is_number.sum())}, e.g. {text[is_number].iloc[0]!r}) "
                f"and dates (e.g. {examples}), and the numbers are not Unix times; use one format."
            )
        note = f"dates, and {int(is_number.sum())} numbers read as Unix {unit}"
    try:
        dates = pd.to_datetime(text[~is_number], errors="coerce", utc=True, format="mixed")
    except (ValueError, TypeError) as e:
        raise DataError(f"time column '{column}' cannot be read as dates: {str(e)[:200]}") from None
    bad = dates.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in text[~is_number][bad].unique()[:3])
        raise DataError(
            f"time column '{column}': {int(bad.sum())} of {len(text)} values are neither numbers nor dates (e.g. "
            f"{examples}); use Unix seconds or dates like 2024-01-31 12:00:00."
        )
    out[~is_number] = _seconds(dates)
    return out, note


def _seconds(dates: pd.Series) -> np.ndarray:
    """Datetimes (naive = UTC) as float seconds since 1970, whatever their resolution (pandas may pick s, ms, us)."""
    if getattr(dates.dt, "tz", None) is None:
        dates = dates.dt.tz_localize("UTC")
    return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


# -- CSR helpers ----------------------------------------------------------------------------------------------------


def csr(rows: np.ndarray, values: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` must be sorted: ``(indptr (n_rows + 1,), values)``."""
    counts = np.bincount(rows, minlength=n_rows)[:n_rows]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, values


def gather_rows(
    indptr: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, width: int | None = None, last: bool = False
) -> torch.Tensor:
    """Rows of a CSR matrix as a zero-padded ``(B, width)`` tensor.

    Args:
        indptr: ``(R + 1,)``.
        values: ``(nnz,)``.
        rows: ``(B,)`` row numbers.
        width: the output width (default: the longest row).
        last: keep each row's last ``width`` values, right-aligned (left padding: histories); else the first ones,
            left-aligned.
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    if width is None:
        width = int(lens.max()) if len(lens) else 0
    width = max(int(width), 1)
    if values.numel() == 0:
        return torch.zeros(len(rows), width, dtype=values.dtype)
    offsets = torch.arange(width)
    if last:
        take = lens.clamp(max=width)
        pos = (starts + lens - take).unsqueeze(1) + offsets - (width - take).unsqueeze(1)
        ok = offsets.unsqueeze(0) >= (width - take).unsqueeze(1)
    else:
        pos = starts.unsqueeze(1) + offsets
        ok = offsets.unsqueeze(0) < lens.unsqueeze(1)
    return torch.where(ok, values[pos.clamp(0, values.numel() - 1)], torch.zeros((), dtype=values.dtype))


# -- datasets -----------------------------------------------------------------------------------------------------


class Batch(dict):
    """A batch already gathered by a dataset's ``__getitems__`` (passed through by :func:`collate`)."""


def collate(batch: Any) -> Any:
    if isinstance(batch, Batch):
        return dict(batch)
    raise TypeError("recommendation datasets gather whole batches; use the DataModule's loaders")


class _Rows(Dataset):
    """Indices 0..n-1 of a split; ``__getitems__`` builds a whole batch with a few tensor gathers."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:  # pragma: no cover - the loaders always fetch batches
        return self.__getitems__([i])


class _SortedKeys:
    """Membership of (user, item) pairs in a set, by binary search over sorted ``user * stride + item`` keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, stride: int) -> None:
        self.stride = int(stride)
        self.keys = torch.from_numpy(np.unique(users.astype(np.int64) * self.stride + items.astype(np.int64)))

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        q = (
            users.unsqueeze(-1).expand_as(items) * self.stride + items
            if items.dim() > users.dim()
            else (users * self.stride + items)
        )
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, q.reshape(-1)).clamp(max=self.keys.numel() - 1)
        return (self.keys[pos] == q.reshape(-1)).reshape(q.shape)


class PairRows(_Rows):
    """Training interactions: user, item, rating, the user's earlier items, sampled negatives."""

    def __init__(self, dm: InteractionsDataModule) -> None:
        t = dm._train
        super().__init__(len(t["user"]))
        self.user, self.item = torch.from_numpy(t["user"]), torch.from_numpy(t["item"])
        self.rating = torch.from_numpy(t["rating"].astype(np.float32))
        self.pos = torch.from_numpy(t["pos"])
        self.explicit = dm.feedback == "explicit"
        self.history_len, self.negatives = dm.history_len, dm.negatives
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)
        self.warm = torch.from_numpy(dm._warm_items)
        self.known = dm._train_keys

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        user, item = self.user[idx], self.item[idx]
        out = Batch(user=user, item=item)
        if self.explicit:
            out["rating"] = self.rating[idx]
        if self.history_len:
            # The items before this one (time order), never the item itself or later ones: no target leakage.
            starts = self.indptr[user]
            before = self.pos[idx]
            offsets = torch.arange(self.history_len) - self.history_len  # -L..-1
            at = before.unsqueeze(1) + offsets
            ok = at >= 0
            hist = self.seq[(starts.unsqueeze(1) + at.clamp(min=0)).clamp(max=max(len(self.seq) - 1, 0))]
            out["history"] = torch.where(ok, hist, torch.zeros_like(hist))
        if self.negatives:
            # Uniform over items with training interactions (torch's global RNG: seeded, saved on checkpoints).
            neg = self.warm[torch.randint(len(self.warm), (len(idx), self.negatives))]
            out["neg"] = neg
            out["neg_ok"] = ~self.known.contains(user, neg)
        return out


class SequenceRows(_Rows):
    """One training row per user: ``L`` consecutive items as inputs and, at each position, the next item as target.

    The window is the user's last ``L + 1`` items (``windows="last"``, as in the SASRec paper), or ends at a random
    point of their history, drawn anew each epoch (``windows="random"``): users with histories longer than ``L``
    then contribute all of them over the epochs, not only their most recent items.
    """

    def __init__(self, dm: InteractionsDataModule) -> None:
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)
        lens = self.indptr[1:] - self.indptr[:-1]
        self.users = torch.nonzero(lens >= 2).reshape(-1)  # a user needs an input and a target
        super().__init__(len(self.users))
        self.length, self.negatives = max(1, dm.history_len), dm.negatives
        self.random = dm.sequence_windows == "random"
        self.warm = torch.from_numpy(dm._warm_items)
        self.known = dm._train_keys

    def __getitems__(self, indices: list[int]) -> Batch:
        users = self.users[torch.as_tensor(indices, dtype=torch.long)]
        starts, lens = self.indptr[users], self.indptr[users + 1] - self.indptr[users]
        # Where each window ends (exclusive): the end of the history, or a random point with >= 2 items before it
        # (torch's global RNG: seeded, and saved in checkpoints for exact resume).
        ends = 2 + (torch.rand(len(users)) * (lens - 1)).long().clamp(max=lens - 2) if self.random else lens
        at = (starts + ends).unsqueeze(1) - (self.length + 1) + torch.arange(self.length + 1)  # (B, L + 1)
        ok = at >= starts.unsqueeze(1)
        window = torch.where(ok, self.seq[at.clamp(min=0)], torch.zeros((), dtype=self.seq.dtype))
        history, target = window[:, :-1], window[:, 1:]
        # A position whose input is padding has nothing to predict from: no target there.
        target = torch.where(history > 0, target, torch.zeros_like(target))
        out = Batch(user=users, history=history, target=target)
        if self.negatives:
            neg = self.warm[torch.randint(len(self.warm), target.shape)]
            out["neg"] = neg
            out["neg_ok"] = ~self.known.contains(users, neg) & (target > 0)
        return out


class RankingRows(_Rows):
    """Evaluation users of a split: their targets, the items to mask, their history and sampled negatives."""

    def __init__(self, dm: InteractionsDataModule, split: str) -> None:
        e = dm._eval[split]
        super().__init__(len(e["users"]))
        self.users = torch.from_numpy(e["users"])
        self.t_ptr, self.t_items = torch.from_numpy(e["target_ptr"]), torch.from_numpy(e["target_items"])
        self.s_ptr, self.s_items = torch.from_numpy(e["seen_ptr"]), torch.from_numpy(e["seen_items"])
        self.negatives = torch.from_numpy(e["negatives"]) if e.get("negatives") is not None else None
        self.history_len = dm.history_len

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        users = self.users[idx]
        out = Batch(
            user=users,
            targets=gather_rows(self.t_ptr, self.t_items, idx),
            seen=gather_rows(self.s_ptr, self.s_items, idx),
        )
        if self.history_len:
            out["history"] = gather_rows(self.s_ptr, self.s_items, idx, self.history_len, last=True)
        if self.negatives is not None:
            out["negatives"] = self.negatives[idx]
        return out


class RatingRows(_Rows):
    """Evaluation interactions with their ratings (explicit feedback)."""

    def __init__(self, dm: InteractionsDataModule, split: str) -> None:
        e = dm._eval[split]
        super().__init__(len(e["user"]))
        self.user, self.item = torch.from_numpy(e["user"]), torch.from_numpy(e["item"])
        self.rating = torch.from_numpy(e["rating"].astype(np.float32))
        self.history_len = dm.history_len
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        out = Batch(user=self.user[idx], item=self.item[idx], rating=self.rating[idx])
        if self.history_len:
            out["history"] = gather_rows(self.indptr, self.seq, self.user[idx], self.history_len, last=True)
        return out


# -- the synthetic twin -----------------------------------------------------------------------------------------

_CLUSTER_WORDS = [
    ("SciFi", ["space", "galaxy", "robot", "alien", "planet", "star"]),
    ("Romance", ["love", "wedding", "paris", "heart", "kiss", "summer"]),
    ("Crime", ["murder", "detective", "night", "crime", "heist", "gang"]),
    ("Fantasy", ["dragon", "magic", "quest", "kingdom", "wizard", "sword"]),
]
_TITLE_STARTS = ["the", "return of the", "rise of the", "last", "secret", "tales of the", "a"]


def make_synthetic(
    users: int = 300,
    items: int = 200,
    cold_items: int = 20,
    seed: int = 42,
    per_user: tuple[int, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """An interaction log with a planted low-rank preference structure, and item and user tables.

    Four latent clusters of items (science fiction, romance, crime, fantasy): each user prefers one or two, so a
    low-rank model predicts whom an item suits far better than popularity does. Within a cluster the items have an
    order, and each user meets their items roughly in that order (a sequential signal). Ratings are a low-rank score
    plus noise, rounded to 1..5 stars. The item table has a ``title`` whose words name the cluster (text carries
    the preference signal, so a cold item's title places it), ``genres`` (``"SciFi|Comedy"``), ``year`` and
    ``studio``; ``cold_items`` of its items never appear in the log. The user table has ``age`` and ``country``.

    Each user has ``per_user`` interactions (default: between 1/16 and 1/5 of the items, at least 5 and 8), so
    the log stays sparse enough for the preferences to show.

    Returns:
        ``(interactions, items, users)``: columns ``user_id`` (text ids ``u0001``...), ``item_id`` (integers),
        ``rating``, ``timestamp`` (Unix seconds); ``item_id, title, genres, year, studio``; ``user_id, age, country``.
    """
    if users < 10 or items < 8:
        raise ConfigError("the synthetic twin needs at least 10 users and 8 items (data.synthetic_users/_items).")
    rng = np.random.default_rng(seed)
    n_all = items + cold_items
    cluster = rng.integers(0, 4, n_all)
    q = np.eye(4)[cluster] + rng.normal(0, 0.25, (n_all, 4))  # item factors
    pop = rng.normal(0, 0.6, n_all)  # popularity
    order = np.zeros(n_all)
    for c in range(4):
        members = np.flatnonzero(cluster == c)
        order[members] = np.arange(len(members)) / max(1, len(members))  # position within the cluster
    main = rng.integers(0, 4, users)
    p = np.eye(4)[main] * 1.0 + 0.5 * np.eye(4)[rng.integers(0, 4, users)] + rng.normal(0, 0.15, (users, 4))
    lo, hi = per_user or (max(5, items // 16), max(8, items // 5))
    rows_u, rows_i, rows_r, rows_t = [], [], [], []
    start = 1_600_000_000
    for u in range(users):
        logits = 4.0 * (p[u] @ q[:items].T) + pop[:items]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        n = int(min(items - 1, rng.integers(lo, hi + 1)))
        chosen = rng.choice(items, size=n, replace=False, p=prob)
        when = order[chosen] + rng.normal(0, 0.05, n)  # met roughly in cluster order
        chosen = chosen[np.argsort(when)]
        affinity = p[u] @ q[chosen].T
        rating = np.clip(np.round(1.0 + 2.2 * affinity + rng.normal(0, 0.4, n)), 1, 5)
        rows_u += [u] * n
        rows_i += chosen.tolist()
        rows_r += rating.tolist()
        rows_t += (start + u * 10 + np.cumsum(rng.integers(60, 86400, n))).tolist()
    interactions = pd.DataFrame(
        {
            "user_id": [f"u{u:04d}" for u in rows_u],
            "item_id": np.asarray(rows_i) + 1,
            "rating": np.asarray(rows_r, dtype=np.float64),
            "timestamp": np.asarray(rows_t, dtype=np.int64),
        }
    )
    interactions = interactions.iloc[rng.permutation(len(interactions))].reset_index(drop=True)
    titles, genres = [], []
    for i in range(n_all):
        name, words = _CLUSTER_WORDS[cluster[i]]
        picked = rng.choice(words, 2, replace=False)
        titles.append(f"{rng.choice(_TITLE_STARTS)} {picked[0]} {picked[1]} ({1970 + i % 50})")
        extra = rng.choice(["Comedy", "Drama", "Action", ""], p=[0.3, 0.3, 0.2, 0.2])
        genres.append(name + (f"|{extra}" if extra else ""))
    item_table = pd.DataFrame(
        {
            "item_id": np.arange(n_all) + 1,
            "title": titles,
            "genres": genres,
            "year": 1970 + np.arange(n_all) % 50,
            "studio": rng.choice(["north", "south", "east", "west"], n_all),
        }
    )
    countries = np.array(["US", "FR", "JP", "BR"])
    user_table = pd.DataFrame(
        {
            "user_id": [f"u{u:04d}" for u in range(users)],
            "age": rng.integers(16, 70, users),
            "country": np.where(rng.random(users) < 0.7, countries[main], countries[rng.integers(0, 4, users)]),
        }
    )
    return interactions, item_table, user_table


# -- the DataModule -----------------------------------------------------------------------------------------------


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
        text_pretrained: the encoder's weights (see :func:`recipezoo.nlp.models.load_encoder`).
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
            return download_movielens(self.dataset, self.root)
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
            download_movielens(self.dataset, self.root)

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
        frame = read_table(path, "interactions", str_columns=id_columns or _all_candidates())
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

    def _columns(self, frame: pd.DataFrame) -> dict[str, str | None]:
        found = list(frame.columns)
        shown = ", ".join(map(str, found[:30])) + (f" ... ({len(found)} in all)" if len(found) > 30 else "")
        by_norm: dict[str, str] = {}
        for c in found:
            by_norm.setdefault(_norm(c), c)
        out: dict[str, str | None] = {}
        for role, given in (
            ("user", self.user_column),
            ("item", self.item_column),
            ("rating", self.rating_column),
            ("time", self.time_column),
        ):
            if given:
                if given not in frame.columns:
                    raise ConfigError(
                        f"data.{role}_column='{given}' is not a column of {self.describe()}; its columns are: {shown}."
                        + close_matches(given, [str(c) for c in found])
                    )
                out[role] = given
                continue
            out[role] = next((by_norm[c] for c in CANDIDATES[role] if c in by_norm), None)
        if out["user"] is None or out["item"] is None:
            role = "user" if out["user"] is None else "item"
            hint = ""
            if len(found) == 1 and any(s in str(found[0]) for s in ";|\t"):
                hint = " The file seems to use another delimiter: save it with commas, or as .tsv for tabs."
            raise DataError(
                f"cannot tell which column of {self.describe()} holds the {role} ids; its columns are: {shown}. "
                f"Set data.{role}_column=<column>.{hint}"
            )
        if out["user"] == out["item"]:
            raise ConfigError(f"the user and item columns are both '{out['user']}'; they must differ.")
        if self.feedback == "explicit" and out["rating"] is None:
            raise ConfigError(
                f"data.feedback=explicit needs ratings, but {self.describe()} has no rating column (columns: {shown}). "
                "Set data.rating_column=<column>, or use data.feedback=implicit."
            )
        if self.feedback == "implicit" and self.min_rating is None:
            out["rating"] = None  # implicit feedback ignores ratings unless min_rating filters on them
        if self.min_rating is not None and out["rating"] is None:
            raise ConfigError("data.min_rating needs a rating column (data.rating_column=<column>).")
        return out

    # -- setup ----------------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        raw, item_table, user_table = self._load()
        cols = self._columns(raw)
        self.columns = cols
        frame = self._clean(raw, cols)
        split = self._split(frame)
        self._build(frame, split, item_table, user_table)
        self._ready = True

    def _clean(self, raw: pd.DataFrame, cols: dict[str, str | None]) -> dict[str, np.ndarray]:
        """Ids, ratings, times; rows without ids dropped, duplicates merged, k-core applied: all counted."""
        counts: dict[str, Any] = {"rows_read": len(raw)}
        u_codes, u_uniques = canonical_ids(raw[cols["user"]])
        i_codes, i_uniques = canonical_ids(raw[cols["item"]])
        for name, uniques in (("user", u_uniques), ("item", i_uniques)):
            bad = [v for v in uniques[:100000] if "\n" in v or "\r" in v]
            if bad:
                raise DataError(f"{name} ids may not contain line breaks (e.g. {bad[0]!r}).")
        keep = (u_codes >= 0) & (i_codes >= 0)
        counts["dropped_missing_id"] = int((~keep).sum())
        if counts["dropped_missing_id"]:
            log.warning("Dropped %d row(s) with no user or item id.", counts["dropped_missing_id"])
        rating = np.ones(len(raw), dtype=np.float64)
        if cols["rating"]:
            rating = parse_ratings(raw[cols["rating"]], cols["rating"])
            missing = np.isnan(rating) & keep
            counts["dropped_missing_rating"] = int(missing.sum())
            if missing.any():
                log.warning("Dropped %d row(s) with no rating.", int(missing.sum()))
            keep &= ~np.isnan(rating)
        order = np.arange(len(raw), dtype=np.int64)
        if cols["time"]:
            times, note = parse_times(raw[cols["time"]], cols["time"])
            log.info("Time column '%s' read as %s.", cols["time"], note)
        else:
            times = order.astype(np.float64)
            log.info("No time column: the file's row order is taken as the time order.")
        if self.min_rating is not None:
            low = keep & (rating < float(self.min_rating))
            counts["dropped_below_min_rating"] = int(low.sum())
            log.info("%d interaction(s) rated below %s are not positives: dropped.", int(low.sum()), self.min_rating)
            keep &= ~low
        if not keep.any():
            raise DataError(f"{self.describe()} has no usable interactions after cleaning ({counts}).")
        u, i, r, t, o = u_codes[keep], i_codes[keep], rating[keep], times[keep], order[keep]
        # Duplicates: one row per (user, item), chosen by time (file order breaks ties).
        key = u.astype(np.int64) * (len(i_uniques) + 1) + i
        srt = np.lexsort((o, t, key))
        u, i, r, t, o, key = u[srt], i[srt], r[srt], t[srt], o[srt], key[srt]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], len(key)) - 1
        counts["duplicates_merged"] = int(len(key) - len(starts))
        if counts["duplicates_merged"]:
            log.info(
                "Merged %d duplicate (user, item) row(s) (data.duplicates=%s).",
                counts["duplicates_merged"],
                self.duplicates,
            )
        pick = starts if self.duplicates == "first" else ends
        if self.duplicates == "mean":
            r_new = np.add.reduceat(r, starts) / (ends - starts + 1)
        elif self.duplicates == "max":
            r_new = np.maximum.reduceat(r, starts)
        else:
            r_new = r[pick]
        u, i, r, t, o = u[pick], i[pick], r_new, t[pick], o[pick]
        # k-core
        if self.min_user_interactions > 1 or self.min_item_interactions > 1:
            before = len(u)
            while True:
                uc = np.bincount(u)[u] >= self.min_user_interactions
                ic = np.bincount(i)[i] >= self.min_item_interactions
                ok = uc & ic
                if ok.all():
                    break
                u, i, r, t, o = u[ok], i[ok], r[ok], t[ok], o[ok]
            counts["dropped_by_min_interactions"] = before - len(u)
            log.info("Dropped %d interaction(s) below the minimum counts (k-core).", before - len(u))
        if len(u) == 0:
            raise DataError(
                f"no interactions are left after data.min_user_interactions={self.min_user_interactions} / "
                f"min_item_interactions={self.min_item_interactions}; lower them."
            )
        self.counts = counts
        self._uniques = {"user": u_uniques, "item": i_uniques}
        return {"u": u, "i": i, "r": r, "t": t, "o": o}

    def _split(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Per interaction 0 (train), 1 (val) or 2 (test)."""
        n = len(f["u"])
        part = np.zeros(n, dtype=np.int8)
        if self.split == "leave_last_out":
            srt = np.lexsort((f["o"], f["t"], f["u"]))
            u = f["u"][srt]
            n_u = np.bincount(u)
            total = n_u[u]
            first = np.searchsorted(u, u, side="left")
            pos = np.arange(n) - first  # position within the user's time-ordered interactions
            sorted_part = np.zeros(n, dtype=np.int8)
            sorted_part[(total >= 2) & (pos == total - 1)] = 2
            sorted_part[(total >= 3) & (pos == total - 2)] = 1
            part[srt] = sorted_part
            active = n_u[n_u > 0]
            self.counts["users_train_only"] = int((active == 1).sum())
            self.counts["users_without_val"] = int((active == 2).sum())
            if self.counts["users_train_only"]:
                log.info(
                    "%d user(s) have a single interaction: kept in training only (no test target).",
                    self.counts["users_train_only"],
                )
        elif self.split == "time":
            srt = np.lexsort((f["o"], f["t"]))
            n_test, n_val = int(round(self.test_fraction * n)), int(round(self.val_fraction * n))
            if n - n_test - n_val < 1 or n_val < 1 or n_test < 1:
                raise DataError(f"{self.describe()}: {n} interactions are too few for the time split fractions.")
            part[srt[n - n_test - n_val : n - n_test]] = 1
            part[srt[n - n_test :]] = 2
        else:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(n)
            n_test, n_val = int(round(self.test_fraction * n)), int(round(self.val_fraction * n))
            if n - n_test - n_val < 1 or n_val < 1 or n_test < 1:
                raise DataError(f"{self.describe()}: {n} interactions are too few for the split fractions.")
            part[perm[:n_test]] = 2
            part[perm[n_test : n_test + n_val]] = 1
        if not (part == 0).any():
            raise DataError(f"{self.describe()}: the training split is empty.")
        return part

    def _build(
        self,
        f: dict[str, np.ndarray],
        part: np.ndarray,
        item_table: pd.DataFrame | None,
        user_table: pd.DataFrame | None,
    ) -> None:
        train = part == 0
        u_uniques, i_uniques = self._uniques["user"], self._uniques["item"]
        # -- id maps: fitted on the training split (plus the item table's items), or restored ------------------
        item_keys = None
        if item_table is not None:
            item_keys, item_table = self._table_keys(item_table, "item")
        user_keys = None
        if user_table is not None:
            user_keys, user_table = self._table_keys(user_table, "user")
        if self._restored:
            self.user_ids = list(self._restored["user_ids"])
            self.item_ids = list(self._restored["item_ids"])
        else:
            self.user_ids = [str(x) for x in u_uniques[pd.unique(f["u"][train])]]
            warm = [str(x) for x in i_uniques[pd.unique(f["i"][train])]]
            cold: list[str] = []
            if item_keys is not None:
                known = set(warm)
                cold = [k for k in pd.unique(item_keys) if k not in known]
            self.item_ids = warm + cold
        self.n_users, self.n_items = len(self.user_ids), len(self.item_ids)
        user_of_code = pd.Index(self.user_ids).get_indexer(pd.Index(u_uniques.astype(str))) + 1  # 0 = unknown
        item_of_code = pd.Index(self.item_ids).get_indexer(pd.Index(i_uniques.astype(str))) + 1
        u = user_of_code[f["u"]].astype(np.int64)
        i = item_of_code[f["i"]].astype(np.int64)
        r, t, o = f["r"], f["t"], f["o"]
        unknown_train = train & ((u == 0) | (i == 0))
        if unknown_train.any():
            log.warning(
                "%d training interaction(s) have a user or item unknown to the checkpoint's id maps: not trained on.",
                int(unknown_train.sum()),
            )
        self.counts["train_unknown_ids"] = int(unknown_train.sum())

        # -- training rows, sorted by user then time ---------------------------------------------------------------
        tr = np.flatnonzero(train & (u > 0) & (i > 0))
        tr = tr[np.lexsort((o[tr], t[tr], u[tr]))]
        self._train_ptr, self._train_items = csr(u[tr], i[tr], self.n_users + 1)
        pos = np.arange(len(tr)) - self._train_ptr[u[tr]]
        self._train = {"user": u[tr], "item": i[tr], "rating": r[tr], "pos": pos.astype(np.int64)}
        self._popularity = np.bincount(i[tr], minlength=self.n_items + 1)[: self.n_items + 1].astype(np.int64)
        self._popularity[0] = 0
        self._warm_items = np.flatnonzero(self._popularity > 0).astype(np.int64)
        if len(self._warm_items) == 0:
            raise DataError(f"{self.describe()}: no training interaction is left to learn from.")
        self._train_keys = _SortedKeys(u[tr], i[tr], self.n_items + 1)
        ratings = r[tr]
        self.rating_stats = (
            {"mean": float(ratings.mean()), "min": float(ratings.min()), "max": float(ratings.max())}
            if self.feedback == "explicit"
            else {}
        )

        # -- evaluation structures --------------------------------------------------------------------------------
        known_rows = np.flatnonzero((u > 0) & (i > 0))
        known_rows = known_rows[np.lexsort((o[known_rows], t[known_rows], u[known_rows]))]
        self._known_ptr, self._known_items = csr(u[known_rows], i[known_rows], self.n_users + 1)
        all_keys = _SortedKeys(u[known_rows], i[known_rows], self.n_items + 1)
        self._eval: dict[str, dict[str, Any]] = {}
        split_counts: dict[str, Any] = {}
        for name, code in (("train", 0), ("val", 1), ("test", 2)):
            rows = np.flatnonzero(part == code)
            split_counts[name] = {"interactions": int(len(rows))}
            if self.feedback == "explicit":
                self._eval[name] = {"user": u[rows], "item": i[rows], "rating": r[rows]}
                split_counts[name]["unknown_user_rows"] = int((u[rows] == 0).sum())
                split_counts[name]["unknown_item_rows"] = int((i[rows] == 0).sum())
                continue
            self._eval[name] = self._ranking_split(name, rows, u, i, t, o, part, all_keys, split_counts[name])
        self.split_counts = split_counts
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
                for s, c in split_counts.items()
            ),
        )

    def _ranking_split(
        self,
        name: str,
        rows: np.ndarray,
        u: np.ndarray,
        i: np.ndarray,
        t: np.ndarray,
        o: np.ndarray,
        part: np.ndarray,
        all_keys: _SortedKeys,
        counts: dict[str, Any],
    ) -> dict[str, Any]:
        """Users with targets in the split, their targets, and what to mask (and read as history)."""
        ok = rows[(u[rows] > 0) & (i[rows] > 0)]
        counts["unknown_user_targets"] = int((u[rows] == 0).sum())
        counts["unknown_item_targets"] = int(((u[rows] > 0) & (i[rows] == 0)).sum())
        if counts["unknown_user_targets"] or counts["unknown_item_targets"]:
            log.info(
                "%s: %d target interaction(s) of users without training history and %d of items outside the "
                "catalogue cannot be ranked: left out of the metrics.",
                name,
                counts["unknown_user_targets"],
                counts["unknown_item_targets"],
            )
        ok = ok[np.lexsort((o[ok], t[ok], u[ok]))]
        users = pd.unique(u[ok]).astype(np.int64)
        users.sort()
        target_ptr, target_items = _csr_for(users, u[ok], i[ok])
        # Masked and read as history: training items (validation), training + validation items (test).
        history_codes = {"train": (), "val": (0,), "test": (0, 1)}[name]
        h = np.flatnonzero(np.isin(part, history_codes) & (u > 0) & (i > 0))
        h = h[np.lexsort((o[h], t[h], u[h]))]
        seen_ptr, seen_items = _csr_for(users, u[h], i[h])
        counts["users"] = int(len(users))
        out: dict[str, Any] = {
            "users": users,
            "target_ptr": target_ptr,
            "target_items": target_items,
            "seen_ptr": seen_ptr,
            "seen_items": seen_items,
        }
        if self.sampled_negatives and name != "train" and len(users):
            out["negatives"] = self._sample_negatives(users, all_keys, seed=self.seed + (1 if name == "val" else 2))
        return out

    def _sample_negatives(self, users: np.ndarray, keys: _SortedKeys, seed: int) -> np.ndarray:
        """Per user, ``sampled_negatives`` distinct catalogue items they never interacted with (fixed by the seed)."""
        n, m = len(users), self.sampled_negatives
        rng = np.random.default_rng(seed)
        out = np.zeros((n, m), dtype=np.int64)
        todo = np.arange(n)
        for _ in range(20):
            if not len(todo):
                break
            cand = rng.integers(1, self.n_items + 1, (len(todo), 2 * m + 8))
            bad = keys.contains(torch.from_numpy(users[todo]), torch.from_numpy(cand)).numpy()
            still = []
            for j, row in enumerate(todo):
                c = cand[j][~bad[j]]
                _, first = np.unique(c, return_index=True)
                c = c[np.sort(first)]
                if len(c) >= m:
                    out[row] = c[:m]
                else:
                    still.append(row)
            todo = np.asarray(still, dtype=np.int64)
        for row in todo:  # users who saw most of the catalogue: sample exactly from what is left
            known = set(self._known_items[self._known_ptr[users[row]] : self._known_ptr[users[row] + 1]].tolist())
            left = np.asarray([x for x in range(1, self.n_items + 1) if x not in known], dtype=np.int64)
            if len(left) == 0:
                continue
            pick = rng.choice(left, size=min(m, len(left)), replace=False)
            out[row, : len(pick)] = pick
        return out

    # -- side features ------------------------------------------------------------------------------------------
    def _table_keys(self, table: pd.DataFrame, role: str) -> tuple[np.ndarray, pd.DataFrame]:
        """The table's canonical ids (one row per id: duplicates keep the first) and the table in that order."""
        what = f"{role} table"
        if len(table) == 0:
            raise DataError(f"the {what} has no rows; fix data.{role}_features or leave it unset.")
        given = self.item_key if role == "item" else self.user_key
        interaction_col = (self.columns.get(role) if hasattr(self, "columns") else None) or ""
        if given:
            if given not in table.columns:
                raise ConfigError(
                    f"data.{role}_key='{given}' is not a column of the {what}; its columns are: "
                    f"{', '.join(map(str, table.columns[:30]))}." + close_matches(given, list(table.columns))
                )
            key = given
        elif interaction_col in table.columns:
            key = interaction_col
        else:
            by_norm = {_norm(c): c for c in table.columns}
            key = next((by_norm[c] for c in CANDIDATES[role] if c in by_norm), None)
            if key is None:
                raise DataError(
                    f"cannot tell which column of the {what} holds the {role} ids (columns: "
                    f"{', '.join(map(str, table.columns[:30]))}); set data.{role}_key=<column>."
                )
        codes, uniques = canonical_ids(table[key])
        ok = codes >= 0
        seen_codes = pd.Series(codes).duplicated(keep="first").to_numpy()
        first = ok & ~seen_codes
        dropped = int(len(codes) - first.sum())
        if dropped:
            log.warning(
                "The %s has %d row(s) with a missing or repeated id: the first row per id is kept.", what, dropped
            )
        if not first.any():
            raise DataError(f"the {what} has no row with an id in column '{key}'.")
        self.counts[f"{role}_table_rows_dropped"] = dropped
        keys = np.asarray([str(x) for x in uniques[codes[first]]], dtype=object)
        return keys, table.loc[first].reset_index(drop=True)

    def _features(
        self,
        items: pd.DataFrame | None,
        item_keys: np.ndarray | None,
        users: pd.DataFrame | None,
        user_keys: np.ndarray | None,
    ) -> None:
        """Fit (or restore) the side-feature preprocessing and build the catalogue's feature arrays."""
        pp = self._restored.get("preprocessing", {}) if self._restored else {}
        self._feature_info = {"item": None, "user": None}
        self._item_arrays: dict[str, np.ndarray] = {}
        self._user_arrays: dict[str, np.ndarray] = {}
        self._item_texts: list[str] | None = None
        if items is not None and item_keys is not None:
            rows = pd.Index(item_keys).get_indexer(pd.Index(self.item_ids))  # catalogue order; -1 = not in table
            missing = int((rows < 0).sum())
            if missing:
                log.info("%d catalogue item(s) are not in the item table: their features are missing.", missing)
            self.counts["items_without_features"] = missing
            info, arrays, texts = self._encode_table(
                items,
                rows,
                "item",
                self.item_categorical_columns,
                self.item_numeric_columns,
                self.item_multi_columns,
                self.item_text_column,
                (pp or {}).get("item_features"),
            )
            self._feature_info["item"], self._item_arrays, self._item_texts = info, arrays, texts
        if users is not None and user_keys is not None:
            rows = pd.Index(user_keys).get_indexer(pd.Index(self.user_ids))
            self.counts["users_without_features"] = int((rows < 0).sum())
            info, arrays, _ = self._encode_table(
                users,
                rows,
                "user",
                self.user_categorical_columns,
                self.user_numeric_columns,
                [],
                None,
                (pp or {}).get("user_features"),
            )
            self._feature_info["user"], self._user_arrays = info, arrays
        if self._item_texts is not None and not (self._restored and self._restored.get("item_text_dim")):
            self._embed_texts()  # fresh fits need the width now (the model is built from it)

    def _encode_table(
        self,
        table: pd.DataFrame,
        rows: np.ndarray,
        role: str,
        categorical: list[str],
        numeric: list[str],
        multi: list[str],
        text_column: str | None,
        restored: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str] | None]:
        wanted = [*categorical, *numeric, *multi, *([text_column] if text_column else [])]
        absent = [c for c in wanted if c not in table.columns]
        if absent:
            raise ConfigError(
                f"data.{role}_* feature column(s) {', '.join(absent)} are not in the {role} table; its columns are: "
                f"{', '.join(map(str, table.columns[:30]))}." + close_matches(absent[0], list(table.columns))
            )
        # Catalogue order, with empty rows for ids the table lacks (features then count as missing).
        aligned = table.reindex(np.where(rows >= 0, rows, len(table))).reset_index(drop=True)
        info: dict[str, Any] = {"tabular": None, "multi": {}, "text": None}
        n_num, n_cat = 0, 0
        arrays: dict[str, np.ndarray] = {}
        x_num_parts = []
        if categorical or numeric:
            try:
                if restored and restored.get("tabular"):
                    pre = TabularPreprocessor.from_dict(restored["tabular"])
                else:
                    pre = TabularPreprocessor.fit(
                        aligned[[*categorical, *numeric]],
                        numeric=numeric,
                        categorical=categorical,
                        scaling="standard",
                        min_category_count=self.feature_min_count,
                        log=log,
                    )
                x_num, x_cat = pre.transform(aligned)
            except MissingColumnsError as e:
                raise DataError(f"the {role} table lacks column(s) {', '.join(e.missing)}.") from None
            except PreprocessingError as e:
                raise DataError(f"{role} features: {e}") from None
            info["tabular"] = pre.to_dict()
            x_num_parts.append(x_num.astype(np.float32))
            arrays[f"{role}_cat"] = x_cat.astype(np.int64)
            info["cardinalities"] = [int(c) for c in pre.cardinalities]
            n_cat = len(pre.cardinalities)
        for column in multi:
            vocab = (restored or {}).get("multi", {}).get(column, {}).get("vocab")
            tokens = [
                [t.strip() for t in str(v).split(self.multi_separator) if t.strip()] if isinstance(v, str) else []
                for v in aligned[column].tolist()
            ]
            if vocab is None:
                freq = pd.Series([t for ts in tokens for t in ts]).value_counts()
                vocab = sorted(freq[freq >= self.feature_min_count].index.tolist())[:200]
            index = {t: j for j, t in enumerate(vocab)}
            hot = np.zeros((len(tokens), len(vocab)), dtype=np.float32)
            for r_, ts in enumerate(tokens):
                for tok in ts:
                    if tok in index:
                        hot[r_, index[tok]] = 1.0
            info["multi"][column] = {"separator": self.multi_separator, "vocab": list(vocab)}
            x_num_parts.append(hot)
        x_num_all = np.hstack(x_num_parts) if x_num_parts else np.zeros((len(aligned), 0), np.float32)
        n_num = x_num_all.shape[1]
        arrays[f"{role}_num"] = x_num_all
        arrays.setdefault(f"{role}_cat", np.zeros((len(aligned), 0), dtype=np.int64))
        info["num_dim"], info["cat_dim"] = n_num, n_cat
        info.setdefault("cardinalities", [])
        texts = None
        if text_column:
            texts = ["" if pd.isna(v) else str(v) for v in aligned[text_column].tolist()]
            info["text"] = {
                "column": text_column,
                "encoder": str(self.text_encoder),
                "max_length": self.text_max_length,
                "dim": (self._restored or {}).get("item_text_dim"),
            }
        return info, arrays, texts

    def _embed_texts(self) -> np.ndarray:
        if self._item_arrays.get("item_text") is not None:
            return self._item_arrays["item_text"]
        assert self._item_texts is not None
        if not self.text_encoder:
            raise ConfigError(
                "data.item_text_column is set but no text encoder is: set backbone.name=<hub id or local folder of a "
                "sentence encoder> (e.g. sentence-transformers/all-MiniLM-L6-v2)."
            )
        if self.text_pretrained in (False, None, "false", "False"):
            log.warning(
                "The text encoder has random weights (backbone.pretrained=false): text features carry no meaning."
            )
        from recipezoo.core.backbones.hf import embed_texts  # only here: transformers is imported when text is used

        source = self.text_encoder if self.text_pretrained in (True, "true", "True") else self.text_pretrained
        log.info("Embedding %d item texts with %s (%s) ...", len(self._item_texts), self.text_encoder, source)
        vectors = embed_texts(
            self._item_texts,
            str(self.text_encoder),
            self.text_pretrained,
            batch_size=self.text_batch_size,
            max_length=self.text_max_length,
            device="cuda" if torch.cuda.is_available() else "cpu",
        ).numpy()
        vectors[np.asarray([t == "" for t in self._item_texts])] = 0.0  # no text: no signal
        self._item_arrays["item_text"] = vectors.astype(np.float32)
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
    @staticmethod
    def _check_split(split: str) -> str:
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
        return split

    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds: _Rows = SequenceRows(self) if self.train_batches == "sequences" else PairRows(self)
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
        split = self._check_split(split)
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


def _csr_for(users: np.ndarray, row_users: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A CSR with one row per entry of sorted ``users``, holding ``values`` whose ``row_users`` match (in order)."""
    sel = np.isin(row_users, users)
    ru, vals = row_users[sel], values[sel]
    slot = np.searchsorted(users, ru)
    order = np.argsort(slot, kind="stable")
    return csr(slot[order], vals[order].astype(np.int64), len(users))


def _all_candidates() -> list[str]:
    """Column names that may hold ids, read as text when present (exact huge integers, string ids)."""
    return sorted({*CANDIDATES["user"], *CANDIDATES["item"]} | {"userId", "movieId", "itemId", "user_id", "item_id"})


__all__ = ["InteractionsDataModule", "make_synthetic", "read_table", "read_ids"]
