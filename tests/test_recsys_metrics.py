"""Ranking metrics against hand-computed cases: ties (pessimistic), seen-item masking, users with no test item,
several targets, chunking, the sampled protocol, coverage and popularity; and agreement with torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import (
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_recall,
    retrieval_reciprocal_rank,
)

from recipezoo.recsys import metrics as M


def rank(scores: list[list[float]], targets: list[list[int]], seen: list[list[int]] | None = None, k: int = 3,
         chunk: int = 1000, excluded: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """rank_targets on a dense score table (column 0 = padding)."""
    s = torch.tensor(scores, dtype=torch.float)
    t = torch.tensor(targets, dtype=torch.long)
    seen_t = torch.tensor(seen if seen is not None else [[0]] * len(scores), dtype=torch.long)
    ex = None
    if excluded is not None:
        ex = torch.zeros(s.shape[1], dtype=torch.bool)
        ex[excluded] = True
    ranks, top, _ = M.rank_targets(
        lambda a, b: s[:, a:b], lambda items: s.gather(1, items), s.shape[1], t, seen_t, ex, k, chunk
    )
    return ranks, top


def per_user(ranks: torch.Tensor, targets: list[list[int]], ks: tuple[int, ...] = (1, 2, 3)) -> dict:
    return M.user_metrics(ranks, torch.tensor(targets) > 0, ks)


def test_single_target_hand_case() -> None:
    # Items 1..5 score 0.5, 0.9, 0.1, 0.7, 0.3; the target is item 4 (0.7): only item 2 is above it -> rank 2.
    ranks, top = rank([[0, 0.5, 0.9, 0.1, 0.7, 0.3]], [[4]])
    assert ranks.tolist() == [[2]]
    assert top.tolist() == [[2, 4, 1]]
    m = per_user(ranks, [[4]])
    assert m["hr@1"].item() == 0 and m["hr@2"].item() == 1
    assert m["ndcg@2"].item() == pytest.approx(1 / math.log2(3))
    assert m["mrr"].item() == pytest.approx(0.5)
    assert m["recall@3"].item() == 1


def test_ties_are_pessimistic() -> None:
    # The target (item 2) ties with items 1 and 3: all of them are placed before it -> rank 3, not 1.
    ranks, _ = rank([[0, 0.5, 0.5, 0.5, 0.1]], [[2]])
    assert ranks.tolist() == [[3]]
    # A model that scores everything alike ranks the target last: HR@K = 0 for any K below the catalogue size.
    ranks, _ = rank([[0.0] * 11], [[7]], k=3)
    assert ranks.tolist() == [[10]]
    assert per_user(ranks, [[7]], (3, 9))["hr@9"].item() == 0


def test_nan_scores_rank_last() -> None:
    nan = float("nan")
    ranks, _ = rank([[0, 0.2, nan, 0.1, 0.3]], [[2]])
    assert ranks.tolist() == [[4]]  # a NaN target is worse than every candidate
    ranks, _ = rank([[0, nan, 0.5, nan, nan]], [[2]])
    assert ranks.tolist() == [[1]]  # NaN candidates never beat a real score


def test_seen_items_are_masked_and_padding_never_counts() -> None:
    # Item 1 scores highest but is seen: the target (item 3) becomes rank 1. Column 0 (padding) scores 9.
    ranks, top = rank([[9, 0.9, 0.2, 0.8, 0.1]], [[3]], seen=[[1, 0]])
    assert ranks.tolist() == [[1]]
    assert 1 not in top[0].tolist() and 0 not in top[0].tolist()


def test_excluded_items_cannot_be_recommended_or_hit() -> None:
    ranks, top = rank([[0, 0.9, 0.8, 0.1, 0.2]], [[2]], excluded=[1])
    assert ranks.tolist() == [[1]] and 1 not in top[0].tolist()
    # An excluded target (an id-only model and an item it never trained on) is a miss: the worst rank.
    ranks, _ = rank([[0, 0.9, 0.8, 0.1, 0.2]], [[2]], excluded=[2])
    assert ranks.item() >= 4


def test_several_targets_and_users_without_targets() -> None:
    # User 0: targets items 1 (0.9, rank 1) and 3 (0.2); items 2 (0.6) and 4 (0.4) are above item 3 -> rank 4.
    # User 1: no target (all padding): not evaluated.
    scores = [[0, 0.9, 0.6, 0.2, 0.4], [0, 0.1, 0.2, 0.3, 0.4]]
    targets = [[1, 3], [0, 0]]
    ranks, _ = rank(scores, targets, k=4)
    assert ranks.tolist() == [[1, 4], [0, 0]]
    m = per_user(ranks, targets, (2, 4))
    assert m["hr@2"][0].item() == 1 and m["recall@2"][0].item() == 0.5 and m["recall@4"][0].item() == 1.0
    idcg2 = 1 + 1 / math.log2(3)
    assert m["ndcg@2"][0].item() == pytest.approx(1 / idcg2)
    assert m["ndcg@4"][0].item() == pytest.approx((1 + 1 / math.log2(5)) / idcg2)
    assert m["mrr"][0].item() == 1.0
    assert all(math.isnan(v[1].item()) for v in m.values())

    acc = M.RankingMetrics(5, (2, 4))
    acc.update(ranks, torch.tensor(targets), torch.tensor([[1, 2, 4, 3], [4, 3, 2, 1]]))
    out = acc.compute()
    assert out["users"] == 1  # the user without a target is not averaged in
    assert out["recall@2"] == 0.5 and out["hr@2"] == 1.0


def test_targets_tied_with_each_other_take_distinct_positions() -> None:
    # Both targets score 0.7 and nothing else is above: they take positions 1 and 2 (not both 2, not both 1).
    ranks, _ = rank([[0, 0.7, 0.1, 0.7, 0.2]], [[1, 3]])
    assert sorted(ranks[0].tolist()) == [1, 2]
    assert per_user(ranks, [[1, 3]], (2,))["ndcg@2"].item() == pytest.approx(1.0)
    # With a non-target tied too, it goes first: positions 2 and 3.
    ranks, _ = rank([[0, 0.7, 0.7, 0.7, 0.2]], [[1, 3]])
    assert sorted(ranks[0].tolist()) == [2, 3]


@pytest.mark.parametrize("direct_limit", [M.DIRECT_COUNT_LIMIT, 0], ids=["compare", "sort"])
def test_chunking_does_not_change_results(direct_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "DIRECT_COUNT_LIMIT", direct_limit)
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 51, generator=g).round(decimals=1)  # many ties
    targets = torch.randint(1, 51, (6, 3), generator=g)
    targets[2] = 0
    seen = torch.randint(0, 51, (6, 7), generator=g)
    seen = torch.where(torch.isin(seen, targets), torch.zeros_like(seen), seen)
    results = []
    for chunk in (1, 7, 51, 1000):
        ranks, top, vals = M.rank_targets(
            lambda a, b: scores[:, a:b], lambda items: scores.gather(1, items), 51, targets, seen, None, 5, chunk
        )
        results.append((ranks, vals))
    for ranks, vals in results[1:]:
        assert torch.equal(ranks, results[0][0]) and torch.equal(vals, results[0][1])
    # The reference: count by hand (ties pessimistic; other targets ahead when better, or tied and listed first).
    s_ = scores.clone()
    s_[:, 0] = float("-inf")
    for u in range(6):
        s_[u, seen[u][seen[u] > 0]] = float("-inf")
        for j, item in enumerate(targets[u].tolist()):
            if not item:
                continue
            t = s_[u, item]
            others = [x for x in range(1, 51) if x not in targets[u].tolist() and s_[u, x] >= t]
            ahead = [
                x
                for jj, x in enumerate(targets[u].tolist())
                if x and jj != j and (s_[u, x] > t or (s_[u, x] == t and jj < j))
            ]
            assert results[0][0][u, j].item() == 1 + len(others) + len(ahead)


def test_agrees_with_torchmetrics_without_ties() -> None:
    g = torch.Generator().manual_seed(1)
    n, b = 40, 8
    # Continuous (no ties) and positive: torchmetrics' reciprocal rank ignores relevant items scored <= 0.
    scores = torch.rand(b, n, generator=g) + 0.01
    targets = torch.stack([torch.randperm(n - 1, generator=g)[:3] + 1 for _ in range(b)])
    ranks, _, _ = M.rank_targets(
        lambda a, c: scores[:, a:c],
        lambda items: scores.gather(1, items),
        n,
        targets,
        torch.zeros(b, 1).long(),
        None,
        10,
        16,
    )
    ours = M.user_metrics(ranks, targets > 0, (5, 10))
    for u in range(b):
        preds, rel = scores[u, 1:], torch.zeros(n - 1, dtype=torch.bool)
        rel[targets[u] - 1] = True
        assert ours["hr@10"][u].item() == pytest.approx(retrieval_hit_rate(preds, rel, top_k=10).item())
        assert ours["recall@5"][u].item() == pytest.approx(retrieval_recall(preds, rel, top_k=5).item())
        assert ours["ndcg@10"][u].item() == pytest.approx(retrieval_normalized_dcg(preds, rel, top_k=10).item())
        assert ours["mrr"][u].item() == pytest.approx(retrieval_reciprocal_rank(preds, rel, top_k=n).item())


def test_sampled_protocol_hand_case() -> None:
    # Target 0.5 against negatives 0.9, 0.5 (tie: counted above), 0.1 -> rank 3 of 4.
    v = M.sampled_user_metrics(torch.tensor([[0.5]]), torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[True]]), (2, 3))
    assert v["sampled_hr@2"].item() == 0 and v["sampled_hr@3"].item() == 1
    assert v["sampled_ndcg@3"].item() == pytest.approx(1 / math.log2(4))


def test_coverage_and_popularity_percentiles() -> None:
    counts = torch.tensor([0.0, 10, 1, 5, 5])  # items 1..4; items 3 and 4 tie
    pct = M.popularity_percentiles(counts)
    assert pct.tolist() == pytest.approx([0.0, 1.0, 0.0, 0.5, 0.5])
    acc = M.RankingMetrics(5, (1, 2), pct, recommendable=4)
    # Two users' top-2 lists: [1, 3] and [1, 2]; each has one target.
    acc.update(torch.tensor([[1], [2]]), torch.tensor([[1], [2]]), torch.tensor([[1, 3], [1, 2]]))
    out = acc.compute()
    assert out["coverage@1"] == pytest.approx(1 / 4)  # only item 1 at the top
    assert out["coverage@2"] == pytest.approx(3 / 4)
    assert out["popularity@1"] == pytest.approx(1.0)
    assert out["popularity@2"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert out["hr@1"] == 0.5


def test_metric_state_resets_between_epochs() -> None:
    acc = M.RankingMetrics(4, (1,))
    acc.update(torch.tensor([[1]]), torch.tensor([[1]]), torch.tensor([[1]]))
    assert acc.compute()["hr@1"] == 1.0
    acc.reset()
    acc.update(torch.tensor([[3]]), torch.tensor([[2]]), torch.tensor([[1]]))
    assert acc.compute()["hr@1"] == 0.0 and acc.compute()["users"] == 1


def test_top_list_is_short_when_the_catalogue_is() -> None:
    ranks, top = rank([[0, 0.3, 0.2]], [[1]], seen=[[2]], k=4)
    assert top.tolist() == [[1, -1, -1, -1]]
    assert np.isfinite(ranks.numpy()).all()
