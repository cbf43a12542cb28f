"""Reading tables: CSV, TSV, delimited text, JSON lines, JSON and Parquet files as pandas DataFrames.

One reader for every domain. The format comes from the extension (``.gz``, ``.bz2``, ``.zip``, ``.xz`` and ``.zst``
compression included); the separator of delimited text is sniffed when the extension does not say it; text that is
not UTF-8 either falls back on Latin-1 (``encoding="auto"``) or fails with the line and byte to fix. Every failure
is a :class:`~recipezoo.core.errors.DataError` (or a :class:`~recipezoo.core.errors.ConfigError` for a wrong
setting) with a one-line message that says what to change.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import lzma
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.core.validate import bash_override

log = logging.getLogger(__name__)

COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")
# Extension -> format. "" is a file without an extension: delimited text with a sniffed separator.
TABLE_KINDS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "text",
    ".dat": "text",
    ".data": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    "": "text",
}
TABLE_EXTENSIONS = tuple(k for k in TABLE_KINDS if k)
# Separators tried when sniffing, in order of preference ('::' first: MovieLens-1M lines also hold ':' alone).
SEPARATORS = ("::", "\t", ",", ";", "|")
SEP_NAMES = {"\t": "tab ('\\t')", ",": "comma (',')", ";": "semicolon (';')", "|": "pipe ('|')", "::": "'::'"}
_SNIFF_LINES = 50


def expand(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded."""
    return Path(os.path.expanduser(str(path)))


