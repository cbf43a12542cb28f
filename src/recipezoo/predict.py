"""Predict with a checkpoint or an exported bundle: the function behind ``scripts/predict.py``.

The model's task (looked up in :mod:`recipezoo.core.registry`) decides what ``input`` is and what the CSV holds, by
its registered predictor: e.g. images -> label and class probabilities; a table -> score, calibrated probability and
decision per row (fraud detection); texts -> label and probabilities, or tags and entities per word; users -> their
top-``k`` items, or (user, item) pairs -> a score each (recommendation).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipezoo.core import bundle, outputs
from recipezoo.core.errors import ConfigError, DataError, UserError


def task_of(ckpt: str | Path) -> str:
    """The task of a checkpoint (from its config) or of an export bundle (from its metadata)."""
    return bundle.task_of(ckpt).name


def predict(
    ckpt: str | Path,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
    column: str | None = None,
    k: int = 10,
    encoding: str | None = None,
) -> list[dict[str, Any]]:
    """Predict every example of ``input`` and write one CSV row each to ``output``.

    ``output`` is never overwritten unless ``overwrite`` is set and an earlier predict wrote it (see
    :mod:`recipezoo.core.outputs`). ``column`` names the text column of a table input (text tasks; default: the one
    the model was trained on); ``k`` is the length of each user's list (recommendation); ``encoding`` is the text
    encoding of a text or table input (default UTF-8); a task's predictor gets the options it takes. Returns the
    rows written.
    """
    fn = bundle.task_of(ckpt).predictor_fn()
    params = inspect.signature(fn).parameters
    options = {name: value for name, value in (("column", column), ("k", k)) if name in params}
    with contextlib.ExitStack() as stack:
        source: str | Path = input
        if encoding is not None:
            if "encoding" in params:
                options["encoding"] = encoding
            else:  # the predictor reads UTF-8: give it a UTF-8 copy of the file
                source = stack.enter_context(_as_utf8(Path(input).expanduser(), encoding))
        try:
            rows = fn(ckpt, source, output, batch_size=batch_size, overwrite=overwrite, **options)
        except UserError as e:
            if "data.encoding" not in str(e):
                raise
            # The data layer's advice names the training option (data.encoding=...); here the option is encoding=.
            raise type(e)(str(e).replace("data.encoding", "encoding")) from None
    outputs.record(output)
    return rows


@contextlib.contextmanager
def _as_utf8(path: Path, encoding: str) -> Iterator[Path]:
    """A temporary UTF-8 copy of the text file ``path`` read as ``encoding`` (same name, so its suffix still says
    what kind of file it is)."""
    import codecs
    import tempfile

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'; e.g. encoding=latin-1 or encoding=cp1252.") from None
    if not path.is_file():
        raise ConfigError(f"encoding= applies to a text file; {path} is not one (omit encoding=).")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path} is not valid {encoding}: byte 0x{raw[e.start]:02x} on line {line} cannot be decoded. Pass the "
            f"file's encoding (encoding=latin-1, cp1252, ...), or re-save it as UTF-8."
        ) from None
    with tempfile.TemporaryDirectory(prefix="recipezoo-utf8-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text, encoding="utf-8")
        yield copy


def predict_paths(ckpt: str | Path, paths: Any) -> Any:
    """Class probabilities ``(N, num_classes)`` for image paths (a shortcut for tests and notebooks)."""
    return bundle.task_of(ckpt).function("predict_paths")(ckpt, paths)
