"""Text networks: Hugging Face encoders with task heads, and small from-scratch baselines.

Two kinds of backbone, chosen by ``backbone.name``:

- any encoder ``transformers.AutoModel`` loads (BERT, RoBERTa, DistilBERT, MiniLM, DeBERTa, ELECTRA...), through
  :func:`load_encoder`, the NLP pretrained door: ``pretrained`` is false (random weights from the model's config),
  true (the hub weights of ``name``), a hub id, or a local Hugging Face folder / weights file (works offline);
- recipezoo's own from-scratch networks (:data:`SCRATCH`: ``textcnn``, ``transformer_small``), used as baselines
  over a tokenizer trained on the training split.

Every network takes ``(input_ids, attention_mask[, token_type_ids])`` (all ``(B, T)`` int64) and exposes ``head``
and ``layer_groups()`` (embeddings first, then the layers from the bottom up) for the fine-tuning policy.

This module imports torch and transformers only: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recipezoo.core import pretrained as door
from recipezoo.core.errors import ConfigError, PretrainedError

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")


# --------------------------------------------------------------------------------------------------------------
# The pretrained door for Hugging Face encoders.


def _hf_errors() -> tuple[type[BaseException], ...]:
    # What transformers raises for a missing or unreachable model: OSError (no network / not found), ValueError
    # (unrecognised config), EnvironmentError (an alias of OSError), and huggingface_hub's HTTP errors.
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    return tuple(errors)


def encoder_source(name: str, pretrained: Any) -> str:
    """Where the encoder's config (and weights, if any) come from: a local path or folder, else the hub id."""
    if pretrained not in (None, False, True) and str(pretrained).lower() not in ("false", "true", "none", ""):
        return os.path.expanduser(str(pretrained))
    return os.path.expanduser(str(name)) if door.is_local(name) else str(name)


def _from_hub(fn: Callable[..., Any], source: str, what: str, **kwargs: Any) -> Any:
    """Call a ``from_pretrained``-style loader; turn a failure into one clear :class:`PretrainedError`."""
    try:
        return fn(source, **kwargs)
    except _hf_errors() as e:
        if door.is_local(source):
            raise PretrainedError(
                f"cannot load {what} from {source}: {str(e).splitlines()[0][:200]}. A Hugging Face model folder "
                "holds config.json, the weights (model.safetensors or pytorch_model.bin) and the tokenizer files."
            ) from None
        if door.looks_like_path(source):
            raise PretrainedError(
                f"{what} not found: {source}. Pass an existing Hugging Face model folder (config.json, the weights, "
                "the tokenizer files) or a hub id."
            ) from None
        raise door.offline_hint(f"{what} '{source}'", e) from None


def load_config(name: str, pretrained: Any = False) -> Any:
    """The ``transformers`` config of the encoder (from the hub id or the local folder)."""
    from transformers import AutoConfig

    return _from_hub(AutoConfig.from_pretrained, encoder_source(name, pretrained), "the encoder")


def config_from_dict(config: dict[str, Any]) -> Any:
    """A ``transformers`` config from its ``to_dict()`` (what ``data_info.encoder_config`` keeps)."""
    from transformers import AutoConfig

    d = dict(config)
    model_type = d.pop("model_type", None)
    if not model_type:
        raise PretrainedError("the saved encoder config has no model_type; it cannot rebuild the encoder.")
    return AutoConfig.for_model(model_type, **d)


