"""Speech networks: small ones trained from scratch over log-mel features, and pretrained speech encoders.

Two families, chosen by ``backbone.name``:

- recipezoo's own networks (:data:`CLASSIFIERS`, :data:`RECOGNIZERS`): :class:`AudioResNet`, a compact temporal
  ResNet over log-mel features for keyword spotting and sound classes, and :class:`Conformer`, a small Conformer
  encoder for CTC speech-to-text. They read features ``(B, F, frames)`` from
  :class:`recipezoo.speech.frontend.FrontEnd`.
- pretrained speech encoders that ``transformers.AutoModel`` loads (wav2vec2, HuBERT, WavLM, data2vec-audio...),
  through :func:`load_speech_encoder`, this domain's pretrained door over the shared Hugging Face one
  (:func:`recipezoo.core.backbones.hf.load_encoder`): ``pretrained`` is false (random weights from
  the model's config), true (the hub weights of ``name``), a hub id, or a local Hugging Face folder / weights file
  (works offline). They read the normalised waveform ``(B, T)``. ``wav2vec2_tiny``, ``hubert_tiny`` and
  ``wavlm_tiny`` are test-size random architectures built from a config in code.

Every network takes ``(x, lengths)`` with the valid steps of each utterance, masks what lies beyond them (an
utterance's output does not depend on the batch's padding), says what it reads in ``input_kind`` (``features`` or
``waveform``), and exposes ``head`` and ``layer_groups()`` (from the input up) for the fine-tuning policy.
Classifiers return logits ``(B, num_classes)``; recognizers return ``(logits (B, T', vocab), out_lengths (B,))``.

This module imports torch and transformers only: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recipezoo.core import pretrained as door
from recipezoo.core.backbones.hf import load_encoder
from recipezoo.core.errors import ConfigError, PretrainedError, close_matches
from recipezoo.core.pretrained import parse_pretrained
from recipezoo.speech.frontend import lengths_mask

log = logging.getLogger(__name__)


def _conv_lengths(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Output lengths of a 1-d convolution (the valid part of a masked sequence)."""
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


# --------------------------------------------------------------------------------------------------------------
# From scratch: a temporal ResNet over log-mel features (classification).


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over ``(B, C, T)`` whose training statistics come from each utterance's valid frames only.

    Written here because ``nn.BatchNorm1d`` would average over the batch's zero padding: its statistics would then
    depend on how much padding a batch has (short clips padded to a long one), and the running statistics used at
    evaluation would not match what training normalised with. In eval mode it is plain BatchNorm.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # mask (B, 1, T)
        if not self.training or mask is None:
            return super().forward(x)
        n = mask.sum().clamp(min=2)
        mean = (x * mask).sum((0, 2)) / n  # (C,)
        var = (((x - mean[None, :, None]) * mask) ** 2).sum((0, 2)) / n
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
                self.num_batches_tracked += 1
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


