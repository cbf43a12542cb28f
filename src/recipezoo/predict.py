"""Predict with a checkpoint or an exported bundle: the function behind ``scripts/predict.py``.

The task decides what ``input`` is and what the CSV holds: images -> label and class probabilities (vision);
a table -> score, calibrated probability and decision per row (fraud detection); texts (a .txt file, one example
per line, or a table's text column) -> label and probabilities, or tags and entities per word (NLP); users -> their
top-``k`` items, or (user, item) pairs -> a score each (recommendation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from recipezoo.core.errors import ConfigError

# LightningModule class -> task name, as export metadata spells it.
TASKS = {
    "ImageClassifier": "image_classification",
    "FraudDetector": "fraud_detection",
    "TextClassifier": "text_classification",
    "TokenClassifier": "token_classification",
    "Recommender": "recommendation",
    "AudioClassifier": "audio_classification",
    "SpeechRecognizer": "speech_recognition",
}


def task_of(ckpt: str | Path) -> str:
    """The task of a checkpoint (from its config) or of an export bundle (from its metadata)."""
    p = Path(os.path.expanduser(str(ckpt)))
    if p.suffix == ".ckpt":
        from recipezoo.core.checkpoint import config_of, read

        target = str(config_of(read(p)).model.get("_target_", ""))
        task = TASKS.get(target.rsplit(".", 1)[-1])
    else:
        meta = (p if p.is_dir() else p.parent) / "metadata.json"
        task = json.loads(meta.read_text()).get("task") if meta.is_file() else None
        if not meta.is_file():
            raise ConfigError(f"{p} is neither a .ckpt nor an export folder with metadata.json.")
    if task not in TASKS.values():
        raise ConfigError(f"{p}: no predictor for task {task!r}; known tasks: {', '.join(TASKS.values())}.")
    return task


def predict(
    ckpt: str | Path,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
    column: str | None = None,
    k: int = 10,
) -> list[dict[str, Any]]:
    """Predict every example of ``input`` and write one CSV row each to ``output`` (never overwritten unless asked).

    ``column`` names the text column of a table input (text tasks; default: the one the model was trained on);
    ``k`` is the length of each user's list (recommendation). Returns the rows written.
    """
    task = task_of(ckpt)
    if task in ("text_classification", "token_classification"):
        from recipezoo.nlp.predict import predict_texts

        return predict_texts(ckpt, input, output, batch_size, overwrite, column)
    if task == "recommendation":
        from recipezoo.recsys.predict import recommend_table

        return recommend_table(ckpt, input, output, k, batch_size, overwrite)
    if task == "fraud_detection":
        from recipezoo.fraud.predict import predict_table

        return predict_table(ckpt, input, output, batch_size, overwrite)
    if task in ("audio_classification", "speech_recognition"):
        from recipezoo.speech.predict import predict_audio

        return predict_audio(ckpt, input, output, batch_size, overwrite)
    from recipezoo.vision.predict import predict_images

    return predict_images(ckpt, input, output, batch_size, overwrite)


def predict_paths(ckpt: str | Path, paths: Any) -> Any:
    """Class probabilities ``(N, num_classes)`` for image paths (a shortcut for tests and notebooks)."""
    from recipezoo.vision.predict import predict_paths as vision_predict_paths

    return vision_predict_paths(ckpt, paths)
