"""Where speech items come from: manifests (CSV / TSV / JSON lines / Sphinx), audio folders and Speech Commands.

An item is a dict with the audio ``path`` (or, synthetic, in-memory ``audio`` and its ``rate``) and string fields:
manifest columns, file-name fields from ``data.pattern``, ``label`` from class sub-folders, ``split`` from
``train``/``val``/``test`` sub-folders, and ``dir`` (the file's folder name). Tables, column look-up, split-folder
names, file listing and file-name patterns come from :mod:`recipezoo.data`; what is speech-specific here is the
Sphinx transcription format and the names recognised for path, label and transcript columns.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import columns as C
from recipezoo.data import folders as F
from recipezoo.data import tables as T

log = logging.getLogger("recipezoo.speech.data")

# Column names recognised when data.path_column / label_column / text_column are not set (compared lower-cased).
PATH_COLUMNS = ("path", "audio", "audio_filepath", "audio_path", "filepath", "file_path", "file", "filename", "wav")
LABEL_COLUMNS = ("label", "class", "category", "target", "keyword", "command")
TEXT_COLUMNS = ("transcript", "text", "sentence", "transcription", "normalized_text", "words", "utterance")
SPHINX_LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")
RESERVED = frozenset({"audio", "rate", "channels", "seconds", "path"})  # item keys the code sets itself


def _names_audio(columns: list[str]) -> bool:
    """A two-column header whose first name is an audio file is a data row: the file has no header."""
    return len(columns) == 2 and str(columns[0]).lower().endswith(F.AUDIO_READ_EXTENSIONS)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV / TSV / JSON-lines manifest as dicts of strings (a header-less two-column CSV is read as
    ``path, <label or transcript>``)."""
    frame = T.read_table(
        path,
        what="manifest",
        sep=None,
        text=True,
        header=_names_audio,
        names=["path", "value"],
        skipinitialspace=True,
        unknown_kind="csv",
        allow_empty=True,
    )
    return frame.to_dict("records")


def pick_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, where: str) -> str:
    """The column to use: ``wanted`` if given (it must exist), else the first recognised candidate.

    Raises:
        ConfigError: ``wanted`` is not a column.
        DataError: no candidate is a column.
    """
    columns = list(columns)
    if wanted:
        found = C.find_column(columns, wanted, positions=False)
        if found is None:
            raise ConfigError(
                f"column '{wanted}' not found in {where}; its columns are: {', '.join(columns)}."
                + close_matches(str(wanted), columns)
            )
        return found
    found = C.find_column(columns, candidates=candidates, match="lower")
    if found is not None:
        return found
    if "value" in columns and what != "path":  # a header-less two-column file
        return "value"
    raise DataError(
        f"{where} has no {what} column (looked for {', '.join(candidates)}); its columns are: {', '.join(columns)}. "
        f"Name it with data.{what}_column=<column>."
    )


def resolve_path(value: str, base: Path) -> Path:
    """A manifest path (``~`` expanded); relative ones start at ``base``."""
    p = Path(os.path.expanduser(value.strip()))
    return p if p.is_absolute() else base / p


def read_sphinx(path: Path, audio_root: Path | None) -> list[dict[str, str]]:
    """A CMU Sphinx transcription file (``<s> TEXT </s> (utterance id)`` per line) as manifest rows.

    Audio paths come from the ``.fileids`` file beside it (``<name>.fileids``, one path per line relative to the
    audio root, without extension), else from a search of the audio root for files named after the ids. The audio
    root is ``audio_root``, else the corpus's ``wav/`` folder (``<manifest folder>/../wav``), else the manifest's
    folder. The speaker is the audio file's folder name (Sphinx corpora keep one folder per speaker).
    """
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    parsed = []
    for n, line in enumerate(lines, 1):
        m = SPHINX_LINE.match(line)
        if not m:
            raise DataError(f"{path}, line {n}: expected '<s> TEXT </s> (utterance_id)', got {line.strip()[:80]!r}.")
        parsed.append((m["id"], m["text"]))
    if audio_root is None:
        wav = path.parent.parent / "wav"
        audio_root = wav if wav.is_dir() else path.parent
    fileids = path.with_suffix(".fileids")
    stems: dict[str, Path] = {}
    if fileids.is_file():
        ids = [line.strip() for line in fileids.read_text().splitlines() if line.strip()]
        if len(ids) != len(parsed):
            raise DataError(
                f"{fileids.name} lists {len(ids)} files but {path.name} has {len(parsed)} transcripts; they must "
                "match line by line."
            )
        for (uid, _), fid in zip(parsed, ids):
            stems[uid] = audio_root / fid
    else:
        for f in F.list_files(audio_root, F.AUDIO_READ_EXTENSIONS, hidden=True):
            stems.setdefault(f.stem, f.with_suffix(""))
    rows = []
    for uid, text in parsed:
        stem = stems.get(uid, audio_root / uid)
        found = next(
            (stem.with_suffix(e) for e in F.AUDIO_READ_EXTENSIONS if stem.with_suffix(e).is_file()),
            None,
        )
        target = found or stem.with_suffix(".wav")
        rows.append({"path": str(target), "text": text, "id": uid, "speaker": target.parent.name})
    return rows