class _ResBlock(nn.Module):
    """A 1-D residual block over time; positions past each utterance's frames are zeroed after every convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.stride, self.kernel = stride, kernel
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn1 = MaskedBatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, 1, kernel // 2, bias=False)
        self.bn2 = MaskedBatchNorm1d(c_out)
        self.project = stride != 1 or c_in != c_out
        if self.project:
            self.shortcut_conv = nn.Conv1d(c_in, c_out, 1, stride, bias=False)
            self.shortcut_bn = MaskedBatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_lengths = _conv_lengths(lengths, self.kernel, self.stride, self.kernel // 2)
        y = self.conv1(x)
        mask = lengths_mask(out_lengths, y.shape[-1]).to(x.dtype)[:, None, :]  # (B, 1, T')
        y = F.relu(self.bn1(y, mask)) * mask
        y = self.bn2(self.conv2(y), mask)
        shortcut = self.shortcut_bn(self.shortcut_conv(x), mask) if self.project else x
        return F.relu(y + shortcut) * mask, out_lengths


class AudioResNet(nn.Module):
    """A compact temporal ResNet over log-mel / MFCC features (keyword spotting, sound classes).

    After TC-ResNet (Choi et al., 2019): the feature bins are the input channels and every convolution runs along
    time only, which keeps it small and fast on CPUs (a 2-D ResNet of the same accuracy costs tens of times more
    multiply-adds). A 3-tap stem, then stages of residual blocks with ``kernel``-tap convolutions (each stage's
    first block halves the frame rate), mean pooling over each utterance's valid frames, dropout, a linear head.

    Args:
        num_classes: output classes.
        n_features: feature bins of the front-end (the input channels).
        stem_width: channels of the stem convolution.
        widths: channels per stage.
        blocks: residual blocks per stage.
        kernel: taps of the block convolutions (odd; 9 frames = 90 ms at a 10 ms hop).
        dropout: before the head.
    """

    input_kind = "features"

    def __init__(
        self,
        num_classes: int,
        n_features: int = 40,
        stem_width: int = 32,
        widths: Sequence[int] = (48, 64, 96),
        blocks: Sequence[int] = (1, 1, 1),
        kernel: int = 9,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ConfigError(f"AudioResNet: widths {list(widths)} and blocks {list(blocks)} need the same length.")
        if kernel % 2 == 0:
            raise ConfigError(f"AudioResNet kernel={kernel} must be odd (a centred convolution).")
        self.stem = nn.ModuleDict(
            {"conv": nn.Conv1d(n_features, stem_width, 3, 1, 1, bias=False), "bn": MaskedBatchNorm1d(stem_width)}
        )
        stages, c_in = [], stem_width
        for w, n in zip(widths, blocks):
            stages.append(
                nn.ModuleList(_ResBlock(c_in if j == 0 else w, w, kernel, 2 if j == 0 else 1) for j in range(n))
            )
            c_in = w
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, F, T), (B,) -> (B, C)
        mask = lengths_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        x = F.relu(self.stem["bn"](self.stem["conv"](x), mask)) * mask  # (B, C, T)
        for stage in self.stages:
            for block in stage:
                x, lengths = block(x, lengths)
        mask = lengths_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        pooled = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # mean over the valid frames
        return self.head(self.dropout(pooled))

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, *self.stages]


# --------------------------------------------------------------------------------------------------------------
# From scratch: a Conformer encoder (CTC speech-to-text).


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * mult),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(dim * mult, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ConformerBlock(nn.Module):
    """Macaron feed-forward halves around self-attention and a convolution module (Gulati et al., 2020).

    Written here rather than taken from ``torchaudio.models.Conformer`` because that one's convolution module sees
    the batch's padding (and normalises over it with BatchNorm), so an utterance's output would depend on what it is
    batched with. Here padded steps are zeroed before the depthwise convolution, attention ignores them, and the
    convolution module's norm is a LayerNorm: an utterance gives the same output alone or in any batch.
    """

    def __init__(self, dim: int, heads: int, ffn_mult: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ff1 = _FeedForward(dim, ffn_mult, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.conv_norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.depthwise_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.ff2 = _FeedForward(dim, ffn_mult, dropout)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, T, D), mask (B, T) bool
        b, t, d = x.shape
        x = x + 0.5 * self.ff1(x)
        q, k, v = (
            self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        )
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        x = x + self.dropout(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        keep = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        y = F.glu(self.pointwise_in(self.conv_norm(x).transpose(1, 2)), dim=1) * keep  # (B, D, T), padding silent
        y = F.silu(self.depthwise_norm(self.depthwise(y).transpose(1, 2))).transpose(1, 2)
        x = x + self.dropout(self.pointwise_out(y).transpose(1, 2))
        x = x + 0.5 * self.ff2(x)
        return self.norm(x) * keep.transpose(1, 2)


class _Subsampling(nn.Module):
    """Two stride-2 convolutions along time (features as channels): 4x fewer frames, 40 ms apart at a 10 ms hop.

    1-D rather than the usual 2-D convolutions over (features, time): an order of magnitude fewer multiply-adds,
    which is what makes training on a CPU practical, for little accuracy on small data.
    """

    def __init__(self, n_features: int, channels: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_features, channels, 3, 2, 1)
        self.conv2 = nn.Conv1d(channels, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv in (self.conv1, self.conv2):  # x: (B, C, T)
            lengths = _conv_lengths(lengths, 3, 2, 1)
            x = F.gelu(conv(x))
            x = x * lengths_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        return x.transpose(1, 2), lengths  # (B, T/4, D)


def _sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Absolute sinusoidal positions ``(length, dim)`` (Vaswani et al., 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * freq  # (T, D/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(length, -1)[:, :dim]


class Conformer(nn.Module):
    """A Conformer encoder with a CTC head: features ``(B, F, T)`` -> ``(logits (B, T/4, vocab), out_lengths)``.

    Args:
        vocab_size: output tokens, the CTC blank included.
        n_features: feature bins of the front-end.
        dim: model width.
        layers: Conformer blocks.
        heads: attention heads.
        ffn_mult: feed-forward width as a multiple of ``dim``.
        conv_kernel: depthwise convolution width (frames after subsampling; odd).
        subsampling_channels: channels between the two subsampling convolutions.
        dropout: inside the blocks and before the head.
    """

    input_kind = "features"

    def __init__(
        self,
        vocab_size: int,
        n_features: int = 80,
        dim: int = 144,
        layers: int = 4,
        heads: int = 4,
        ffn_mult: int = 4,
        conv_kernel: int = 15,
        subsampling_channels: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ConfigError(f"Conformer dim {dim} must be a multiple of 2 * heads ({heads}).")
        if conv_kernel % 2 == 0:
            raise ConfigError(f"Conformer conv_kernel={conv_kernel} must be odd (a centred convolution).")
        self.subsampling = _Subsampling(n_features, subsampling_channels, dim)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_ConformerBlock(dim, heads, ffn_mult, conv_kernel, dropout) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, vocab_size)
        self.dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.subsampling(x, lengths)  # (B, T', D)
        mask = lengths_mask(lengths, x.shape[1])  # (B, T')
        x = self.input_dropout(x * math.sqrt(self.dim) + _sinusoids(x.shape[1], self.dim, x.device))
        x = x * mask[..., None].to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.dropout(x)), lengths

    def layer_groups(self) -> list[nn.Module]:
        return [self.subsampling, *self.blocks]


# --------------------------------------------------------------------------------------------------------------
# Pretrained speech encoders (wav2vec2, HuBERT, WavLM) through transformers.


def _tiny_config(model_type: str) -> Any:
    """A test-size config of a speech encoder family: 2 layers of width 32, a 2-layer convolutional feature encoder
    (20x downsampling, receptive field 25 samples), layer-norm feature extractor (attention masks honoured), and the
    usual time masking in training (5% of frames start a 10-frame span)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(
        model_type,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        mask_time_prob=0.05,
        layerdrop=0.0,
        vocab_size=8,
    )


