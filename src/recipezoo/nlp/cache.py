"""The tokenization cache: tokenized splits on disk, keyed by everything they depend on.

The key hashes the tokenizer, ``max_length``, the kind of examples and the texts themselves, so a second run on the
same data loads its splits instead of re-tokenizing them, and any change (another tokenizer, an edited row) misses
the cache. Files are written atomically; a damaged one is rebuilt, never trusted.

The cache lives in the user's cache folder (``$XDG_CACHE_HOME/recipezoo/nlp``, else ``~/.cache/recipezoo/nlp``) unless
``data.cache_dir`` names another folder, so a run started inside a checkout or a project folder writes nothing
there.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from recipezoo.data.tables import expand
from recipezoo.nlp.tokenization import Encoded

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "cache_key",
    "cache_path",
    "load_cached",
    "resolve_cache_dir",
    "save_cached",
    "user_cache_dir",
]

# Bumped when the stored layout changes: old files then simply miss.
_CACHE_VERSION = "1"


# ``data.cache_dir``'s default: the user's cache folder (see :func:`user_cache_dir`).
DEFAULT_CACHE_DIR = "auto"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/recipezoo/nlp``, else ``~/.cache/recipezoo/nlp`` (an empty or relative ``XDG_CACHE_HOME`` is
    ignored, as the XDG base directory specification asks)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "recipezoo" / "nlp"


def resolve_cache_dir(value: str | os.PathLike | None) -> Path | None:
    """The cache folder ``data.cache_dir`` names: ``auto`` the user's (:func:`user_cache_dir`), a path that folder
    (``~`` expanded), null (or false) none: the cache is off."""
    if value is None or value is False or str(value).strip().lower() in ("", "null", "none", "false"):
        return None
    if str(value).strip() == DEFAULT_CACHE_DIR:
        return user_cache_dir()
    return expand(value)


def cache_key(tokenizer_json: str, max_length: int, texts: Any, kind: str, with_types: bool) -> str:
    """sha256 of everything the tokenized split depends on: tokenizer, max_length and the texts themselves."""
    h = hashlib.sha256()
    for part in (_CACHE_VERSION, kind, str(max_length), str(with_types), tokenizer_json):
        h.update(part.encode())
        h.update(b"\x00")
    items = texts[0] + texts[1] if kind == "pairs" else texts
    for t in items:
        h.update(("\x1f".join(t) if kind == "words" else t).encode())
        h.update(b"\x00")
    return h.hexdigest()


def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """The file of ``key`` in ``cache_dir``."""
    return expand(cache_dir) / f"{key[:32]}.pt"


def load_cached(path: Path, what: str) -> Encoded | None:
    """The tokenized split stored at ``path``; None when there is none or it cannot be read (logged)."""
    if not path.is_file():
        return None
    try:
        enc = Encoded.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # a damaged cache file is rebuilt, never trusted
        log.warning("%s: ignoring unreadable cache file %s (%s).", what, path, type(e).__name__)
        return None
    log.info("%s: tokenized data loaded from the cache (%s).", what, path.name)
    return enc


def save_cached(path: Path, enc: Encoded, what: str) -> None:
    """Store ``enc`` at ``path``; a cache that cannot be written is logged, not an error (the run goes on)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(enc.to_dict(), tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written file
    except OSError as e:
        log.warning("%s: could not write the tokenization cache in %s (%s).", what, path.parent, e)
