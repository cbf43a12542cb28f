"""Tabular columns that must not be features: row keys (ids, row numbers, sorted counters) and raw dates are detected
on the training split, left out of every model's features with one log line, kept on request, and carried through
checkpoints, prediction and a whole run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recipezoo.core.errors import ConfigError
from recipezoo.fraud import stages
from recipezoo.fraud.baseline import gbdt
from recipezoo.fraud.data import TabularDataModule

N = 60  # rows of the tiny frames: enough for the "unique per row" and "sorted" rules (MIN_ROWS_FOR_KEYS = 30)
ID_REASON = "unique per row (integers)"


def reason(name: str, values: object) -> str | None:
    return stages.exclusion_reason(name, pd.Series(values))


# -- names -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["id", "ID", "index", "row", "row_number", "RowNumber", "rowid", "Unnamed: 0", "uuid", "tx_uuid", "policy_id",
     "customerId", "CustomerID", "claim_no", "account_nr", "policy_number", "PolicyNumber", "policynumber", "number"],
)  # fmt: skip
def test_names_that_say_key(name: str) -> None:
    assert stages.id_like_name(name)


@pytest.mark.parametrize(
    "name",
    ["amount", "paid", "valid", "hour", "number_of_claims", "NumberOfCars", "week_number", "price_index", "province",
     "tx_last_24h", "rowing_club", "identity_verified"],
)  # fmt: skip
def test_names_that_do_not(name: str) -> None:
    assert not stages.id_like_name(name)


def test_an_id_name_needs_many_values() -> None:
    rng = np.random.default_rng(0)
    customers = rng.integers(0, 200, N)  # repeats: neither unique nor sorted, only the name gives it away
    assert len(np.unique(customers)) < N and reason("x", customers) is None
    assert reason("customer_id", customers) == f"named like an id, {len(np.unique(customers))} distinct values"
    # A short code list (five branches) is a category, not a row key.
    assert reason("branch_id", rng.integers(1, 6, N)) is None
    assert reason("RepNumber", rng.integers(1, 17, N)) is None


# -- values ------------------------------------------------------------------------------------------------------
def test_integers_unique_per_row_are_keys() -> None:
    rng = np.random.default_rng(0)
    assert reason("policy", rng.permutation(N) + 10_000) == ID_REASON  # shuffled: not sorted, still unique
    assert reason("card", rng.choice(10**12, N, replace=False) + 10**15) == ID_REASON  # wide codes, far apart
    as_text = [str(v) for v in rng.permutation(N) + 500]
    assert reason("ref", as_text) == ID_REASON


def test_text_unique_per_row_is_a_key() -> None:
    assert reason("ref", [f"POL-{i:05d}" for i in np.random.default_rng(0).permutation(N)]) == "unique per row"


def test_float_amounts_unique_per_row_are_features() -> None:
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(3, 1, N).round(2)
    assert len(np.unique(amounts)) == N
    assert reason("amount", amounts) is None
    assert reason("amount", np.sort(amounts)) is None  # even sorted: fractional numbers are measurements
    assert reason("amount", [f"{a:.2f}" for a in amounts]) is None  # read as text


def test_integer_amounts_that_happen_not_to_repeat_are_features() -> None:
    balance = np.random.default_rng(0).choice(1_000_000, N, replace=False) - 5_000
    assert reason("balance", balance) is None


def test_sorted_integers_are_row_numbers_or_counters() -> None:
    assert reason("r", np.arange(N)) == "a row number (step 1)"
    assert reason("r", np.arange(N, 0, -1)) == "a row number (step -1)"
    gaps = np.sort(np.random.default_rng(0).choice(10 * N, N, replace=False))
    assert reason("seq", gaps * 1000) == "strictly monotonic integers (a row or record number)"
    step = np.repeat(np.arange(N // 2), 2)  # PaySim's "step": an hour counter in a time-ordered file
    assert reason("step", step) == reason("step", step.astype(float)) == stages._SORTED
    # Few distinct values, or not sorted: a category or a count, not a position.
    assert reason("month", np.repeat(np.arange(1, 13), 5)) is None
    assert reason("count", np.random.default_rng(0).integers(0, 40, N)) is None


def test_date_text_and_datetimes_are_excluded() -> None:
    days = pd.date_range("2024-01-01", periods=N, freq="D")
    assert reason("d", days.strftime("%Y-%m-%d")) == "date/time values"
    assert reason("d", days.strftime("%d/%m/%Y %H:%M")) == "date/time values"
    assert reason("d", list(days.strftime("%b %d, %Y")) * 2) == "date/time values"  # repeated: not unique
    assert reason("d", days) == "date/time values"
    # Month names, ranges and bands read as dates by a lenient parser, but carry no date.
    assert reason("month", ["may", "jun", "jul"] * 20) is None
    assert reason("band", ["1 to 2", "3 to 5", "10-20", "more than 5"] * 15) is None


def test_small_frames_booleans_and_missing_values() -> None:
    assert reason("x", np.random.default_rng(0).permutation(10)) is None  # 10 rows say nothing
    assert reason("flag", np.arange(N) % 2 == 0) is None
    with_gaps = np.arange(N, dtype=float)
    with_gaps[::7] = np.nan
    assert reason("x", with_gaps) is None  # float integers with holes: maybe a measurement


def test_keep_and_the_log_message() -> None:
    frame = pd.DataFrame({"policy": np.arange(N) + 7, "when": pd.date_range("2024-01-01", periods=N).astype(str)})
    frame["amount"] = np.random.default_rng(0).normal(size=N)
    found = stages.excluded_columns(frame, ["policy", "when", "amount"])
    assert set(found) == {"policy", "when"}
    assert stages.excluded_columns(frame, ["policy", "when", "amount"], keep=["policy"]) == {"when": found["when"]}
    message = stages.exclusion_message(found)
    assert "policy (a row number (step 1))" in message and "when (date/time values)" in message
    assert "data.keep_columns=[policy,when]" in message and "data.time_column=when" in message


# -- through the DataModule and the baseline ------------------------------------------------------------------
def leaky_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """An insurance-claims-like table whose policy number gives the label away; the other columns barely do."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, n // 10, replace=False)] = 1
    # Fraudulent claims hold the newest policies: a perfect, and meaningless, signal.
    policy = np.empty(n, dtype=np.int64)
    order = np.argsort(y + rng.random(n) * 0.5)
    policy[order] = 100_000 + np.arange(n)
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "PolicyNumber": policy,
            "claim_date": pd.date_range("2023-01-01", periods=n, freq="6h").strftime("%Y-%m-%d %H:%M"),
            "amount": rng.lognormal(6, 1, n).round(2) * (1 + 0.2 * y),
            "vehicle": rng.choice(["sedan", "sport", "utility"], n),
            "fraud": y,
        }
    )


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def test_the_datamodule_excludes_keys_and_dates_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(leaky_table(), tmp_path / "claims.csv")
    with caplog.at_level(logging.WARNING, logger="recipezoo.fraud"):
        dm = TabularDataModule(path=path, target="fraud", min_category_count=1)
        info = dm.info
    lines = [r.getMessage() for r in caplog.records if "Not used as features" in r.getMessage()]
    assert len(lines) == 1
    for name in ("row", "PolicyNumber", "claim_date"):
        assert name in lines[0]
    assert "data.keep_columns=[" in lines[0] and "data.time_column=claim_date" in lines[0]
    assert set(info["excluded_columns"]) == {"row", "PolicyNumber", "claim_date"}
    assert info["numeric_features"] == ["amount"] and info["categorical_features"] == ["vehicle"]
    assert set(info["excluded_columns"]) <= set(info["preprocessing"]["dropped"])  # exported bundles say so too
    assert list(dm.raw_splits()["train"][0].columns) == ["amount", "vehicle"]
    json.dumps(info)  # plain data, as checkpoints and metadata.json need


