"""Reading recommendation data: interaction logs and side tables through :mod:`recipezoo.data.tables`, MovieLens
files by name, and MovieLens releases fetched from GroupLens.

The formats are the shared reader's; what is recommendation knowledge stays here: MovieLens file layouts, the
column names that usually hold user / item / rating / time values, and that a header-less log's columns are
user, item[, rating[, timestamp]] by position.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data import tables as T

log = logging.getLogger(__name__)

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
# The columns of a header-less log, by position (MovieLens u.data and its like).
HEADERLESS_NAMES = ["user", "item", "rating", "timestamp"]
_RATINGS = ["userId", "movieId", "rating", "timestamp"]


def id_column_candidates() -> list[str]:
    """Column names that may hold ids, read as text when present (exact huge integers, string ids)."""
    return sorted({*CANDIDATES["user"], *CANDIDATES["item"]} | {"userId", "movieId", "itemId", "user_id", "item_id"})


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


def _double_colon(path: Path, names: list[str]) -> pd.DataFrame:
    """A MovieLens-1M ``::`` file (Latin-1; titles contain single colons)."""
    return T.read_table(path, sep="::", header=False, names=names, dtype=str, encoding="latin-1")


def read_movielens(path: Path, kind: str) -> pd.DataFrame:
    """A MovieLens file as a table with the column names of ml-latest (userId, movieId, rating, timestamp, ...)."""
    if kind == "ml-100k-ratings":
        return T.read_table(path, sep="\t", header=False, names=_RATINGS, dtype=str, unknown_kind="text")
    if kind == "ml-1m-ratings":
        # "1::1193::5::978300760": splitting on ':' leaves empty columns between fields; the C engine is fast.
        return T.read_table(path, sep=":", header=False, usecols=[0, 2, 4, 6], names=_RATINGS, dtype=str)
    if kind == "ml-100k-items":
        names = ["movieId", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
        frame = T.read_table(
            path, sep="|", header=False, names=names, dtype=str, encoding="latin-1", unknown_kind="text"
        )
        flags = frame[ML100K_GENRES].fillna("0").eq("1").to_numpy()
        frame["genres"] = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
        return frame[["movieId", "title", "genres", "release_date"]]
    if kind == "ml-1m-items":
        return _double_colon(path, ["movieId", "title", "genres"])
    if kind == "ml-100k-users":
        names = ["userId", "age", "gender", "occupation", "zip"]
        return T.read_table(path, sep="|", header=False, names=names, dtype=str, unknown_kind="text")
    if kind == "ml-1m-users":
        return _double_colon(path, ["userId", "gender", "age", "occupation", "zip"])
    raise ConfigError(f"unknown MovieLens file kind '{kind}'.")


def read_table(
    path: str | os.PathLike, what: str = "interactions", str_columns: Sequence[str] = (), encoding: str = "auto"
) -> pd.DataFrame:
    """A CSV / TSV / JSON lines / Parquet file (see :func:`recipezoo.data.tables.read_table`), or a MovieLens file
    by its name, as a DataFrame.

    Args:
        path: the file (``~`` expanded; ``.gz``/``.zip``/... compression by extension).
        what: how to call the file in messages.
        str_columns: columns read as text (ids: exact for strings and integers beyond 64 bits), when present.
        encoding: the text encoding; ``auto`` (the default): UTF-8, falling back on Latin-1, which many older logs
            (Book-Crossing, MovieLens) use.

    Raises:
        DataError: the file is missing, empty or unreadable.
        ConfigError: the extension is not one we read.
    """
    p = T.expand(path)
    kind = movielens_kind(p)
    if kind and p.is_file():
        return read_movielens(p, kind)
    return T.read_table(
        p,
        what=what,
        str_columns=str_columns,
        header="auto",
        names=HEADERLESS_NAMES,
        encoding=encoding,
        json_dtype=False,
        default_sep=r"\s+",
        format_hint=" Or a MovieLens file (u.data, ratings.dat, ratings.csv).",
    )


def download_movielens(name: str, root: str | os.PathLike, url: str = MOVIELENS_URL) -> Path:
    """Download and unpack a MovieLens release into ``root/<name>`` (skipped when it is already there).

    Args:
        name: the release (a key of :data:`MOVIELENS`).
        root: the folder that holds releases.
        url: the download address, with ``{name}`` for the release.
    """
    if name not in MOVIELENS:
        raise ConfigError(f"unknown MovieLens release '{name}'; choose one of {', '.join(MOVIELENS)}.")
    folder = T.expand(root) / name
    if (folder / MOVIELENS[name]["ratings"]).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    url = url.format(name=name)
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


__all__ = [
    "CANDIDATES",
    "ML100K_GENRES",
    "MOVIELENS",
    "MOVIELENS_URL",
    "download_movielens",
    "id_column_candidates",
    "movielens_kind",
    "read_movielens",
    "read_table",
]
