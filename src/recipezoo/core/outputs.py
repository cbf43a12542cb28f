"""What the command-line tools write, and the one rule that keeps a user's files safe.

``overwrite=true`` replaces only files a recipezoo tool wrote itself. A tool records what it wrote, with a content
hash, in ``.recipezoo-manifest.json`` beside the file (predictions) or inside the folder it filled (a benchmark); a
file is "ours" while the manifest lists it with the same content, or while the caller recognises it by its content
(an evaluation report; an export bundle, whose ``metadata.json`` lists its files). Nothing here ever removes a
folder, and nothing is written into ``/``, the home folder, the current folder or one above it, or the project's own
checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path

from recipezoo.core.errors import OutputExistsError

MANIFEST = ".recipezoo-manifest.json"
_WRITER = "recipezoo"


def _expand(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pasteable(option: str, path: Path) -> str:
    """``option=path`` quoted for bash, relative to the current folder where that is shorter."""
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    return shlex.quote(f"{option}={shown}")


def free_path(path: Path) -> Path:
    """``path`` if nothing is there, else the first free ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ..."""
    if not path.exists():
        return path
    for i in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")


def project_root() -> Path | None:
    """The checkout recipezoo runs from (``pyproject.toml`` beside ``src/``), or None for an installed package."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "recipezoo").is_dir() else None


