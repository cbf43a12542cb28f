"""A fraud bundle reproduces training on raw rows: preprocessing from JSON + the exported graph == eager PyTorch."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recipezoo.core.checkpoint import config_of, load_module, read
from recipezoo.export import export
from recipezoo.predict import predict
from recipezoo.runtime.tabular import OnnxFraudScorer
from recipezoo.train import run
from tests.conftest import compose_config, tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fraud") / "run"
    run(compose_config(["+recipe=fraud/tabular_mlp", *tiny("fraud"), "trainer.max_epochs=2"], out))
    return out / "checkpoints" / "best.ckpt"


def _eager_test_scores(ckpt: Path) -> tuple[np.ndarray, pd.DataFrame, object]:
    """Scores of the test split computed the training way: the DataModule's tensors through the eager network."""
    module, cfg = load_module(ckpt)
    dm = instantiate(cfg.data)
    dm.restore(OmegaConf.to_container(config_of(read(ckpt)).data_info))
    dm.setup("test")
    with torch.no_grad():
        scores = torch.cat([module.net(x_num, x_cat) for x_num, x_cat, _ in dm.eval_dataloader("test")])
    return scores.numpy().astype(np.float64), dm.split_frame("test"), module


@pytest.mark.export
def test_onnx_bundle_scores_raw_rows_like_training(trained: Path, tmp_path: Path) -> None:
    eager, frame, module = _eager_test_scores(trained)
    export(trained, "onnx", tmp_path / "onnx")
    scored = OnnxFraudScorer(tmp_path / "onnx").score(frame)  # raw rows: preprocessing applied from metadata.json
    np.testing.assert_allclose(scored["score"], eager, atol=1e-4)
    expected = module.decide(eager)
    np.testing.assert_allclose(scored["probability"], expected["probability"], atol=1e-4)
    assert np.array_equal(scored["decision"], expected["flag"])


@pytest.mark.export
def test_predict_csv_is_the_same_from_checkpoint_onnx_and_torchscript(trained: Path, tmp_path: Path) -> None:
    _, frame, _ = _eager_test_scores(trained)
    frame = frame.copy()
    frame.loc[frame.index[0], "merchant_category"] = "never_seen_before"  # a new category maps to the OOV bucket
    frame.to_csv(tmp_path / "new.csv", index=False)
    export(trained, "onnx", tmp_path / "onnx")
    export(trained, "torchscript", tmp_path / "ts")
    tables = {}
    for name, source in (("ckpt", trained), ("onnx", tmp_path / "onnx"), ("ts", tmp_path / "ts")):
        predict(source, tmp_path / "new.csv", tmp_path / f"{name}.csv")
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv")
    for name in ("onnx", "ts"):
        assert list(tables[name].columns) == ["row", "score", "probability", "decision"]
        assert len(tables[name]) == len(frame)
        np.testing.assert_allclose(tables[name]["score"], tables["ckpt"]["score"], atol=1e-4)
        np.testing.assert_allclose(tables[name]["probability"], tables["ckpt"]["probability"], atol=1e-4)
        assert (tables[name]["decision"] == tables["ckpt"]["decision"]).all()