def manifest_items(
    manifest: str | os.PathLike, audio_root: str | os.PathLike | None, path_column: str | None
) -> tuple[list[dict[str, Any]], list[str], str]:
    """The items a manifest lists (its other columns become fields).

    Args:
        manifest: a CSV / TSV / JSON-lines file, or a Sphinx ``.transcription`` file.
        audio_root: where relative paths start (default: the manifest's folder; Sphinx: see :func:`read_sphinx`).
        path_column: the audio path column (default: recognised by name, :data:`PATH_COLUMNS`).

    Returns:
        ``(items, columns, where)``: the items, the manifest's columns and how messages about its columns name it.

    Raises:
        DataError: the manifest is missing, unreadable or has no rows.
    """
    path = T.expand(manifest)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}. Pass data.manifest=<CSV/TSV/JSON-lines file of audio paths>.")
    root = T.expand(audio_root) if audio_root else None
    if path.suffix.lower() == ".transcription":
        rows = read_sphinx(path.absolute(), root)  # its paths come out absolute
        column, base = "path", Path()
        columns = list(rows[0]) if rows else []
    else:
        rows = read_manifest(path)
        if not rows:
            raise DataError(f"manifest {path} has a header but no rows.")
        columns = list(rows[0])
        column = pick_column(columns, path_column, PATH_COLUMNS, "path", f"manifest {path}")
        base = root or path.parent
    items = []
    for row in rows:
        p = resolve_path(row[column], base)
        # Columns named like the internal keys (audio, rate, ...) would be mistaken for decoded audio: dropped.
        fields = {k: str(v) for k, v in row.items() if k != column and k not in RESERVED}
        items.append({**fields, "path": str(p), "dir": p.parent.name})
    return items, columns, str(path)


def folder_items(
    root: str | os.PathLike,
    *,
    label_folders: bool,
    pattern: re.Pattern | None,
    pattern_text: str | None,
    layout_hint: str,
) -> list[dict[str, Any]]:
    """The audio files of a folder, with the fields their place and name carry.

    ``train``/``val``/``test`` sub-folders (any alias) give each file's ``split``; with ``label_folders`` the top
    sub-folder (below the split folder) is the ``label``; ``pattern`` names fields in the file name (or relative
    path). Files that do not fit are ignored with a warning.

    Args:
        root: the folder.
        label_folders: a file's class is its top sub-folder.
        pattern: from :func:`~recipezoo.data.folders.compile_pattern`, or None.
        pattern_text: the pattern as written (a ``/`` in it matches relative paths).
        layout_hint: the sentence that says which layout was expected (for the error when no file fits).

    Raises:
        DataError: the folder is missing, holds no audio files, or none fits the layout.
    """
    root = T.expand(root)
    if not root.is_dir():
        raise DataError(f"audio folder not found: {root}. Pass data.root=<folder of audio files>.")
    sources: dict[str | None, Path] = F.split_folders(root) or {None: root}  # type: ignore[assignment]
    items, unmatched, found = [], [], 0
    for split, folder in sources.items():
        files = F.list_files(folder, F.AUDIO_READ_EXTENSIONS)
        found += len(files)
        for f in files:
            rel = f.relative_to(folder).as_posix()
            item: dict[str, Any] = {"path": str(f), "dir": f.parent.name}
            if split:
                item["split"] = split
            if label_folders:
                label = F.label_from_folder(rel)
                if label is None:
                    unmatched.append(rel)
                    continue
                item["label"] = label
            if pattern is not None:
                fields = F.match_pattern(pattern, pattern_text or "", rel)
                if fields is None:
                    unmatched.append(rel)
                    continue
                item.update(fields)
            items.append(item)
    if not items:
        if found == 0:
            raise DataError(
                f"no audio files in {root} (looked for {', '.join(F.AUDIO_READ_EXTENSIONS[:6])} ... in sub-folders "
                "too)."
            )
        raise DataError(f"{layout_hint} None of the {found} audio files fits it (e.g. {', '.join(unmatched[:3])}).")
    if unmatched:
        log.warning(
            "%s: %d audio file(s) do not fit the expected layout and are ignored: %s",
            root,
            len(unmatched),
            ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else ""),
        )
    return items


def speechcommands_items(root: str | os.PathLike | None, download: bool) -> list[dict[str, Any]]:
    """Speech Commands v0.02 (35 words) through torchaudio's loader, its official lists as the splits.

    Raises:
        DataError: the dataset is not under ``root`` (and ``download`` is off or failed).
    """
    from torchaudio.datasets import SPEECHCOMMANDS

    base = T.expand(root or "data_cache")
    if download:
        base.mkdir(parents=True, exist_ok=True)
    items = []
    for subset, split in (("training", "train"), ("validation", "val"), ("testing", "test")):
        try:
            ds = SPEECHCOMMANDS(str(base), url="speech_commands_v0.02", download=download, subset=subset)
        except (RuntimeError, FileNotFoundError, OSError) as e:
            raise DataError(
                f"Speech Commands not found under {base} ({str(e).splitlines()[0][:160]}). Pass data.download=true "
                "(needs network) or data.root=<folder holding SpeechCommands/speech_commands_v0.02>."
            ) from None
        for n in range(len(ds)):
            rel, _, label, speaker, utterance = ds.get_metadata(n)
            items.append(
                {
                    "path": str(base / "SpeechCommands" / rel),
                    "label": label,
                    "speaker": speaker,
                    "index": str(utterance),
                    "split": split,
                    "dir": label,
                }
            )
    return items


__all__ = [
    "LABEL_COLUMNS",
    "PATH_COLUMNS",
    "RESERVED",
    "SPHINX_LINE",
    "TEXT_COLUMNS",
    "folder_items",
    "manifest_items",
    "pick_column",
    "read_manifest",
    "read_sphinx",
    "resolve_path",
    "speechcommands_items",
]