TINY_ENCODERS = {"wav2vec2_tiny": "wav2vec2", "hubert_tiny": "hubert", "wavlm_tiny": "wavlm"}


def load_speech_encoder(name: str, pretrained: Any = False, weights_only: bool = True) -> nn.Module:
    """The speech domain's pretrained door: a wav2vec2-style encoder (``transformers.AutoModel``).

    Args:
        name: a hub id (``facebook/wav2vec2-base``), a local Hugging Face folder, or a tiny test architecture
            (:data:`TINY_ENCODERS`); gives the architecture when ``pretrained`` is false.
        pretrained: false (random init from ``name``'s config), true (``name``'s hub weights), a hub id or local
            folder (``from_pretrained`` on it), or a weights file (``.safetensors``/``.bin``/``.pth``/``.ckpt``)
            loaded into ``name``'s architecture with every key and shape checked.
        weights_only: ``torch.load(weights_only=...)`` for ``.bin``/``.pth``/``.ckpt`` weight files.

    Raises:
        PretrainedError: the model cannot be found or downloaded (offline: says how to pass a local folder), the
            weights do not fit, or the model is not a speech encoder.
    """
    p = parse_pretrained(pretrained)
    if name in TINY_ENCODERS:
        from transformers import AutoModel

        model = AutoModel.from_config(_tiny_config(TINY_ENCODERS[name]))
        if not p.off:
            if not p.exists:
                raise PretrainedError(
                    f"{name} is a test-size architecture with no published weights; pass backbone.pretrained=false, "
                    "a local weights file or folder, or a real encoder (backbone.name=facebook/wav2vec2-base)."
                )
            door.load_into(model, door.load_state_dict(str(p), weights_only), source=f"weights {p}")
    else:
        # The Hugging Face door text encoders use too: same hub/folder/file semantics and offline message.
        model = load_encoder(name, p, "sdpa", weights_only)
    if not hasattr(model, "feature_extractor") or not hasattr(model.config, "conv_stride"):
        raise PretrainedError(
            f"{name} ({type(model).__name__}) is not a speech encoder: it has no convolutional feature encoder over "
            "the waveform. Use a wav2vec2, HuBERT or WavLM model (e.g. facebook/wav2vec2-base)."
        )
    return model


