"""Tabular networks for fraud detection: an MLP with categorical embeddings, FT-Transformer and an autoencoder.

Every network takes ``(n_num, cardinalities)`` first and maps one batch of preprocessed rows to one score per row::

    score = net(x_num, x_cat)   # x_num float32 (B, n_num), x_cat int64 (B, n_cat) -> score (B,)

``cardinalities[j]`` is the vocabulary size of categorical column ``j`` *including* index 0, the out-of-vocabulary /
rare bucket the preprocessor maps unseen values to. Either ``n_num`` or ``n_cat`` may be 0 (``x_cat`` is then a
``(B, 0)`` tensor and is never read), not both.

``score_kind`` says how to read the score: ``"logit"`` for the classifiers (:class:`TabularMLP`,
:class:`FTTransformer`; higher = more likely fraud, ``sigmoid`` gives an uncalibrated probability), ``"anomaly"`` for
:class:`TabularAutoencoder` (the per-row reconstruction error; higher = more unusual). Both are read the same way
downstream: a row is flagged when ``score >= threshold``.

This module imports torch only: no Lightning, no Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def default_embedding_dim(cardinality: int) -> int:
    """fastai's rule of thumb, capped at 16: ``min(16, round(1.6 * cardinality ** 0.56))``."""
    return min(16, round(1.6 * cardinality**0.56))


def _check_features(n_num: int, cardinalities: Sequence[int]) -> list[int]:
    cards = [int(c) for c in cardinalities]
    if n_num < 0:
        raise ValueError(f"n_num must be >= 0, got {n_num}.")
    if any(c < 1 for c in cards):
        raise ValueError(f"every cardinality must be >= 1 (index 0 is the out-of-vocabulary bucket), got {cards}.")
    if n_num == 0 and not cards:
        raise ValueError("a tabular network needs at least one feature: n_num == 0 and no categorical columns.")
    return cards


def _embedding_dims(cards: list[int], embedding_dim: int | Sequence[int] | None) -> list[int]:
    if embedding_dim is None:
        return [default_embedding_dim(c) for c in cards]
    if isinstance(embedding_dim, int):
        return [embedding_dim] * len(cards)
    dims = [int(d) for d in embedding_dim]
    if len(dims) != len(cards):
        raise ValueError(f"embedding_dim has {len(dims)} entries for {len(cards)} categorical columns.")
    return dims


class _Embeddings(nn.Module):
    """One embedding table per categorical column, concatenated: ``(B, n_cat) -> (B, sum(dims))``."""

    def __init__(self, cards: list[int], dims: list[int]) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cards, dims))
        self.out_features = sum(dims)

    def forward(self, x_cat: torch.Tensor) -> list[torch.Tensor]:
        return [table(x_cat[:, j]) for j, table in enumerate(self.tables)]  # n_cat x (B, d_j)


