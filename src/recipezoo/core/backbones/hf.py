"""The Hugging Face encoder door: any encoder ``transformers.AutoModel`` loads, for every domain that needs one.

Text classification and tagging (BERT, RoBERTa, MiniLM, DeBERTa...), speech encoders (wav2vec2, HuBERT, WavLM) and
the item-text features of recommendation all come through :func:`load_encoder`, so they share one meaning of
``pretrained`` (parsed by :func:`recipezoo.core.pretrained.parse_pretrained`):

- none: random weights from the config of ``name`` (a hub id or a local Hugging Face folder);
- default: the hub weights of ``name``;
- hub: ``from_pretrained`` on that hub id;
- path: a local Hugging Face folder (``from_pretrained`` on it, works offline), or a single weights file
  (``.safetensors``/``.bin``/``.pth``/``.ckpt``) loaded into ``name``'s architecture with every key and shape
  checked.

A download that fails says how to pass a local copy instead. The module also holds what every encoder head shares:
:class:`EncoderNet` (hidden size, layer groups for the fine-tuning policy), :func:`pool`, :class:`SentenceEncoder`
and :func:`embed_texts`.

Only torch is imported here; transformers is imported inside the functions that use it, so a domain that never
builds an encoder never pays for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recipezoo.core import pretrained as door
from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.pretrained import Pretrained, parse_pretrained

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")


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
    """Where the encoder's config (and weights, if any) come from: a local path or folder, else the hub id.

    Args:
        name: the architecture: a hub id or a local Hugging Face folder.
        pretrained: any ``pretrained`` setting; a hub id or a path wins over ``name``.
    """
    p = parse_pretrained(pretrained)
    if p.kind in ("hub", "path") and p.ref is not None:
        return os.path.expanduser(p.ref)
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

    p = parse_pretrained(pretrained)
    # A single weights file carries no config: the architecture comes from name, the file is loaded into it.
    source = encoder_source(name, Pretrained("none") if p.weights_file else p)
    with_weights = not p.weights_file and not p.off

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
    if p.weights_file:
        door.load_into(model, door.load_state_dict(str(p), weights_only), source=f"weights {p}")
        log.info("Loaded encoder weights from %s", p)
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


def find_layers(model: nn.Module) -> tuple[nn.Module | None, list[nn.Module]]:
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


class EncoderNet(nn.Module):
    """Shared plumbing of the heads over a Hugging Face text encoder: the encoder, its hidden size, its layer groups.

    Args:
        encoder: an ``AutoModel`` (from :func:`load_encoder`).
        uses_pooler: keep the encoder's own pooler (BERT-style); by default it is dropped, as heads pool themselves.
    """

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
        emb, layers = find_layers(self.encoder)
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


class SentenceEncoder(EncoderNet):
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
