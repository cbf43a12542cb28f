"""NLP tasks end to end: learning, predictions on raw text equal across checkpoint / ONNX / TorchScript and equal to
training-time predictions, multi-label thresholds, evaluation and resume from the checkpoint alone, fine-tuning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from recipezoo.core.checkpoint import load_module, read, restore_info
from recipezoo.core.errors import PretrainedError
from recipezoo.evaluate import evaluate
from recipezoo.export import export
from recipezoo.nlp.data import make_synthetic_texts, make_synthetic_tokens
from recipezoo.nlp.models import create_text_classifier, load_encoder
from recipezoo.predict import predict
from recipezoo.train import run
from tests.conftest import compose_config, tiny, tiny_bert


def _train(tmp: Path, recipe: str, *overrides: str) -> tuple[Path, dict]:
    out = tmp / "run"
    summary = run(compose_config([f"+recipe={recipe}", *tiny(recipe), *overrides], out))
    return out / "checkpoints" / "best.ckpt", summary


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _train(
        tmp_path_factory.mktemp("text"),
        "nlp/text_classification",
        "trainer.max_epochs=4",
        "optimizer.lr=3e-3",
        "data.synthetic_size=320",
    )


@pytest.fixture(scope="module")
def tokens_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _train(
        tmp_path_factory.mktemp("tokens"), "nlp/token_classification", "trainer.max_epochs=4", "optimizer.lr=3e-3"
    )


@pytest.fixture(scope="module")
def multilabel_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _train(
        tmp_path_factory.mktemp("multi"),
        "nlp/text_classification_multilabel",
        "trainer.max_epochs=3",
        "optimizer.lr=3e-3",
    )


def test_text_classifier_learns_the_synthetic_task(text_ckpt: tuple[Path, dict]) -> None:
    _, summary = text_ckpt
    assert summary["test"]["test/acc"] >= 0.9
    assert {"test/f1", "test/f1_negative", "test/f1_positive"} <= set(summary["test"])


def test_token_classifier_learns_entities(tokens_ckpt: tuple[Path, dict]) -> None:
    _, summary = tokens_ckpt
    assert summary["test"]["test/f1"] >= 0.8
    assert {"test/precision", "test/recall", "test/f1_PER", "test/f1_LOC", "test/f1_ORG"} <= set(summary["test"])


def _training_time_probabilities(ckpt: Path) -> np.ndarray:
    """Probabilities of the test split the training way: the DataModule's batches through the eager module."""
    module, cfg = load_module(ckpt)
    dm = instantiate(cfg.data)
    dm.restore(restore_info(read(ckpt)))
    dm.setup("test")
    ds = dm.datasets["test"]
    batch = dm.collator()([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        return module.predict_step(batch, 0).numpy()


@pytest.mark.export
def test_predictions_on_raw_text_are_the_same_from_checkpoint_onnx_and_torchscript(
    text_ckpt: tuple[Path, dict], tmp_path: Path
) -> None:
    ckpt, _ = text_ckpt
    texts = make_synthetic_texts(80, seed=44).texts
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "new.csv", index=False)
    export(ckpt, "onnx", tmp_path / "onnx")
    export(ckpt, "torchscript", tmp_path / "ts")
    tables = {}
    for name, source in (("ckpt", ckpt), ("onnx", tmp_path / "onnx"), ("ts", tmp_path / "ts")):
        predict(source, tmp_path / "new.csv", tmp_path / f"{name}.csv")
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv")
    prob_cols = ["prob_negative", "prob_positive"]
    assert list(tables["ckpt"].columns) == ["row", "text", "prediction", "confidence", *prob_cols]
    for name in ("onnx", "ts"):
        np.testing.assert_allclose(tables[name][prob_cols], tables["ckpt"][prob_cols], atol=1e-5)
        assert (tables[name]["prediction"] == tables["ckpt"]["prediction"]).all()
    # A plain text file, one example per line, gives the same predictions.
    (tmp_path / "new.txt").write_text("\n".join(texts) + "\n")
    predict(tmp_path / "onnx", tmp_path / "new.txt", tmp_path / "txt.csv")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "txt.csv")[prob_cols], tables["ckpt"][prob_cols], atol=1e-5)


