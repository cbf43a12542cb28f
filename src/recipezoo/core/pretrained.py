"""The pretrained-weights door shared by every domain.

``pretrained`` is one of:

- ``false`` / ``None``: random initialisation;
- ``true``: the backbone library's default weights from its hub;
- a hub id (e.g. a torchvision weights name, ``hf-hub:timm/resnet18.a1_in1k``, a Hugging Face repo id);
- a local file (``.pth``, ``.pt``, ``.bin``, ``.safetensors``, a Lightning ``.ckpt``) or folder holding one.

The value is parsed once, by :func:`parse_pretrained`, into a typed :class:`Pretrained` (``kind`` is ``none``,
``default``, ``hub`` or ``path``); every door branches on that kind instead of re-reading the raw value. Domains
resolve ``default`` and ``hub`` with their own library; local files all go through :func:`load_state_dict` and
:func:`load_into`, which check every key and shape and re-initialise the classifier head when the label count
differs.

A file written by another library names the same tensors differently. :func:`load_into` renames its keys with an
explicit key map first (:func:`parse_key_map`: prefix and regular-expression renames), and when the names still do
not fit, pairs the file's tensors with the model's by order and shape, strictly: every tensor of the model outside
the classifier head must find its partner, of the same shape, at the same position.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from recipezoo.core.errors import ConfigError, PretrainedError

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "model.pt", "weights.pth", "weights.pt")
_PREFIXES = ("module.", "model.", "net.", "backbone.", "_orig_mod.")


WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
# Spellings of "no pretrained weights": YAML and the command line can hand the value over as a string.
_OFF = ("", "false", "none", "null")
_ON = ("true",)


def is_local(pretrained: Any) -> bool:
    """True when ``pretrained`` names an existing file or folder (``~`` expanded)."""
    return isinstance(pretrained, (str, os.PathLike)) and Path(os.path.expanduser(str(pretrained))).exists()


def looks_like_path(pretrained: Any) -> bool:
    """True for strings that are clearly meant as paths (so a missing file is not mistaken for a hub id)."""
    s = str(pretrained)
    return s.startswith(("/", "./", "../", "~")) or s.endswith(WEIGHT_SUFFIXES)


@dataclass(frozen=True)
class Pretrained:
    """A ``pretrained`` setting, parsed once by :func:`parse_pretrained`.

    Attributes:
        kind: ``none`` (random initialisation), ``default`` (the library's default weights for the architecture),
            ``hub`` (a named weights entry or hub id: a torchvision weights name, ``hf-hub:...``, a Hugging Face repo
            id) or ``path`` (a local file or folder, existing or clearly meant as a path).
        ref: the hub id or the path as the user wrote it (``~`` not expanded); None for ``none`` and ``default``.
    """

    kind: Literal["none", "default", "hub", "path"]
    ref: str | None = None

    @property
    def off(self) -> bool:
        """No pretrained weights: random initialisation."""
        return self.kind == "none"

    @property
    def from_hub(self) -> bool:
        """Weights come from a library's hub (``default`` or a named ``hub`` entry), not from a local file."""
        return self.kind in ("default", "hub")

    @property
    def path(self) -> Path | None:
        """The local path with ``~`` expanded (``path`` kind only)."""
        return Path(os.path.expanduser(self.ref)) if self.kind == "path" and self.ref is not None else None

    @property
    def exists(self) -> bool:
        """A ``path`` that names an existing file or folder."""
        return self.path is not None and self.path.exists()

    @property
    def weights_file(self) -> bool:
        """An existing single weights file (``.safetensors``/``.bin``/``.pth``/``.pt``/``.ckpt``), not a folder."""
        return self.path is not None and self.path.is_file() and self.path.suffix in WEIGHT_SUFFIXES

    def __str__(self) -> str:
        return self.ref if self.ref is not None else {"none": "false", "default": "true"}[self.kind]


def parse_pretrained(value: Any) -> Pretrained:
    """Parse a ``pretrained`` setting into a :class:`Pretrained`; every door calls this first.

    Args:
        value: false / None / ``"false"`` / ``"none"`` / ``""`` (no weights), true / ``"true"`` (the default
            weights), a string naming a weights entry or hub id, a local path (a string or ``os.PathLike``), or an
            already parsed :class:`Pretrained` (returned as is).

    Raises:
        ConfigError: the value is of another type (a list, a mapping...).
    """
    if isinstance(value, Pretrained):
        return value
    if value is None or value is False:
        return Pretrained("none")
    if value is True:
        return Pretrained("default")
    if isinstance(value, os.PathLike):
        return Pretrained("path", os.fspath(value))
    if isinstance(value, str):
        if value.strip().lower() in _OFF:
            return Pretrained("none")
        if value.strip().lower() in _ON:
            return Pretrained("default")
        # A string that exists on disk, or is clearly meant as a path, is a path: a missing file must be reported as
        # missing rather than sent to a hub as an id.
        return Pretrained("path" if is_local(value) or looks_like_path(value) else "hub", value)
    if isinstance(value, int) and value in (0, 1):  # 0/1 from a command line typed without true/false
        return Pretrained("default" if value else "none")
    raise ConfigError(
        f"backbone.pretrained={value!r} is not understood; pass false, true, a weights name or hub id, or a local "
        "file or folder."
    )


def offline_hint(what: str, error: BaseException) -> PretrainedError:
    """The error for a hub download that failed, saying how to pass a local copy instead."""
    reason = (str(error).splitlines() or [""])[0][:160]
    return PretrainedError(
        f"could not download pretrained weights for {what} ({type(error).__name__}: {reason}). "
        f"Without network access, download them on a connected machine and pass the local file or folder: "
        f"backbone.pretrained=/path/to/weights.pth (or .safetensors / a Hugging Face folder)."
    )


# torch.save's legacy (pre-zip) format starts with this pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


def sniff_file(path: str | os.PathLike) -> tuple[str, str]:
    """What a file is, judged from its bytes, for messages about files torch cannot read.

    Returns:
        ``(kind, description)``; kind is one of ``folder``, ``missing``, ``empty``, ``torch`` (a ``torch.save`` zip),
        ``torch_legacy``, ``truncated`` (a zip cut short), ``zip`` (another archive), ``pickle``, ``text`` or
        ``unknown``; the description completes "it is ...".
    """
    p = Path(path)
    if p.is_dir():
        return "folder", "a folder, not a file"
    if not p.is_file():
        return "missing", "not there"
    size = p.stat().st_size
    if size == 0:
        return "empty", "an empty file (0 bytes: a save or copy that never finished?)"
    with open(p, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(p):
            return "truncated", f"cut short ({size} bytes and no zip index: an interrupted save, copy or download?)"
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):  # an index that points at missing bytes
            return "truncated", f"a damaged zip archive ({size} bytes: an interrupted save, copy or download?)"
        if any(n.endswith("data.pkl") for n in names):
            return "torch", "a PyTorch file"
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return "zip", f"a zip archive ({shown or 'no files'}), not a PyTorch file"
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch_legacy", "a PyTorch file in the legacy format"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle", "a Python pickle, not a PyTorch file"
    text = head.decode("utf-8", errors="replace")
    if b"\x00" not in head and text.strip() and sum(c.isprintable() or c in "\n\r\t" for c in text) > 0.95 * len(text):
        first = text.strip().splitlines()[0][:40]
        return "text", f"a text file (it starts with {first!r}), not a PyTorch file"
    return "unknown", f"not a PyTorch file (its first bytes, {head[:8].hex(' ')}, match no known format)"


def first_sentence(error: BaseException, limit: int = 160) -> str:
    """The first sentence of an error's text when it is short, else the error's type: never text cut mid-sentence."""
    text = (str(error).strip().splitlines() or [""])[0]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    return sentence if sentence and len(sentence) <= limit else type(error).__name__


def is_refused_pickle(error: BaseException) -> bool:
    """True when ``torch.load(weights_only=True)`` refused Python objects inside a file."""
    text = str(error)
    return "Weights only load failed" in text or "Unsupported global" in text or "weights_only" in text


def describe_unreadable(path: str | os.PathLike, error: BaseException) -> tuple[str, bool]:
    """Why ``torch.load`` failed on ``path``, in words (no torch text cut mid-sentence), and whether it refused a
    pickled payload (Python objects besides tensors: never loaded, so nothing in the file ran)."""
    kind, what = sniff_file(path)
    if kind in ("torch", "torch_legacy") and is_refused_pickle(error):
        names = re.findall(r"GLOBAL ([\w.]+)", str(error))
        named = f" ({names[0]})" if names else ""
        return (
            f"it holds Python objects besides tensors{named}, which are not loaded, for safety (nothing in it ran)",
            True,
        )
    if kind in ("torch", "torch_legacy"):
        return f"{what} whose contents are damaged ({type(error).__name__}: an interrupted save or copy?)", False
    return f"it is {what}", False


def load_state_dict(path: str | os.PathLike, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a state dict from a weights file or a folder that holds one.

    Args:
        path: ``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors`` file, or a folder containing one of
            :data:`WEIGHT_FILES`.
        weights_only: passed to ``torch.load``; only set it to False for files you trust.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise PretrainedError(f"pretrained weights not found: {p}. Pass an existing file or folder.")
    if p.is_dir():
        found = [p / f for f in WEIGHT_FILES if (p / f).exists()]
        found += sorted(p.glob("*.safetensors")) + sorted(p.glob("*.pth")) + sorted(p.glob("*.pt"))
        if not found:
            raise PretrainedError(f"no weights file in folder {p} (looked for {', '.join(WEIGHT_FILES)}).")
        p = found[0]
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p))
        else:
            obj = torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # corrupt file, pickle refused by weights_only, not a weights file at all
        what, pickled = describe_unreadable(p, e)
        if p.suffix == ".safetensors":
            what, pickled = f"it is not a readable safetensors file ({first_sentence(e)})", False
        fix = (
            " If you trust where the file came from, pass backbone.weights_only=false to load it anyway; otherwise "
            "re-save its tensors alone (torch.save(model.state_dict(), path)) and pass that file."
            if pickled
            else " Pass a weights file (.safetensors, .pth, .bin) or a Hugging Face folder."
        )
        raise PretrainedError(f"cannot read weights from {p}: {what}.{fix}") from None
    # Unwrap the usual containers: Lightning checkpoints, {"model": ...}, {"state_dict": ...}.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedError(f"{p} does not hold a state dict of tensors.")
    return dict(obj)