class _SpeechEncoderNet(nn.Module):
    """Shared plumbing of the pretrained-encoder heads: encoding with masks, output lengths, layer groups.

    Args:
        encoder: a wav2vec2-style ``AutoModel`` (from :func:`load_speech_encoder`).
        mask_time_prob: the encoder's own SpecAugment-style time masking during training (null keeps the
            model config's value).
    """

    input_kind = "waveform"

    def __init__(self, encoder: nn.Module, mask_time_prob: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        config = encoder.config
        self.hidden_size = int(config.hidden_size)
        if mask_time_prob is not None:
            config.mask_time_prob = float(mask_time_prob)
            if config.mask_time_prob > 0 and getattr(encoder, "masked_spec_embed", None) is None:
                # transformers only creates the mask embedding for models configured with masking.
                encoder.masked_spec_embed = nn.Parameter(torch.empty(self.hidden_size).uniform_())
        self.conv = [(int(k), int(s)) for k, s in zip(config.conv_kernel, config.conv_stride)]
        # Models whose feature encoder uses layer norm were pretrained with attention masks over padding; those with
        # group norm (wav2vec2-base) were not and must see zero-padded input without a mask (as Hugging Face's
        # feature extractors do: return_attention_mask follows feat_extract_norm).
        self.use_attention_mask = getattr(config, "feat_extract_norm", "layer") == "layer"

    @property
    def receptive_field(self) -> int:
        """Samples behind one output frame: inputs shorter than this give no frame."""
        field, jump = 1, 1
        for k, s in self.conv:
            field += (k - 1) * jump
            jump *= s
        return field

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for k, s in self.conv:
            lengths = _conv_lengths(lengths, k, s, 0)
        return lengths.clamp(min=0)

    def encode(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_mask(lengths, wave.shape[1]).long() if self.use_attention_mask else None
        kwargs: dict[str, Any] = {}
        config = self.encoder.config
        if self.training and getattr(config, "mask_time_prob", 0) > 0:
            frames = int(self.output_lengths(torch.tensor([wave.shape[1]]))[0])
            if frames < getattr(config, "mask_time_length", 1):
                # transformers refuses to mask spans longer than the batch (a ValueError mid-training on a batch
                # of short clips): such a batch goes unmasked instead.
                kwargs["mask_time_indices"] = torch.zeros(wave.shape[0], frames, dtype=torch.bool, device=wave.device)
        hidden = self.encoder(input_values=wave, attention_mask=mask, **kwargs).last_hidden_state  # (B, T', H)
        return hidden, self.output_lengths(lengths)

    def layer_groups(self) -> list[nn.Module]:
        """The convolutional feature encoder first (``finetune.frozen_blocks=1`` keeps it frozen), then the feature
        projection with the positional convolution, then the Transformer layers from the bottom up."""
        enc = self.encoder
        inner = getattr(enc, "encoder", None)
        stem = [getattr(enc, "feature_projection", None), getattr(inner, "pos_conv_embed", None)]
        stem.append(getattr(inner, "layer_norm", None))
        layers = list(getattr(inner, "layers", []))
        return [enc.feature_extractor, nn.ModuleList(m for m in stem if m is not None), *layers]


class SpeechEncoderClassifier(_SpeechEncoderNet):
    """A pretrained speech encoder, mean-pooled over each utterance's frames, then dropout and a linear head.

    Args:
        encoder: a wav2vec2-style ``AutoModel``.
        num_classes: output classes.
        dropout: before the head.
        mask_time_prob: see :class:`_SpeechEncoderNet`.
    """

    def __init__(
        self, encoder: nn.Module, num_classes: int, dropout: float = 0.1, mask_time_prob: float | None = None
    ) -> None:
        super().__init__(encoder, mask_time_prob)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, num_classes)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T), (B,) -> (B, C)
        hidden, frames = self.encode(wave, lengths)
        mask = lengths_mask(frames, hidden.shape[1]).to(hidden.dtype)[..., None]  # (B, T', 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(self.dropout(pooled))


