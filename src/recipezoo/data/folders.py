"""Folders of files: one sub-folder per class, ``train``/``val``/``test`` sub-folders, and file-name patterns
(``{label}_{speaker}_{index}.wav``), with a budget for bad files shared by images and audio.

Scanning only lists and names files; decoding them is the domain's job (it passes a check to
:func:`scan_class_folders`, or checks the files itself), and :func:`check_bad_files` decides, with one rule for every
domain, whether the bad ones are skipped with a warning or stop the run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data.splits import canonical_split
from recipezoo.runtime.audio import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# What the audio readers decode: libsndfile also reads (uncompressed) NIST SPHERE.
AUDIO_READ_EXTENSIONS = (*AUDIO_EXTENSIONS, ".sph")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def list_files(folder: str | os.PathLike, extensions: Sequence[str], hidden: bool = False) -> list[Path]:
    """Files under ``folder`` (sub-folders included) with one of ``extensions`` (any case), sorted by path; hidden
    files (``.name``) only with ``hidden``."""
    exts = tuple(e.lower() for e in extensions)
    return sorted(
        f
        for f in Path(folder).rglob("*")
        if f.is_file() and f.suffix.lower() in exts and (hidden or not _hidden(f.name))
    )


def subfolders(folder: str | os.PathLike) -> list[Path]:
    """The folder's visible sub-folders, sorted by name."""
    return [d for d in sorted(Path(folder).iterdir()) if d.is_dir() and not _hidden(d.name)]


def split_folders(root: str | os.PathLike) -> dict[str, Path] | None:
    """``{split: folder}`` when ``root`` has a training sub-folder (``train``/``training``) and maybe ``val``/
    ``dev``/``valid``/``validation`` and ``test``/``testing`` ones (any case); None when it has no training
    sub-folder. Of two folders naming the same split, the last by name wins."""
    found = {canonical_split(d.name): d for d in subfolders(root) if canonical_split(d.name)}
    return found if "train" in found else None  # type: ignore[return-value]