def _strip_prefixes(state: dict[str, torch.Tensor], target_keys: set[str], depth: int = 3) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (``module.``, ``net.model.``, ...): the chain of up to ``depth`` that matches most keys.

    A search rather than a greedy strip, because intermediate steps can match nothing (``net.model.conv.weight``
    matches only after both ``net.`` and ``model.`` are gone).
    """
    best, best_matched = state, len(target_keys & state.keys())
    frontier = [state]
    for _ in range(depth):
        nxt = []
        for s in frontier:
            for prefix in _PREFIXES:
                stripped = {k[len(prefix) :]: v for k, v in s.items() if k.startswith(prefix)}
                if stripped:
                    nxt.append(stripped)
                    matched = len(target_keys & stripped.keys())
                    if matched > best_matched:
                        best, best_matched = stripped, matched
        frontier = nxt
    return best


@dataclass(frozen=True)
class KeyRule:
    """One entry of a key map (see :func:`parse_key_map`).

    Attributes:
        old: the entry as written: a key prefix, or ``re:PATTERN``.
        new: what replaces the prefix or each match of the pattern.
        pattern: the compiled pattern of a ``re:`` entry; None for a prefix.
    """

    old: str
    new: str
    pattern: re.Pattern[str] | None = None

    def apply(self, key: str) -> tuple[str, bool]:
        """The renamed key, and whether this entry changed anything."""
        if self.pattern is not None:
            renamed, n = self.pattern.subn(self.new, key)
            return renamed, n > 0
        if key.startswith(self.old):
            return self.new + key[len(self.old) :], True
        return key, False


def parse_key_map(key_map: Any, option: str = "backbone.key_map") -> list[KeyRule]:
    """Parse a key map: renames applied, in order, to every key of a weights file before it is matched.

    Each entry is ``old -> new``. A plain ``old`` is a prefix: a key starting with it has that start replaced by
    ``new`` (``"_blocks." -> "blocks."``; ``new`` may be empty to drop the prefix). An ``old`` written ``re:PATTERN``
    is a regular expression: every match in the key is replaced by ``new``, which may refer to groups as ``\\1``
    (:func:`re.sub`). Every entry applies to the result of the ones before it.

    Args:
        key_map: None / empty (no renames), a mapping ``{old: new}`` (in order), a list of ``[old, new]`` pairs, or a
            single ``[old, new]`` pair.
        option: the setting's name, for messages.

    Raises:
        ConfigError: an entry of another form, an empty ``old``, or a pattern that is not a regular expression.
    """
    if key_map is None or key_map is False or (isinstance(key_map, (str, Mapping, Sequence)) and not key_map):
        return []
    syntax = (
        f'{option} takes a list of [old, new] pairs, e.g. {option}=\'[["_blocks.","blocks."],["re:^_(.*)$","\\1"]]\' '
        "(a plain old is a key prefix; re:PATTERN is a regular expression and new may use its groups as \\1)"
    )
    if isinstance(key_map, Mapping):
        pairs: list[Any] = list(key_map.items())
    elif isinstance(key_map, Sequence) and not isinstance(key_map, str):
        is_pair = len(key_map) == 2 and all(isinstance(x, str) for x in key_map)
        pairs = [key_map] if is_pair else list(key_map)
    else:
        raise ConfigError(f"{option}={key_map!r} is not understood: {syntax}.")
    rules: list[KeyRule] = []
    for pair in pairs:
        if isinstance(pair, Mapping) and len(pair) == 1:  # a YAML list of one-key mappings: - {"_blocks.": blocks.}
            pair = next(iter(pair.items()))
        ok = isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2
        old, new = pair if ok else (None, None)
        new = "" if new is None else new
        if not (isinstance(old, str) and old and isinstance(new, str)):
            raise ConfigError(f"{option} entry {pair!r} is not an [old, new] pair of strings: {syntax}.")
        if old.startswith("re:"):
            try:
                pattern = re.compile(old[3:])
                pattern.sub(new, "")  # checks the replacement's escapes and group numbers before any key is renamed
            except re.error as e:
                raise ConfigError(
                    f"{option} entry [{old!r}, {new!r}] is not a valid regular expression and replacement ({e})."
                ) from None
            rules.append(KeyRule(old, new, pattern))
        else:
            rules.append(KeyRule(old, new))
    return rules


def rename_keys(
    state: dict[str, torch.Tensor], key_map: Any, source: str = "pretrained weights", option: str = "backbone.key_map"
) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed by ``key_map`` (see :func:`parse_key_map`), in the file's order.

    Raises:
        ConfigError: the key map is malformed.
        PretrainedError: two keys of the file get the same name.
    """
    rules = parse_key_map(key_map, option)
    if not rules:
        return state
    hits = [0] * len(rules)
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = key
        for i, rule in enumerate(rules):  # each entry renames the result of the ones before it
            new, changed = rule.apply(new)
            hits[i] += changed
        if new in renamed:
            raise PretrainedError(
                f"{option} gives two keys of {source} the same name: {origin[new]} and {key} both become {new}."
            )
        renamed[new], origin[new] = value, key
    changed = [(k, v) for v, k in origin.items() if k != v]
    shown = ", ".join(f"{k} -> {v}" for k, v in changed[:3]) + (" ..." if len(changed) > 3 else "")
    log.info("%s renamed %d of the %d keys of %s: %s", option, len(changed), len(state), source, shown or "none")
    for rule, n in zip(rules, hits, strict=True):
        if not n:
            log.warning("%s entry %r renamed no key of %s.", option, rule.old, source)
    return renamed