def load_encoder(
    name: str,
    pretrained: Any = False,
    attn_implementation: str | None = "sdpa",
    weights_only: bool = True,
    encoder_config: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a Hugging Face encoder (``AutoModel``), with pretrained weights or not.

    Args:
        name: a hub id (``sentence-transformers/all-MiniLM-L6-v2``) or a local Hugging Face folder; gives the
            architecture when ``pretrained`` is false.
        pretrained: false (random init from ``name``'s config), true (``name``'s weights), a hub id or local folder
            (``from_pretrained`` on it), or a weights file (``.safetensors``/``.bin``/``.pth``/``.ckpt``) loaded
            into ``name``'s architecture with every key and shape checked.
        attn_implementation: ``sdpa`` (fused attention kernels) where the model supports it, else ``eager``.
        weights_only: ``torch.load(weights_only=...)`` for ``.bin``/``.pth``/``.ckpt`` weight files.
        encoder_config: the encoder's config as a dict; when given, a randomly initialised (or weights-file) encoder
            is built from it without reading ``name`` (checkpoints rebuild their encoder offline this way).

    Raises:
        PretrainedError: the model cannot be found or downloaded (offline: says how to pass a local folder), or the
            weights do not fit the architecture (the keys are listed).
    """
    from transformers import AutoModel

    weight_file = (
        isinstance(pretrained, str)
        and Path(os.path.expanduser(pretrained)).is_file()
        and Path(pretrained).suffix in (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
    )
    source = encoder_source(name, False if weight_file else pretrained)
    with_weights = not weight_file and pretrained not in (None, False) and str(pretrained).lower() not in ("false",)

    def build(**kwargs: Any) -> nn.Module:
        if with_weights:
            log.info("Loading the pretrained encoder from %s", source)
            return _from_hub(AutoModel.from_pretrained, source, "the pretrained encoder", **kwargs)
        config = config_from_dict(encoder_config) if encoder_config else load_config(source)
        return AutoModel.from_config(config, **kwargs)

    try:
        model = build(attn_implementation=attn_implementation) if attn_implementation else build()
    except (ValueError, TypeError) as e:  # this architecture has no SDPA implementation: use the default one
        if attn_implementation in (None, "eager"):
            raise
        log.info("%s: %s attention unavailable (%s); using the default attention.", source, attn_implementation, e)
        model = build()
    except RuntimeError as e:  # from_pretrained on a folder whose weights do not fit its config
        raise PretrainedError(
            f"the weights in {source} do not fit its config.json: {str(e).splitlines()[0][:300]}"
        ) from None
    if weight_file:
        door.load_into(model, door.load_state_dict(pretrained, weights_only), source=f"weights {pretrained}")
        log.info("Loaded encoder weights from %s", pretrained)
    # from_pretrained returns the model in eval mode, and Lightning keeps the modes it finds: without this,
    # dropout would stay off for the whole fine-tuning run.
    return model.train()


def load_tokenizer(source: str) -> Any:
    """The tokenizer of a hub id or a local Hugging Face folder (always a fast, ``tokenizers``-backed one)."""
    from transformers import AutoTokenizer

    tok = _from_hub(AutoTokenizer.from_pretrained, os.path.expanduser(str(source)), "the tokenizer")
    if not getattr(tok, "is_fast", False) or getattr(tok, "backend_tokenizer", None) is None:
        raise PretrainedError(
            f"the tokenizer of {source} has no fast (tokenizers) version; recipezoo needs one to align word labels "
            "and to export a torch-free runtime."
        )
    return tok


def _find_layers(model: nn.Module) -> tuple[nn.Module | None, list[nn.Module]]:
    """The embeddings module and the stack of Transformer layers, found by shape, for any encoder architecture.

    The layers are the longest ``nn.ModuleList`` of same-class blocks (BERT ``encoder.layer``, DistilBERT
    ``transformer.layer``, ModernBERT ``layers``...); the embeddings are ``model.embeddings`` or the module that
    owns the input word embeddings.
    """
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    lists = [m for m in lists if len({type(c) for c in m}) == 1]
    layers = list(max(lists, key=len)) if lists else []
    emb = getattr(model, "embeddings", None)
    if emb is None:
        word = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        emb = word
    return emb, layers


class _EncoderNet(nn.Module):
    """Shared plumbing of the Hugging Face heads: the encoder, its hidden size, its layer groups."""

    def __init__(self, encoder: nn.Module, uses_pooler: bool = False) -> None:
        super().__init__()
        if not uses_pooler and getattr(encoder, "pooler", None) is not None:
            # BERT-style pooler weights would get no gradient (we pool ourselves): under DDP unused parameters
            # are an error, and they would be exported for nothing.
            encoder.pooler = None
        self.encoder = encoder
        self.hidden_size = int(encoder.config.hidden_size)
        self.type_vocab_size = int(getattr(encoder.config, "type_vocab_size", 0) or 0)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:  # -> (B, T, H)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self.type_vocab_size > 0:
            kwargs["token_type_ids"] = token_type_ids
        return self.encoder(**kwargs).last_hidden_state

    def layer_groups(self) -> list[nn.Module]:
        emb, layers = _find_layers(self.encoder)
        return ([emb] if emb is not None else []) + layers

    @property
    def vocab_size(self) -> int:
        return int(self.encoder.get_input_embeddings().num_embeddings)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(B, T, H)`` -> ``(B, H)``: the first token (``cls``) or the mean over real tokens (``mean``)."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class HFSequenceClassifier(_EncoderNet):
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


class HFTokenClassifier(_EncoderNet):
    """A Hugging Face encoder with a per-token linear head: ``-> logits (B, T, num_labels)``."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(encoder)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.dropout(self.encode(input_ids, attention_mask, token_type_ids)))


class SentenceEncoder(_EncoderNet):
    """A Hugging Face encoder pooled to one vector per text: ``-> (B, H)`` (L2-normalised when ``normalize``).

    Other domains use it to turn a text column into features (e.g. item titles for recommendation).
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean", normalize: bool = True) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}.")
        super().__init__(encoder)
        self.pooling, self.normalize = pooling, normalize
        self.head = nn.Identity()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        v = pool(self.encode(input_ids, attention_mask, token_type_ids), attention_mask, self.pooling)
        return F.normalize(v, dim=-1) if self.normalize else v


@torch.no_grad()
def embed_texts(
    texts: list[str],
    name: str,
    pretrained: Any = True,
    batch_size: int = 64,
    max_length: int = 128,
    pooling: str = "mean",
    normalize: bool = True,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Embed texts with a (pretrained) encoder: ``(N, H)`` float32 on the CPU.

    Args:
        texts: the texts (empty strings are fine).
        name: hub id or local folder of the encoder (see :func:`load_encoder`).
        pretrained: see :func:`load_encoder`; the tokenizer comes from the same place.
        batch_size: texts per forward pass (sorted by length, so little is spent on padding).
        max_length: longer texts are truncated.
        pooling: ``mean`` or ``cls``.
        normalize: L2-normalise the vectors.
        device: where to run the encoder.
    """
    tokenizer = load_tokenizer(encoder_source(name, pretrained))
    model = SentenceEncoder(load_encoder(name, pretrained), pooling, normalize).to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), model.hidden_size)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [str(texts[i]) for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out[idx] = model(**enc).float().cpu()
    return out


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
        if pretrained not in (None, False) and str(pretrained).lower() != "false":
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
