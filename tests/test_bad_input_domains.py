"""The bad-input catalogue for mistakes of one domain's data: recommendation logs and requests, NLP prediction
inputs, speech splits.

Every case asserts the README's promise (``tests/cli_harness.py``): exit status 2, one ``error:`` line naming the
problem, no traceback, no Hydra wrapper, every file that existed before intact; and where the line suggests a fix,
the fix typed in bash is accepted (a cheap real run, or ``--cfg job`` for ``train.py``). Beside the cases, the inputs
that used to be mishandled (a ``user`` column for a model trained on MovieLens' ``u.data``, Latin-1 files, token
JSON lines) are checked to predict, and the NLP tokenization cache to stay out of the current folder.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from recipezoo.core.errors import DataError
from recipezoo.nlp.cache import resolve_cache_dir, user_cache_dir
from recipezoo.recsys.predict import request_column
from recipezoo.recsys.splits import check_evaluable
from tests.cli_harness import assert_intact, assert_user_error, cli, snapshot
from tests.conftest import make_tiny_bert

FAST = "trainer=cpu trainer.enable_progress_bar=false trainer.enable_model_summary=false data.num_workers=0"
SHORT = "trainer.max_epochs=1 trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.limit_test_batches=1"
SPEECH_ASR = (
    "+recipe=speech/asr_ctc data.synthetic=true data.synthetic_size=12 data.batch_size=8 backbone.name=conformer_tiny"
)
SPEECH_KWS = (
    "+recipe=speech/audio_classification data.synthetic=true data.synthetic_size=12 data.batch_size=8 "
    "backbone.name=audio_resnet_tiny"
)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# -- data a case reads (written into the case's folder) ---------------------------------------------------------
def single_clicks(folder: Path) -> None:
    """Every user clicked once: leave-last-out leaves nothing to rank."""
    _write_csv(folder / "clicks.csv", ["user", "item"], [[f"u{u}", f"i{u % 10}"] for u in range(40)])


def repeated_clicks(folder: Path) -> None:
    """Every user clicked one item three times: merged as duplicates, each user is left with one interaction."""
    rows = [[f"u{u}", f"i{u % 10}", 3 * u + k] for u in range(40) for k in range(3)]
    _write_csv(folder / "clicks.csv", ["user", "item", "timestamp"], rows)


def single_ratings(folder: Path) -> None:
    """Every user rated once."""
    rows = [[f"u{u}", f"i{u % 10}", 1 + u % 5] for u in range(60)]
    _write_csv(folder / "ratings.csv", ["user", "item", "rating"], rows)


def nothing(folder: Path) -> None:
    return None


# (case id, arguments as typed in bash ({d}: the case's folder), the data it writes, what the error line names, the
# fix it suggests ("" for none), and the fixed arguments: run for real when `real`, else composed with --cfg job).
TRAIN_CASES = [
    ("recsys-every-user-clicked-once", "+recipe=recsys/ncf data.path={d}/clicks.csv", single_clicks,
     ["no user can be evaluated", "40 users has a single interaction", "'user'"], "", "", False),
    ("recsys-every-user-once-time-split", "+recipe=recsys/ncf data.path={d}/clicks.csv data.split=time",
     single_clicks, ["no user can be evaluated", "single interaction"], "", "", False),
    ("recsys-repeats-merge-to-one", "+recipe=recsys/ncf data.path={d}/clicks.csv", repeated_clicks,
     ["no user can be evaluated", "single interaction"], "", "", False),
    ("recsys-ratings-leave-last-out", "+recipe=recsys/matrix_factorization data.path={d}/ratings.csv "
     "data.split=leave_last_out", single_ratings, ["test split is empty", "single rating"], "data.split=random",
     "+recipe=recsys/matrix_factorization data.path={d}/ratings.csv data.split=random", True),
    ("speech-asr-no-val-no-test", f"{SPEECH_ASR} data.val_fraction=0 data.test_fraction=0", nothing,
     ["validation and test splits are empty", "data.val_fraction=0, data.test_fraction=0"],
     "data.val_fraction=0.15 data.test_fraction=0.15",
     f"{SPEECH_ASR} data.val_fraction=0.15 data.test_fraction=0.15", True),
    ("speech-asr-no-test", f"{SPEECH_ASR} data.test_fraction=0", nothing, ["test split is empty"],
     "data.test_fraction=0.15", f"{SPEECH_ASR} data.test_fraction=0.15", False),
    ("speech-keywords-no-val", f"{SPEECH_KWS} data.val_fraction=0", nothing, ["validation split is empty"],
     "data.val_fraction=0.15", f"{SPEECH_KWS} data.val_fraction=0.15", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "data", "names", "fix", "fixed", "real"), [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES]
)
def test_training_data_that_evaluates_nothing(
    tmp_path: Path, args: str, data: Callable, names: list[str], fix: str, fixed: str, real: bool
) -> None:
    data(tmp_path)
    (tmp_path / "mine.txt").write_text("keep me\n")
    before = snapshot(tmp_path)
    run = tmp_path / "run"
    proc = cli(f"{args.format(d=tmp_path)} {FAST} {SHORT} hydra.run.dir={run}", cwd=tmp_path)
    line = assert_user_error(proc, *names)
    assert fix in line, (fix, line)
    assert_intact(before)
    assert not (run / "checkpoints").exists() and not (run / "summary.json").exists()  # stopped at data setup
    if not fixed:
        return
    if real:
        proc = cli(f"{fixed.format(d=tmp_path)} {FAST} {SHORT} hydra.run.dir={tmp_path / 'fixed'}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((tmp_path / "fixed" / "summary.json").read_text())
        assert summary["test"] and all(v is not None for v in summary["test"].values()), summary["test"]
    else:
        proc = cli(f"{fixed.format(d=tmp_path)} --cfg job", cwd=tmp_path)
        assert proc.returncode == 0 and "error:" not in proc.stderr, proc.stderr[-2000:]


# -- trained models for the prediction cases (one tiny run each, shared by the module) ---------------------------
def _train(folder: Path, args: str) -> Path:
    proc = cli(f"{args} {FAST} {SHORT} hydra.run.dir={folder / 'run'}", cwd=folder, env=_cache_env(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "run" / "checkpoints" / "last.ckpt"


def _cache_env(folder: Path) -> dict[str, str]:
    """Tokenization caches of the test runs go to a temporary folder, not the user's own cache."""
    return {"XDG_CACHE_HOME": str(folder / "xdg-cache")}