def test_keep_columns_keeps_one_and_the_baseline_sees_the_same_features(tmp_path: Path) -> None:
    path = write(leaky_table(), tmp_path / "claims.csv")
    honest = TabularDataModule(path=path, target="fraud", min_category_count=1)
    leaky = TabularDataModule(path=path, target="fraud", min_category_count=1, keep_columns=["PolicyNumber"])
    assert "PolicyNumber" in leaky.info["numeric_features"] and "PolicyNumber" not in leaky.info["excluded_columns"]
    assert set(leaky.info["excluded_columns"]) == {"row", "claim_date"}
    # The GBDT reads the DataModule's features: with the policy number it "detects" every fraud, without it not.
    kwargs = {"max_iter": 60, "seed": 0}
    assert gbdt(leaky, **kwargs)["test"]["test/auprc"] > 0.95
    assert gbdt(honest, **kwargs)["test"]["test/auprc"] < 0.8
    # Columns listed as numeric or categorical are never excluded either.
    listed = TabularDataModule(path=path, target="fraud", min_category_count=1, numeric_columns=["row"])
    assert "row" in listed.info["numeric_features"] and "row" not in listed.info["excluded_columns"]


def test_keep_columns_is_checked(tmp_path: Path) -> None:
    path = write(leaky_table(), tmp_path / "claims.csv")
    with pytest.raises(ConfigError, match="both data.keep_columns and data.drop_columns"):
        TabularDataModule(path=path, target="fraud", keep_columns=["row"], drop_columns=["row"])
    with pytest.raises(ConfigError, match="keep_columns.*missing.*policy_no"):
        TabularDataModule(path=path, target="fraud", keep_columns=["policy_no"]).setup()


