"""Recommendation networks: biased matrix factorization, NeuMF, a two-tower retrieval model and SASRec.

Indices: users are ``1..n_users`` and items ``1..n_items``; index 0 is padding / an unknown id in every table, so a
user or item first seen at predict time is never an index error.

Every network exposes the same small interface, which :class:`recipezoo.recsys.task.Recommender` and the exports rely
on:

- ``kind``: ``"dot"`` when ``score(u, i) = user_vectors(u) . item_vectors(i)`` (MF, two-tower, SASRec: full-catalogue
  ranking is one matrix product, and the towers export separately for an ANN index), ``"pair"`` when the score
  needs the pair (NeuMF).
- ``user_inputs``: the names of the tensors that describe a user, a subset of ``user`` ``(B,)`` int64, ``history``
  ``(B, L)`` int64 (the user's most recent items, oldest first, left-padded with 0), ``user_num`` ``(B, n)`` float32
  and ``user_cat`` ``(B, c)`` int64 (side features).
- ``item_inputs``: the names of the item tower's inputs (``item`` ``(M,)`` for id-only models; ``item_id``,
  ``item_num``, ``item_cat``, ``item_text`` for the two-tower's feature tower).
- ``uses_item_features``: whether items without training interactions (cold items) can be scored. Id-only networks
  cannot: the task masks those items out of their rankings.
- ``score(query, items)``: ``query`` a dict holding the ``user_inputs``, ``items`` ``(B, M)`` -> scores ``(B, M)``.
- dot models also have ``user_vectors(**query) -> (B, D)``, ``item_vectors(items) -> (..., D)`` (catalogue indices)
  and ``item_tower(*item_inputs) -> (M, D)`` (from features).

This module imports torch only: no Lightning, no Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

USER_INPUTS = ("user", "history", "user_num", "user_cat")


def _zero_padding_row(emb: nn.Embedding) -> None:
    with torch.no_grad():
        emb.weight[0].zero_()


def _dot_scores(user_vec: torch.Tensor, item_vec: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` x ``(B, M, D)`` -> ``(B, M)``."""
    return torch.einsum("bd,bmd->bm", user_vec, item_vec)


