"""Fraud prediction: score every row of a table with a checkpoint or an exported bundle, into a CSV.

The output has, per input row, the id column (when training named one and the table has it) or the row number,
then ``score`` (the model's raw output), ``probability`` (calibrated on validation) and ``decision`` (1 when the
score reaches the threshold chosen on validation). Preprocessing is the one fitted at training time, from the
checkpoint or the bundle: never refitted on the rows being scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import DataError, new_output_file
from recipezoo.runtime.tabular import MissingColumnsError, TabularPreprocessor, calibrate

log = logging.getLogger("recipezoo")

TASKS = ("fraud_detection",)


def _score_with_torch(net: Any, x_num: np.ndarray, x_cat: np.ndarray, batch_size: int) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x_num), batch_size):
            s = net(torch.from_numpy(x_num[i : i + batch_size]), torch.from_numpy(x_cat[i : i + batch_size]))
            out.append(s.float().reshape(-1).numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def score_frame(ckpt: str | Path | Loaded, frame: Any, batch_size: int = 4096) -> tuple[dict[str, np.ndarray], dict]:
    """``{"score", "probability", "decision"}`` arrays for the rows of ``frame``, and the model's metadata."""
    loaded = load(ckpt, TASKS)
    try:
        if loaded.is_checkpoint:
            info = dict(loaded.config.data_info)
            pre = TabularPreprocessor.from_dict(info["preprocessing"])
            scores = _score_with_torch(loaded.module.net, *pre.transform(frame), batch_size)
            d = loaded.module.decide(scores)
            return {"score": d["score"], "probability": d["probability"], "decision": d["flag"]}, info
        meta = loaded.metadata
        if loaded.format == "onnx":
            from recipezoo.runtime.tabular import OnnxFraudScorer

            return OnnxFraudScorer(loaded.bundle).score(frame, batch_size), meta
        pre = TabularPreprocessor.from_dict(meta["preprocessing"])
        scores = _score_with_torch(loaded.model, *pre.transform(frame), batch_size)
        threshold = meta.get("threshold")
        decision = scores >= (np.nan if threshold is None else float(threshold))
        return {"score": scores, "probability": calibrate(scores, meta.get("calibration")), "decision": decision}, meta
    except MissingColumnsError as e:
        raise DataError(str(e)) from None


def predict_table(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 4096,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Score every row of ``input`` (CSV/TSV/JSON lines/Parquet) and write ``output``; returns the rows."""
    from recipezoo.fraud.data import read_table

    out = new_output_file(output, overwrite)
    frame = read_table(input)
    result, info = score_frame(ckpt, frame, max(1, int(batch_size)))
    id_column = info.get("id_column")
    ids = frame[id_column].tolist() if id_column and id_column in frame else list(range(len(frame)))
    import pandas as pd

    table = pd.DataFrame(
        {
            id_column if id_column and id_column in frame else "row": ids,
            "score": result["score"],
            "probability": result["probability"],
            "decision": np.asarray(result["decision"]).astype(int),
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    log.info("Scored %d rows (%d flagged) into %s", len(table), int(table["decision"].sum()), out)
    return table.to_dict("records")