@pytest.fixture(scope="module")
def recommender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NCF trained on a MovieLens-style ``u.data`` (header-less; the loader names its columns userId, movieId)."""
    folder = tmp_path_factory.mktemp("recsys")
    rng = random.Random(0)
    lines = [
        f"{u}\t{rng.randint(1, 25)}\t{rng.randint(1, 5)}\t{880000000 + 6 * u + j}"
        for u in range(1, 31)
        for j in range(6)
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return _train(folder, f"+recipe=recsys/ncf data.path={folder / 'u.data'}")


@pytest.fixture(scope="module")
def pair_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch text classifier trained on sentence pairs (``data.text_pair_column=text2``), run from its data
    folder with the default cache setting."""
    folder = tmp_path_factory.mktemp("nlp")
    rng = random.Random(0)
    words = {"pos": "great fine lovely nice happy".split(), "neg": "awful poor sad ugly broken".split()}
    rows = [
        [" ".join(rng.choices(words[y], k=4)), " ".join(rng.choices(words[y], k=3)), y] for y in ("pos", "neg") * 30
    ]
    _write_csv(folder / "pairs.csv", ["text", "text2", "label"], rows)
    return _train(
        folder,
        "+recipe=nlp/text_classification_scratch data.path=pairs.csv data.text_pair_column=text2 data.vocab_size=200 "
        "data.batch_size=16",
    )


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token classifier (a tiny BERT) trained on JSON lines of tokens and tags."""
    folder = tmp_path_factory.mktemp("ner")
    names, other = "alice bob carol dave".split(), "went to the shop and saw".split()
    bert = make_tiny_bert(folder / "bert", extra_words=names + other)
    rng = random.Random(1)
    with open(folder / "train.jsonl", "w") as f:
        for _ in range(60):
            tokens = rng.choices(other, k=3) + [rng.choice(names)] + rng.choices(other, k=2)
            f.write(json.dumps({"tokens": tokens, "tags": ["O"] * 3 + ["B-PER"] + ["O"] * 2}) + "\n")
    return _train(
        folder,
        f"+recipe=nlp/token_classification data.path=train.jsonl backbone.name={bert} backbone.pretrained={bert} "
        "data.batch_size=16",
    )


# (case id, the model fixture, the input file's name and bytes, extra arguments, what the error line names, text the
# line must not hold, and the fix: (file name, bytes, arguments) that then predicts, or None).
LATIN1_USERS = "user\n1\nJos\xe9\n".encode("latin-1")
LATIN1_PAIRS = "text,text2\ngreat caf\xe9,fine\nawful,sad\n".encode("latin-1")
PREDICT_CASES = [
    ("recsys-request-without-user-column", "recommender", "visitors.csv", b"visitor\n1\n2\n", "",
     ["no 'userId' column", "or user;", "visitor", "Name its user column userId"], "Did you mean",
     ("visitors.csv", b"userId\n1\n2\n", "")),
    ("recsys-request-without-header", "recommender", "ids.csv", b"1\n2\n", "", ["no 'userId' column"],
     "Did you mean", ("ids.csv", b"user\n1\n2\n", "")),
    ("recsys-request-empty-id-list", "recommender", "users.txt", b"\n\n", "", ["lists no user ids"], "", None),
    ("recsys-request-strict-encoding", "recommender", "users.csv", LATIN1_USERS, "encoding=utf-8",
     ["not valid utf-8", "encoding=latin-1"], "data.encoding", ("users.csv", LATIN1_USERS, "encoding=latin-1")),
    ("nlp-pair-model-given-text-lines", "pair_classifier", "texts.txt", b"great fine\nawful poor\n", "",
     ["scores pairs of texts", "text_pair_column=text2", "'text' and 'text2'"], "",
     ("texts.csv", b"text,text2\ngreat,fine\nawful,poor\n", "")),
    ("nlp-pair-table-without-second-text", "pair_classifier", "texts.csv", b"text\ngreat\n", "",
     ["no 'text2' column", "second text", "Name the column of second texts text2"], "Did you mean",
     ("texts.csv", b"text,text2\ngreat,fine\n", "")),
    ("nlp-text-column-typo", "pair_classifier", "texts.csv", b"text,text2\ngreat,fine\n", "column=txt",
     ["no text column 'txt'", "Did you mean: text", "column=<name>"], "data.text_column",
     ("texts.csv", b"text,text2\ngreat,fine\n", "column=text")),
    ("nlp-strict-encoding", "pair_classifier", "texts.csv", LATIN1_PAIRS, "encoding=utf-8",
     ["not valid utf-8", "line 2", "encoding=latin-1"], "data.encoding",
     ("texts.csv", LATIN1_PAIRS, "encoding=latin-1")),
    ("nlp-tokens-in-another-field", "tagger", "sentences.jsonl", b'{"words": ["alice", "saw"]}\n', "",
     ["line 1", "'tokens'", "found words", "column=<field>"], "",
     ("sentences.jsonl", b'{"words": ["alice", "saw"]}\n', "column=words")),
    ("nlp-token-lines-not-json", "tagger", "sentences.jsonl", b'{"tokens": ["bob"]}\nalice saw\n', "",
     ["line 2", "not valid JSON"], "", ("sentences.txt", b"bob\nalice saw\n", "")),
    ("nlp-tokens-not-a-list", "tagger", "sentences.jsonl", b'{"tokens": "alice saw"}\n', "",
     ["line 1", "list of words", "'tokens'"], "", ("sentences.jsonl", b'{"tokens": ["alice", "saw"]}\n', "")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "name", "content", "extra", "names", "absent", "fix"),
    [c[1:] for c in PREDICT_CASES],
    ids=[c[0] for c in PREDICT_CASES],
)
def test_prediction_input_mistakes(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    model: str,
    name: str,
    content: bytes,
    extra: str,
    names: list[str],
    absent: str,
    fix: tuple[str, bytes, str] | None,
) -> None:
    ckpt = request.getfixturevalue(model)
    (tmp_path / name).write_bytes(content)
    before = snapshot(tmp_path, ckpt.parent)
    out = tmp_path / "out.csv"
    proc = cli(f"ckpt={ckpt} input={tmp_path / name} output={out} {extra}", cwd=tmp_path, script="scripts/predict.py")
    line = assert_user_error(proc, *names)
    if absent:
        assert absent not in line, line
    assert_intact(before)
    assert not out.exists()
    if fix is None:
        return
    fixed_name, fixed_content, fixed_args = fix
    (tmp_path / "fixed").mkdir()
    (tmp_path / "fixed" / fixed_name).write_bytes(fixed_content)
    proc = cli(
        f"ckpt={ckpt} input={tmp_path / 'fixed' / fixed_name} output={out} {fixed_args}",
        cwd=tmp_path,
        script="scripts/predict.py",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and len(out.read_text().splitlines()) > 1


# -- inputs that used to be mishandled now predict ----------------------------------------------------------------
def _predict(ckpt: Path, folder: Path, name: str, content: bytes, extra: str = "") -> list[dict[str, str]]:
    (folder / name).write_bytes(content)
    out = folder / f"{name}.out.csv"
    proc = cli(f"ckpt={ckpt} input={folder / name} output={out} {extra}", cwd=folder, script="scripts/predict.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def test_model_trained_on_u_data_serves_a_user_column(recommender: Path, tmp_path: Path) -> None:
    """The loader named u.data's columns userId / movieId; a request table says ``user`` (and ``item`` for pairs)."""
    rows = _predict(recommender, tmp_path, "users.csv", b"user\n1\n2\n999\n", "k=3")
    assert [r["userId"] for r in rows] == ["1"] * 3 + ["2"] * 3 + ["999"] * 3
    assert {r["source"] for r in rows} == {"model", "popularity"}
    pairs = _predict(recommender, tmp_path, "pairs.csv", b"user,item\n1,3\n2,4\n")
    assert [(r["userId"], r["movieId"]) for r in pairs] == [("1", "3"), ("2", "4")]


