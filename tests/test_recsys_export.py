"""Recommendation bundles reproduce the checkpoint: the same top-K from a checkpoint, an ONNX bundle and a TorchScript
bundle (known users, cold users served by history, features or popularity), pair scores, the torch-free loader, and
item embeddings whose inner products are the model's scores."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recipezoo.core.checkpoint import load_module
from recipezoo.core.errors import DataError, OutputExistsError
from recipezoo.export import export
from recipezoo.predict import predict
from recipezoo.recsys.predict import load_recommender
from recipezoo.train import run
from tests.conftest import compose_config, tiny

pytestmark = pytest.mark.export

USER_FEATURES = ["data.user_categorical_columns=[country]", "data.user_numeric_columns=[age]"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Tiny trained runs (two-tower with user features, NeuMF, rating MF) and their ONNX / TorchScript bundles."""
    out = {}
    for name, recipe, extra, formats in (
        ("two_tower", "recsys/two_tower", USER_FEATURES, ("onnx", "torchscript")),
        ("ncf", "recsys/ncf", [], ("onnx", "torchscript")),
        ("mf", "recsys/matrix_factorization", [], ("onnx",)),
    ):
        root = tmp_path_factory.mktemp(name)
        summary = run(
            compose_config([f"+recipe={recipe}", *tiny(recipe), "trainer.max_epochs=2", *extra], root / "run")
        )
        paths = {"ckpt": Path(summary["best_checkpoint"]), "test": summary["test"]}
        for fmt in formats:
            export(paths["ckpt"], fmt, root / fmt, measure_latency=False)
            paths[fmt] = root / fmt
        out[name] = paths
    return out


def _requests(tmp_path: Path, rec) -> Path:  # noqa: ANN001
    known = rec.user_ids[:4]
    history = " ".join(rec.item_ids[:3])
    frame = pd.DataFrame(
        {
            "user_id": [*known, "new-with-history", "new-with-features", "new-with-nothing"],
            "history": ["", "", "", "", history, "", ""],
            "country": ["", "", "", "", "", "FR", ""],
            "age": ["", "", "", "", "", "33", ""],
        }
    )
    path = tmp_path / "users.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["two_tower", "ncf"])
def test_topk_is_the_same_from_checkpoint_onnx_and_torchscript(name: str, bundles: dict, tmp_path: Path) -> None:
    paths = bundles[name]
    rec = load_recommender(paths["ckpt"])
    users = _requests(tmp_path, rec)
    tables = {}
    for source in ("ckpt", "onnx", "torchscript"):
        predict(paths[source], users, tmp_path / f"{source}.csv", k=5)
        tables[source] = pd.read_csv(tmp_path / f"{source}.csv", dtype={"user_id": str, "item_id": str})
    ref = tables["ckpt"]
    assert list(ref.columns) == ["user_id", "rank", "item_id", "score", "source"]
    assert (ref.groupby("user_id").size() == 5).all()
    for other in ("onnx", "torchscript"):
        assert ref[["user_id", "rank", "item_id", "source"]].equals(
            tables[other][["user_id", "rank", "item_id", "source"]]
        )
        np.testing.assert_allclose(tables[other]["score"], ref["score"], atol=1e-4)
    sources = ref.groupby("user_id")["source"].first().to_dict()
    assert {sources[u] for u in rec.user_ids[:4]} == {"model"}
    assert sources["new-with-nothing"] == "popularity"
    expected = {"two_tower": ("history", "features"), "ncf": ("popularity", "popularity")}[name]
    assert (sources["new-with-history"], sources["new-with-features"]) == expected
    # Never an item the user already has (known interactions, or the history given for a new user).
    for user, items in ref.groupby("user_id")["item_id"]:
        u = rec.user_idx(user)
        have = {rec.item_ids[i - 1] for i in rec.known_items(u)} if u else set()
        if user == "new-with-history":
            have = set(rec.item_ids[:3])
        assert not have & set(items)