def table_kind(path: str | os.PathLike, unknown: str | None = None) -> str | None:
    """The format of ``path`` by extension (``csv``, ``tsv``, ``text``, ``jsonl``, ``json``, ``parquet``).

    Args:
        path: the file; a compression extension is skipped (``t.csv.gz`` is ``csv``).
        unknown: the format of an extension not in :data:`TABLE_KINDS` (None: unknown).
    """
    suffixes = [s.lower() for s in Path(str(path)).suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    return TABLE_KINDS.get(suffixes[-1] if suffixes else "", unknown)


def _utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")


def _open_bytes(p: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed by extension (``.zst`` needs the ``zstandard`` package)."""
    suffix = p.suffix.lower()
    if suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if suffix == ".bz2":
        return bz2.open(p, "rb")  # type: ignore[return-value]
    if suffix == ".xz":
        return lzma.open(p, "rb")  # type: ignore[return-value]
    if suffix == ".zip":
        archive = zipfile.ZipFile(p)
        return archive.open(archive.namelist()[0])  # type: ignore[return-value]
    if suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(p, "rb"))  # type: ignore[return-value]
    return open(p, "rb")


def _decode_error(p: Path, raw: bytes, encoding: str, e: UnicodeDecodeError) -> DataError:
    line = raw[: e.start].count(b"\n") + 1
    return DataError(
        f"{p} is not valid {encoding}: byte 0x{raw[e.start]:02x} on line {line} cannot be decoded. Pass the "
        f"file's encoding (data.encoding=latin-1, cp1252, ...), or re-save it as UTF-8."
    )


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}' (data.encoding); e.g. utf-8, latin-1, cp1252.") from None


def read_text_file(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A whole text file (a UTF-8 byte-order mark dropped), with a clear error (line and byte) when it is not in
    ``encoding``.

    Raises:
        DataError: bytes that ``encoding`` cannot decode (the message names the line, the byte and the fix).
        ConfigError: an unknown encoding.
    """
    p = expand(path)
    _check_encoding(encoding)
    with _open_bytes(p) as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig" if _utf8(encoding) else encoding)
    except UnicodeDecodeError as e:
        raise _decode_error(p, raw, encoding, e) from None


def _head(p: Path, encoding: str, n: int = _SNIFF_LINES) -> list[str]:
    """The first ``n`` lines (undecodable bytes replaced: only for sniffing); [] when they cannot be read."""
    try:
        with _open_bytes(p) as f:
            raw = f.read(1 << 20)
    except (OSError, ImportError, zipfile.BadZipFile, EOFError, lzma.LZMAError):
        return []
    text = raw.decode("utf-8-sig" if _utf8(encoding) else encoding, errors="replace")
    lines = text.splitlines()
    if len(raw) == 1 << 20 and lines:
        lines = lines[:-1]  # the last line may be cut
    return lines[:n]


def sniff_separator(lines: Sequence[str], candidates: Sequence[str] = SEPARATORS) -> str | None:
    """The first candidate that splits every non-blank sample line into the same number (> 1) of fields."""
    for sep in candidates:
        counts = {len(line.split(sep)) for line in lines if line.strip()}
        if len(counts) == 1 and counts.pop() > 1:
            return sep
    return None


def sep_override(sep: str) -> str:
    """The ``data.sep=...`` override for ``sep`` as it works typed in bash: a tab as ``data.sep='\\t'`` (Hydra reads
    the unquoted backslash-t, the tables turn it into a tab); ``,`` ``;`` ``|`` quoted for Hydra inside bash's
    quotes (``'data.sep=";"'``)."""
    return "data.sep='\\t'" if sep == "\t" else bash_override("data.sep", sep)


def wrong_separator_hint(frame: Any, path: str | os.PathLike) -> str:
    """When a table came out as one column, name the separator its lines seem to use (else an empty string)."""
    if frame.shape[1] != 1:
        return ""
    first = [str(frame.columns[0]), *map(str, frame.iloc[:20, 0].tolist())]
    guess = sniff_separator(first, SEPARATORS[1:])
    if guess and guess != frame.attrs.get("sep"):
        fix = sep_override(guess)
        return f" {Path(str(path)).name} looks {SEP_NAMES.get(guess, repr(guess))}-separated: pass {fix}."
    return ""


def looks_headerless(columns: Sequence[Any]) -> bool:
    """Whether a header row looks like data: its first two names are numbers (MovieLens ``u.data``)."""

    def numeric(c: Any) -> bool:
        try:
            float(str(c).split(".")[0] if str(c).count(".") > 1 else str(c))
            return True
        except ValueError:
            return False

    return len(columns) >= 2 and all(numeric(c) for c in columns[:2])


def _norm(name: Any) -> str:
    return re.sub(r"[\s_\-]", "", str(name).lower())


def _resolve_sep(p: Path, kind: str, sep: str | None, encoding: str, default_sep: str) -> str:
    """The separator of a delimited file (see :func:`read_table`'s ``sep``)."""
    if sep not in (None, "auto"):
        return str(sep).replace("\\t", "\t")
    if kind == "tsv":
        return "\t"
    if kind == "csv":
        if sep == "auto":
            lines = _head(p, encoding, 1)
            first = lines[0] if lines else ""
            if first and len(next(csv.reader([first]), [])) == 1:
                # A ".csv" written with another delimiter (the UCI bank-marketing table uses ';').
                other = next((s for s in ("\t", ";", "|") if s in first), None)
                if other:
                    return other
        return ","
    lines = _head(p, encoding)
    guess = sniff_separator(lines)
    if guess is None and sep == "auto" and lines:
        guess = next((s for s in SEPARATORS if s in lines[0]), None)
    return guess or default_sep


def _empty(p: Path, what: str, hint: str) -> DataError:
    return DataError(f"{what} file {p} is empty.{hint}")


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def _read_json(p: Path, kind: str, what: str, encoding: str, text: bool, json_dtype: bool, empty_hint: str) -> Any:
    import pandas as pd

    if not text:
        # pandas' fast reader; its dtype inference (json_dtype) is what tabular data wants.
        _check_encoding(encoding)
        head = "".join(_head(p, encoding, 1)).lstrip()
        if kind == "json" and head.startswith("["):  # a JSON array of records rather than JSON lines
            return pd.read_json(p, dtype=json_dtype, encoding=encoding)
        try:
            return pd.read_json(p, lines=True, dtype=json_dtype, encoding=encoding)
        except ValueError:
            if kind != "json":
                raise
            return pd.read_json(p, dtype=json_dtype, encoding=encoding)
    content = read_text_file(p, encoding)
    if not content.strip():
        raise _empty(p, what, empty_hint)
    rows: list[Any] = []
    for i, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == 1 and kind == "json":  # a JSON array of records rather than JSON lines
                try:
                    rows = json.loads(content)
                except json.JSONDecodeError as e2:
                    raise DataError(f"{p}: not valid JSON ({e2.msg}, line {e2.lineno}).") from None
                break
            raise DataError(f"{p}, line {i}: not valid JSON ({e.msg}).") from None
        if isinstance(row, list) and i == 1 and kind == "json":
            rows = row
            break
        if not isinstance(row, dict):
            raise DataError(f"{p}, line {i}: not a JSON object ({line.strip()[:80]!r}).")
        rows.append(row)
    # Text mode: every cell a string (as written: 1 stays "1"), missing ones empty, as for delimited text.
    texts = [{str(k): "" if v is None else str(v) for k, v in row.items()} for row in rows if isinstance(row, dict)]
    frame = pd.DataFrame(texts, dtype=object)
    return frame.where(frame.notna(), "")


def read_table(
    path: str | os.PathLike,
    *,
    what: str = "data",
    sep: str | None = "auto",
    encoding: str = "utf-8",
    header: bool | str | Callable[[list[str]], bool] = True,
    names: Sequence[str] | None = None,
    dtype: Any = None,
    str_columns: Sequence[str] = (),
    text: bool = False,
    usecols: Sequence[int] | None = None,
    skipinitialspace: bool = False,
    quote_tabs: bool = True,
    default_sep: str = ",",
    unknown_kind: str | None = None,
    json_dtype: bool = True,
    allow_empty: bool = False,
    missing_hint: str = "",
    empty_hint: str = "",
    format_hint: str = "",
) -> Any:
    """A table file as a pandas DataFrame with string column names (stripped of surrounding spaces).

    Args:
        path: the file (``~`` expanded). Its format comes from the extension (:func:`table_kind`): ``.csv``,
            ``.tsv``/``.tab``, ``.txt``/``.dat``/``.data`` or none (delimited text), ``.jsonl``/``.ndjson``, ``.json``
            (JSON lines, or an array of records), ``.parquet``/``.pq``; optionally compressed (``.gz`` ...).
        what: how messages name the file (``"{what} file <path>"``): ``data``, ``interactions``, ``manifest``...
        sep: the separator of delimited text. ``"auto"``: by extension (``.csv`` comma, ``.tsv`` tab), except that a
            ``.csv`` whose first line holds no comma but a tab, ``;`` or ``|`` is read with that; other files are
            sniffed (:func:`sniff_separator`, then the first of :data:`SEPARATORS` in the first line).
            ``None``: by extension, other files sniffed, a ``.csv`` always comma-separated (a wrong separator then
            surfaces as one column, see :func:`wrong_separator_hint`). Else the separator itself (``"\\t"`` allowed).
        encoding: the text encoding. ``"auto"``: UTF-8, falling back on Latin-1 (logged) for files that are not;
            any other value is strict, and undecodable bytes raise a DataError naming the line, the byte and the fix.
        header: whether the first line names the columns. ``"auto"``: yes unless it looks like data
            (:func:`looks_headerless`); a callable gets the header's names and says whether they are data.
        names: the column names of a header-less file (padded with ``column_<i>`` when the file has more columns;
            without names a header-less file's columns are ``"0"``, ``"1"``, ...). A header row detected as data is
            re-read with every column as text.
        dtype: pandas dtype(s) of delimited text (``str``: everything as text).
        str_columns: columns read as text when present (exact ids: leading zeros, integers beyond 64 bits);
            matched ignoring case, spaces, ``_`` and ``-``.
        text: every cell a string and missing cells empty (text data: no number or NA inference at all).
        usecols: positions of the columns to keep (delimited text).
        skipinitialspace: skip spaces after separators.
        quote_tabs: honour ``"`` quotes in tab-separated files; False reads them as plain characters (GLUE-style
            TSV files, whose texts may start with a quote).
        default_sep: the separator of delimited text when sniffing finds none (``r"\\s+"``: runs of whitespace).
        unknown_kind: the format of unknown extensions (``"text"``: delimited text); None rejects them.
        json_dtype: let pandas infer JSON column types (when ``text`` is False).
        allow_empty: return a table without rows instead of raising.
        missing_hint, empty_hint, format_hint: text appended to the message of a missing file, an empty file and an
            unknown format.

    Raises:
        DataError: the file is missing, empty, undecodable or cannot be parsed.
        ConfigError: an unknown extension (``unknown_kind=None``) or encoding.
    """
    import pandas as pd

    p = expand(path)
    if not p.is_file():
        raise DataError(f"{what} file not found: {p}.{missing_hint}")
    kind = table_kind(p, unknown_kind)
    if kind is None:
        raise ConfigError(
            f"cannot tell the format of {what} file {p.name}: use .csv, .tsv, .jsonl (JSON lines) or .parquet "
            f"(optionally .gz compressed).{format_hint}"
        )
    auto_encoding = encoding == "auto"
    enc = "utf-8" if auto_encoding else encoding
    _check_encoding(enc)
    try:
        if kind == "parquet":
            frame = _read_parquet(p)
            if text:
                frame = frame.astype(object).where(frame.notna(), "").apply(lambda col: col.map(str))
        elif kind in ("jsonl", "json"):
            try:
                frame = _read_json(p, kind, what, enc, text, json_dtype, empty_hint)
            except UnicodeDecodeError:
                if not auto_encoding:
                    raise
                frame = _read_json(p, kind, what, "latin-1", text, json_dtype, empty_hint)
                log.info("%s is not UTF-8: read as Latin-1.", p.name)
        else:
            options = dict(
                sep=sep,
                header=header,
                names=names,
                dtype=dtype,
                str_columns=str_columns,
                text=text,
                usecols=usecols,
                skipinitialspace=skipinitialspace,
                quote_tabs=quote_tabs,
                default_sep=default_sep,
            )
            try:
                frame = _read_delimited(p, kind, enc, **options)
            except UnicodeDecodeError as e:
                if not auto_encoding:
                    with _open_bytes(p) as f:
                        raw = f.read()
                    try:
                        raw.decode("utf-8-sig" if _utf8(enc) else enc)
                    except UnicodeDecodeError as e2:
                        raise _decode_error(p, raw, enc, e2) from None
                    raise DataError(f"cannot read {what} file {p}: {_first_line(e)}") from None
                # Not UTF-8: many older files (Book-Crossing, MovieLens) are Latin-1, which decodes any byte.
                frame = _read_delimited(p, kind, "latin-1", **options)
                log.info("%s is not UTF-8: read as Latin-1.", p.name)
    except pd.errors.EmptyDataError:
        raise _empty(p, what, empty_hint) from None
    except pd.errors.ParserError as e:
        raise _parser_error(p, what, e, enc) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} file {p} as {kind.upper()}: {_first_line(e)}") from None
    if len(frame) == 0 and not allow_empty:
        if len(frame.columns) == 0:
            raise _empty(p, what, empty_hint)
        raise DataError(f"{what} file {p} has no rows (only a header).")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_parquet(p: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(p)
    except ImportError:
        raise DataError(f"reading {p.name} needs a Parquet engine: pip install pyarrow (or save as CSV).") from None


def _parser_error(p: Path, what: str, e: Exception, encoding: str) -> DataError:
    """A parse failure of delimited text, naming the separator the file seems to use when it is not the one used."""
    sep = getattr(e, "sep", None)
    last = (str(e).strip().splitlines() or [type(e).__name__])[-1][:160]
    guess = sniff_separator(_head(p, encoding))
    if sep is not None and guess and guess != sep:
        hint = f" The file looks {SEP_NAMES.get(guess, repr(guess))}-separated: pass {sep_override(guess)}."
    else:
        hint = " Check data.sep and that every row has the same number of fields."
    shown = f" with separator {sep!r}" if sep is not None else ""
    return DataError(f"cannot read {what} file {p}{shown}: {last}.{hint}")


def _read_delimited(
    p: Path,
    kind: str,
    encoding: str,
    *,
    sep: str | None,
    header: bool | str | Callable[[list[str]], bool],
    names: Sequence[str] | None,
    dtype: Any,
    str_columns: Sequence[str],
    text: bool,
    usecols: Sequence[int] | None,
    skipinitialspace: bool,
    quote_tabs: bool,
    default_sep: str,
) -> Any:
    import pandas as pd

    sep_ = _resolve_sep(p, kind, sep, encoding, default_sep)
    engine = "python" if len(sep_) > 1 and sep_ != r"\s+" else "c"
    kwargs: dict[str, Any] = {"sep": sep_, "engine": engine, "encoding": "utf-8-sig" if _utf8(encoding) else encoding}
    if engine == "c":
        # low_memory=False reads each column in one go, so a column's type does not change between chunks.
        kwargs["low_memory"] = False
    if sep_ == "\t" and not quote_tabs:
        kwargs["quoting"] = csv.QUOTE_NONE
    if skipinitialspace:
        kwargs["skipinitialspace"] = True
    if usecols is not None:
        kwargs["usecols"] = list(usecols)
    if text:
        kwargs.update(dtype=str, keep_default_na=False)
    elif dtype is not None:
        kwargs["dtype"] = dtype
    try:
        if header is False:
            frame = _name_columns(pd.read_csv(p, header=None, **kwargs), names)
            frame.attrs["sep"] = sep_
            return frame
        if str_columns and not text and dtype is None:
            head = pd.read_csv(p, nrows=0, **{k: v for k, v in kwargs.items() if k != "low_memory"}).columns
            wanted = {_norm(c) for c in str_columns if c}
            as_text = {c: str for c in head if _norm(c) in wanted}
            if as_text:
                kwargs["dtype"] = as_text
        frame = pd.read_csv(p, **kwargs)
    except pd.errors.ParserError as e:
        e.sep = sep_  # type: ignore[attr-defined]
        raise
    columns = [str(c) for c in frame.columns]
    headerless = looks_headerless(columns) if header == "auto" else header(columns) if callable(header) else False
    if headerless:
        # The first line is data: read again without a header, every column as text (ids stay exact).
        kwargs.update(dtype=str)
        if text:
            kwargs["keep_default_na"] = False
        frame = _name_columns(pd.read_csv(p, header=None, **kwargs), names)
        log.info("%s has no header row: reading its columns as %s.", p.name, ", ".join(map(str, frame.columns[:4])))
    frame.attrs["sep"] = sep_
    return frame


def _name_columns(frame: Any, names: Sequence[str] | None) -> Any:
    """Name a header-less table's columns: ``names`` (padded with ``column_<i>``), else their positions."""
    width = frame.shape[1]
    if names:
        given = [str(n) for n in names][:width]
        frame.columns = given + [f"column_{i}" for i in range(len(given), width)]
    else:
        frame.columns = [str(c) for c in frame.columns]
    return frame


__all__ = [
    "COMPRESSION",
    "SEPARATORS",
    "TABLE_EXTENSIONS",
    "TABLE_KINDS",
    "expand",
    "looks_headerless",
    "read_table",
    "read_text_file",
    "sniff_separator",
    "table_kind",
    "wrong_separator_hint",
]
