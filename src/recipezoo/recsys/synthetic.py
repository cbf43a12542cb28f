"""The synthetic twin of an interaction log: planted low-rank preferences, a sequential signal, item and user tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError

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


__all__ = ["make_synthetic"]
