"""Text networks: Hugging Face encoders with task heads, and small from-scratch baselines.

Two kinds of backbone, chosen by ``backbone.name``:

- any encoder ``transformers.AutoModel`` loads (BERT, RoBERTa, DistilBERT, MiniLM, DeBERTa, ELECTRA...), through
  :func:`recipezoo.core.backbones.hf.load_encoder`, the Hugging Face door every domain shares (re-exported here):
  ``pretrained`` is false (random weights from the model's config), true (the hub weights of ``name``), a hub id,
  or a local Hugging Face folder / weights file (works offline);
- recipezoo's own from-scratch networks (:data:`SCRATCH`: ``textcnn``, ``transformer_small``), used as baselines
  over a tokenizer trained on the training split.

Every network takes ``(input_ids, attention_mask[, token_type_ids])`` (all ``(B, T)`` int64) and exposes ``head``
and ``layer_groups()`` (embeddings first, then the layers from the bottom up) for the fine-tuning policy.

This module imports torch and transformers only: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The Hugging Face door is shared with other domains; its names stay importable from here.
from recipezoo.core.backbones.hf import (
    POOLINGS,
    EncoderNet,
    SentenceEncoder,
    config_from_dict,
    embed_texts,
    encoder_source,
    load_config,
    load_encoder,
    load_tokenizer,
    pool,
)
from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.pretrained import parse_pretrained

log = logging.getLogger(__name__)

__all__ = [
    "POOLINGS",
    "SCRATCH",
    "EncoderNet",
    "HFSequenceClassifier",
    "HFTokenClassifier",
    "SentenceEncoder",
    "SmallTransformer",
    "TextCNN",
    "check_vocab",
    "config_from_dict",
    "create_text_classifier",
    "create_token_classifier",
    "embed_texts",
    "encoder_source",
    "is_scratch",
    "load_config",
    "load_encoder",
    "load_tokenizer",
    "pool",
]

# --------------------------------------------------------------------------------------------------------------
# Heads over a Hugging Face encoder (the encoder itself comes through recipezoo.core.backbones.hf).


class HFSequenceClassifier(EncoderNet):
    """A Hugging Face encoder, pooled, then dropout and a linear head: ``-> logits (B, num_labels)``.

    Args:
        encoder: an ``AutoModel`` (from :func:`load_encoder`).
        num_labels: output size (classes, or labels for multi-label).
        pooling: ``mean`` over real tokens (what sentence encoders such as MiniLM were trained with) or ``cls``.
        dropout: before the head.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}.")
        super().__init__(encoder)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return self.head(self.dropout(pool(hidden, attention_mask, self.pooling)))


class HFTokenClassifier(EncoderNet):
    """A Hugging Face encoder with a per-token linear head: ``-> logits (B, T, num_labels)``."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(encoder)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.dropout(self.encode(input_ids, attention_mask, token_type_ids)))


# --------------------------------------------------------------------------------------------------------------
# recipezoo's own from-scratch baselines (no pretrained weights exist for them).


class TextCNN(nn.Module):
    """Kim (2014): word embeddings, parallel 1-d convolutions of several widths, max over time, a linear head.

    Args:
        vocab_size: tokenizer vocabulary size.
        num_labels: output size.
        embed_dim: embedding width.
        kernel_sizes: convolution widths (in tokens).
        channels: filters per width.
        dropout: before the head.
        pad_id: the padding token id (its embedding stays zero).
    """

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        embed_dim: int = 128,
        kernel_sizes: tuple[int, ...] = (3, 4, 5),
        channels: int = 128,
        dropout: float = 0.3,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels * len(self.kernel_sizes), num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.embeddings(input_ids).transpose(1, 2)  # (B, E, T)
        mask = attention_mask.unsqueeze(1).bool()  # (B, 1, T)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))[..., : x.shape[-1]]  # (B, C, T): even widths give one extra step
            pooled.append(h.masked_fill(~mask, float("-inf")).amax(-1))  # max over real tokens only
        return self.head(self.dropout(torch.cat(pooled, 1)))

    def layer_groups(self) -> list[nn.Module]:
        return [self.embeddings, self.convs]

    @property
    def vocab_size(self) -> int:
        return int(self.embeddings.num_embeddings)


class _Block(nn.Module):
    """A pre-norm Transformer encoder layer over ``F.scaled_dot_product_attention`` (exports to ONNX as is)."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:  # x (B, T, D), keep (B, 1, 1, T) bool
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        x = x + self.dropout(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class SmallTransformer(nn.Module):
    """A small Transformer encoder trained from scratch: token + learned position embeddings, pre-norm layers,
    mean pooling over real tokens, a linear head.

    Args:
        vocab_size: tokenizer vocabulary size.
        num_labels: output size.
        max_length: longest input (positions).
        dim: model width.
        layers: encoder layers.
        heads: attention heads.
        ffn: feed-forward width.
        dropout: dropout in the layers and before the head.
        pad_id: the padding token id.
    """

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        max_length: int = 512,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        ffn: int = 256,
        dropout: float = 0.1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"transformer dim {dim} must be a multiple of heads {heads}.")
        self.embeddings = nn.ModuleDict(
            {"tokens": nn.Embedding(vocab_size, dim, padding_idx=pad_id), "positions": nn.Embedding(max_length, dim)}
        )
        self.layers = nn.ModuleList(_Block(dim, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_labels)
        nn.init.normal_(self.embeddings["tokens"].weight, std=dim**-0.5)
        nn.init.normal_(self.embeddings["positions"].weight, std=0.02)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device)
        x = self.embeddings["tokens"](input_ids) * math.sqrt(self.head.in_features) + self.embeddings["positions"](
            positions
        )
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): attend to real tokens only
        for layer in self.layers:
            x = layer(x, keep)
        return self.head(self.dropout(pool(self.norm(x), attention_mask, "mean")))

    def layer_groups(self) -> list[nn.Module]:
        return [self.embeddings, *self.layers, self.norm]

    @property
    def vocab_size(self) -> int:
        return int(self.embeddings["tokens"].num_embeddings)