def precious_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` must never be an output folder (``/``, ``~``, the current folder or above, the checkout)."""
    p = _expand(path).resolve()
    cwd = Path.cwd().resolve()
    if p == Path(p.anchor):
        return "the filesystem root"
    if p == Path.home().resolve():
        return "your home folder"
    if p == cwd or p in cwd.parents:
        return "the current folder" if p == cwd else "a folder above the current one"
    root = project_root()
    if root is not None and (p == root or p in root.parents):
        return "the recipezoo checkout"
    return None


# -- the manifest --------------------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict[str, str] | None:
    """The files recorded in ``folder``'s manifest ({relative path: sha256}); None when there is no manifest of
    ours (absent, unreadable, or a file of the same name that recipezoo did not write)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != _WRITER or not isinstance(data.get("files"), dict):
        return None
    return {str(k): str(v) for k, v in data["files"].items()}


def _write_manifest(folder: Path, files: dict[str, str]) -> None:
    path = folder / MANIFEST
    if path.exists() and _read_manifest(folder) is None:
        return  # a file of the user's that happens to have this name: never replaced
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"written_by": _WRITER, "files": dict(sorted(files.items()))}, indent=2) + "\n")
    os.replace(tmp, path)


def record(*paths: str | os.PathLike) -> None:
    """Note files just written (each in the manifest of its own folder), so a later ``overwrite=true`` may replace
    them; a path that does not exist is skipped."""
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        p = _expand(path)
        if p.is_file() and p.name != MANIFEST:
            by_folder.setdefault(p.parent, []).append(p)
    for folder, files in by_folder.items():
        entries = _read_manifest(folder) or {}
        entries.update({p.name: _sha256(p) for p in files})
        _write_manifest(folder, entries)


def owned(path: str | os.PathLike) -> bool:
    """Whether recipezoo wrote ``path`` (its folder's manifest lists it with this content)."""
    p = _expand(path)
    entries = _read_manifest(p.parent) or {}
    return p.is_file() and entries.get(p.name) == _sha256(p)


# -- single output files (predictions, metrics) --------------------------------------------------------------


def new_output_file(
    path: str | os.PathLike,
    overwrite: bool = False,
    recognise: Callable[[Path], bool] | None = None,
    option: str = "output",
    default_name: str = "predictions.csv",
) -> Path:
    """``path`` (``~`` expanded) if writing there loses nothing; else :class:`OutputExistsError` with a safe fix.

    Args:
        path: the file to write.
        overwrite: allow replacing a file recipezoo wrote (recorded by :func:`record`, or ``recognise``-d).
        recognise: tells a file of ours by its content (e.g. an evaluation report).
        option: the option that names the file, for the suggested fix.
        default_name: the file name suggested when ``path`` is a folder.
    """
    out = _expand(path)
    if out.is_dir():
        fix = _pasteable(option, free_path(out / default_name))
        raise OutputExistsError(f"{out} is a folder; {option} names the file to write. Pass {fix}.")
    if not out.exists() and not out.is_symlink():
        return out
    ours = out.is_file() and (owned(out) or (recognise is not None and _safe(recognise, out)))
    if not overwrite:
        also = " or overwrite=true to replace it" if ours else ""
        raise OutputExistsError(
            f"{out} already exists; nothing was overwritten. Pass {_pasteable(option, free_path(out))}{also}."
        )
    if not ours:
        raise OutputExistsError(
            f"{out} already exists and recipezoo did not write it (or it changed since), so overwrite=true leaves "
            f"it alone; nothing was overwritten. Pass {_pasteable(option, free_path(out))}."
        )
    return out


def _safe(recognise: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(recognise(path))
    except Exception:  # an unreadable file is simply not one of ours
        return False


# -- output folders (export bundles, benchmark and measurement reports) --------------------------------------


def _files_under(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != MANIFEST and not p.name.endswith(MANIFEST + ".tmp")
    )


def claim_folder(
    path: str | os.PathLike,
    overwrite: bool = False,
    option: str = "output",
    default_name: str = "bundle",
    recognise: Callable[[Path], Iterable[str]] | None = None,
    can_overwrite: bool = True,
    check_only: bool = False,
) -> Path:
    """Check that writing into the folder ``path`` loses nothing; with ``overwrite``, delete the files recipezoo
    wrote there before (never a folder, never anything else). Returns the folder, created.

    Args:
        path: the output folder.
        overwrite: replace what a recipezoo tool wrote there.
        option: the option that names the folder, for the suggested fix.
        default_name: the folder suggested (under the current folder) when ``path`` must never be written.
        recognise: the relative paths of files of ours that predate manifests (e.g. a bundle's own files, listed in
            its ``metadata.json``).
        can_overwrite: whether the tool has an ``overwrite`` option to suggest.
        check_only: only check (raise or return); create and delete nothing, e.g. before a slow model load.

    Raises:
        OutputExistsError: ``path`` is ``/``, ``~``, the current folder or above, the checkout, a file, or a folder
            holding files recipezoo did not write (or, without ``overwrite``, any files).
    """
    out = _expand(path)
    _refuse_unusable(out, option, default_name)
    if not out.is_dir():
        if not check_only:
            out.mkdir(parents=True)
        return out
    present = _files_under(out)
    if not present:
        return out
    entries = _read_manifest(out) or {}
    known = set(_safe_list(recognise, out)) if recognise is not None else set()
    ours = {f for f in present if (f in entries and _sha256(out / f) == entries[f]) or f in known}
    foreign = [f for f in present if f not in ours]
    fix = _pasteable(option, free_path(out))
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputExistsError(
            f"{out} already holds files recipezoo did not write ({listed}); nothing was overwritten"
            f"{', and overwrite=true would not touch them either' if overwrite else ''}. Pass {fix}."
        )
    if not overwrite:
        also = " or overwrite=true to replace what recipezoo wrote there" if can_overwrite else ""
        raise OutputExistsError(f"{out} already holds files; nothing was overwritten. Pass {fix}{also}.")
    if check_only:
        return out
    for f in ours:
        (out / f).unlink()
    if (out / MANIFEST).exists():
        _write_manifest(out, {})
    return out


def _safe_list(recognise: Callable[[Path], Iterable[str]], folder: Path) -> list[str]:
    try:
        return [str(x) for x in recognise(folder)]
    except Exception:  # an unreadable description is simply not one of ours
        return []


def record_folder(path: str | os.PathLike) -> None:
    """Note every file under the folder ``path`` as recipezoo's (call it after writing into a folder that
    :func:`claim_folder` cleared: everything there is then ours)."""
    out = _expand(path)
    if out.is_dir():
        _write_manifest(out, {f: _sha256(out / f) for f in _files_under(out) if (out / f).is_file()})


def _refuse_unusable(out: Path, option: str, default_name: str) -> None:
    """Refuse ``/``, ``~``, the current folder or above and the checkout, and a file where a folder is wanted."""
    reason = precious_reason(out)
    if reason is not None:
        raise OutputExistsError(
            f"refusing to write into {out} ({reason}): an output folder must be one of its own; nothing was "
            f"written. Pass {_pasteable(option, free_path(Path.cwd() / default_name))}."
        )
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"{out} is a file, not a folder; nothing was overwritten. Pass {_pasteable(option, free_path(out))}."
        )


def report_folder(path: str | os.PathLike, option: str = "out", default_name: str = "measurement") -> Path:
    """A folder that a long-running tool fills run by run (each ``train.py`` run guards its own folder); refused
    when it is ``/``, ``~``, the current folder or above, or the checkout. Returns it, created."""
    out = _expand(path)
    _refuse_unusable(out, option, default_name)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_text(path: str | os.PathLike, text: str, option: str = "out") -> Path:
    """Write ``text`` to ``path`` unless a file recipezoo did not write is there; record it as recipezoo's."""
    p = _expand(path)
    if p.exists() and not owned(p):
        raise OutputExistsError(
            f"{p} already exists and recipezoo did not write it (or it changed since); nothing was overwritten. "
            f"Pass {_pasteable(option, free_path(p.parent))}."
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    record(p)
    return p