def _is_counter(key: str) -> bool:
    # BatchNorm's step counter: an integer, absent from many libraries' files, and no weight.
    return key.endswith("num_batches_tracked")


def _pair_by_order(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], is_head: Callable[[str], bool]
) -> tuple[list[tuple[str, str]] | None, str]:
    """Pair the file's tensors with the model's by position and shape: ``([(file key, model key)], "")`` or
    ``(None, why not)``.

    Strict: BatchNorm counters aside, the file holds exactly the model's tensors in the model's order, either with a
    classifier head (whose class count may differ: only its other dimensions must agree) or without one; every pair
    has the same shape and kind (floating point or integer). A file whose keys are sorted by name (safetensors
    files are) has lost the network's order and is not paired.
    """
    everything = [k for k in own if not _is_counter(k)]
    body = [k for k in everything if not is_head(k)]
    keys = [k for k in state if not _is_counter(k)]
    if len(keys) > 1 and keys == sorted(keys) and everything != sorted(everything):
        return (
            None,
            "the file's keys are sorted by name (as in .safetensors files), so their order is not the network's",
        )
    if len(keys) == len(everything):
        targets = everything
    elif len(keys) == len(body):
        targets = body
    else:
        head = len(everything) - len(body)
        return None, f"the file has {len(keys)} tensors, the model {len(body)} (and {head} in its classifier head)"
    pairs = list(zip(keys, targets, strict=True))
    for i, (f, m) in enumerate(pairs):
        fs, ms = tuple(state[f].shape), tuple(own[m].shape)
        fits = (len(fs) == len(ms) and fs[1:] == ms[1:]) if is_head(m) else fs == ms
        if not fits or state[f].is_floating_point() != own[m].is_floating_point():
            return None, f"tensor {i + 1} of the file, {f} {fs}, does not fit the model's {m} {ms}"
    # A name the model has must pair with itself: otherwise the order is not the model's (layers in another order).
    crossed = [(f, m) for f, m in pairs if f in own and f != m]
    if crossed:
        f, m = crossed[0]
        return None, f"the file's {f} would load into the model's {m}"
    return pairs, ""