SCRATCH: dict[str, Callable[..., nn.Module]] = {"textcnn": TextCNN, "transformer_small": SmallTransformer}


def is_scratch(name: str) -> bool:
    """True for recipezoo's own from-scratch networks (which use a tokenizer trained on the data)."""
    return str(name) in SCRATCH


def create_text_classifier(
    name: str,
    num_labels: int,
    pretrained: Any = False,
    vocab_size: int | None = None,
    pad_id: int = 0,
    max_length: int = 512,
    pooling: str = "mean",
    dropout: float | None = None,
    attn_implementation: str | None = "sdpa",
    weights_only: bool = True,
    encoder_config: dict[str, Any] | None = None,
    **scratch_kwargs: Any,
) -> nn.Module:
    """A sequence classifier: ``name`` is a recipezoo scratch network or any Hugging Face encoder.

    Args:
        name: ``textcnn`` / ``transformer_small``, or a hub id / local folder of an encoder.
        num_labels: classes (multi-class) or labels (multi-label).
        pretrained: see :func:`load_encoder` (scratch networks have none: anything but false is refused).
        vocab_size: the tokenizer's vocabulary (scratch networks; checked against the encoder's embeddings).
        pad_id: the padding token id.
        max_length: longest input in tokens.
        pooling: ``mean`` or ``cls`` (Hugging Face encoders).
        dropout: before the head (None: each network's default).
        attn_implementation: see :func:`load_encoder`.
        weights_only: see :func:`load_encoder`.
        encoder_config: see :func:`load_encoder`.
        scratch_kwargs: size options of the scratch networks (``embed_dim``, ``dim``, ``layers``...).
    """
    if is_scratch(name):
        if not parse_pretrained(pretrained).off:
            raise PretrainedError(
                f"{name} is trained from scratch and has no pretrained weights; pass backbone.pretrained=false, or a "
                "Hugging Face encoder as backbone.name."
            )
        if vocab_size is None:
            raise ConfigError(f"{name} needs the tokenizer's vocab_size.")
        kwargs = dict(scratch_kwargs)
        if dropout is not None:
            kwargs["dropout"] = dropout
        if name == "transformer_small":
            kwargs["max_length"] = max_length
        return SCRATCH[name](vocab_size=vocab_size, num_labels=num_labels, pad_id=pad_id, **kwargs)
    if scratch_kwargs:
        log.info("Ignoring scratch-network options for %s: %s", name, ", ".join(scratch_kwargs))
    net = HFSequenceClassifier(
        load_encoder(name, pretrained, attn_implementation, weights_only, encoder_config),
        num_labels,
        pooling,
        0.1 if dropout is None else dropout,
    )
    check_vocab(net, vocab_size, name)
    return net


def create_token_classifier(
    name: str,
    num_labels: int,
    pretrained: Any = False,
    vocab_size: int | None = None,
    dropout: float = 0.1,
    attn_implementation: str | None = "sdpa",
    weights_only: bool = True,
    encoder_config: dict[str, Any] | None = None,
) -> nn.Module:
    """A per-token classifier (NER, POS) on any Hugging Face encoder; see :func:`create_text_classifier`."""
    if is_scratch(name):
        raise ConfigError(
            f"token classification needs a Hugging Face encoder (backbone.name=<hub id or folder>), not {name}."
        )
    encoder = load_encoder(name, pretrained, attn_implementation, weights_only, encoder_config)
    net = HFTokenClassifier(encoder, num_labels, dropout)
    check_vocab(net, vocab_size, name)
    return net


def check_vocab(net: nn.Module, vocab_size: int | None, name: str) -> None:
    """Refuse a tokenizer whose ids run past the model's embedding table (a tokenizer/model mismatch)."""
    if vocab_size is not None and vocab_size > net.vocab_size:
        raise PretrainedError(
            f"tokenizer/model mismatch: the tokenizer has {vocab_size} tokens but {name}'s embedding table only "
            f"{net.vocab_size}; use the tokenizer that ships with the model (leave data.tokenizer unset)."
        )
