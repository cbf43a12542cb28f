"""Recommender training on the synthetic twin: learned models beat popularity on the planted structure, towers agree
with the scoring model, cold-start paths, configuration mistakes, and the networks' contracts."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from recipezoo.core.errors import ConfigError
from recipezoo.recsys import baselines
from recipezoo.recsys.data import InteractionsDataModule
from recipezoo.recsys.models import BiasedMF, NeuMF, SASRec, TwoTower
from recipezoo.recsys.task import Recommender
from tests.conftest import tiny_text_encoder

ADAM = partial(torch.optim.Adam, lr=1e-2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny tensors: a second intra-op thread buys nothing and spin-waits on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit(module: Recommender, dm: InteractionsDataModule, epochs: int) -> dict[str, float]:
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return trainer.test(module, datamodule=dm, verbose=False)[0]


def synthetic(**kwargs) -> InteractionsDataModule:
    dm = InteractionsDataModule(synthetic=True, synthetic_users=200, synthetic_items=120, seed=1, **kwargs)
    dm.setup()
    return dm


def test_mf_beats_popularity_on_the_planted_structure() -> None:
    dm = synthetic(batch_size=128)
    info = dm.info
    module = Recommender(BiasedMF(info["n_users"], info["n_items"], dim=16), ADAM, objective="softmax",
                         n_items=info["n_items"], feedback="implicit")  # fmt: skip
    test = fit(module, dm, epochs=8)
    base = baselines.ranking(dm, methods=("popularity",))["test"]
    assert test["test/ndcg@10"] > 1.5 * base["popularity/test/ndcg@10"]
    assert test["test/hr@10"] > base["popularity/test/hr@10"]
    assert test["test/users"] == dm.split_counts["test"]["users"]


def test_rating_mf_beats_the_global_mean() -> None:
    dm = synthetic(feedback="explicit", split="random", batch_size=256)
    info = dm.info
    net = BiasedMF(info["n_users"], info["n_items"], dim=8, global_mean=info["rating_mean"])
    module = Recommender(net, ADAM, objective="rating", n_items=info["n_items"], l2=0.01, feedback="explicit",
                         rating_range=[info["rating_min"], info["rating_max"]])  # fmt: skip
    test = fit(module, dm, epochs=15)
    base = baselines.rating(dm)["test"]
    assert test["test/rmse"] < base["global_mean/test/rmse"] - 0.1
    assert set(base) == {f"{m}/test/{k}" for m in ("global_mean", "bias", "svd") for k in ("rmse", "mae")}
    assert base["bias/test/rmse"] < base["global_mean/test/rmse"]


def test_baselines_beat_popularity_and_report_timings() -> None:
    dm = synthetic()
    out = baselines.ranking(dm)
    t = out["test"]
    assert t["itemknn/test/ndcg@10"] > t["popularity/test/ndcg@10"]
    assert t["svd/test/ndcg@10"] > t["popularity/test/ndcg@10"]
    assert t["popularity/test/popularity@10"] > 0.9 > t["itemknn/test/popularity@10"]  # popularity is most biased
    assert out["methods"]["svd"]["params"]["implementation"].startswith("sklearn")


def test_ncf_trains_with_sampled_negatives() -> None:
    dm = synthetic(negatives=4, batch_size=256)
    info = dm.info
    module = Recommender(NeuMF(info["n_users"], info["n_items"], 8, (16, 8)), ADAM, objective="bce",
                         n_items=info["n_items"])  # fmt: skip
    before = fit(module, dm, epochs=0)["test/ndcg@10"]
    after = fit(module, dm, epochs=5)["test/ndcg@10"]
    assert after > before


def test_sasrec_learns_the_sequential_signal() -> None:
    dm = synthetic(train_batches="sequences", history_len=12, batch_size=32)
    module = Recommender(SASRec(dm.n_items, max_len=12, dim=16, layers=1, heads=1, dropout=0.1), ADAM,
                         objective="softmax", n_items=dm.n_items)  # fmt: skip
    test = fit(module, dm, epochs=8)
    base = baselines.ranking(dm, methods=("popularity",))["test"]
    assert test["test/ndcg@10"] > base["popularity/test/ndcg@10"]


def _two_tower(dm: InteractionsDataModule) -> Recommender:
    info = dm.info
    net = TwoTower(
        info["n_users"], info["n_items"], dim=16, id_dim=16, hidden=(32,), history=True,
        item_num_dim=info["item_num_dim"], item_cardinalities=info["item_cardinalities"],
        item_text_dim=info["item_text_dim"], user_num_dim=info["user_num_dim"],
        user_cardinalities=info["user_cardinalities"],
    )  # fmt: skip
    return Recommender(net, ADAM, objective="sampled_softmax", n_items=info["n_items"],
                       preprocessing=info["preprocessing"])  # fmt: skip


@pytest.fixture(scope="module")
def two_tower() -> tuple[Recommender, InteractionsDataModule]:
    encoder = tiny_text_encoder()
    dm = synthetic(
        history_len=8, batch_size=128, item_text_column="title", item_multi_columns=["genres"],
        user_categorical_columns=["country"], user_numeric_columns=["age"], text_encoder=str(encoder),
        text_pretrained=False, synthetic_cold_items=10,
    )  # fmt: skip
    module = _two_tower(dm)
    fit(module, dm, epochs=3)
    return module.eval(), dm


def test_two_tower_scores_cold_items_from_their_features(two_tower: tuple) -> None:
    module, dm = two_tower
    warm = dm.feature_tables()["item_warm"]
    cold = torch.nonzero(~warm[1:]).reshape(-1) + 1
    assert len(cold) >= 10  # the table's items without interactions are in the catalogue
    assert not module.excluded_items()[cold].any()  # and the two-tower may recommend them
    with torch.no_grad():
        vectors = module.net.item_vectors(cold)
    assert torch.isfinite(vectors).all() and vectors.std(0).mean() > 1e-3  # not one shared vector
    # Their text embeddings differ (the tiny encoder is random, but it reads the titles).
    text = dm.feature_tables()["item_text"][cold]
    assert text.abs().sum() > 0 and not torch.allclose(text[0], text[1])


def test_towers_reproduce_the_scoring_model(two_tower: tuple) -> None:
    module, _ = two_tower
    spec = module.export_spec(batch_size=6)
    with torch.no_grad():
        score = spec.model(*spec.inputs.values())  # (B,)
        user = spec.parts["user_tower"].model(*[spec.inputs[n] for n in spec.parts["user_tower"].inputs])
        item = module.net.item_vectors(spec.inputs["item"])
    torch.testing.assert_close(score, (user * item).sum(-1) / module.net.temperature)
    assert set(spec.files) >= {"item_embeddings.npy", "user_embeddings.npy", "user_features.npz", "tabular.py"}


def test_mf_towers_fold_the_biases_into_the_vectors() -> None:
    net = BiasedMF(5, 7, dim=4, global_mean=3.5)
    with torch.no_grad():
        net.user_bias.weight.normal_()
        net.item_bias.weight.normal_()
    user, items = torch.tensor([1, 2, 0]), torch.tensor([[1, 2], [3, 4], [5, 0]])
    expected = (
        net.global_bias + net.user_bias(user) + net.item_bias(items)[..., 0]
        + (net.user_emb(user).unsqueeze(1) * net.item_emb(items)).sum(-1)
    )  # fmt: skip
    torch.testing.assert_close(net.score({"user": user}, items), expected)
    # Unknown user (0) and item (0): their embedding rows are zero, so only biases remain.
    assert torch.equal(net.user_emb.weight[0], torch.zeros(4)) and torch.equal(net.item_emb.weight[0], torch.zeros(4))


def test_sasrec_is_causal_and_ignores_padding() -> None:
    net = SASRec(20, max_len=6, dim=8, layers=2, heads=2, dropout=0.0).eval()
    h = torch.tensor([[0, 0, 3, 4, 5, 6]])
    with torch.no_grad():
        full = net.sequence_vectors(h)
        changed = net.sequence_vectors(torch.tensor([[0, 0, 3, 4, 5, 9]]))  # only the last item differs
        shorter = net.user_vectors(torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5, 6]]))  # more padding, same items
    torch.testing.assert_close(full[:, :5], changed[:, :5])  # earlier positions never see later items
    torch.testing.assert_close(shorter, full[:, -1])


@pytest.mark.parametrize(
    ("objective", "net", "feedback", "match"),
    [
        ("softmax", "neumf", "implicit", "needs a dot-product network"),
        ("bce", "mf", "explicit", "explicit ratings .* model.objective=rating"),
        ("rating", "mf", "implicit", "data is implicit feedback"),
        ("hinge", "mf", "implicit", "unknown model.objective 'hinge'"),
    ],
)
def test_configuration_mistakes_are_one_line(objective: str, net: str, feedback: str, match: str) -> None:
    network = NeuMF(3, 4) if net == "neumf" else BiasedMF(3, 4)
    with pytest.raises(ConfigError, match=match):
        Recommender(network, ADAM, objective=objective, n_items=4, feedback=feedback)


def test_bce_without_negatives_says_how_to_fix() -> None:
    dm = synthetic()
    module = Recommender(NeuMF(dm.n_users, dm.n_items), ADAM, objective="bce", n_items=dm.n_items)
    batch = next(iter(dm.train_dataloader()))
    with pytest.raises(ConfigError, match="data.negatives"):
        module.training_step(batch, 0)


def test_resume_reuses_the_id_maps(tmp_path: Path, make_cfg) -> None:  # noqa: ANN001
    from recipezoo.core.checkpoint import read, restore_info
    from recipezoo.train import run
    from tests.conftest import tiny

    first = run(make_cfg("+recipe=recsys/ncf", *tiny("recsys/ncf"), "trainer.max_epochs=1", run="a"))
    saved = restore_info(read(first["last_checkpoint"]))
    assert saved["files"]["user_ids.txt"] and saved["n_users"] >= 1
    resumed = run(
        make_cfg(
            "+recipe=recsys/ncf",
            *tiny("recsys/ncf"),
            "trainer.max_epochs=2",
            f"ckpt_path={first['last_checkpoint']}",
            run="b",
        )  # fmt: skip
    )
    assert resumed["epochs"] == 2
    again = restore_info(read(resumed["last_checkpoint"]))
    assert again["files"]["user_ids.txt"] == saved["files"]["user_ids.txt"]
    assert again["files"]["item_ids.txt"] == saved["files"]["item_ids.txt"]


@pytest.mark.slow
def test_ncf_trains_and_tests_under_ddp_on_cpu(tmp_path: Path) -> None:
    """Two gloo processes: both ranks train, test metrics are gathered, and the rank-0 baseline does not wait on the
    other rank (its metric must not sync)."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT")}
    cmd = [sys.executable, "train.py", "+recipe=recsys/ncf", "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", "data.synthetic=true", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
           f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the DDP run hung (a rank waiting on a collective the other never joins)")
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and min(summary["global_steps_per_rank"]) > 0
    users = yaml.safe_load((run_dir / "config.yaml").read_text())["data_info"]["split_counts"]["test"]["users"]
    # Lightning's DistributedSampler pads the last batch: at most one user is counted twice with two ranks.
    assert users <= summary["test"]["test/users"] <= users + 1
    assert "itemknn/test/ndcg@10" in summary["baseline"]["test"]