def test_a_checkpoint_keeps_its_features_and_old_checkpoints_load(tmp_path: Path) -> None:
    first = TabularDataModule(path=write(leaky_table(), tmp_path / "a.csv"), target="fraud", min_category_count=1)
    info = OmegaConf.to_container(OmegaConf.create(first.info))  # as it travels through the run config
    # New rows where nothing looks like a key any more: the checkpoint's features are used, not detected again.
    later = leaky_table(seed=1).sample(frac=1.0, random_state=0).drop(columns=["row"])
    later["row"] = np.random.default_rng(0).integers(0, 3, len(later))
    second = TabularDataModule(path=write(later, tmp_path / "b.csv"), target="fraud", restore_info=info)
    assert second.info["preprocessing"] == first.info["preprocessing"]
    assert second.info["excluded_columns"] == first.info["excluded_columns"]
    assert second.preprocessor.input_columns == ["amount", "vehicle"]
    old = {k: v for k, v in info.items() if k != "excluded_columns"}  # saved before the key existed
    third = TabularDataModule(path=write(later, tmp_path / "c.csv"), target="fraud", restore_info=old)
    assert third.info["excluded_columns"] == {} and third.preprocessor.input_columns == ["amount", "vehicle"]


def test_a_run_trains_and_predicts_without_the_excluded_columns(tmp_path: Path) -> None:
    from recipezoo.core.checkpoint import config_of, read
    from recipezoo.predict import predict
    from recipezoo.train import run
    from tests.conftest import compose_config

    path = write(leaky_table(), tmp_path / "claims.csv")
    overrides = ["+recipe=fraud/tabular_mlp", f"data.path={path}", "data.target=fraud", "data.min_category_count=1"]
    overrides += ["data.synthetic=false", "data.batch_size=128", "trainer.max_epochs=1", "+baseline.max_iter=30"]
    summary = run(compose_config(overrides, tmp_path / "run"))
    assert "baseline" in summary
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    data_info = config_of(read(ckpt)).data_info
    assert set(data_info.excluded_columns) == {"row", "PolicyNumber", "claim_date"}
    assert list(data_info.numeric_features) == ["amount"]
    # Prediction reads the training features only: the excluded columns may be absent from new rows.
    rows = leaky_table(n=50, seed=2)
    rows.to_csv(tmp_path / "with.csv", index=False)
    rows.drop(columns=["row", "PolicyNumber", "claim_date"]).to_csv(tmp_path / "without.csv", index=False)
    with_keys = pd.DataFrame(predict(ckpt, tmp_path / "with.csv", tmp_path / "p1.csv"))
    without = pd.DataFrame(predict(ckpt, tmp_path / "without.csv", tmp_path / "p2.csv"))
    np.testing.assert_allclose(with_keys["score"], without["score"])


@pytest.mark.export
def test_an_exported_bundle_reads_the_same_features(tmp_path: Path) -> None:
    from recipezoo.export import export
    from recipezoo.runtime.tabular import OnnxFraudScorer
    from recipezoo.train import run
    from tests.conftest import compose_config

    path = write(leaky_table(), tmp_path / "claims.csv")
    overrides = ["+recipe=fraud/tabular_mlp", f"data.path={path}", "data.target=fraud", "data.synthetic=false"]
    overrides += ["data.min_category_count=1", "data.batch_size=128", "trainer.max_epochs=1", "~baseline"]
    run(compose_config(overrides, tmp_path / "run"))
    export(tmp_path / "run" / "checkpoints" / "best.ckpt", "onnx", tmp_path / "onnx")
    meta = json.loads((tmp_path / "onnx" / "metadata.json").read_text())
    assert {"row", "PolicyNumber", "claim_date"} <= set(meta["preprocessing"]["dropped"])
    rows = leaky_table(n=50, seed=2)
    scorer = OnnxFraudScorer(tmp_path / "onnx")
    full = scorer.score(rows)["score"]
    np.testing.assert_allclose(scorer.score(rows[["amount", "vehicle"]])["score"], full)