def test_item_embeddings_are_an_ann_export(bundles: dict) -> None:
    """Inner products of the exported user and item vectors are the checkpoint's scores (the ANN contract)."""
    bundle = bundles["two_tower"]["onnx"]
    items = np.load(bundle / "item_embeddings.npy")
    users = np.load(bundle / "user_embeddings.npy")
    item_ids = (bundle / "item_ids.txt").read_text().splitlines()
    assert items.shape[0] == len(item_ids) and users.shape[1] == items.shape[1]
    module, _ = load_module(bundles["two_tower"]["ckpt"])
    rec = load_recommender(bundles["two_tower"]["ckpt"])
    full = rec.backend.score_all(rec._query([1], [rec.known_items(1)], [0], None, []))  # user index 1
    np.testing.assert_allclose(full[0, 1:], users[0] @ items.T / module.net.temperature, atol=1e-4)


def test_pair_scores_are_clipped_ratings(bundles: dict, tmp_path: Path) -> None:
    paths = bundles["mf"]
    rec = load_recommender(paths["ckpt"])
    pairs = pd.DataFrame({"user_id": [rec.user_ids[0], "stranger"], "item_id": [rec.item_ids[0], rec.item_ids[1]]})
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    for source in ("ckpt", "onnx"):
        rows = predict(paths[source], tmp_path / "pairs.csv", tmp_path / f"{source}.csv")
        assert [r["source"] for r in rows] == ["model", "unknown_user"]
        assert all(1.0 <= r["score"] <= 5.0 for r in rows)
    a, b = pd.read_csv(tmp_path / "ckpt.csv"), pd.read_csv(tmp_path / "onnx.csv")
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-4)


def test_bundle_loader_runs_without_torch(bundles: dict, tmp_path: Path) -> None:
    bundle = bundles["ncf"]["onnx"]
    users = tmp_path / "users.txt"
    users.write_text("\n".join((bundle / "user_ids.txt").read_text().splitlines()[:3]) + "\nnobody\n")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['pandas'] = None; "
        f"sys.path.insert(0, {str(bundle)!r}); import loader; sys.exit(loader.main(sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle), str(users), "3"], capture_output=True, text=True, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "user,rank,item,score,source" and len(lines) == 1 + 4 * 3
    assert lines[-1].startswith("nobody,3,") and lines[-1].endswith(",popularity")


def test_predict_refuses_to_overwrite_and_names_the_user_column(bundles: dict, tmp_path: Path) -> None:
    paths = bundles["ncf"]
    (tmp_path / "taken.csv").write_text("keep me\n")
    (tmp_path / "users.txt").write_text("x\n")
    with pytest.raises(OutputExistsError):
        predict(paths["onnx"], tmp_path / "users.txt", tmp_path / "taken.csv")
    assert (tmp_path / "taken.csv").read_text() == "keep me\n"
    pd.DataFrame({"customer": ["a"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="no 'user_id' column"):
        predict(paths["ckpt"], tmp_path / "bad.csv", tmp_path / "out.csv")


def test_checkpoint_carries_id_maps_not_in_the_config(bundles: dict) -> None:
    ckpt = torch.load(bundles["ncf"]["ckpt"], map_location="cpu", weights_only=True)
    files = ckpt["recipezoo"]["files"]
    assert set(files) == {"user_ids.txt", "item_ids.txt", "interactions.npz"}
    info = ckpt["recipezoo"]["config"]["data_info"]
    ids = files["user_ids.txt"].splitlines()
    assert info["n_users"] == len(ids) and not any(f"'{u}'" in str(info) for u in ids)  # counts, not the map
    data = np.load(io.BytesIO(files["interactions.npz"]))
    assert data["indptr"][-1] == len(data["items"])


@pytest.mark.parametrize("name", ["ncf", "mf"])
def test_evaluate_reproduces_the_runs_test_metrics(name: str, bundles: dict) -> None:
    from recipezoo.evaluate import evaluate

    metrics = evaluate(bundles[name]["ckpt"], "test", accelerator="cpu")
    for key, value in bundles[name]["test"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