@pytest.mark.export
def test_bundle_reproduces_training_time_predictions(text_ckpt: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, _ = text_ckpt
    _, cfg = load_module(ckpt)
    expected = _training_time_probabilities(ckpt)
    # The raw test texts, through the torch-free bundle runtime (tokenizers + onnxruntime).
    from recipezoo.nlp.data import make_synthetic_texts as synth

    raw = synth(cfg.data.synthetic_size // 4, cfg.seed + 2).texts
    export(ckpt, "onnx", tmp_path / "onnx")
    from recipezoo.runtime.text import load_bundle

    got = load_bundle(tmp_path / "onnx").predict_proba(raw)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.export
def test_token_predictions_from_text_file_and_bundle(tokens_ckpt: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, _ = tokens_ckpt
    sentences = make_synthetic_tokens(30, seed=7)
    (tmp_path / "in.txt").write_text("\n".join(" ".join(ws) for ws in sentences.texts) + "\n")
    export(ckpt, "onnx", tmp_path / "onnx")
    export(ckpt, "torchscript", tmp_path / "ts")
    tables = {}
    for name, source in (("ckpt", ckpt), ("onnx", tmp_path / "onnx"), ("ts", tmp_path / "ts")):
        predict(source, tmp_path / "in.txt", tmp_path / f"{name}.csv")
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv", keep_default_na=False)
    assert list(tables["ckpt"].columns) == ["row", "tokens", "tags", "entities"]
    for name in ("onnx", "ts"):
        assert tables[name]["tags"].tolist() == tables["ckpt"]["tags"].tolist()
    gold = [" ".join(t) for t in sentences.targets]
    assert np.mean([p == g for p, g in zip(tables["ckpt"]["tags"], gold)]) >= 0.7
    first = tables["ckpt"].iloc[0]
    assert len(first["tags"].split()) == len(first["tokens"].split())
    # CoNLL-style input (token + tag columns) is read too; the tags in the file are ignored.
    conll = "\n\n".join("\n".join(f"{w} O" for w in ws) for ws in sentences.texts)
    (tmp_path / "in.conll").write_text(conll + "\n")
    predict(ckpt, tmp_path / "in.conll", tmp_path / "conll.csv")
    from_conll = pd.read_csv(tmp_path / "conll.csv", keep_default_na=False)["tags"].tolist()
    assert from_conll == tables["ckpt"]["tags"].tolist()


def test_multilabel_threshold_is_tuned_saved_and_exported(multilabel_ckpt: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, summary = multilabel_ckpt
    assert {"test/f1_macro", "test/f1_micro", "test/f1_macro_at_0.5"} <= set(summary["test"])
    module, _ = load_module(ckpt)
    state = read(ckpt)["state_dict"]["thresholds"]
    assert torch.equal(module.thresholds, state)
    assert len(set(state.tolist())) == 1 and 0.05 <= float(state[0]) <= 0.95  # one threshold for all labels
    meta = export(ckpt, "onnx", tmp_path / "onnx")
    assert meta["threshold"] == pytest.approx(state.tolist())
    assert meta["multi_label"] is True
    texts = make_synthetic_texts(20, seed=5, multi_label=True)
    pd.DataFrame({"text": texts.texts}).to_csv(tmp_path / "in.csv", index=False)
    rows = predict(tmp_path / "onnx", tmp_path / "in.csv", tmp_path / "out.csv")
    # a label is predicted exactly when its probability reaches the threshold
    for row in rows:
        picked = {n for n in module.labels if row[f"prob_{n}"] >= float(state[0])}
        assert set(filter(None, row["prediction"].split(";"))) == picked


def test_evaluate_rebuilds_data_and_model_from_the_checkpoint_alone(text_ckpt: tuple[Path, dict]) -> None:
    ckpt, summary = text_ckpt
    metrics = evaluate(ckpt, "test", accelerator="cpu")
    assert metrics["test/acc"] == pytest.approx(summary["test"]["test/acc"])


def test_checkpoint_carries_the_tokenizer_and_the_encoder_config(text_ckpt: tuple[Path, dict]) -> None:
    ckpt, _ = text_ckpt
    raw = read(ckpt)
    assert json.loads(raw["recipezoo"]["files"]["tokenizer.json"])["model"]["type"] == "WordPiece"
    info = raw["recipezoo"]["config"]["data_info"]
    assert info["encoder_config"]["model_type"] == "bert"
    assert "tokenizer.json" not in json.dumps(info["preprocessing"]).replace('"tokenizer.json"', "")


def test_resume_continues_from_the_checkpoint(text_ckpt: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, _ = text_ckpt
    last = ckpt.parent / "last.ckpt"
    summary = run(
        compose_config(
            ["+recipe=nlp/text_classification", *tiny("nlp/text_classification"), "trainer.max_epochs=5",
             "data.synthetic_size=320", f"ckpt_path={last}"],
            tmp_path / "resumed",
        )
    )  # fmt: skip
    assert summary["epochs"] == 5 and summary["test"]["test/acc"] >= 0.9


def test_frozen_blocks_freeze_the_embeddings_and_layer_decay_scales_the_rates(tmp_path: Path) -> None:
    from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy

    net = create_text_classifier(tiny_bert(), 3, tiny_bert())
    groups = net.layer_groups()
    assert len(groups) == 3  # embeddings + 2 layers
    cb = FineTuningCallback(FineTuningPolicy(frozen_blocks=1))

    class T:
        current_epoch = 0

    class M:
        pass

    m = M()
    m.net = net
    cb.on_train_epoch_start(T(), m)
    assert not any(p.requires_grad for p in groups[0].parameters())
    assert all(p.requires_grad for p in groups[1].parameters()) and net.head.weight.requires_grad
    from recipezoo.core.optim import param_groups

    rates = {g["name"]: g["lr"] for g in param_groups(net.head, groups, 1.0, 0.0, 1.0, 0.5)}
    assert rates["head"] == 1.0 and rates["backbone.1"] == 0.25 and rates["backbone.0"] == 0.125


def test_encoder_is_in_train_mode_after_loading() -> None:
    model = load_encoder(tiny_bert(), tiny_bert())
    assert model.training and all(m.training for m in model.modules())


def test_weights_file_for_another_architecture_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    other = BertModel(BertConfig(vocab_size=99, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=40))  # fmt: skip
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(PretrainedError, match=r"do not fit the model .*mismatch"):
        load_encoder(tiny_bert(), str(tmp_path / "other.pth"))
    # The matching architecture's weights load from a bare file, key by key.
    same = load_encoder(tiny_bert(), tiny_bert())
    torch.save(same.state_dict(), tmp_path / "same.pth")
    loaded = load_encoder(tiny_bert(), str(tmp_path / "same.pth"))
    assert torch.equal(loaded.embeddings.word_embeddings.weight, same.embeddings.word_embeddings.weight)


def test_hub_id_without_network_says_how_to_pass_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # no network here anyway; offline mode fails without retries
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedError, match=r"could not download .*backbone.pretrained=/path/to"):
        load_encoder("some-org/some-model-that-is-not-cached", True)


def test_missing_local_folder_is_not_mistaken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(PretrainedError, match="not found"):
        load_encoder("bert-base-uncased", str(tmp_path / "no-such-folder"))


TORCH_FREE = textwrap.dedent("""
    import json, runpy, sys
    for name in ("torch", "transformers", "recipezoo"):
        sys.modules[name] = None  # any import of them now raises ImportError: the bundle must do without
    bundle, texts = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, bundle)
    from loader import load_bundle
    model = load_bundle(bundle)
    print(json.dumps({"proba": model.predict_proba(texts).tolist(), "preds": model.predict(texts)}))
    sys.argv = ["loader.py", bundle, *texts]
    runpy.run_path(bundle + "/loader.py", run_name="__main__")
""")


@pytest.mark.export
def test_onnx_text_bundle_predicts_with_onnxruntime_and_tokenizers_alone(
    text_ckpt: tuple[Path, dict], tmp_path: Path
) -> None:
    ckpt, _ = text_ckpt
    export(ckpt, "onnx", tmp_path / "onnx")
    texts = ["a really good movie", "the plot was dull and awful", "it was quite lovely"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(tmp_path / "onnx"), *texts],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[0])
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    rows = predict(ckpt, tmp_path / "in.csv", tmp_path / "out.csv")
    np.testing.assert_allclose(
        np.asarray(result["proba"]), [[r["prob_negative"], r["prob_positive"]] for r in rows], atol=1e-5
    )
    assert [p[0] for p in result["preds"]] == [r["prediction"] for r in rows] == ["positive", "negative", "positive"]
    assert [line.split("\t")[0] for line in lines[1:]] == texts  # the bundle's command line


@pytest.mark.export
def test_torchscript_falls_back_to_torch_export_when_tracing_fails(
    text_ckpt: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recipezoo.export as export_module

    def untraceable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("this network does not trace")

    monkeypatch.setattr(export_module, "export_torchscript", untraceable)
    ckpt, _ = text_ckpt
    meta = export(ckpt, "torchscript", tmp_path / "ts")
    assert meta["format"] == "torch_export" and meta["model_file"] == "model.pt2"
    assert meta["parity"]["passed"] and not (tmp_path / "ts" / "model.pt").exists()
    pd.DataFrame({"text": ["a really good movie", "dull and awful"]}).to_csv(tmp_path / "in.csv", index=False)
    from_program = predict(tmp_path / "ts", tmp_path / "in.csv", tmp_path / "a.csv")
    from_ckpt = predict(ckpt, tmp_path / "in.csv", tmp_path / "b.csv")
    assert [r["prediction"] for r in from_program] == [r["prediction"] for r in from_ckpt]
    np.testing.assert_allclose(
        [r["prob_positive"] for r in from_program], [r["prob_positive"] for r in from_ckpt], atol=1e-5
    )


def test_ddp_on_cpu_tunes_one_threshold_for_every_rank(tmp_path: Path) -> None:
    """Two gloo processes: the threshold is chosen on validation counts summed over both ranks."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT")}
    cmd = [sys.executable, "train.py", "+recipe=nlp/text_classification_multilabel",
           *tiny("nlp/text_classification_multilabel"), "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "data.synthetic=true", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "optimizer.lr=3e-3",
           f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["global_steps_per_rank"]) == 2
    assert {"test/f1_macro", "test/f1_micro"} <= set(summary["test"])
    raw = read(tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert "tokenizer.json" in raw["recipezoo"]["files"]
    thresholds = raw["state_dict"]["thresholds"]
    assert len(set(thresholds.tolist())) == 1