class BiasedMF(nn.Module):
    """Biased matrix factorization (Koren et al., 2009): ``mu + b_u + b_i + p_u . q_i``.

    For explicit ratings with the ``rating`` objective (squared error plus the L2 ``penalty`` of the rows in the
    batch, as in Funk-SVD), or as an implicit-feedback ranker with any ranking objective. The towers fold the biases
    into the vectors, so their inner product is exactly the score: ``user = [p_u, mu + b_u, 1]``, ``item = [q_i, 1,
    b_i]``. Row 0 (unknown user or item) stays zero: an unknown user's score is ``mu + b_i``.

    Args:
        n_users: known users.
        n_items: catalogue items.
        dim: latent factors.
        init_std: standard deviation of the initial factors.
        global_mean: initial global bias (the training mean rating; 0 for implicit feedback).
    """

    kind = "dot"
    uses_item_features = False
    user_inputs = ("user",)
    item_inputs = ("item",)

    def __init__(
        self, n_users: int, n_items: int, dim: int = 64, init_std: float = 0.01, global_mean: float | None = 0.0
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim = int(n_users), int(n_items), int(dim)
        self.user_emb = nn.Embedding(self.n_users + 1, dim)
        self.item_emb = nn.Embedding(self.n_items + 1, dim)
        self.user_bias = nn.Embedding(self.n_users + 1, 1)
        self.item_bias = nn.Embedding(self.n_items + 1, 1)
        self.global_bias = nn.Parameter(torch.tensor(float(global_mean or 0.0)))
        for emb in (self.user_emb, self.item_emb):
            nn.init.normal_(emb.weight, std=init_std)
            _zero_padding_row(emb)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    @property
    def vector_dim(self) -> int:
        return self.dim + 2

    def user_vectors(self, user: torch.Tensor, **_: Any) -> torch.Tensor:  # (B,) -> (B, dim + 2)
        bias = self.global_bias + self.user_bias(user)[..., 0]
        return torch.cat([self.user_emb(user), bias.unsqueeze(-1), torch.ones_like(bias).unsqueeze(-1)], -1)

    def item_vectors(self, item: torch.Tensor) -> torch.Tensor:  # (...,) -> (..., dim + 2)
        bias = self.item_bias(item)
        return torch.cat([self.item_emb(item), torch.ones_like(bias), bias], -1)

    def item_tower(self, item: torch.Tensor) -> torch.Tensor:
        return self.item_vectors(item)

    def score(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return _dot_scores(self.user_vectors(**query), self.item_vectors(items))

    def penalty(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Squared L2 norm of the rows a batch uses, per example ``(B,)``: the regulariser of Funk-SVD."""
        user = query["user"]
        u = self.user_emb(user).pow(2).sum(-1) + self.user_bias(user)[..., 0].pow(2)
        i = self.item_emb(items).pow(2).sum(-1) + self.item_bias(items)[..., 0].pow(2)  # (B, M)
        return u + i.sum(-1)


class NeuMF(nn.Module):
    """Neural collaborative filtering (He et al., 2017): a GMF branch and an MLP branch fused by a linear layer.

    The score is a logit for "user interacts with item". There is no user or item vector whose inner product gives
    it, so NeuMF ranks the catalogue pair by pair (in chunks) and exports one scoring model.

    Args:
        n_users: known users.
        n_items: catalogue items.
        gmf_dim: factors of the generalised-MF branch.
        mlp_dims: widths of the MLP tower; its input is a user and an item embedding of ``mlp_dims[0] // 2`` each.
        dropout: between MLP layers.
        init_std: standard deviation of the initial embeddings.
    """

    kind = "pair"
    uses_item_features = False
    user_inputs = ("user",)
    item_inputs = ("item",)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        gmf_dim: int = 32,
        mlp_dims: Sequence[int] = (64, 32, 16),
        dropout: float = 0.0,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        mlp_dims = [int(d) for d in mlp_dims]
        if len(mlp_dims) < 1 or mlp_dims[0] < 2:
            raise ValueError(f"mlp_dims must start with a width of at least 2, got {mlp_dims}.")
        self.n_users, self.n_items = int(n_users), int(n_items)
        half = mlp_dims[0] // 2
        self.gmf_user, self.gmf_item = nn.Embedding(n_users + 1, gmf_dim), nn.Embedding(n_items + 1, gmf_dim)
        self.mlp_user, self.mlp_item = nn.Embedding(n_users + 1, half), nn.Embedding(n_items + 1, half)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=init_std)
            _zero_padding_row(emb)
        layers: list[nn.Module] = []
        width = 2 * half
        for d in mlp_dims[1:]:
            layers += [nn.Linear(width, d), nn.ReLU(), nn.Dropout(dropout)]
            width = d
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(gmf_dim + width, 1)

    def score(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        user = query["user"]  # (B,), items (B, M)
        m = items.shape[1]
        gmf = self.gmf_user(user).unsqueeze(1) * self.gmf_item(items)  # (B, M, G)
        mu = self.mlp_user(user).unsqueeze(1).expand(-1, m, -1)  # (B, M, H/2)
        mlp = self.mlp(torch.cat([mu, self.mlp_item(items)], -1))  # (B, M, last)
        return self.head(torch.cat([gmf, mlp], -1)).squeeze(-1)


def _mlp(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class _CategoricalEmbeddings(nn.Module):
    """One embedding per categorical column (index 0 = out-of-vocabulary), concatenated: ``(B, c) -> (B, c * d)``."""

    def __init__(self, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(int(c), dim) for c in cardinalities)
        self.out_dim = dim * len(self.tables)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([t(x[..., j]) for j, t in enumerate(self.tables)], -1)


class TwoTower(nn.Module):
    """Two-tower retrieval: a user tower and an item tower map to one normalised space; score = cosine / temperature.

    Item tower: the item's id embedding, its categorical and numeric side features, and a learned projection of a
    frozen pretrained text embedding (e.g. the title through a sentence encoder), through an MLP. Items with no
    training interaction (cold items) use the shared "unknown item" id row, and ``id_dropout`` trains that row (and
    the features) by hiding random items' ids, so a cold item with a title gets a meaningful vector.

    User tower: the user's id embedding, side features, and the mean of the id embeddings of the user's recent items
    (``history``; shared with the item tower), through an MLP. An unknown user gets a vector from history and
    features alone.

    The catalogue's item features and the known users' features live in buffers (saved with the weights), filled by
    :meth:`set_item_features` / :meth:`set_user_features`; the exported towers take features as inputs instead.

    Args:
        n_users: known users.
        n_items: catalogue items.
        dim: output dimension of both towers.
        id_dim: id embedding width (users and items).
        hidden: hidden widths of each tower's MLP.
        history: use the user's recent items in the user tower.
        item_num_dim: numeric item features (incl. multi-hot columns such as genres).
        item_cardinalities: vocabulary size (incl. index 0) of each categorical item feature.
        item_text_dim: width of the text embeddings (0: no text feature).
        user_num_dim: numeric user features.
        user_cardinalities: vocabulary sizes of categorical user features.
        cat_dim: width of each categorical feature embedding.
        text_proj_dim: the text embedding is projected to this width.
        dropout: in the towers' MLPs.
        id_dropout: probability of replacing an item's id by the unknown id during training.
        temperature: softmax temperature of the cosine scores.
    """

    kind = "dot"
    uses_item_features = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        id_dim: int = 64,
        hidden: Sequence[int] = (128,),
        history: bool = True,
        item_num_dim: int = 0,
        item_cardinalities: Sequence[int] = (),
        item_text_dim: int = 0,
        user_num_dim: int = 0,
        user_cardinalities: Sequence[int] = (),
        cat_dim: int = 16,
        text_proj_dim: int = 64,
        dropout: float = 0.1,
        id_dropout: float = 0.1,
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim = int(n_users), int(n_items), int(dim)
        self.history = bool(history)
        self.id_dropout, self.temperature = float(id_dropout), float(temperature)
        self.item_id = nn.Embedding(self.n_items + 1, id_dim)
        self.user_id = nn.Embedding(self.n_users + 1, id_dim)
        for emb in (self.item_id, self.user_id):
            nn.init.normal_(emb.weight, std=0.05)
        self.item_cat_emb = _CategoricalEmbeddings(item_cardinalities or (), cat_dim)
        self.user_cat_emb = _CategoricalEmbeddings(user_cardinalities or (), cat_dim)
        self.item_text_dim, self.item_num_dim, self.user_num_dim = (
            int(item_text_dim),
            int(item_num_dim),
            int(user_num_dim),
        )
        self.text_proj = nn.Linear(self.item_text_dim, text_proj_dim) if self.item_text_dim else None
        item_in = id_dim + self.item_cat_emb.out_dim + self.item_num_dim + (text_proj_dim if self.text_proj else 0)
        user_in = id_dim * (2 if self.history else 1) + self.user_cat_emb.out_dim + self.user_num_dim
        self.item_mlp = _mlp([item_in, *hidden, dim], dropout)
        self.user_mlp = _mlp([user_in, *hidden, dim], dropout)
        n_item_cat, n_user_cat = len(self.item_cat_emb.tables), len(self.user_cat_emb.tables)
        # The catalogue's features and the known users' features; row 0 = padding / unknown.
        self.register_buffer("item_num", torch.zeros(self.n_items + 1, self.item_num_dim))
        self.register_buffer("item_cat", torch.zeros(self.n_items + 1, n_item_cat, dtype=torch.long))
        self.register_buffer("item_text", torch.zeros(self.n_items + 1, self.item_text_dim))
        self.register_buffer("item_warm", torch.ones(self.n_items + 1, dtype=torch.bool))  # has an id of its own
        self.register_buffer("user_num", torch.zeros(self.n_users + 1, self.user_num_dim))
        self.register_buffer("user_cat", torch.zeros(self.n_users + 1, n_user_cat, dtype=torch.long))
        self.user_inputs = ("user",) + (("history",) if self.history else ())
        self.user_inputs += (("user_num",) if self.user_num_dim else ()) + (("user_cat",) if n_user_cat else ())
        self.item_inputs = ("item_id",) + (("item_num",) if self.item_num_dim else ())
        self.item_inputs += (("item_cat",) if n_item_cat else ()) + (("item_text",) if self.item_text_dim else ())

    @property
    def vector_dim(self) -> int:
        return self.dim

    # -- features ------------------------------------------------------------------------------------------------
    def set_item_features(
        self,
        item_num: torch.Tensor | None = None,
        item_cat: torch.Tensor | None = None,
        item_text: torch.Tensor | None = None,
        item_warm: torch.Tensor | None = None,
    ) -> None:
        """Copy the catalogue's features (``(n_items + 1, ...)``, row 0 = padding) into the buffers."""
        for name, value in (("item_num", item_num), ("item_cat", item_cat), ("item_text", item_text)):
            if value is not None and value.numel():
                buf = getattr(self, name)
                if tuple(value.shape) != tuple(buf.shape):
                    raise ValueError(f"{name}: expected shape {tuple(buf.shape)}, got {tuple(value.shape)}")
                buf.copy_(value)
        if item_warm is not None:
            self.item_warm.copy_(item_warm.bool())

    def set_user_features(self, user_num: torch.Tensor | None = None, user_cat: torch.Tensor | None = None) -> None:
        """Copy the known users' features (``(n_users + 1, ...)``) into the buffers."""
        for name, value in (("user_num", user_num), ("user_cat", user_cat)):
            if value is not None and value.numel():
                getattr(self, name).copy_(value)

    # -- towers --------------------------------------------------------------------------------------------------
    def item_tower(
        self,
        item_id: torch.Tensor,
        item_num: torch.Tensor | None = None,
        item_cat: torch.Tensor | None = None,
        item_text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Item vectors from features: ``item_id`` (M,) is the id-embedding row (0 = unknown / cold) -> (M, dim)."""
        parts = [self.item_id(item_id)]
        if self.item_cat_emb.tables:
            parts.append(self.item_cat_emb(item_cat))
        if self.item_num_dim:
            parts.append(item_num)
        if self.text_proj is not None:
            parts.append(self.text_proj(item_text))
        return F.normalize(self.item_mlp(torch.cat(parts, -1)), dim=-1)

    def item_vectors(self, item: torch.Tensor) -> torch.Tensor:
        """Vectors of catalogue items (any shape of indices), features from the buffers."""
        item_id = torch.where(self.item_warm[item], item, torch.zeros_like(item))
        if self.training and self.id_dropout > 0:
            hide = torch.rand(item.shape, device=item.device) < self.id_dropout
            item_id = torch.where(hide, torch.zeros_like(item_id), item_id)
        shape = item.shape
        flat = item.reshape(-1)
        out = self.item_tower(
            item_id.reshape(-1), self.item_num[flat], self.item_cat[flat], self.item_text[flat]
        )  # (M, dim)
        return out.reshape(*shape, self.dim)

    def user_vectors(
        self,
        user: torch.Tensor,
        history: torch.Tensor | None = None,
        user_num: torch.Tensor | None = None,
        user_cat: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """``(B,)`` user indices (0 = unknown), optional ``(B, L)`` history and features -> ``(B, dim)``.

        Features not given are those stored for the (known) user.
        """
        parts = [self.user_id(user)]
        if self.history:
            if history is None:
                history = torch.zeros(user.shape[0], 1, dtype=torch.long, device=user.device)
            mask = (history > 0).unsqueeze(-1).to(self.item_id.weight.dtype)  # (B, L, 1)
            pooled = (self.item_id(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, id_dim)
            parts.append(pooled)
        if self.user_cat_emb.tables:
            parts.append(self.user_cat_emb(self.user_cat[user] if user_cat is None else user_cat))
        if self.user_num_dim:
            parts.append(self.user_num[user] if user_num is None else user_num)
        return F.normalize(self.user_mlp(torch.cat(parts, -1)), dim=-1)

    def score(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return _dot_scores(self.user_vectors(**query), self.item_vectors(items)) / self.temperature


class _CausalBlock(nn.Module):
    """A pre-norm Transformer layer with causal self-attention over ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:  # x (B, L, D), keep (B, 1, L, L) bool
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, nh, L, hs)
        x = x + self.dropout(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018).

    The user is their recent items, oldest first (``history`` ``(B, L)``, left-padded with 0); causal
    self-attention layers read it and the hidden state at the last position is the user vector, scored against the
    (shared) item embeddings. An unknown user with a few items is served like any other.

    Args:
        n_items: catalogue items.
        max_len: the longest history read (learned positions); longer histories keep their last ``max_len`` items.
        dim: embedding and hidden width.
        layers: Transformer layers.
        heads: attention heads (must divide ``dim``).
        dropout: on embeddings, attention and feed-forward layers.
        n_users: unused (the user is their history); accepted so every network takes the same arguments.
    """

    kind = "dot"
    uses_item_features = False
    user_inputs = ("history",)
    item_inputs = ("item",)

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        n_users: int | None = None,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of heads={heads}.")
        self.n_items, self.max_len, self.dim = int(n_items), int(max_len), int(dim)
        self.item_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(self.max_len, dim)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        nn.init.normal_(self.pos_emb.weight, std=0.05)
        _zero_padding_row(self.item_emb)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_CausalBlock(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    @property
    def vector_dim(self) -> int:
        return self.dim

    def sequence_vectors(self, history: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` item indices -> hidden states ``(B, L, dim)``; position t sees items 0..t only."""
        history = history[:, -self.max_len :]
        b, t = history.shape
        positions = torch.arange(self.max_len - t, self.max_len, device=history.device)
        x = self.item_emb(history) * math.sqrt(self.dim) + self.pos_emb(positions)
        x = self.emb_dropout(x)
        valid = history > 0  # (B, L)
        causal = torch.ones(t, t, dtype=torch.bool, device=history.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=history.device)
        # Real items attend to earlier real items; a padding position attends to itself only (never an empty row).
        keep = (causal & valid.unsqueeze(1)) | eye  # (B, L, L)
        keep = keep.unsqueeze(1)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, keep) * valid.unsqueeze(-1).to(x.dtype)
        return self.norm(x)

    def user_vectors(self, history: torch.Tensor, **_: Any) -> torch.Tensor:  # (B, L) -> (B, dim)
        return self.sequence_vectors(history)[:, -1]

    def item_vectors(self, item: torch.Tensor) -> torch.Tensor:
        return self.item_emb(item)

    def item_tower(self, item: torch.Tensor) -> torch.Tensor:
        return self.item_vectors(item)

    def score(self, query: dict[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return _dot_scores(self.user_vectors(**query), self.item_vectors(items))
