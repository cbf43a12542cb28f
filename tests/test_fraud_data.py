"""Fraud data: the torch-free tabular preprocessor and runtime, and the TabularDataModule's splits, loaders, errors."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.fraud.data import TabularDataModule, make_synthetic_frame
from recipezoo.runtime.tabular import (
    MissingColumnsError,
    TabularPreprocessor,
    calibrate,
    factorize_categories,
)

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "src" / "recipezoo" / "runtime" / "tabular.py"


def mixed_columns(n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Numeric (with NaN and inf), low-cardinality integer, string and boolean columns."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n)
    amount[::17] = np.nan
    amount[5] = np.inf
    return {
        "amount": amount,
        "score": rng.normal(size=n),
        "n_items": rng.integers(0, 4, n),  # 4 distinct integers: categorical
        "merchant": rng.choice(["grocery", "fuel", "travel", "crypto"], n),
        "card_present": rng.random(n) < 0.5,
    }


def write_table(frame: pd.DataFrame, path: Path) -> str:
    if path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return str(path)


def table(n: int = 400, positives: int = 40, seed: int = 0, **extra: np.ndarray) -> pd.DataFrame:
    """A small labelled table with a time column, a group column and a little signal."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, positives, replace=False)] = 1
    frame = pd.DataFrame(
        {
            "time": rng.permutation(n).astype(float),
            "customer": [f"c{i}" for i in rng.integers(0, n // 5, n)],
            "amount": rng.normal(size=n) + y,
            "merchant": rng.choice(["a", "b", "c"], n),
            "is_fraud": y,
        }
    )
    for k, v in extra.items():
        frame[k] = v
    return frame


# -- TabularPreprocessor ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scaling", ["standard", "quantile"])
def test_round_trip_through_json_gives_identical_transforms(scaling: str) -> None:
    cols = mixed_columns()
    pre = TabularPreprocessor.fit(cols, scaling=scaling, min_category_count=1)
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    new = mixed_columns(seed=1)
    new["merchant"][:3] = "never_seen"
    a, b = pre.transform(new), again.transform(new)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].dtype == np.float32 and a[1].dtype == np.int64
    assert again.numeric_features == pre.numeric_features == ["amount", "score", "amount__missing"]
    assert again.categorical_features == ["n_items", "merchant", "card_present"]
    assert again.cardinalities == pre.cardinalities == [5, 5, 3]


def test_standard_scaling_matches_hand_computed_values() -> None:
    # mean 5, population std 2.
    pre = TabularPreprocessor.fit({"x": np.array([2.0, 4, 4, 4, 5, 5, 7, 9])})
    spec = pre.to_dict()["numeric"][0]
    assert spec["mean"] == 5.0 and spec["std"] == 2.0 and spec["median"] == 4.5
    x_num, x_cat = pre.transform({"x": [5.0, 9.0, 1.0, 6.0]})
    np.testing.assert_allclose(x_num[:, 0], [0.0, 2.0, -2.0, 0.5])
    assert x_cat.shape == (4, 0)


def test_quantile_scaling_matches_hand_computed_values() -> None:
    # Training values 0..100 make the 101 quantiles exactly 0..100, so u = x / 100 inside the range.
    pre = TabularPreprocessor.fit({"x": np.arange(101, dtype=float)}, scaling="quantile")
    np.testing.assert_allclose(pre.to_dict()["numeric"][0]["quantiles"], np.arange(101.0), atol=1e-12)
    x = [50.0, 84.0, 10.0, 0.05, 100.0, 1e9, -7.0]
    expected = [statistics.NormalDist().inv_cdf(min(max(v / 100, 1e-3), 1 - 1e-3)) for v in x]
    x_num, _ = pre.transform({"x": x})
    np.testing.assert_allclose(x_num[:, 0], expected, atol=1e-6)
    # Beyond the training range values saturate at +-3.09 instead of growing without bound.
    assert x_num[5, 0] == pytest.approx(3.0902, abs=1e-4) and x_num[6, 0] == pytest.approx(-3.0902, abs=1e-4)


def test_quantile_scaling_puts_ties_in_the_middle_of_their_cdf_range() -> None:
    values = np.r_[np.zeros(50), np.arange(1, 51, dtype=float)]  # a spike of zeros, as amounts often have
    pre = TabularPreprocessor.fit({"x": values}, scaling="quantile")
    x_num, _ = pre.transform({"x": [0.0]})
    q = np.asarray(pre.to_dict()["numeric"][0]["quantiles"])
    u = ((q == 0).sum() - 1) / 2 / (len(q) - 1)  # midpoint of the tied quantiles' CDF positions
    assert x_num[0, 0] == pytest.approx(statistics.NormalDist().inv_cdf(u), abs=1e-6)


def test_missing_values_get_an_indicator_and_the_training_median() -> None:
    train = {
        "a": np.array([1.0, np.nan, 3.0, np.inf, 5.0, -np.inf, 7.0]),
        "b": ["1", "", "3", "nan", "5", None, "7"],  # strings from a CSV reader
        "c": np.arange(7.0),
    }
    pre = TabularPreprocessor.fit(train, numeric=["b"])
    assert pre.numeric_features == ["a", "b", "c", "a__missing", "b__missing"]
    medians = {s["name"]: s["median"] for s in pre.to_dict()["numeric"]}
    assert medians == {"a": 4.0, "b": 4.0, "c": 3.0}
    x_num, _ = pre.transform({"a": [np.nan, 2.0], "b": ["", "2"], "c": [np.nan, 1.0]})
    spec = {s["name"]: s for s in pre.to_dict()["numeric"]}
    # A missing value is the median, scaled; its indicator is 1.
    assert x_num[0, 0] == pytest.approx((4.0 - spec["a"]["mean"]) / spec["a"]["std"])
    np.testing.assert_array_equal(x_num[:, 3:], [[1.0, 1.0], [0.0, 0.0]])
    # "c" had no missing value in training: no indicator, but a missing value at transform is imputed and counted.
    assert x_num[0, 2] == pytest.approx((3.0 - spec["c"]["mean"]) / spec["c"]["std"])
    assert pre.last_missing_counts == {"a": 1, "b": 1, "c": 1}
    assert np.isfinite(x_num).all()


def test_categories_out_of_vocabulary_rare_and_missing_map_to_zero_and_are_counted() -> None:
    train = {"cat": ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + [None] * 2, "x": np.arange(11.0)}
    pre = TabularPreprocessor.fit(train, min_category_count=2)
    assert pre.to_dict()["categorical"][0]["vocab"] == ["a", "b"]  # most frequent first; "c" is rare
    assert pre.cardinalities == [3]
    _, x_cat = pre.transform({"cat": ["b", "a", "c", "zzz", None, "zzz"], "x": np.zeros(6)})
    np.testing.assert_array_equal(x_cat[:, 0], [2, 1, 0, 0, 0, 0])
    assert pre.last_unknown_counts == {"cat": 3}  # "c" and twice "zzz"; missing values are not "unknown"


def test_categories_compare_as_canonical_strings() -> None:
    uniques, inverse = factorize_categories(np.array([1, 1.0, "1", " 1 ", True, "true", "x", None, np.nan], object))
    assert [uniques[i] for i in inverse] == ["1", "1", "1", "1", "True", "True", "x", None, None]
    # Trained on integers (a pandas column), served from CSV text (the csv module): the same indices.
    pre = TabularPreprocessor.fit({"k": np.array([1, 2, 3] * 5), "x": np.arange(15.0)}, min_category_count=1)
    _, from_ints = pre.transform({"k": np.array([3, 1]), "x": [0.0, 0.0]})
    _, from_text = pre.transform({"k": ["3", "1.0"], "x": ["0", "0"]})
    np.testing.assert_array_equal(from_ints, from_text)


def test_column_types_are_detected_and_explicit_lists_override() -> None:
    rng = np.random.default_rng(0)
    cols = {
        "f": rng.normal(size=100),
        "few_ints": rng.integers(0, 5, 100),
        "many_ints": rng.integers(0, 1000, 100),
        "text": rng.choice(["x", "y"], 100),
        "flag": rng.random(100) < 0.5,
        "numeric_text": [str(v) for v in rng.integers(0, 500, 100)],
        "ignored": rng.normal(size=100),
    }
    pre = TabularPreprocessor.fit(cols, exclude=["ignored"], min_category_count=1)
    assert pre.numeric_columns == ["f", "many_ints", "numeric_text"]
    assert pre.categorical_features == ["few_ints", "text", "flag"]
    pre = TabularPreprocessor.fit(cols, numeric=["few_ints"], categorical=["text", "f"], min_category_count=1)
    assert "few_ints" in pre.numeric_columns and "f" in pre.categorical_features


def test_constant_columns_are_dropped_and_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    n = 50
    cols = {
        "const": np.full(n, 7.0),
        "const_text": ["same"] * n,
        "all_nan": np.full(n, np.nan),
        "ids": [f"tx{i}" for i in range(n)],  # every value unique: no category frequent enough
        "value_or_missing": np.where(np.arange(n) % 2 == 0, 1.0, np.nan),  # its missingness is the signal
        "x": np.arange(n, dtype=float),
    }
    with caplog.at_level(logging.WARNING):
        pre = TabularPreprocessor.fit(cols)
    assert pre.dropped == ["const", "const_text", "all_nan", "ids"]
    assert "constant" in pre.dropped_reasons["const"]
    for name in pre.dropped:
        assert name in caplog.text
    assert pre.numeric_features == ["value_or_missing", "x", "value_or_missing__missing"]
    # Dropped columns are not needed at transform time.
    x_num, _ = pre.transform({"value_or_missing": [1.0, np.nan], "x": [0.0, 1.0]})
    assert x_num.shape == (2, 3)


def test_missing_columns_raise_an_error_listing_them() -> None:
    pre = TabularPreprocessor.fit(mixed_columns(), min_category_count=1)
    with pytest.raises(MissingColumnsError, match="amount, merchant") as e:
        pre.transform({"score": [0.1], "n_items": [1], "card_present": [True]})
    assert isinstance(e.value, ValueError) and e.value.missing == ["amount", "merchant"]
    with pytest.raises(MissingColumnsError, match="nope"):
        TabularPreprocessor.fit(mixed_columns(), numeric=["nope"])


def test_pandas_dataframes_work_duck_typed() -> None:
    cols = mixed_columns()
    frame = pd.DataFrame(cols)
    frame["merchant"] = frame["merchant"].astype(object)
    frame.loc[3, "merchant"] = None
    a = TabularPreprocessor.fit(frame, min_category_count=1)
    b = TabularPreprocessor.fit({k: frame[k].to_numpy() for k in frame.columns}, min_category_count=1)
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.transform(frame)[1], b.transform(frame)[1])


