"""Id maps and the index structures built from them: training rows, per-user CSR rows and evaluation targets.

Indices start at 1; 0 is padding and "unknown". The maps are fitted on the training split (plus an item table's
items, the cold catalogue), or restored from a checkpoint and never refitted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import columns as C
from recipezoo.recsys.cleaning import canonical_ids
from recipezoo.recsys.readers import CANDIDATES

log = logging.getLogger(__name__)


def csr(rows: np.ndarray, values: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` must be sorted: ``(indptr (n_rows + 1,), values)``."""
    counts = np.bincount(rows, minlength=n_rows)[:n_rows]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, values


def csr_for(users: np.ndarray, row_users: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A CSR with one row per entry of sorted ``users``, holding ``values`` whose ``row_users`` match (in order)."""
    sel = np.isin(row_users, users)
    ru, vals = row_users[sel], values[sel]
    slot = np.searchsorted(users, ru)
    order = np.argsort(slot, kind="stable")
    return csr(slot[order], vals[order].astype(np.int64), len(users))


def table_keys(
    table: pd.DataFrame, role: str, key: str | None, interaction_column: str | None
) -> tuple[np.ndarray, pd.DataFrame, int]:
    """A side table's canonical ids (one row per id: duplicates keep the first) and the table in that order.

    Args:
        table: the item or user table.
        role: ``item`` or ``user``.
        key: its id column as set (``data.<role>_key``); None: the interactions' column name when the table has
            it, else a recognised name.
        interaction_column: the interactions' id column of this role.

    Returns:
        ``(keys, table, dropped)``: the ids as text, the kept rows, and how many rows were dropped.
    """
    what = f"{role} table"
    if len(table) == 0:
        raise DataError(f"the {what} has no rows; fix data.{role}_features or leave it unset.")
    if key:
        if key not in table.columns:
            raise ConfigError(
                f"data.{role}_key='{key}' is not a column of the {what}; its columns are: "
                f"{', '.join(map(str, table.columns[:30]))}." + close_matches(key, list(table.columns))
            )
    elif interaction_column and interaction_column in table.columns:
        key = interaction_column
    else:
        key = C.find_column(list(table.columns), candidates=CANDIDATES[role], match="loose")
        if key is None:
            raise DataError(
                f"cannot tell which column of the {what} holds the {role} ids (columns: "
                f"{', '.join(map(str, table.columns[:30]))}); set data.{role}_key=<column>."
            )
    codes, uniques = canonical_ids(table[key])
    ok = codes >= 0
    first = ok & ~pd.Series(codes).duplicated(keep="first").to_numpy()
    dropped = int(len(codes) - first.sum())
    if dropped:
        log.warning("The %s has %d row(s) with a missing or repeated id: the first row per id is kept.", what, dropped)
    if not first.any():
        raise DataError(f"the {what} has no row with an id in column '{key}'.")
    keys = np.asarray([str(x) for x in uniques[codes[first]]], dtype=object)
    return keys, table.loc[first].reset_index(drop=True), dropped


def fit_id_maps(
    f: dict[str, np.ndarray], train: np.ndarray, uniques: dict[str, np.ndarray], item_keys: np.ndarray | None
) -> tuple[list[str], list[str]]:
    """User and item ids in index order: users and items of the training split (first appearance), then the item
    table's other items (the cold catalogue)."""
    user_ids = [str(x) for x in uniques["user"][pd.unique(f["u"][train])]]
    item_ids = [str(x) for x in uniques["item"][pd.unique(f["i"][train])]]
    if item_keys is not None:
        known = set(item_ids)
        item_ids += [k for k in pd.unique(item_keys) if k not in known]
    return user_ids, item_ids


def to_indices(codes: np.ndarray, uniques: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Codes into ``uniques`` as indices into ``ids`` (+1; 0 = unknown)."""
    index_of_code = pd.Index(list(ids)).get_indexer(pd.Index(uniques.astype(str))) + 1
    return index_of_code[codes].astype(np.int64)


def time_order(rows: np.ndarray, u: np.ndarray, t: np.ndarray, o: np.ndarray) -> np.ndarray:
    """``rows`` sorted by user, then time, then file position."""
    return rows[np.lexsort((o[rows], t[rows], u[rows]))]


def training_rows(
    u: np.ndarray,
    i: np.ndarray,
    r: np.ndarray,
    t: np.ndarray,
    o: np.ndarray,
    train: np.ndarray,
    n_users: int,
    n_items: int,
) -> dict[str, Any]:
    """The training interactions with known ids, by user then time, and what follows from them.

    Returns:
        ``rows`` (their positions), ``train`` (``user``, ``item``, ``rating``, ``pos``: the position within the
        user's items), ``ptr``/``items`` (each user's items, CSR), ``popularity`` (per item index) and ``warm``
        (items with training interactions).
    """
    tr = time_order(np.flatnonzero(train & (u > 0) & (i > 0)), u, t, o)
    ptr, items = csr(u[tr], i[tr], n_users + 1)
    pos = np.arange(len(tr)) - ptr[u[tr]]
    popularity = np.bincount(i[tr], minlength=n_items + 1)[: n_items + 1].astype(np.int64)
    popularity[0] = 0
    return {
        "rows": tr,
        "train": {"user": u[tr], "item": i[tr], "rating": r[tr], "pos": pos.astype(np.int64)},
        "ptr": ptr,
        "items": items,
        "popularity": popularity,
        "warm": np.flatnonzero(popularity > 0).astype(np.int64),
    }


def ranking_split(
    name: str, rows: np.ndarray, u: np.ndarray, i: np.ndarray, t: np.ndarray, o: np.ndarray, part: np.ndarray
) -> tuple[dict[str, Any], dict[str, int]]:
    """Users with targets in the split, their targets, and what to mask (and read as history).

    Returns:
        ``users``, ``target_ptr``/``target_items`` and ``seen_ptr``/``seen_items`` (CSR rows per user), and the
        counts of targets left out (unknown users or items) and of users evaluated.
    """
    ok = rows[(u[rows] > 0) & (i[rows] > 0)]
    counts = {
        "unknown_user_targets": int((u[rows] == 0).sum()),
        "unknown_item_targets": int(((u[rows] > 0) & (i[rows] == 0)).sum()),
    }
    if counts["unknown_user_targets"] or counts["unknown_item_targets"]:
        log.info(
            "%s: %d target interaction(s) of users without training history and %d of items outside the "
            "catalogue cannot be ranked: left out of the metrics.",
            name,
            counts["unknown_user_targets"],
            counts["unknown_item_targets"],
        )
    ok = time_order(ok, u, t, o)
    users = pd.unique(u[ok]).astype(np.int64)
    users.sort()
    target_ptr, target_items = csr_for(users, u[ok], i[ok])
    # Masked and read as history: training items (validation), training + validation items (test).
    history_codes = {"train": (), "val": (0,), "test": (0, 1)}[name]
    h = time_order(np.flatnonzero(np.isin(part, history_codes) & (u > 0) & (i > 0)), u, t, o)
    seen_ptr, seen_items = csr_for(users, u[h], i[h])
    counts["users"] = int(len(users))
    out = {
        "users": users,
        "target_ptr": target_ptr,
        "target_items": target_items,
        "seen_ptr": seen_ptr,
        "seen_items": seen_items,
    }
    return out, counts


__all__ = ["csr", "csr_for", "fit_id_maps", "ranking_split", "table_keys", "time_order", "to_indices", "training_rows"]
