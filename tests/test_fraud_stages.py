"""Fraud data stages alone (column check, binary target, splits, features, sampler) and the table settings
``data.sep`` / ``data.encoding`` through :class:`TabularDataModule`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pandas as pd
import pytest
import torch

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data import DataModuleContract
from recipezoo.fraud import stages
from recipezoo.fraud.data import TabularDataModule, read_table
from recipezoo.fraud.datasets import collate_rows, train_sampler
from recipezoo.fraud.models import TabularMLP
from recipezoo.fraud.task import FraudDetector


def _bank_like(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small table shaped like the UCI bank-marketing one: numbers, categories, a yes/no target ``y``."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    balance = rng.normal(1500, 3000, n).round()
    job = rng.choice(["admin.", "services", "technician", "retired"], n)
    month = rng.choice(["jan", "may", "oct"], n)
    duration = rng.exponential(250, n).round()
    y = np.where(duration + 300 * (job == "retired") + rng.normal(0, 100, n) > 500, "yes", "no")
    return pd.DataFrame({"age": age, "job": job, "balance": balance, "month": month, "duration": duration, "y": y})


def _write_semicolon_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep=";", index=False, quoting=2)  # quoted strings, as the UCI file writes them
    return path


# -- reader: data.sep and data.encoding ---------------------------------------------------------------------------
def test_semicolon_csv_with_yes_no_target_trains(tmp_path: Path) -> None:
    path = _write_semicolon_csv(_bank_like(), tmp_path / "bank.csv")
    assert path.read_text().splitlines()[0].startswith('"age";"job"')
    dm = TabularDataModule(path=str(path), target="y", batch_size=64, min_category_count=1)
    assert isinstance(dm, DataModuleContract)
    dm.setup()
    info = dm.info
    assert dm.positive_label == "yes" and info["positive_label"] == "yes"
    assert info["numeric_features"] and info["categorical_features"]
    assert "job" in info["categorical_features"] and "y" not in info["numeric_features"] + info["categorical_features"]
    assert sum(c["rows"] for c in info["split_counts"].values()) == 400

    torch.manual_seed(0)
    net = TabularMLP(info["n_num"], info["cardinalities"], hidden=(16,))
    module = FraudDetector(net, partial(torch.optim.AdamW, lr=3e-3), data_pos_weight=info["pos_weight"])
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    assert module.threshold is not None and np.isfinite(module.threshold)
    assert np.isfinite(float(trainer.callback_metrics["val/loss"]))


def test_explicit_separator_and_auto_sniffing_agree(tmp_path: Path) -> None:
    path = _write_semicolon_csv(_bank_like(40), tmp_path / "bank.csv")
    auto = read_table(path)
    explicit = read_table(path, sep=";")
    assert list(auto.columns) == ["age", "job", "balance", "month", "duration", "y"]
    pd.testing.assert_frame_equal(auto, explicit)
    a = TabularDataModule(path=str(path), target="y", sep=";").load_frame()
    pd.testing.assert_frame_equal(a, auto)


def test_latin1_file_reads_with_data_encoding(tmp_path: Path) -> None:
    frame = _bank_like(60)
    frame["city"] = np.where(np.arange(60) % 2, "Setúbal", "Évora")
    path = tmp_path / "latin1.csv"
    path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    dm = TabularDataModule(path=str(path), target="y", encoding="latin-1", min_category_count=1)
    read = dm.load_frame()
    assert set(read["city"]) == {"Setúbal", "Évora"}
    dm.setup()
    assert "city" in dm.info["categorical_features"]
    # Strict UTF-8 names the line and the byte, and the setting that fixes it.
    with pytest.raises(DataError, match=r"not valid utf-8: byte 0x.. on line 2.*data.encoding=latin-1"):
        TabularDataModule(path=str(path), target="y", encoding="utf-8").load_frame()
    # The default (auto) falls back on Latin-1.
    assert set(TabularDataModule(path=str(path), target="y").load_frame()["city"]) == {"Setúbal", "Évora"}


def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _bank_like(20).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        TabularDataModule(path=str(path), target="y", encoding="klingon").load_frame()


def test_conf_carries_sep_and_encoding() -> None:
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "fraud" / "tabular.yaml")
    assert conf.sep == "auto" and conf.encoding == "auto"


# -- stages -------------------------------------------------------------------------------------------------------
def test_check_columns_lists_what_it_found() -> None:
    frame = pd.DataFrame({"when": [1], "amount": [2.0], "is_fraud": [0]})
    stages.check_columns(
        frame, "is_fraud", where="t", named={"time_column": "when"}, listed={"numeric_columns": ["amount"]}
    )
    with pytest.raises(DataError, match="target column 'fraud' not found in t; its columns are: when, amount"):
        stages.check_columns(frame, "fraud", where="t")
    with pytest.raises(ConfigError, match="data.group_column='cust' is not a column of t"):
        stages.check_columns(frame, "is_fraud", where="t", named={"group_column": "cust"})
    with pytest.raises(ConfigError, match="data.categorical_columns names column.*: a, b"):
        stages.check_columns(frame, "is_fraud", where="t", listed={"categorical_columns": ["a", "amount", "b"]})
    stages.check_columns(frame, "is_fraud", where="t", listed={"drop_columns": ["zzz"]}, optional=["drop_columns"])
    one = pd.DataFrame({"a;b;is_fraud": ["1;2;0"]})
    with pytest.raises(DataError, match="another delimiter"):
        stages.check_columns(one, "is_fraud", where="t")


def test_binary_target_infers_the_positive_class_and_drops_missing() -> None:
    frame = pd.DataFrame({"y": ["no", "yes", None, "no"], "x": [1, 2, 3, 4]})
    out, y, label = stages.binary_target(frame, "y", None, where="t")
    assert label == "yes" and y.tolist() == [0, 1, 0] and out["x"].tolist() == [1, 2, 4]
    _, y, label = stages.binary_target(pd.DataFrame({"y": [0, 1, 1]}), "y", None, where="t")
    assert label == 1 and y.tolist() == [0, 1, 1]
    _, y, label = stages.binary_target(pd.DataFrame({"y": ["a", "b"]}), "y", "a", where="t")
    assert label == "a" and y.tolist() == [1, 0]
    with pytest.raises(ConfigError, match="set data.positive_label"):
        stages.binary_target(pd.DataFrame({"y": ["a", "b"]}), "y", None, where="t")
    with pytest.raises(DataError, match="single value"):
        stages.binary_target(pd.DataFrame({"y": [1, 1]}), "y", None, where="t")
    # Scoring new data with a checkpoint's label: one class is allowed.
    _, y, _ = stages.binary_target(pd.DataFrame({"y": [0, 0]}), "y", 1, where="t", restored=True)
    assert y.tolist() == [0, 0]


def test_split_rows_by_time_group_and_at_random() -> None:
    n = 200
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"t": rng.permutation(n).astype(float), "g": rng.integers(0, 40, n)})
    y = (rng.random(n) < 0.2).astype(np.int64)
    common = {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 1, "where": "t"}
    parts, by = stages.split_rows(frame, y, time_column="t", group_column=None, **common)
    assert by == "time column 't'" and [len(parts[s]) for s in ("train", "val", "test")] == [140, 30, 30]
    assert frame["t"].iloc[parts["train"]].max() < frame["t"].iloc[parts["val"]].min()
    parts, by = stages.split_rows(frame, y, time_column=None, group_column="g", **common)
    assert by == "groups of 'g'"
    seen = [set(frame["g"].iloc[parts[s]]) for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    parts, by = stages.split_rows(frame, y, time_column=None, group_column=None, **common)
    assert by.startswith("a stratified random split")
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(n))
    with pytest.raises(DataError, match="too few or too large"):
        stages.split_rows(frame.assign(g=0), y, time_column=None, group_column="g", **common)
    with pytest.raises(DataError, match="mixes numbers and text"):
        stages.split_rows(frame.assign(t=["1"] * (n - 1) + ["later"]), y, time_column="t", group_column=None, **common)


def test_feature_columns_leave_out_position_columns_unless_listed() -> None:
    frame = pd.DataFrame(columns=["id", "t", "g", "a", "b", "y"])
    got = stages.feature_columns(frame, target="y", id_column="id", drop_columns=["b"], position_columns=("t", "g"))
    assert got == ["a"]
    got = stages.feature_columns(frame, target="y", explicit=["t"], position_columns=("t", "g"))
    assert got == ["id", "t", "a", "b"]


def test_train_sampler_and_collate() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert train_sampler(y, "none", 0.1) is None
    assert train_sampler(np.zeros(5, np.int64), "balanced", 0.1) is None
    weights = train_sampler(y, "balanced", 0.1).weights
    assert float(weights[y == 1].sum()) == pytest.approx(0.5)
    weights = train_sampler(y, "ratio", 0.2).weights
    assert float(weights[y == 1].sum()) == pytest.approx(0.2)
    batch = collate_rows([(torch.tensor([1.0]), torch.tensor(0)), (torch.tensor([2.0]), torch.tensor(1))])
    assert batch[0].shape == (2, 1)