def test_calibrate_each_kind_against_hand_computed_values() -> None:
    s = np.array([-2.0, 0.0, 1.0, 3.0])
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(calibrate(s, {"kind": "none"}), sig(s))
    np.testing.assert_allclose(calibrate(s, None), sig(s))
    np.testing.assert_allclose(calibrate(s, {"kind": "platt", "a": 2.0, "b": -1.0}), sig(2 * s - 1))
    # Temperature scaling, T = 4: platt with a = 1/T, b = 0.
    np.testing.assert_allclose(calibrate(s, {"kind": "platt", "a": 0.25, "b": 0.0}), sig(s / 4))
    iso = {"kind": "isotonic", "x": [-1.0, 0.0, 2.0], "y": [0.0, 0.2, 1.2]}
    np.testing.assert_allclose(calibrate(s, iso), [0.0, 0.2, 0.7, 1.0])  # flat outside, clipped to [0, 1]
    assert np.isfinite(calibrate(np.array([-1e4, 1e4]), {"kind": "none"})).all()
    with pytest.raises(ValueError, match="unknown calibration kind 'beta'"):
        calibrate(s, {"kind": "beta"})


TORCH_FREE = textwrap.dedent("""
    import importlib.util, json, sys
    sys.modules["torch"] = None      # any `import torch` now fails
    sys.modules["pandas"] = None
    sys.modules["recipezoo"] = None  # the file travels alone, as a bundle's loader.py
    spec = importlib.util.spec_from_file_location("loader", sys.argv[1])
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    cols = {"amount": ["1.5", "", "3", "4", "100", "7"], "merchant": ["a", "a", "b", "b", "a", "b"]}
    pre = loader.TabularPreprocessor.fit(cols, numeric=["amount"], min_category_count=1, scaling="quantile")
    pre = loader.TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    x_num, x_cat = pre.transform({"amount": ["2", "nan"], "merchant": ["b", "zzz"]})
    p = loader.calibrate(x_num[:, 0], {"kind": "platt", "a": 1.0, "b": 0.0})
    print(json.dumps({"shape": list(x_num.shape), "cat": x_cat.tolist(), "p": len(p)}))
""")