def test_latin1_inputs_predict_without_options(recommender: Path, pair_classifier: Path, tmp_path: Path) -> None:
    rows = _predict(recommender, tmp_path, "users.csv", LATIN1_USERS, "k=2")
    assert [r["userId"] for r in rows] == ["1", "1", "Jos\xe9", "Jos\xe9"]
    rows = _predict(recommender, tmp_path, "users.txt", "1\nJos\xe9\n".encode("latin-1"), "k=1")
    assert [r["userId"] for r in rows] == ["1", "Jos\xe9"]
    rows = _predict(pair_classifier, tmp_path, "texts.csv", LATIN1_PAIRS)
    assert [r["text"] for r in rows] == ["great caf\xe9", "awful"]


def test_token_json_lines_are_tagged_word_by_word(tagger: Path, tmp_path: Path) -> None:
    lines = b'{"tokens": ["alice", "went", "to", "the", "shop"]}\n\n{"tokens": ["bob", "saw"], "tags": ["O", "O"]}\n'
    rows = _predict(tagger, tmp_path, "sentences.jsonl", lines)
    assert [r["tokens"] for r in rows] == ["alice went to the shop", "bob saw"]
    assert [len(r["tags"].split()) for r in rows] == [5, 2]  # one tag per word, not per character
    rows = _predict(tagger, tmp_path, "sentences.json", json.dumps([{"tokens": ["carol", "saw"]}]).encode())
    assert [len(r["tags"].split()) for r in rows] == [2]


