"""The fraud GBDT baseline can be kept when it wins: saved as exact ONNX trees at training time, exported with
``scripts/export.py ... model=baseline`` into a bundle that predict.py, the runtime and loader.py read like a deep
model's bundle."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.ensemble import HistGradientBoostingClassifier

from recipezoo.core.checkpoint import config_of, read
from recipezoo.core.errors import ConfigError
from recipezoo.export import export
from recipezoo.fraud import gbdt_onnx
from recipezoo.runtime.tabular import OnnxFraudScorer
from recipezoo.train import run
from tests.cli_harness import ROOT, assert_user_error, cli
from tests.conftest import compose_config, tiny

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny fraud run, with the GBDT it fitted beside the deep model caught on its way."""
    out = tmp_path_factory.mktemp("fraud") / "run"
    fitted: list = []
    fit = HistGradientBoostingClassifier.fit

    def catch(self, *args, **kwargs):
        fitted.append(self)
        return fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HistGradientBoostingClassifier, "fit", catch)
        summary = run(compose_config(["+recipe=fraud/tabular_mlp", *tiny("fraud"), "trainer.max_epochs=1"], out))
    ckpt = Path(summary["best_checkpoint"])
    cfg = config_of(read(ckpt))
    dm = instantiate(cfg.data)
    dm.restore(OmegaConf.to_container(cfg.data_info))
    dm.setup("test")
    x_num, x_cat = (np.concatenate(a) for a in zip(*((n.numpy(), c.numpy()) for n, c, _ in dm.eval_dataloader("test"))))
    return {"summary": summary, "ckpt": ckpt, "clf": fitted[-1], "frame": dm.split_frame("test"), "x": (x_num, x_cat)}


def test_summary_has_val_metrics_and_the_saved_trees(trained: dict) -> None:
    base = trained["summary"]["baseline"]
    for name in ("val/auprc", "val/roc_auc", "val/f1", "val/threshold"):  # the deep model's names
        assert np.isfinite(base["val"][name]), name
    assert "test/auprc" in base["test"] and base["threshold_on"] == "score"
    artifact = Path(base["artifact"])
    assert artifact == Path(trained["summary"]["run_dir"]).resolve() / "baseline" / "gbdt.onnx" and artifact.is_file()
    assert base["artifact_max_abs_diff"] <= 1e-6
    facts = gbdt_onnx.read_facts(artifact)
    assert facts["model"] == "HistGradientBoostingClassifier" and facts["calibration"] == {"kind": "none"}
    assert facts["threshold"] == pytest.approx(base["threshold"], rel=1e-6)