def _example_rename(file_keys: list[str], model_keys: list[str]) -> str:
    """A key map entry turning the file's first key into the model's, when they differ only before a common end."""
    if file_keys and model_keys:
        f, m = file_keys[0].split("."), model_keys[0].split(".")
        common = 0
        while common < min(len(f), len(m)) - 1 and f[-1 - common] == m[-1 - common]:
            common += 1
        if common:
            old, new = ".".join(f[: len(f) - common]) + ".", ".".join(m[: len(m) - common]) + "."
            return f'[["{old}","{new}"]]'
    return '[["features.","blocks."]]'


def _name_hint(
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    is_head: Callable[[str], bool],
    why: str,
    option: str | None,
) -> str:
    """The lines that help a user write a key map: a few keys of each side, and why they did not pair by order."""

    def some(d: Mapping[str, torch.Tensor], keys: list[str]) -> str:
        return ", ".join(f"{k} {tuple(d[k].shape)}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")

    file_keys = [k for k in state if not _is_counter(k)]
    model_keys = [k for k in own if not _is_counter(k) and not is_head(k)]
    lines = [
        f"  the file's keys: {some(state, file_keys)}",
        f"  the model's keys: {some(own, model_keys)}",
        f"  they do not pair by order and shape either: {why}.",
    ]
    if option:
        example = _example_rename(file_keys, model_keys)
        lines.append(
            f"  If it is this network under other names, rename the file's keys with {option}, e.g. "
            f"{option}='{example}' (a prefix) or {option}='[[\"re:^_(.*)$\",\"\\1\"]]' (a regular expression)."
        )
    return "\n".join(lines) + "\n"