def test_runtime_imports_and_transforms_without_torch_or_pandas() -> None:
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE, str(RUNTIME)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"shape": [2, 2], "cat": [[2], [0]], "p": 2}


def _linear_onnx_bundle(
    tmp_path: Path, pre: TabularPreprocessor, **meta: object
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A hand-built ONNX model ``score = x_num @ w + x_cat @ v`` with its metadata: a bundle without torch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_num, n_cat = pre.n_num, len(pre.cardinalities)
    w = np.linspace(-1, 1, n_num).astype(np.float32).reshape(n_num, 1)
    v = np.full((n_cat, 1), 0.5, np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x_num", "w"], ["a"]),
            helper.make_node("Cast", ["x_cat"], ["cf"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["cf", "v"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["s2"]),
            helper.make_node("Reshape", ["s2", "shape"], ["score"]),
        ],
        "linear",
        [
            helper.make_tensor_value_info("x_num", TensorProto.FLOAT, ["N", n_num]),
            helper.make_tensor_value_info("x_cat", TensorProto.INT64, ["N", n_cat]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(v, "v"),
            numpy_helper.from_array(np.array([-1], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    bundle = tmp_path / f"bundle{len(list(tmp_path.glob('bundle*')))}"
    bundle.mkdir()
    onnx.save(model, str(bundle / "model.onnx"))
    meta = {
        "model_file": "model.onnx",
        "preprocessing": pre.to_dict(),
        "calibration": {"kind": "platt", "a": 0.5, "b": 0.1},
        "threshold": 0.6,
        "inputs": ["x_num", "x_cat"],
        "id_column": "tx",
        **meta,
    }
    (bundle / "metadata.json").write_text(json.dumps(meta))
    return bundle, w, v


def test_onnx_scorer_and_cli_score_raw_rows(tmp_path: Path) -> None:
    from recipezoo.runtime.tabular import OnnxFraudScorer

    frame = pd.DataFrame(mixed_columns(n=60))
    pre = TabularPreprocessor.fit(frame, min_category_count=1)
    bundle, w, v = _linear_onnx_bundle(tmp_path, pre)
    rows = frame.head(8).copy()
    rows.insert(0, "tx", [f"t{i}" for i in range(8)])
    out = OnnxFraudScorer(bundle).score(rows)
    x_num, x_cat = pre.transform(rows)
    expected = (x_num @ w + x_cat.astype(np.float32) @ v).reshape(-1)
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["probability"], 1 / (1 + np.exp(-(0.5 * expected + 0.1))), rtol=1e-5)
    np.testing.assert_array_equal(out["decision"], out["probability"] >= 0.6)

    # The CLI reads the CSV with the csv module (text values) and must agree with the DataFrame path.
    csv_path = tmp_path / "rows.csv"
    rows.to_csv(csv_path, index=False)
    cli = (
        "import runpy, sys; sys.modules['torch'] = None; sys.modules['pandas'] = None; "
        f"sys.argv = ['loader.py', {str(bundle)!r}, {str(csv_path)!r}]; "
        f"runpy.run_path({str(RUNTIME)!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "tx,score,probability,decision" and len(lines) == 9
    got = np.array([float(line.split(",")[2]) for line in lines[1:]])
    np.testing.assert_allclose(got, out["probability"], atol=2e-6)

    # As recipezoo.export writes it: inputs keyed by name, the threshold on the score scale (or none yet).
    inputs = {"x_num": {"shape": ["batch", pre.n_num]}, "x_cat": {"shape": ["batch", len(pre.cardinalities)]}}
    bundle, _, _ = _linear_onnx_bundle(tmp_path, pre, inputs=inputs, threshold=0.2, threshold_on="score")
    by_score = OnnxFraudScorer(bundle).score(rows)
    np.testing.assert_array_equal(by_score["decision"], out["score"] >= 0.2)
    bundle, _, _ = _linear_onnx_bundle(tmp_path, pre, inputs=inputs, threshold=None, threshold_on="score")
    assert not OnnxFraudScorer(bundle).score(rows)["decision"].any()


# -- TabularDataModule: splits and leakage ----------------------------------------------------------------------
def test_preprocessing_is_fitted_on_the_training_split_only(tmp_path: Path) -> None:
    frame = table(n=400)
    late = frame["time"] >= 300  # the latest quarter lands in val/test under a time split
    frame.loc[late, "amount"] = 1e6
    path = write_table(frame, tmp_path / "t.csv")
    for scaling in ("standard", "quantile"):
        dm = TabularDataModule(path=path, time_column="time", scaling=scaling)
        dm.setup()
        assert dm.split_frame("train")["amount"].max() < 100  # the extreme rows are all outside train
        spec = dm.info["preprocessing"]["numeric"][0]
        assert spec["name"] == "amount" and abs(spec["mean"]) < 1 and abs(spec["median"]) < 1 and spec["std"] < 3
        if scaling == "quantile":
            assert max(spec["quantiles"]) < 100


def test_time_split_orders_train_before_val_before_test() -> None:
    dm = TabularDataModule(synthetic=True, synthetic_rows=1000)
    dm.setup()
    t = {s: dm.split_frame(s)["time"] for s in ("train", "val", "test")}
    assert t["train"].max() <= t["val"].min() <= t["val"].max() <= t["test"].min()
    assert [len(t[s]) for s in ("train", "val", "test")] == [700, 150, 150]
    assert "time" not in dm.info["preprocessing"]["numeric_features"]  # a position in time, not a feature


def test_time_split_parses_dates(tmp_path: Path) -> None:
    frame = table(n=200, positives=20)
    frame["time"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["time"], unit="h")
    frame["time"] = frame["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    dm = TabularDataModule(path=write_table(frame, tmp_path / "t.csv"), time_column="time")
    dm.setup()
    assert dm.split_frame("train")["time"].max() <= dm.split_frame("val")["time"].min()


def test_group_split_keeps_every_group_in_one_split() -> None:
    dm = TabularDataModule(synthetic=True, synthetic_rows=2000, group_column="customer_id")
    dm.setup()
    groups = {s: set(dm.split_frame(s)["customer_id"]) for s in ("train", "val", "test")}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    counts = dm.info["split_counts"]
    assert all(counts[s]["positives"] > 0 for s in counts)
    assert 0.1 < counts["val"]["rows"] / 2000 < 0.2 and 0.1 < counts["test"]["rows"] / 2000 < 0.2


def test_stratified_split_keeps_positives_in_each_split(tmp_path: Path) -> None:
    frame = table(n=1000, positives=20)
    dm = TabularDataModule(path=write_table(frame, tmp_path / "t.csv"))
    dm.setup()
    counts = dm.info["split_counts"]
    assert {s: c["positives"] for s, c in counts.items()} == {"train": 14, "val": 3, "test": 3}
    assert sum(c["rows"] for c in counts.values()) == 1000
    assert dm.info["pos_weight"] == pytest.approx((counts["train"]["rows"] - 14) / 14)


# -- loaders and samplers -----------------------------------------------------------------------------------------
def test_balanced_sampler_balances_training_batches_only() -> None:
    torch.manual_seed(0)
    dm = TabularDataModule(synthetic=True, synthetic_rows=4000, sampler="balanced", batch_size=256)
    ys = torch.cat([b[2] for b in dm.train_dataloader()])
    assert len(ys) == 2560  # num_samples = len(train) = 2800, the last partial batch dropped
    assert 0.44 < ys.mean().item() < 0.56
    # Validation, test and eval loaders keep every row once, in order, with the data's own rate.
    for split in ("val", "test"):
        loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
        ys = torch.cat([b[2] for b in loader])
        torch.testing.assert_close(ys, dm.datasets[split].tensors[2])
        assert ys.mean().item() < 0.1
    ys = torch.cat([b[2] for b in dm.eval_dataloader("train")])
    torch.testing.assert_close(ys, dm.datasets["train"].tensors[2])


def test_ratio_sampler_and_plain_shuffling() -> None:
    torch.manual_seed(0)
    dm = TabularDataModule(synthetic=True, sampler="ratio", sampler_ratio=0.2, batch_size=256)
    assert 0.15 < torch.cat([b[2] for b in dm.train_dataloader()]).mean().item() < 0.25
    dm = TabularDataModule(synthetic=True, batch_size=256)
    x_num, x_cat, y = next(iter(dm.train_dataloader()))
    assert x_num.dtype == torch.float32 and x_cat.dtype == torch.int64 and y.dtype == torch.float32
    assert x_num.shape == (256, dm.info["n_num"]) and x_cat.shape == (256, len(dm.info["cardinalities"]))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert (x_cat < torch.tensor(dm.info["cardinalities"])).all()


def test_loaders_gather_whole_batches_identical_to_default_collation(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils.data import DataLoader

    from recipezoo.fraud import data as fraud_data

    calls = []
    original = fraud_data._GatherRows.__getitems__
    monkeypatch.setattr(
        fraud_data._GatherRows, "__getitems__", lambda self, i: calls.append(len(i)) or original(self, i)
    )
    dm = TabularDataModule(synthetic=True, synthetic_rows=500, batch_size=32)
    fast = list(dm.eval_dataloader("val"))
    slow = list(DataLoader(dm.datasets["val"], batch_size=32))  # per-row indexing + default_collate
    assert calls and max(calls) == 32  # one call per batch, not one per row
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert isinstance(a, list) and len(a) == 3
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)


# -- bad input ----------------------------------------------------------------------------------------------------
def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found: .*nope.csv"):
        TabularDataModule(path=str(tmp_path / "nope.csv")).setup()
    with pytest.raises(ConfigError, match="data.path"):
        TabularDataModule().setup()
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ConfigError, match=r"\.csv, \.tsv, \.jsonl"):
        TabularDataModule(path=str(tmp_path / "t.xlsx")).setup()


def test_missing_target_lists_the_columns_found(tmp_path: Path) -> None:
    path = write_table(table(), tmp_path / "t.csv")
    with pytest.raises(DataError, match="target column 'label' not found.*time, customer, amount, merchant, is_fraud"):
        TabularDataModule(path=path, target="label").setup()


def test_target_with_more_than_two_values_lists_them(tmp_path: Path) -> None:
    frame = table()
    frame.loc[:9, "is_fraud"] = 2
    with pytest.raises(DataError, match=r"3 distinct values \('0': .*'2': 10"):
        TabularDataModule(path=write_table(frame, tmp_path / "t.csv")).setup()


def test_single_class_target_is_rejected(tmp_path: Path) -> None:
    frame = table()
    frame["is_fraud"] = 0
    with pytest.raises(DataError, match="single value"):
        TabularDataModule(path=write_table(frame, tmp_path / "t.csv")).setup()


def test_training_split_without_positives_says_so(tmp_path: Path) -> None:
    frame = table(n=200, positives=0)
    frame.loc[frame["time"] >= 190, "is_fraud"] = 1  # fraud only at the very end: all of it in test
    with pytest.raises(DataError, match="training split .* no positive.*time_column"):
        TabularDataModule(path=write_table(frame, tmp_path / "t.csv"), time_column="time").setup()


def test_explicit_columns_that_do_not_exist_are_listed(tmp_path: Path) -> None:
    path = write_table(table(), tmp_path / "t.csv")
    with pytest.raises(ConfigError, match="numeric_columns .*: amt, fee"):
        TabularDataModule(path=path, numeric_columns=["amt", "fee", "amount"]).setup()
    with pytest.raises(ConfigError, match="drop_columns .*: zzz"):
        TabularDataModule(path=path, drop_columns=["zzz"]).setup()
    with pytest.raises(ConfigError, match="time_column='when'"):
        TabularDataModule(path=path, time_column="when").setup()


def test_unparseable_or_mixed_time_column_is_rejected(tmp_path: Path) -> None:
    frame = table(n=100, positives=10)
    frame["time"] = frame["time"].astype(object)
    frame.loc[3, "time"] = "yesterday"
    with pytest.raises(DataError, match="time column 'time' mixes numbers and text.*yesterday"):
        TabularDataModule(path=write_table(frame, tmp_path / "t.csv"), time_column="time").setup()
    frame["time"] = ["2024-01-01"] * 50 + ["soon"] * 50
    with pytest.raises(DataError, match="neither numbers nor dates.*soon"):
        TabularDataModule(path=write_table(frame, tmp_path / "t2.csv"), time_column="time").setup()


def test_nan_inf_and_constant_columns_do_not_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 300
    frame = table(n=n, positives=30, constant=np.ones(n), holes=np.where(np.arange(n) % 7 == 0, np.nan, 1.5))
    frame.loc[::11, "amount"] = np.inf
    with caplog.at_level(logging.INFO):
        dm = TabularDataModule(path=write_table(frame, tmp_path / "t.csv"))
        dm.setup()
    assert "constant" in caplog.text and "Dropped 1 column" in caplog.text
    assert "constant" in dm.info["preprocessing"]["dropped"]
    assert {"amount__missing", "holes__missing"} <= set(dm.info["numeric_features"])
    assert all(torch.isfinite(ds.tensors[0]).all() for ds in dm.datasets.values())


def test_positive_label_rules(tmp_path: Path) -> None:
    frame = table()
    frame["is_fraud"] = np.where(frame["is_fraud"] == 1, "fraud", "legit")
    dm = TabularDataModule(path=write_table(frame, tmp_path / "words.csv"))
    assert dm.info["positive_label"] == "fraud" and dm.info["split_counts"]["train"]["positives"] == 28
    frame["is_fraud"] = np.where(frame["is_fraud"] == "fraud", "A", "B")
    path = write_table(frame, tmp_path / "ab.csv")
    with pytest.raises(ConfigError, match="set data.positive_label"):
        TabularDataModule(path=path).setup()
    assert TabularDataModule(path=path, positive_label="A").info["split_counts"]["test"]["positives"] == 6
    with pytest.raises(ConfigError, match="positive_label='C' is not a value"):
        TabularDataModule(path=path, positive_label="C").setup()
    frame["is_fraud"] = frame["is_fraud"] == "A"  # booleans: True is positive
    assert TabularDataModule(path=write_table(frame, tmp_path / "b.csv")).info["positive_label"] is True


def test_settings_are_checked_early() -> None:
    with pytest.raises(ConfigError, match="sampler"):
        TabularDataModule(sampler="smote")
    with pytest.raises(ConfigError, match="scaling"):
        TabularDataModule(scaling="minmax")
    with pytest.raises(ConfigError, match="val_fraction"):
        TabularDataModule(val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ConfigError, match="amount are in both"):
        TabularDataModule(numeric_columns=["amount"], categorical_columns=["amount"])
    with pytest.raises(ConfigError, match="target and data.time_column are both 'time'"):
        TabularDataModule(target="time", time_column="time")


# -- formats, raw rows, restore, synthetic twin -----------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_file_formats_read_the_same(tmp_path: Path, suffix: str) -> None:
    dm = TabularDataModule(path=write_table(table(), tmp_path / f"t{suffix}"), time_column="time")
    ref = TabularDataModule(path=write_table(table(), tmp_path / "ref.csv"), time_column="time")
    dm.setup(), ref.setup()
    for s in ("train", "val", "test"):
        for got, want in zip(dm.datasets[s].tensors, ref.datasets[s].tensors):
            torch.testing.assert_close(got, want)


def test_raw_splits_match_the_loaders() -> None:
    dm = TabularDataModule(synthetic=True, synthetic_rows=500, id_column="tx_id")
    raw = dm.raw_splits()
    for s, (cols, y) in raw.items():
        assert list(cols.columns) == dm.preprocessor.input_columns
        assert "tx_id" not in cols.columns and "is_fraud" not in cols.columns
        np.testing.assert_array_equal(y, dm.datasets[s].tensors[2].numpy())
        x_num, _ = dm.preprocessor.transform(cols)
        np.testing.assert_array_equal(x_num, dm.datasets[s].tensors[0].numpy())
    test_rows = dm.split_frame("test")
    assert "tx_id" in test_rows.columns and "is_fraud" in test_rows.columns
    np.testing.assert_array_equal(test_rows["is_fraud"].to_numpy(), raw["test"][1])


def test_restore_reuses_the_checkpoints_preprocessing(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    first = TabularDataModule(path=write_table(table(seed=0), tmp_path / "a.csv"), scaling="quantile")
    info = OmegaConf.to_container(OmegaConf.create(first.info))  # as it travels through the run config
    shifted = table(seed=1)
    shifted["amount"] += 50
    second = TabularDataModule(path=write_table(shifted, tmp_path / "b.csv"), scaling="standard")
    second.restore(OmegaConf.create(info))  # a DictConfig, as the run config holds it
    assert second.info["preprocessing"] == first.info["preprocessing"]  # not refitted on the new data
    assert second.info["positive_label"] == 1
    missing = shifted.drop(columns=["merchant"])
    third = TabularDataModule(path=write_table(missing, tmp_path / "c.csv"), restore_info=info)
    with pytest.raises(DataError, match="lacks column.*merchant.*checkpoint"):
        third.setup()


def test_synthetic_twin_is_deterministic_with_a_rare_positive_class() -> None:
    a = make_synthetic_frame(4000, 0.03, seed=7)
    pd.testing.assert_frame_equal(a, make_synthetic_frame(4000, 0.03, seed=7))
    assert not a.equals(make_synthetic_frame(4000, 0.03, seed=8))
    assert a["is_fraud"].mean() == pytest.approx(0.03, abs=0.002)
    # Fraud drifts: more frequent in the second half of the period than in the first.
    early = a["time"] < a["time"].median()
    assert a.loc[~early, "is_fraud"].mean() > a.loc[early, "is_fraud"].mean()
    dm = TabularDataModule(synthetic=True, seed=7)
    info = dm.info
    json.dumps(info)
    assert set(info) >= {"preprocessing", "n_num", "cardinalities", "pos_weight", "positive_rate", "positive_label"}
    assert info["positive_label"] == 1 and 0.01 < info["positive_rate"] < 0.05


def test_synthetic_twin_follows_a_recipes_schema() -> None:
    dm = TabularDataModule(
        synthetic=True,
        synthetic_rows=300,
        target="Class",
        time_column="Time",
        numeric_columns=["V1", "V2", "Amount"],
        drop_columns=["not_in_the_twin"],
    )
    assert {"V1", "V2", "Amount"} <= set(dm.info["numeric_features"]) and dm.info["target"] == "Class"
    assert dm.split_frame("train")["Time"].max() <= dm.split_frame("test")["Time"].min()
