"""Ranking metrics over the full item catalogue, computed in chunks on any device; and the sampled protocol.

The protocol (what :class:`RankingMetrics` measures, per evaluated user):

- Every catalogue item is a candidate except the user's known items (``seen``: the training items, plus the
  validation items when testing) and items the model cannot score (padding index 0; items without training
  interactions for id-only models). The held-out ``targets`` are the relevant items.
- Ties are broken **pessimistically**: a target is placed after every non-target candidate with an equal score
  (NaN scores count as the lowest possible score, so a NaN target is ranked after every candidate). A model that
  scores everything alike therefore ranks every target last and gets HR = 0, never a lucky hit. Targets tied with
  each other are ordered by their position in ``targets``.
- ``rank`` (1-based) of a target is its position in that order. HR@K: 1 if some target has rank <= K. Recall@K:
  targets with rank <= K / number of targets. NDCG@K: sum over targets with rank <= K of ``1/log2(rank + 1)``,
  divided by the ideal DCG of ``min(K, number of targets)`` targets. MRR: ``1 / rank`` of the best-ranked target
  (the full list, not truncated at K).
- Users with no target are not evaluated (they are counted in ``users`` only if they have one).
- Beyond accuracy, from each user's top-K list: catalogue coverage@K (distinct recommended items / recommendable
  items) and popularity@K (mean popularity percentile of the recommended items among the catalogue: 0 = the least
  popular item, 1 = the most popular; the popularity baseline scores close to 1).
- Sampled protocol (the "100 negatives" of many papers, reported separately as ``sampled_hr@K`` /
  ``sampled_ndcg@K``): each target is ranked against the same fixed negatives per user (items the user never
  interacted with), ties pessimistic; per user the mean over its targets. It overstates accuracy compared with the
  full ranking (Krichene & Rendle, 2020) and is there for comparison with papers only.

Scores are computed ``chunk`` items at a time, so 10^5+ items fit in memory; only ``(B, chunk)`` scores, the
``(B, k)`` running top list and per-target counts are ever held.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torchmetrics as tm

# Counting the candidates above each target: a direct comparison up to this many (user, target, item) triples per
# chunk, else a sort of the chunk (cheaper for users with many targets).
DIRECT_COUNT_LIMIT = 2**25


def _mask_columns(scores: torch.Tensor, items: torch.Tensor, start: int) -> torch.Tensor:
    """Set ``scores[b, items[b, j] - start] = -inf`` where that column is inside the chunk (items 0 = padding)."""
    b, c = scores.shape
    local = items - start
    inside = (items > 0) & (local >= 0) & (local < c)
    idx = torch.where(inside, local, torch.full_like(local, c))  # column c is a dummy, dropped below
    padded = torch.cat([scores, scores.new_zeros(b, 1)], 1)
    padded.scatter_(1, idx, float("-inf"))
    return padded[:, :c]


@torch.no_grad()
def rank_targets(
    score_range: Callable[[int, int], torch.Tensor],
    score_items: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    targets: torch.Tensor,
    seen: torch.Tensor,
    excluded: torch.Tensor | None = None,
    k: int = 10,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full-catalogue ranks of the targets and each user's top-k list, with seen items masked.

    Args:
        score_range: ``(start, end) -> (B, end - start)`` scores of catalogue items ``start..end-1``.
        score_items: ``items (B, M) -> (B, M)`` scores of given items.
        n_items: size of the index space (catalogue items + the padding index 0).
        targets: ``(B, T)`` relevant items, 0 = padding.
        seen: ``(B, S)`` the user's known items, never candidates; 0 = padding.
        excluded: ``(n_items,)`` bool, items nobody can be recommended (index 0 is always excluded).
        k: length of the top lists.
        chunk: items scored at a time.

    Returns:
        ``ranks`` ``(B, T)`` int64 (pessimistic, 1-based; 0 where ``targets`` is padding), ``top`` ``(B, k)`` item
        indices (-1 where fewer than k candidates had a finite score) and their scores ``(B, k)``.
    """
    b, t = targets.shape
    device = targets.device
    valid = targets > 0
    # NaN (and unscorable targets) become the lowest finite score, still above the -inf of masked candidates: such
    # a target ranks after every real candidate, never after the masked ones.
    low = torch.finfo(torch.float32).min
    t_scores = torch.nan_to_num(score_items(targets).float(), nan=low)  # (B, T)
    if excluded is not None:
        t_scores = t_scores.masked_fill(excluded[targets], low)
    t_scores = t_scores.masked_fill(~valid, float("inf")).contiguous()  # padding: nothing is ever >= +inf
    above = torch.zeros(b, t, dtype=torch.long, device=device)  # non-target candidates scoring >= the target
    top_v = torch.full((b, 0), float("-inf"), device=device)
    top_i = torch.zeros((b, 0), dtype=torch.long, device=device)
    for start in range(0, n_items, chunk):
        end = min(n_items, start + chunk)
        s = torch.nan_to_num(score_range(start, end).float(), nan=low)  # (B, C)
        if start == 0:  # the padding index (out of place: score_range may return a view of a cached matrix)
            s = torch.cat([s.new_full((b, 1), float("-inf")), s[:, 1:]], 1)
        if excluded is not None:
            s = s.masked_fill(excluded[start:end].unsqueeze(0), float("-inf"))
        s = _mask_columns(s, seen, start)
        # The top list may hold targets (they are real recommendations); counting "above" must not.
        kk = min(k, end - start)
        v, i = s.topk(kk, dim=1)
        top_v, top_i = torch.cat([top_v, v], 1), torch.cat([top_i, i + start], 1)
        if top_v.shape[1] > k:
            top_v, pos = top_v.topk(k, dim=1)
            top_i = top_i.gather(1, pos)
        s_count = _mask_columns(s, targets, start)
        if b * t * (end - start) <= DIRECT_COUNT_LIMIT:
            # Few targets per user (leave-last-out: one): compare each target with the chunk directly (ties >=).
            above += (s_count.unsqueeze(1) >= t_scores.unsqueeze(2)).sum(2)
        else:
            # Many targets: sort the chunk once; searchsorted(left) counts the candidates strictly below a target.
            above += (end - start) - torch.searchsorted(s_count.sort(dim=1).values, t_scores)
    # Other targets: those strictly better, and tied ones that come first in `targets`.
    ti, tj = t_scores.unsqueeze(2), t_scores.unsqueeze(1)  # (B, T, 1), (B, 1, T)
    order = torch.arange(t, device=device)
    before = (tj > ti) | ((tj == ti) & (order.view(1, 1, t) < order.view(1, t, 1)))
    better_targets = (before & valid.unsqueeze(1)).sum(2)
    ranks = torch.where(valid, 1 + above + better_targets, torch.zeros_like(above))
    top_i = torch.where(torch.isfinite(top_v), top_i, torch.full_like(top_i, -1))
    if top_i.shape[1] < k:  # a catalogue smaller than k
        pad = k - top_i.shape[1]
        top_i = torch.cat([top_i, top_i.new_full((b, pad), -1)], 1)
        top_v = torch.cat([top_v, top_v.new_full((b, pad), float("-inf"))], 1)
    return ranks, top_i, top_v