class SpeechEncoderCTC(_SpeechEncoderNet):
    """A pretrained speech encoder with a linear CTC head per frame (as ``Wav2Vec2ForCTC``).

    Args:
        encoder: a wav2vec2-style ``AutoModel``.
        vocab_size: output tokens, the CTC blank included.
        dropout: before the head.
        mask_time_prob: see :class:`_SpeechEncoderNet`.
    """

    def __init__(
        self, encoder: nn.Module, vocab_size: int, dropout: float = 0.1, mask_time_prob: float | None = None
    ) -> None:
        super().__init__(encoder, mask_time_prob)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, vocab_size)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, frames = self.encode(wave, lengths)
        return self.head(self.dropout(hidden)), frames


# --------------------------------------------------------------------------------------------------------------
# The registries: what users type as backbone.name.

CLASSIFIERS: dict[str, dict[str, Any]] = {
    # small: ~250k parameters, ~7M multiply-adds per second of audio (40 bins, 10 ms hop): trains on a CPU.
    "audio_resnet_tiny": {"stem_width": 8, "widths": (8, 16), "blocks": (1, 1)},
    "audio_resnet_small": {"stem_width": 32, "widths": (48, 64, 96), "blocks": (1, 1, 1)},
    "audio_resnet_medium": {"stem_width": 48, "widths": (64, 96, 128), "blocks": (2, 2, 2)},
}
RECOGNIZERS: dict[str, dict[str, Any]] = {
    "conformer_tiny": {"dim": 32, "layers": 1, "heads": 2, "conv_kernel": 7, "subsampling_channels": 32},
    # small: ~1.9M parameters; a 4x-subsampled encoder of 4 blocks of width 144 (Conformer-S has 16).
    "conformer_small": {"dim": 144, "layers": 4, "heads": 4, "conv_kernel": 15, "subsampling_channels": 256},
}


def _check_name(name: str, own: dict[str, Any], what: str) -> None:
    """Refuse a name that is neither ours nor plausibly a Hugging Face model (hub ids have a '/')."""
    if name in own or name in TINY_ENCODERS or "/" in name or door.is_local(name):
        return
    raise ConfigError(
        f"unknown {what} backbone '{name}'.{close_matches(name, [*own, *TINY_ENCODERS])} Choose one of "
        f"{', '.join(own)}, or a wav2vec2 / HuBERT / WavLM hub id or local folder (e.g. facebook/wav2vec2-base)."
    )