def load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    head_prefixes: tuple[str, ...] = (),
    source: str = "pretrained weights",
    key_map: Any = None,
    map_option: str | None = None,
) -> dict[str, Any]:
    """Load ``state`` into ``model``, checking every key and shape.

    Keys under ``head_prefixes`` (the classifier) may be missing or of another shape: they keep their fresh
    initialisation, which is what transfer learning to a new label set needs. Any other missing key or shape
    mismatch means the file is for another architecture and raises :class:`PretrainedError`, listing the keys,
    unless the file's tensors pair one-to-one with the model's by order and shape (see :func:`_pair_by_order`): a
    file of the same network written by another library, loaded that way and logged.

    Args:
        model: the network to fill.
        state: the file's tensors, in the file's order.
        head_prefixes: the classifier's module names.
        source: the file, for messages.
        key_map: renames applied to the file's keys first (see :func:`parse_key_map`); None for none.
        map_option: the setting that holds ``key_map`` (``backbone.key_map``), named in messages; None where the
            caller has no such setting.

    Returns:
        A report with the ``loaded``, ``head_reinitialised`` and ``unexpected`` keys, and ``matched_by_order``: the
        ``(file key, model key)`` pairs when the tensors were paired by order (empty otherwise).
    """
    own = model.state_dict()
    if key_map is not None:
        state = rename_keys(state, key_map, source, map_option or "key_map")
    state = _strip_prefixes(state, set(own))

    def is_head(k: str) -> bool:
        return any(k == p or k.startswith(p + ".") for p in head_prefixes)

    missing = [k for k in own if k not in state and not is_head(k) and not _is_counter(k)]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape and not is_head(k)
    ]
    unexpected = [k for k in state if k not in own]
    # Extra keys inside the model's own modules (layer1.2.* next to layer1.*) mean a deeper or different variant of
    # the architecture (resnet34 weights for a resnet18): loading the common subset would silently mix networks.
    own_top = {k.split(".")[0] for k in own if not is_head(k)}
    foreign = [k for k in unexpected if k.split(".")[0] in own_top and not is_head(k)]
    if foreign:
        mismatched += [f"{k}: in the file, not in the model" for k in foreign]
    by_order: list[tuple[str, str]] = []
    if missing or mismatched:
        pairs, why = _pair_by_order(own, state, is_head)
        if pairs is None:
            body = [k for k in own if not is_head(k) and not _is_counter(k)]
            # Few names in common: the file is likely this network under another library's names; show both sides.
            hint = _name_hint(own, state, is_head, why, map_option) if len(missing) * 2 > len(body) else ""
            shown = 3 if hint else 10  # beside the hint, the first few are enough
            lines = [f"  mismatch {m}" for m in mismatched[:shown]] + [f"  missing {k}" for k in missing[:shown]]
            more = len(missing) + len(mismatched) - len(lines)
            raise PretrainedError(
                f"{source} do not fit the model ({len(mismatched)} mismatched keys, {len(missing)} missing keys, "
                f"{len(unexpected)} unexpected keys); is it a file for another architecture?\n"
                + hint
                + "\n".join(lines)
                + (f"\n  ... and {more} more" if more > 0 else "")
            )
        by_order = pairs
        state = {m: state[f] for f, m in pairs}
        unexpected = []
        renamed = [(f, m) for f, m in pairs if f != m]
        log.info(
            "%s: names differ from the model's, so its %d tensors were matched to the model's by order and shape "
            "(%d renamed, BatchNorm counters left as they are): %s",
            source,
            len(pairs),
            len(renamed),
            ", ".join(f"{f} -> {m}" for f, m in renamed[:4]) + (" ..." if len(renamed) > 4 else ""),
        )
    head = [k for k in own if is_head(k) and (k not in state or state[k].shape != own[k].shape)]
    loadable = {k: v for k, v in state.items() if k in own and k not in head}
    model.load_state_dict(loadable, strict=False)
    if head:
        log.info("Classifier head re-initialised for the new label count: %s", ", ".join(head))
    if unexpected:
        log.info(
            "Ignored %d keys of %s that the model does not have: %s",
            len(unexpected),
            source,
            ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""),
        )
    return {
        "loaded": sorted(loadable),
        "head_reinitialised": head,
        "unexpected": unexpected,
        "matched_by_order": by_order,
    }