def _proba(clf: HistGradientBoostingClassifier, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
    return clf.predict_proba(np.hstack([x_num, x_cat]))[:, 1]


def _session_scores(model, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {"x_num": x_num.astype(np.float32), "x_cat": x_cat.astype(np.int64)}
    return session.run(None, {k: v for k, v in feed.items() if k in names})[0]


@pytest.mark.parametrize("case", ["native", "ordinal", "numeric_only", "no_split"])
def test_onnx_trees_equal_predict_proba(case: str) -> None:
    """Native categorical splits (unseen codes included), a vocabulary too large for them, no categorical column,
    and trees that never split: the ONNX log-odds are scikit-learn's to float64 rounding."""
    rng = np.random.default_rng(0)
    n = 3000
    x_num = rng.normal(size=(n, 3)).astype(np.float32)
    x_cat = np.stack([rng.integers(0, 12, n), rng.integers(0, 4, n)], axis=1)
    if case == "numeric_only":
        x_cat = x_cat[:, :0]
    if case == "ordinal":
        x_cat[:, 0] = rng.integers(0, 400, n)
    logit = x_num[:, 0] + (np.isin(x_cat[:, 0], [1, 4, 7]) if x_cat.shape[1] else 0) + rng.normal(size=n)
    y = (logit > 1.2).astype(int)
    native = np.array([False] * 3 + ([case == "native", True] if x_cat.shape[1] else []))
    clf = HistGradientBoostingClassifier(
        categorical_features=native if native.any() else None,
        max_iter=40,
        random_state=0,
        **({"min_samples_leaf": n} if case == "no_split" else {}),
    ).fit(np.hstack([x_num, x_cat])[:2000], y[:2000])
    if x_cat.shape[1]:
        x_cat[-50:, 1] = rng.integers(4, 9, 50)  # codes the trees never saw: scikit-learn's missing-value way
    got = _session_scores(gbdt_onnx.to_onnx(clf, 3, x_cat.shape[1]), x_num, x_cat)
    np.testing.assert_allclose(got, clf.decision_function(np.hstack([x_num, x_cat])), rtol=0, atol=1e-12)
    np.testing.assert_allclose(1 / (1 + np.exp(-got)), _proba(clf, x_num, x_cat), rtol=0, atol=1e-12)


def test_baseline_bundle_scores_like_the_gbdt(trained: dict, tmp_path: Path) -> None:
    clf, frame, (x_num, x_cat) = trained["clf"], trained["frame"], trained["x"]
    meta = export(trained["ckpt"], "onnx", tmp_path / "gbdt", model="baseline")
    deep = export(trained["ckpt"], "onnx", tmp_path / "deep")
    assert meta["model"] == "baseline" and meta["model_name"] == "HistGradientBoostingClassifier"
    assert deep["model"] == "deep" and set(deep) - {"torch_version"} <= set(meta)  # the same bundle format
    for key in ("task", "inputs", "outputs", "preprocessing", "positive_label", "threshold_on", "n_num"):
        assert meta[key] == deep[key], key
    expected = _proba(clf, x_num, x_cat)
    threshold = trained["summary"]["baseline"]["threshold"]
    assert meta["threshold"] == pytest.approx(threshold, rel=1e-6)
    decisions = clf.decision_function(np.hstack([x_num, x_cat])) >= meta["threshold"]

    scored = OnnxFraudScorer(tmp_path / "gbdt").score(frame)  # the runtime, on the raw rows
    np.testing.assert_allclose(scored["probability"], expected, rtol=0, atol=1e-9)
    assert np.array_equal(scored["decision"], decisions) and 0 < decisions.sum() < len(decisions)

    frame.to_csv(tmp_path / "rows.csv", index=False)
    proc = cli(
        [f"ckpt={tmp_path / 'gbdt'}", f"input={tmp_path / 'rows.csv'}", f"output={tmp_path / 'pred.csv'}"],
        script="scripts/predict.py",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "pred.csv")
    np.testing.assert_allclose(table["probability"], expected, rtol=0, atol=1e-9)
    assert np.array_equal(table["decision"].to_numpy() == 1, decisions)

    loader = subprocess.run(  # the bundle's own torch-free loader
        [sys.executable, str(tmp_path / "gbdt" / "loader.py"), str(tmp_path / "gbdt"), str(tmp_path / "rows.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loader.returncode == 0, loader.stderr[-2000:]
    table = pd.read_csv(io.StringIO(loader.stdout))
    np.testing.assert_allclose(table["probability"], expected, rtol=0, atol=1e-6)
    assert np.array_equal(table["decision"].to_numpy() == 1, decisions)


def test_torchscript_is_refused_with_the_onnx_command(trained: dict, tmp_path: Path) -> None:
    ckpt = trained["ckpt"]
    args = [f"ckpt={ckpt}", "model=baseline", "format=torchscript", f"output={tmp_path / 'ts'}"]
    line = assert_user_error(cli(args, script="scripts/export.py", cwd=tmp_path), "TorchScript", "format=onnx")
    assert not (tmp_path / "ts").exists()
    command = line.split(": python scripts/export.py ", 1)[1]
    proc = cli(command, script="scripts/export.py", cwd=tmp_path)  # pasted into bash as suggested
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "ts" / "metadata.json").read_text())
    assert meta["model"] == "baseline" and meta["format"] == "onnx"


def _copy_run(trained: dict, tmp_path: Path, summary: dict | None) -> Path:
    """The run's checkpoint in a new run folder, with ``summary`` as its summary.json (None: none)."""
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(trained["ckpt"], ckpt)
    if summary is not None:
        (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    return ckpt


@pytest.mark.parametrize(
    "summary, says",
    [
        (None, "has none"),
        ({"recipe": "fraud/tabular_mlp"}, "reports no baseline"),
        ({"baseline": {"name": "HistGradientBoostingClassifier", "val": {}}}, "was not saved"),
    ],
)
def test_missing_baseline_is_one_error_naming_the_fix(
    trained: dict, tmp_path: Path, summary: dict | None, says: str
) -> None:
    ckpt = _copy_run(trained, tmp_path, summary)
    with pytest.raises(ConfigError, match=says) as e:
        export(ckpt, "onnx", tmp_path / "out", model="baseline")
    # The fix is a command to paste (the command-line error path is the TorchScript test's).
    assert f"python scripts/export.py ckpt={ckpt} model=deep" in str(e.value) and not (tmp_path / "out").exists()


def test_a_moved_run_and_a_checkpoint_baseline(trained: dict, tmp_path: Path) -> None:
    """A run folder moved after training still finds its trees; a baseline saved as a checkpoint of the same task
    (the fine-tuning recipes' linear probe) is exported like a checkpoint, and marked as the baseline."""
    summary = json.loads((Path(trained["summary"]["run_dir"]) / "summary.json").read_text())
    ckpt = _copy_run(trained, tmp_path, summary)
    shutil.copytree(Path(summary["run_dir"]) / "baseline", tmp_path / "run" / "baseline")
    moved = dict(summary, run_dir=str(tmp_path / "elsewhere"))
    moved["baseline"] = dict(summary["baseline"], artifact=str(tmp_path / "elsewhere" / "baseline" / "gbdt.onnx"))
    (tmp_path / "run" / "summary.json").write_text(json.dumps(moved))
    assert export(ckpt, "onnx", tmp_path / "gbdt", model="baseline")["model"] == "baseline"

    probe = dict(summary, baseline={"name": "linear_probe", "artifact": str(ckpt)})
    (tmp_path / "run" / "summary.json").write_text(json.dumps(probe))
    meta = export(ckpt, "onnx", None, model="baseline")
    assert meta["model"] == "baseline" and meta["model_name"] == "linear_probe" and meta["parity"]["passed"]
    assert (tmp_path / "run" / "export" / "baseline_onnx" / "model.onnx").is_file()


def test_help_names_the_model_option() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "model=deep|baseline" in proc.stdout
