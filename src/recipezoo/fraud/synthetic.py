"""The synthetic twin of a transaction table: a rare, learnable and drifting fraud class, from a seed alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError
from recipezoo.runtime.tabular import canonical_category


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


__all__ = ["make_synthetic_frame"]