class TabularMLP(nn.Module):
    """An MLP over the numeric features and one learned embedding per categorical column.

    Args:
        n_num: number of numeric features.
        cardinalities: vocabulary size of each categorical column (index 0 = out-of-vocabulary).
        embedding_dim: width of every embedding, a list with one width per column, or None for
            :func:`default_embedding_dim` of each column's cardinality.
        hidden: widths of the hidden layers.
        dropout: dropout after every hidden layer.
        batch_norm: BatchNorm after every hidden linear layer (train with ``drop_last`` or batches > 1 row).
    """

    score_kind = "logit"

    def __init__(
        self,
        n_num: int,
        cardinalities: Sequence[int],
        embedding_dim: int | Sequence[int] | None = None,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.n_num = int(n_num)
        self.cardinalities = _check_features(self.n_num, cardinalities)
        self.embeddings = _Embeddings(self.cardinalities, _embedding_dims(self.cardinalities, embedding_dim))
        width = self.n_num + self.embeddings.out_features
        layers: list[nn.Module] = []
        for h in hidden:
            # The BatchNorm shift makes the linear bias redundant.
            layers += [nn.Linear(width, h, bias=not batch_norm)]
            layers += [nn.BatchNorm1d(h)] if batch_norm else []
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = ([x_num] if self.n_num else []) + self.embeddings(x_cat)
        x = torch.cat(parts, dim=1)  # (B, n_num + sum(embedding dims))
        return self.head(self.body(x)).squeeze(-1)  # (B, 1) -> logit (B,)


# --------------------------------------------------------------------------------------------------------------
# FT-Transformer: Gorishniy, Rubachev, Khrulkov, Babenko, "Revisiting Deep Learning Models for Tabular Data",
# NeurIPS 2021. Every feature becomes a d_token vector, a [CLS] token is appended, pre-norm Transformer layers mix
# them, and the head reads the [CLS] token. Written out by hand rather than with nn.TransformerEncoderLayer: the
# paper's layer differs (no attention pre-norm in the first layer, ReGLU feed-forward, only [CLS] in the last layer),
# and plain matmul/softmax attention exports to ONNX (dynamo) and traces to TorchScript with no fast-path surprises.


class _FeatureTokenizer(nn.Module):
    """Rows to tokens: ``x_j * W_j + b_j`` per numeric feature, ``E[x_j + offset_j] + b_j`` per categorical one."""

    def __init__(self, n_num: int, cards: list[int], d_token: int) -> None:
        super().__init__()
        self.n_num, self.n_cat = n_num, len(cards)
        bound = 1 / math.sqrt(d_token)  # the paper's (and rtdl's) uniform initialisation
        # Parameters exist only for the feature types present: DDP rejects parameters that never get a gradient.
        if n_num:
            self.num_weight = nn.Parameter(torch.empty(n_num, d_token).uniform_(-bound, bound))
            self.num_bias = nn.Parameter(torch.empty(n_num, d_token).uniform_(-bound, bound))
        if cards:
            # One table for all columns; column j's rows start at offsets[j] (categories never share a row).
            self.cat_embedding = nn.Embedding(sum(cards), d_token)
            nn.init.uniform_(self.cat_embedding.weight, -bound, bound)
            self.cat_bias = nn.Parameter(torch.empty(len(cards), d_token).uniform_(-bound, bound))
            offsets = torch.tensor([0, *cards[:-1]], dtype=torch.long).cumsum(0)
            self.register_buffer("cat_offsets", offsets, persistent=False)  # derived from cardinalities: not saved

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = []
        if self.n_num:
            tokens.append(x_num.unsqueeze(-1) * self.num_weight + self.num_bias)  # (B, n_num, d)
        if self.n_cat:
            tokens.append(self.cat_embedding(x_cat + self.cat_offsets) + self.cat_bias)  # (B, n_cat, d)
        return torch.cat(tokens, dim=1)  # (B, n_features, d)


class _Attention(nn.Module):
    """Multi-head scaled dot-product attention; queries may be a subset of the keys' tokens (the [CLS] token)."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_token ({d}) must be divisible by n_heads ({n_heads}).")
        self.n_heads = n_heads
        self.scale = 1 / math.sqrt(d // n_heads)
        self.W_q, self.W_k, self.W_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.W_out = nn.Linear(d, d) if n_heads > 1 else None
        self.dropout = nn.Dropout(dropout)
        for m in (self.W_q, self.W_k, self.W_v):
            # rtdl's initialisation; W_v keeps torch's default when there is no output projection after it.
            if m is not self.W_v or self.W_out is not None:
                nn.init.xavier_uniform_(m.weight, gain=1 / math.sqrt(2))
            nn.init.zeros_(m.bias)
        if self.W_out is not None:
            nn.init.zeros_(self.W_out.bias)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:  # (B, Tq, d), (B, T, d) -> (B, Tq, d)
        # unflatten/flatten keep the batch size symbolic, so the exported graphs take any batch.
        q = self.W_q(x_q).unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # (B, h, Tq, dh)
        k = self.W_k(x_kv).unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # (B, h, T, dh)
        v = self.W_v(x_kv).unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # (B, h, T, dh)
        att = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)  # (B, h, Tq, T)
        out = (self.dropout(att) @ v).transpose(1, 2).flatten(-2)  # (B, h, Tq, dh) -> (B, Tq, d)
        return self.W_out(out) if self.W_out is not None else out


class _ReGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class _Layer(nn.Module):
    """A pre-norm Transformer layer: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))`` with a ReGLU feed-forward.

    Args:
        attention_norm: False for the first layer (the paper drops that LayerNorm: the tokenizer's output is
            already well scaled).
        cls_only: compute only the last ([CLS]) token's output (the last layer: nothing else is read after it).
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        ffn_hidden: int,
        attention_dropout: float,
        ffn_dropout: float,
        residual_dropout: float,
        attention_norm: bool,
        cls_only: bool,
    ) -> None:
        super().__init__()
        self.cls_only = cls_only
        self.attention_norm = nn.LayerNorm(d) if attention_norm else nn.Identity()
        self.attention = _Attention(d, n_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, 2 * ffn_hidden), _ReGLU(), nn.Dropout(ffn_dropout), nn.Linear(ffn_hidden, d)
        )
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d), or (B, 1, d) when cls_only
        h = self.attention_norm(x)
        if self.cls_only:
            x, q = x[:, -1:], h[:, -1:]  # (B, 1, d)
        else:
            q = h
        x = x + self.residual_dropout(self.attention(q, h))
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))