def test_tokenization_cache_stays_out_of_the_current_folder(pair_classifier: Path) -> None:
    folder = pair_classifier.parents[2]  # the folder the run was started from
    assert not (folder / "data_cache").exists()
    assert list((folder / "xdg-cache" / "recipezoo" / "nlp").glob("*.pt"))


def test_cache_folder_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "recipezoo" / "nlp"
    assert resolve_cache_dir("auto") == tmp_path / "xdg" / "recipezoo" / "nlp"
    for ignored in ("", "relative/cache"):  # the XDG specification: empty or relative values are ignored
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert user_cache_dir() == Path.home() / ".cache" / "recipezoo" / "nlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_dir() == Path.home() / ".cache" / "recipezoo" / "nlp"
    assert resolve_cache_dir(str(tmp_path / "mine")) == tmp_path / "mine"
    assert resolve_cache_dir("~/c") == Path.home() / "c"
    for off in (None, "", "null", False):
        assert resolve_cache_dir(off) is None


def test_request_columns_accept_only_what_they_say() -> None:
    assert request_column(["visitor", "user"], "userId", "user") == "user"
    assert request_column(["USER_ID"], "userId", "user") == "USER_ID"
    assert request_column(["userId", "user"], "userId", "user") == "userId"  # the trained name wins
    assert request_column(["customer"], "user_id", "user") is None  # other detected names are not guessed
    assert request_column(["user"], "movieId", "item") is None
    assert request_column(["item"], "movieId", "item") == "item"


def test_evaluable_logs_pass_the_check() -> None:
    check_evaluable({"interactions": 3, "users": 3}, "leave_last_out", "implicit", 3, 5, "log")
    check_evaluable({"interactions": 2, "users": 0}, "leave_last_out", "implicit", 2, 2, "log")  # cold test items
    check_evaluable({"interactions": 4}, "random", "explicit", 0, 10, "log")
    with pytest.raises(DataError, match="single interaction"):
        check_evaluable({"interactions": 0, "users": 0}, "leave_last_out", "implicit", 0, 40, "log")
    with pytest.raises(DataError, match="data.split=random"):
        check_evaluable({"interactions": 0}, "leave_last_out", "explicit", 0, 40, "log")