def scan_class_folders(
    folder: str | os.PathLike,
    extensions: Sequence[str],
    check: Callable[[Path], bool] | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """``folder/<label>/**/<file>``: every file with its label (the class sub-folder's name).

    Args:
        folder: the folder of class sub-folders.
        extensions: the file types kept (others are ignored).
        check: a cheap test of a file (e.g. an image header check); files failing it are bad.

    Returns:
        ``(files, labels, bad)``: good files and their labels in folder and path order, and the bad files.

    Raises:
        DataError: the folder has no class sub-folders.
    """
    folder = Path(folder)
    class_dirs = subfolders(folder)
    if not class_dirs:
        raise DataError(f"{folder} has no class sub-folders; expected {folder}/<label>/<image files>.")
    items, names, bad = [], [], []
    for d in class_dirs:
        for f in list_files(d, extensions):
            if check is not None and not check(f):
                bad.append(str(f))
                continue
            items.append(str(f))
            names.append(d.name)
    return items, names, bad


def compile_pattern(pattern: str) -> re.Pattern:
    """A file-name pattern with ``{field}`` placeholders (``{label}_{speaker}_{index}.wav``) as a regex.

    A field matches any run of characters without ``/`` (the shortest that lets the rest match); ``{_}`` matches
    without keeping the value. Match it with :func:`match_pattern`.

    Raises:
        ConfigError: a field that is not a plain name, or a field named twice.
    """
    parts, out, seen = re.split(r"(\{[^{}]*\})", str(pattern)), [], set()
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].strip()
            if name in ("", "_"):
                out.append(r"[^/]+?")
                continue
            if not name.isidentifier():
                raise ConfigError(f"data.pattern field '{{{name}}}' must be a plain name such as {{label}}.")
            if name in seen:
                raise ConfigError(f"data.pattern names field '{{{name}}}' twice.")
            seen.add(name)
            out.append(f"(?P<{name}>[^/]+?)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


def match_pattern(pattern: re.Pattern, text: str, relative: str) -> dict[str, str] | None:
    """The fields of a file that matches ``pattern``, else None.

    Matched against the path relative to the root (``relative``, with ``/``) when the pattern's text holds a ``/``,
    else against the file name.

    Args:
        pattern: from :func:`compile_pattern`.
        text: the pattern's text, as given to :func:`compile_pattern`.
        relative: the file's path relative to the scanned root.
    """
    target = relative if "/" in text else relative.rsplit("/", 1)[-1]
    m = pattern.match(target)
    return m.groupdict() if m else None


def label_from_folder(relative: str) -> str | None:
    """The class of a file at ``relative`` (``<label>/.../<file>``): its top folder; None for a file at the top."""
    return relative.split("/", 1)[0] if "/" in relative else None


# -- bad files ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadFileMessages:
    """What :func:`check_bad_files` says: format strings over ``where``, ``bad``, ``total``, ``good``, ``fraction``,
    ``limit``, ``noun``, ``summary`` (per reason, up to 3 files each), ``shown`` (up to 5 files, then how many more)
    and ``hint``."""

    none: str = "{where}: none of the {total} {noun} can be used: {summary}.{hint}"
    over: str = (
        "{where}: {bad} of {total} {noun} cannot be used ({fraction:.1%} > data.max_bad_fraction={limit}): "
        "{summary}.{hint}"
    )
    warn: str = "{where}: skipped {bad} of {total} {noun}: {summary}.{hint}"


# Image folders' wording: one reason (unreadable), the files listed up to 5.
IMAGE_BAD_FILE_MESSAGES = BadFileMessages(
    none="image folder {where} holds no readable images ({bad} unreadable); {hint}",
    over=(
        "{bad} of {total} images in {where} cannot be read ({fraction:.1%} > data.max_bad_fraction={limit}): {shown}"
    ),
    warn="Skipped {bad} unreadable image(s) in {where}: {shown}",
)


def _listed(files: Sequence[Any], n: int, more: str) -> str:
    return ", ".join(map(str, files[:n])) + (more.format(len(files) - n) if len(files) > n else "")


def check_bad_files(
    good: int,
    bad: Mapping[str, Sequence[Any]],
    max_bad_fraction: float,
    *,
    where: str,
    total: int | None = None,
    empty_ok: bool = False,
    noun: str = "files",
    hint: str = "",
    messages: BadFileMessages = BadFileMessages(),
    logger: logging.Logger | None = None,
) -> None:
    """The bad-file budget: bad files are skipped with one warning that counts and names them, unless no file is
    good or their share of all files exceeds ``max_bad_fraction``, which stop the run with the list.

    Args:
        good: how many files are good.
        bad: the bad files per reason (``{"missing": [...], "unreadable": [...], "empty": [...]}``); reasons
            without files are left out of messages.
        max_bad_fraction: the largest tolerated share of bad files.
        where: the data, for messages.
        total: how many files there were in all (default ``good`` plus the bad ones; larger when some were left out
            for other reasons, e.g. too short): the share of bad files is of this.
        empty_ok: with no bad file, return even when no file is good (the caller says what is wrong).
        noun: what the files are, for messages (``audio files``, ``images``).
        hint: a sentence appended to messages (how to fix a common cause).
        messages: the wording (:class:`BadFileMessages`).
        logger: where the warning goes (default: this module's).

    Raises:
        DataError: no good file, or too many bad ones.
    """
    files = [f for found in bad.values() for f in found]
    n_bad = len(files)
    total = good + n_bad if total is None else int(total)
    if not n_bad and (good or empty_ok):
        return
    summary = "; ".join(
        f"{len(found)} {reason} ({_listed(found, 3, ' ...')})" for reason, found in bad.items() if found
    )
    fields = {
        "where": where,
        "bad": n_bad,
        "total": total,
        "good": good,
        "fraction": n_bad / total if total else 1.0,
        "limit": max_bad_fraction,
        "noun": noun,
        "summary": summary,
        "shown": _listed(files, 5, " and {} more"),
        "hint": hint,
    }
    if not good:
        raise DataError(messages.none.format(**fields))
    if n_bad / total > max_bad_fraction:
        raise DataError(messages.over.format(**fields))
    (logger or log).warning(messages.warn.format(**fields))


__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_READ_EXTENSIONS",
    "BadFileMessages",
    "IMAGE_BAD_FILE_MESSAGES",
    "IMAGE_EXTENSIONS",
    "check_bad_files",
    "compile_pattern",
    "label_from_folder",
    "list_files",
    "match_pattern",
    "scan_class_folders",
    "split_folders",
    "subfolders",
]