def _ideal_dcg(n_targets: torch.Tensor, k: int) -> torch.Tensor:
    gains = 1.0 / torch.log2(torch.arange(2, k + 2, device=n_targets.device, dtype=torch.float))  # (k,)
    cum = torch.cat([gains.new_zeros(1), gains.cumsum(0)])  # cum[m] = ideal DCG of m relevant items
    return cum[n_targets.clamp(max=k)]


def user_metrics(ranks: torch.Tensor, valid: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user HR@K, Recall@K, NDCG@K and MRR from target ranks; ``(B,)`` each, NaN for users with no target.

    Args:
        ranks: ``(B, T)`` 1-based ranks (anything where ``valid`` is False).
        valid: ``(B, T)`` which entries are real targets.
        ks: the cut-offs.
    """
    n_t = valid.sum(1)
    has = n_t > 0
    r = ranks.float()
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hit = valid & (ranks <= k) & (ranks >= 1)
        out[f"hr@{k}"] = hit.any(1).float()
        out[f"recall@{k}"] = hit.sum(1).float() / n_t.clamp(min=1)
        dcg = torch.where(hit, 1.0 / torch.log2(r + 1.0), torch.zeros_like(r)).sum(1)
        out[f"ndcg@{k}"] = dcg / _ideal_dcg(n_t, k).clamp(min=1e-12)
    best = torch.where(valid, r, torch.full_like(r, math.inf)).min(1).values
    out["mrr"] = 1.0 / best
    return {name: torch.where(has, v, torch.full_like(v, math.nan)) for name, v in out.items()}


def sampled_user_metrics(
    target_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor, ks: Sequence[int]
) -> dict[str, torch.Tensor]:
    """The sampled protocol: each target ranked among the user's fixed negatives (ties pessimistic).

    Args:
        target_scores: ``(B, T)``.
        negative_scores: ``(B, N)`` scores of the sampled negatives.
        valid: ``(B, T)`` real targets.
        ks: cut-offs.

    Returns:
        ``sampled_hr@K`` and ``sampled_ndcg@K`` per user ``(B,)``: means over the user's targets; NaN without one.
    """
    t = torch.nan_to_num(target_scores.float(), nan=float("-inf"))
    n = torch.nan_to_num(negative_scores.float(), nan=float("-inf"))
    ranks = 1 + (n.unsqueeze(1) >= t.unsqueeze(2)).sum(2)  # (B, T)
    n_t = valid.sum(1).clamp(min=1).float()
    out = {}
    for k in ks:
        hit = valid & (ranks <= k)
        out[f"sampled_hr@{k}"] = hit.sum(1).float() / n_t
        gain = torch.where(hit, 1.0 / torch.log2(ranks.float() + 1.0), torch.zeros_like(t))
        out[f"sampled_ndcg@{k}"] = gain.sum(1) / n_t
    has = valid.any(1)
    return {name: torch.where(has, v, torch.full_like(v, math.nan)) for name, v in out.items()}


def popularity_percentiles(counts: torch.Tensor) -> torch.Tensor:
    """Per item, its popularity percentile among catalogue items 1..N (average rank for ties; 0 = least, 1 = most
    popular). Index 0 (padding) gets 0."""
    c = counts[1:].double().cpu()
    n = c.numel()
    out = torch.zeros(n + 1, dtype=torch.float)
    if n <= 1:
        return out
    # Average ranks of tied counts: position of the first and last occurrence of each value in sorted order.
    sorted_c, order = c.sort()
    first = torch.searchsorted(sorted_c, sorted_c, right=False)
    last = torch.searchsorted(sorted_c, sorted_c, right=True) - 1
    avg = torch.empty(n, dtype=torch.double)
    avg[order] = (first + last).double() / 2
    out[1:] = (avg / (n - 1)).float()
    return out


class RankingMetrics(tm.Metric):
    """Accumulates per-user ranking metrics over an epoch (sums of per-user values, synced across processes).

    ``update`` takes the outputs of :func:`rank_targets` (and optionally the sampled-protocol scores);
    ``compute`` returns the means over evaluated users plus ``coverage@K``, ``popularity@K`` and ``users``.

    Args:
        n_items: size of the index space (catalogue + padding 0).
        ks: cut-offs.
        pop_percentile: ``(n_items,)`` popularity percentile of each item (see :func:`popularity_percentiles`).
        recommendable: number of items that may be recommended (the coverage denominator).
        sync_on_compute: gather the sums of every process in ``compute`` (set False where only one process
            evaluates, e.g. a baseline on rank 0: a sync there would wait for the others forever).
    """

    full_state_update = False

    def __init__(
        self,
        n_items: int,
        ks: Sequence[int],
        pop_percentile: torch.Tensor | None = None,
        recommendable: int = 0,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__(sync_on_compute=sync_on_compute)
        self.ks = [int(k) for k in ks]
        self.names = [f"{m}@{k}" for k in self.ks for m in ("hr", "ndcg", "recall")] + ["mrr"]
        self.sampled_names = [f"sampled_{m}@{k}" for k in self.ks for m in ("hr", "ndcg")]
        self.n_items = int(n_items)
        self.recommendable = int(recommendable) or max(1, self.n_items - 1)
        pct = pop_percentile if pop_percentile is not None else torch.zeros(self.n_items)
        self.register_buffer("pop_percentile", pct.float().clone(), persistent=False)
        self.add_state("sums", torch.zeros(len(self.names), dtype=torch.double), dist_reduce_fx="sum")
        self.add_state("sampled_sums", torch.zeros(len(self.sampled_names), dtype=torch.double), dist_reduce_fx="sum")
        self.add_state("users", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("sampled_users", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("recommended", torch.zeros(len(self.ks), self.n_items), dist_reduce_fx="sum")
        self.add_state("pop_sum", torch.zeros(len(self.ks), dtype=torch.double), dist_reduce_fx="sum")
        self.add_state("pop_n", torch.zeros(len(self.ks), dtype=torch.double), dist_reduce_fx="sum")

    def set_popularity(self, pop_percentile: torch.Tensor, recommendable: int) -> None:
        self.pop_percentile = pop_percentile.float().to(self.recommended.device)
        self.recommendable = max(1, int(recommendable))

    def update(
        self,
        ranks: torch.Tensor,
        targets: torch.Tensor,
        top: torch.Tensor,
        sampled: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        valid = targets > 0
        has = valid.any(1)
        per_user = user_metrics(ranks, valid, self.ks)
        self.sums += torch.stack([per_user[n][has].double().sum() for n in self.names])
        self.users += has.sum()
        if sampled is not None:
            sv = sampled_user_metrics(sampled[0], sampled[1], valid, self.ks)
            self.sampled_sums += torch.stack([sv[n][has].double().sum() for n in self.sampled_names])
            self.sampled_users += has.sum()
        top = top[has]
        pct = self.pop_percentile.to(top.device)
        for j, k in enumerate(self.ks):
            items = top[:, :k]
            real = items >= 0
            flat = items[real]
            self.recommended[j] += torch.bincount(flat, minlength=self.n_items)[: self.n_items].float()
            self.pop_sum[j] += pct[flat].double().sum()
            self.pop_n[j] += real.sum()

    def compute(self) -> dict[str, float]:
        n = max(int(self.users), 1)
        out = {name: float(self.sums[i]) / n for i, name in enumerate(self.names)}
        if int(self.sampled_users):
            ns = int(self.sampled_users)
            out.update({name: float(self.sampled_sums[i]) / ns for i, name in enumerate(self.sampled_names)})
        for j, k in enumerate(self.ks):
            out[f"coverage@{k}"] = float((self.recommended[j] > 0).sum()) / self.recommendable
            out[f"popularity@{k}"] = float(self.pop_sum[j] / self.pop_n[j]) if float(self.pop_n[j]) else math.nan
        out["users"] = float(int(self.users))
        if not int(self.users):
            out.update({name: math.nan for name in self.names})
        return out