class FTTransformer(nn.Module):
    """FT-Transformer (Gorishniy et al., 2021): feature tokenizer, [CLS] token, pre-norm Transformer, head on [CLS].

    The defaults are the paper's default configuration (3 layers, d_token 192 there; 64 here, which suits the
    small, low-dimensional fraud tables and CPU training).

    Args:
        n_num: number of numeric features.
        cardinalities: vocabulary size of each categorical column (index 0 = out-of-vocabulary).
        d_token: width of every token.
        n_layers: Transformer layers.
        n_heads: attention heads (must divide ``d_token``).
        ffn_factor: the feed-forward hidden width is ``int(d_token * ffn_factor)`` (ReGLU, so 4/3 keeps the
            parameter count of a 2x ReLU feed-forward).
        attention_dropout: dropout on the attention probabilities.
        ffn_dropout: dropout inside the feed-forward block.
        residual_dropout: dropout on each block's output before the residual addition.
    """

    score_kind = "logit"

    def __init__(
        self,
        n_num: int,
        cardinalities: Sequence[int],
        d_token: int = 64,
        n_layers: int = 3,
        n_heads: int = 8,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.1,
        ffn_dropout: float = 0.1,
        residual_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}.")
        self.n_num = int(n_num)
        self.cardinalities = _check_features(self.n_num, cardinalities)
        self.tokenizer = _FeatureTokenizer(self.n_num, self.cardinalities, d_token)
        bound = 1 / math.sqrt(d_token)
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))
        ffn_hidden = int(d_token * ffn_factor)
        self.layers = nn.ModuleList(
            _Layer(
                d_token,
                n_heads,
                ffn_hidden,
                attention_dropout,
                ffn_dropout,
                residual_dropout,
                attention_norm=i > 0,
                cls_only=i == n_layers - 1,
            )
            for i in range(n_layers)
        )
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, 1))

    def no_weight_decay(self) -> set[str]:
        """Parameter names trained without weight decay: the paper decays neither tokenizer nor [CLS] embeddings."""
        return {n for n, _ in self.named_parameters() if n.startswith(("tokenizer.", "cls"))}

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer(x_num, x_cat)  # (B, n_features, d)
        x = torch.cat([tokens, self.cls.expand(tokens.shape[0], -1, -1)], dim=1)  # [CLS] last: (B, n_features+1, d)
        for layer in self.layers:
            x = layer(x)  # the last layer keeps only [CLS]: (B, 1, d)
        return self.head(x[:, -1]).squeeze(-1)  # (B, d) -> logit (B,)


# --------------------------------------------------------------------------------------------------------------


class TabularAutoencoder(nn.Module):
    """An autoencoder whose reconstruction error is the anomaly score; train it on normal rows only.

    The encoder reads the numeric features and one embedding per categorical column; the decoder predicts the
    numeric values and one set of logits per categorical column. ``forward`` returns, per row, the mean squared
    error over the numeric columns plus the mean cross-entropy over the categorical columns, so rows unlike the
    (normal) training rows score high. Minimise ``forward(x_num, x_cat).mean()`` over normal rows.

    Args:
        n_num: number of numeric features (expected standardised, as the preprocessor writes them).
        cardinalities: vocabulary size of each categorical column (index 0 = out-of-vocabulary).
        embedding_dim: width of each categorical embedding.
        hidden: encoder widths down to the bottleneck (the last entry, a linear layer); the decoder mirrors them.
        dropout: dropout after every hidden ReLU layer.
    """

    score_kind = "anomaly"

    def __init__(
        self,
        n_num: int,
        cardinalities: Sequence[int],
        embedding_dim: int = 8,
        hidden: Sequence[int] = (64, 16),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ValueError("hidden needs at least one width (the bottleneck).")
        self.n_num = int(n_num)
        self.cardinalities = _check_features(self.n_num, cardinalities)
        self.embeddings = _Embeddings(self.cardinalities, [embedding_dim] * len(self.cardinalities))

        def mlp(widths: list[int], out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in zip(widths, widths[1:]):
                layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
            return nn.Sequential(*layers, nn.Linear(widths[-1], out))

        width = self.n_num + self.embeddings.out_features
        self.encoder = mlp([width, *hidden[:-1]], hidden[-1])  # linear bottleneck: (B, width) -> (B, hidden[-1])
        self.decoder = mlp(hidden[::-1], self.n_num + sum(self.cardinalities))

    def reconstruct(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The decoded numeric values ``(B, n_num)`` and one logits tensor ``(B, cardinality_j)`` per column."""
        x = torch.cat(([x_num] if self.n_num else []) + self.embeddings(x_cat), dim=1)  # (B, width)
        out = self.decoder(self.encoder(x))  # (B, n_num + sum(cardinalities))
        logits, start = [], self.n_num
        for card in self.cardinalities:
            logits.append(out[:, start : start + card])
            start += card
        return out[:, : self.n_num], logits

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        num_hat, logits = self.reconstruct(x_num, x_cat)
        terms = []
        if self.n_num:
            terms.append((num_hat - x_num).pow(2).mean(dim=1))  # (B,)
        if logits:
            # Cross-entropy written as log_softmax + gather: one op set that ONNX and TorchScript both take as is.
            nll = [-F.log_softmax(lg, dim=-1).gather(1, x_cat[:, j : j + 1]) for j, lg in enumerate(logits)]
            terms.append(torch.cat(nll, dim=1).mean(dim=1))  # (B, n_cat) -> (B,)
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]  # reconstruction error (B,)