def _scratch(
    name: str, registry: dict[str, dict[str, Any]], cls: type, pretrained: Any, weights_only: bool, **kwargs: Any
) -> nn.Module:
    net = cls(**{**registry[name], **kwargs})
    p = parse_pretrained(pretrained)
    if not p.off:
        if not p.exists:
            raise PretrainedError(
                f"{name} is trained from scratch and has no published weights; pass backbone.pretrained=false, a "
                "local weights file (e.g. a checkpoint of an earlier run), or a pretrained speech encoder as "
                "backbone.name."
            )
        door.load_into(net, door.load_state_dict(str(p), weights_only), ("head",), f"weights {p}")
    return net


def create_audio_classifier(
    name: str,
    num_classes: int,
    n_features: int = 40,
    pretrained: Any = False,
    weights_only: bool = True,
    dropout: float = 0.1,
    mask_time_prob: float | None = None,
    **scratch_kwargs: Any,
) -> nn.Module:
    """An audio classifier: ``name`` is one of :data:`CLASSIFIERS` or a pretrained speech encoder.

    Args:
        name: ``audio_resnet_small``... or a hub id / local folder of a wav2vec2-style encoder.
        num_classes: output classes.
        n_features: the front-end's feature bins (networks over features).
        pretrained: see :func:`load_speech_encoder`; our networks accept a local weights file only.
        weights_only: see :func:`load_speech_encoder`.
        dropout: before the head.
        mask_time_prob: the encoder's training-time masking (pretrained encoders; null keeps its config's).
        scratch_kwargs: size options of our networks (``widths``, ``blocks``).
    """
    name = str(name)
    _check_name(name, CLASSIFIERS, "audio classification")
    if name in CLASSIFIERS:
        kwargs = {"num_classes": num_classes, "n_features": n_features, "dropout": dropout, **scratch_kwargs}
        return _scratch(name, CLASSIFIERS, AudioResNet, pretrained, weights_only, **kwargs)
    if scratch_kwargs:
        log.info("Ignoring from-scratch network options for %s: %s", name, ", ".join(scratch_kwargs))
    encoder = load_speech_encoder(name, pretrained, weights_only)
    return SpeechEncoderClassifier(encoder, num_classes, dropout, mask_time_prob)


def create_ctc_model(
    name: str,
    vocab_size: int,
    n_features: int = 80,
    pretrained: Any = False,
    weights_only: bool = True,
    dropout: float = 0.1,
    mask_time_prob: float | None = None,
    **scratch_kwargs: Any,
) -> nn.Module:
    """A CTC speech recognizer: ``name`` is one of :data:`RECOGNIZERS` or a pretrained speech encoder.

    Args:
        name: ``conformer_small``... or a hub id / local folder of a wav2vec2-style encoder.
        vocab_size: output tokens, the CTC blank included.
        n_features: the front-end's feature bins (networks over features).
        pretrained: see :func:`load_speech_encoder`; our networks accept a local weights file only.
        weights_only: see :func:`load_speech_encoder`.
        dropout: before the head.
        mask_time_prob: the encoder's training-time masking (pretrained encoders; null keeps its config's).
        scratch_kwargs: size options of our networks (``dim``, ``layers``, ``heads``...).
    """
    name = str(name)
    _check_name(name, RECOGNIZERS, "speech recognition")
    if name in RECOGNIZERS:
        kwargs = {"vocab_size": vocab_size, "n_features": n_features, "dropout": dropout, **scratch_kwargs}
        return _scratch(name, RECOGNIZERS, Conformer, pretrained, weights_only, **kwargs)
    if scratch_kwargs:
        log.info("Ignoring from-scratch network options for %s: %s", name, ", ".join(scratch_kwargs))
    encoder = load_speech_encoder(name, pretrained, weights_only)
    return SpeechEncoderCTC(encoder, vocab_size, dropout, mask_time_prob)
