"""The bad-input catalogue of the scripts: export, evaluate, predict, benchmark (and the measurement scripts).

Each case is one mistake a user makes, run as the user types it (through bash, in a folder of their own holding
files of theirs). It must end in exit status 2 and one ``error:`` line naming the problem, with no traceback, every
file that was there intact, and, where the line suggests a fix, that fix accepted when pasted. ``overwrite=true``
replaces only what a recipezoo tool wrote itself: the cases below put user files next to (and inside) outputs.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_harness import ROOT, assert_intact, assert_user_error, cli, snapshot
from tests.conftest import compose_config, tiny

SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]
RECIPE = {
    "fraud": "fraud/tabular_mlp",
    "nlp": "nlp/text_classification_scratch",
    "speech": "speech/audio_classification",
    "recsys": "recsys/matrix_factorization",
    "vision": "vision/digits_cnn",
}
SCRIPTS = ("export", "evaluate", "predict", "benchmark")
MEASURE = (
    "measure_fraud",
    "measure_imagefolder",
    "measure_nlp",
    "measure_recsys",
    "measure_speech",
    "measure_transfer",
    "measure_image_cache",
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``ckpt(domain)``: the best checkpoint of a tiny run of that domain's recipe, trained once per module."""
    from recipezoo.train import run

    base = tmp_path_factory.mktemp("runs")

    @functools.cache
    def trained(domain: str) -> Path:
        recipe = RECIPE[domain]
        out = base / domain
        run(compose_config([f"+recipe={recipe}", *tiny(recipe), *SHORT], out))
        return out / "checkpoints" / "best.ckpt"

    return trained


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's folder: where the command runs, holding files of theirs."""
    folder = tmp_path / "work"
    (folder / "results").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "results" / "table.csv").write_text("a,b\n1,2\n")
    (folder / "texts.txt").write_text("a good film\na bad film\n")
    return folder


def run_script(script: str, args: str, cwd: Path, **kw: object) -> object:
    return cli(args, cwd=cwd, script=f"scripts/{script}.py", **kw)


def suggested(line: str, option: str) -> str:
    """The ``option=...`` fix an error line suggests, as it would be pasted (bash quoting included)."""
    match = re.search(rf"(?<![\w.])'?{re.escape(option)}=[^\s?']+'?", line)
    assert match, (option, line)
    return match.group(0).rstrip(".,")


def accepted_options(script: str, args: str, cwd: Path) -> None:
    """``args`` pass the script's option checks (``--help`` after them exits 0 only if every option parsed)."""
    proc = run_script(script, f"{args} --help", cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout


# -- option values: one line, naming the option and a value that works ---------------------------------------


@dataclass(frozen=True)
class Case:
    script: str
    domain: str | None  # the checkpoint given as ckpt=, if any
    args: str  # the rest of the command line, as typed
    says: tuple[str, ...]  # what the error line names
    fix: tuple[str, str] | None = None  # (option, the bad argument the pasted fix replaces)

    def __str__(self) -> str:
        return f"{self.script}:{self.args}"


OPTION_CASES = [
    Case("predict", "nlp", "input=texts.txt batch_size=0", ("batch_size", "'0'"), ("batch_size", "batch_size=0")),
    Case("predict", "recsys", "input=texts.txt k=-3", ("k must be",), ("k", "k=-3")),
    Case(
        "predict",
        "vision",
        "input=texts.txt overwrite=maybe",
        ("overwrite", "true or false"),
        ("overwrite", "overwrite=maybe"),
    ),  # fmt: skip
    Case("predict", "fraud", "input=texts.txt data.sep=';'", ("no config overrides",)),
    Case("predict", "speech", "input=nothere.wav", ("input not found", "nothere.wav")),
    Case("predict", "speech", "input=text.txt", ("input not found",), ("input", "input=text.txt")),
    Case("predict", None, "input=texts.txt", ("ckpt=",)),
    Case("predict", "nlp", "input=texts.txt colum=text", ("unknown option 'colum'", "column")),
    Case("export", "fraud", "tolerance=abc", ("tolerance", "a number", "'abc'"), ("tolerance", "tolerance=abc")),
    Case("export", "vision", "format=xyz", ("format", "onnx", "'xyz'"), ("format", "format=xyz")),
    Case("export", "speech", "format=onx", ("format", "Did you mean: onnx"), ("format", "format=onx")),
    Case("export", "recsys", "batch_size=-1", ("batch_size", ">= 1"), ("batch_size", "batch_size=-1")),
    Case("export", None, "format=onnx", ("pass ckpt=",)),
    Case("export", "nlp", "tolerance=1e-3 data.root=x", ("no config overrides",)),
    Case(
        "export", "fraud", "overwrite=yes-please", ("overwrite", "true or false"), ("overwrite", "overwrite=yes-please")
    ),
    Case("evaluate", "nlp", "split=tset", ("split", "test"), ("split", "split=tset")),
    Case("evaluate", "speech", "overwrite=2", ("overwrite", "true or false"), ("overwrite", "overwrite=2")),
    Case("evaluate", "vision", "outptu=m.json", ("unknown option 'outptu'", "output")),
    Case("benchmark", None, "+recipe=fraud/tabular_mlp steps=0", ("steps", ">= 1"), ("steps", "steps=0")),
    Case(
        "benchmark", None, "+recipe=fraud/tabular_mlp rounds=two", ("rounds", "whole number"), ("rounds", "rounds=two")
    ),
    Case(
        "benchmark",
        None,
        "+recipe=fraud/tabular_mlp infer=perhaps",
        ("infer", "true or false"),
        ("infer", "infer=perhaps"),
    ),  # fmt: skip
    Case("benchmark", None, "steps=3", ("+recipe=",)),
    Case("benchmark", None, "+recipe=fraud/tabular_ml", ("unknown recipe", "fraud/tabular_mlp")),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=str)
def test_bad_option_value_is_one_line(case: Case, ckpt: Callable[[str], Path], home: Path) -> None:
    before, listing = snapshot(home), sorted(home.iterdir())
    ck = f"ckpt={shlex.quote(str(ckpt(case.domain)))} " if case.domain else ""
    proc = run_script(case.script, ck + case.args, home)
    line = assert_user_error(proc, *case.says)
    assert_intact(before)
    assert sorted(home.iterdir()) == listing  # nothing created either
    if case.fix:
        option, bad = case.fix
        fix = suggested(line, option)
        accepted_options(case.script, ck + case.args.replace(bad, fix), home)


def test_missing_checkpoint_names_the_close_one(ckpt: Callable[[str], Path], home: Path) -> None:
    real = ckpt("fraud")
    typo = real.with_name("bset.ckpt")
    for script in ("export", "evaluate", "predict"):
        proc = run_script(script, f"ckpt={typo} input=texts.txt" if script == "predict" else f"ckpt={typo}", home)
        line = assert_user_error(proc, "checkpoint not found", str(typo))
        assert suggested(line, "ckpt") == f"ckpt={real}"


def test_positional_checkpoint_suggests_the_option(home: Path) -> None:
    line = assert_user_error(run_script("export", "best.ckpt", home), "expected key=value")
    assert "ckpt=best.ckpt" in line


@pytest.mark.parametrize("script", [*SCRIPTS, *MEASURE])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(script: str, flag: str, home: Path) -> None:
    before = snapshot(home)
    proc = run_script(script, flag, home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower() and "error:" not in proc.stderr
    assert_intact(before)


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("measure_fraud", "data.target=y", ("data.path=",)),
        ("measure_imagefolder", "target_acc=0.9", ("data.root=",)),
        ("measure_nlp", "tasks=sst2", ("data_root=",)),
        ("measure_recsys", "threads=1", ("data.path=",)),
        ("measure_speech", "runs=an4", ("an4=",)),
        ("measure_transfer", "inits=zero,bogus", ("unknown head initialisation bogus", "inits=zero,probe")),
        ("measure_fraud", "data.path=t.csv data.target=y out=.", ("refusing", "current folder")),
        ("measure_recsys", "data.path=t.csv out=notes.txt", ("is a file",)),
    ],
)
def test_measure_scripts_refuse_in_one_line(script: str, args: str, says: tuple[str, ...], home: Path) -> None:
    before = snapshot(home)
    assert_user_error(run_script(script, args, home), *says)
    assert_intact(before)


# -- ownership: overwrite=true replaces only what recipezoo wrote ---------------------------------------------


@pytest.mark.parametrize("domain", ["fraud", "vision"])
def test_export_into_a_folder_of_user_files_deletes_nothing(
    domain: str, ckpt: Callable[[str], Path], home: Path
) -> None:
    before = snapshot(home)
    c = ckpt(domain)
    for overwrite in ("", " overwrite=true"):
        line = assert_user_error(run_script("export", f"ckpt={c} output=results{overwrite}", home), "results")
        assert "recipezoo did not write" in line and "results-2" in line
        assert_intact(before)


@pytest.mark.parametrize("target", [".", "~", "/", "ROOT", ".."])
def test_export_refuses_precious_folders(target: str, ckpt: Callable[[str], Path], home: Path) -> None:
    before = snapshot(home)
    where = str(ROOT) if target == "ROOT" else target
    proc = run_script("export", f"ckpt={ckpt('nlp')} output={where} overwrite=true", home, env={"HOME": str(home)})
    line = assert_user_error(proc, "refusing to write into")
    assert "output=onnx_bundle" in line
    assert_intact(before)


def test_export_into_the_current_folder_then_the_pasted_fix(ckpt: Callable[[str], Path], home: Path) -> None:
    """``output=. overwrite=true`` once emptied the current folder: refused, and the suggestion works."""
    before = snapshot(home)
    c = ckpt("fraud")
    line = assert_user_error(run_script("export", f"ckpt={c} output=. overwrite=true", home), "current folder")
    assert_intact(before)
    fix = suggested(line, "output")
    proc = run_script("export", f"ckpt={c} {fix}", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bundle = home / "onnx_bundle"
    assert (bundle / "model.onnx").is_file() and (bundle / "metadata.json").is_file()
    assert_intact(before)

    # A second export there: refused without overwrite; replaced with it; a user file inside stops it.
    line = assert_user_error(run_script("export", f"ckpt={c} {fix}", home), "already holds files")
    assert "overwrite=true" in line
    first = snapshot(bundle)
    proc = run_script("export", f"ckpt={c} {fix} overwrite=true", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(snapshot(bundle)) == set(first)
    (bundle / "my_notes.md").write_text("mine\n")
    mine = snapshot(home)
    line = assert_user_error(run_script("export", f"ckpt={c} {fix} overwrite=true", home), "my_notes.md")
    assert_intact(mine)


def test_export_overwrite_knows_its_bundle_by_its_metadata(ckpt: Callable[[str], Path], tmp_path: Path) -> None:
    """A bundle is recognised by its metadata.json (which lists its files); a stranger's metadata.json is not."""
    from recipezoo.core.errors import OutputExistsError
    from recipezoo.export import export

    out = tmp_path / "bundle"
    export(ckpt("fraud"), "onnx", out, measure_latency=False)
    names = sorted(p.name for p in out.iterdir())
    export(ckpt("fraud"), "torchscript", out, overwrite=True, measure_latency=False)  # another format replaces it
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.pt"] and "model.onnx" in names
    (out / "metadata.json").write_text('{"mine": true}\n')
    before = snapshot(out)
    with pytest.raises(OutputExistsError, match="did not write"):
        export(ckpt("fraud"), "onnx", out, overwrite=True, measure_latency=False)
    assert_intact(before)


def test_evaluate_overwrite_replaces_only_its_own_report(ckpt: Callable[[str], Path], home: Path) -> None:
    c = ckpt("fraud")
    (home / "metrics.json").write_text('{"my": "numbers"}\n')
    before = snapshot(home)
    line = assert_user_error(run_script("evaluate", f"ckpt={c} output=metrics.json overwrite=true", home))
    assert "did not write" in line
    assert_intact(before)
    line = assert_user_error(run_script("evaluate", f"ckpt={c} output=metrics.json", home), "already exists")
    assert "overwrite=true" not in line  # the advice never names an option that would be refused
    fix = suggested(line, "output")
    proc = run_script("evaluate", f"ckpt={c} {fix}", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = home / fix.split("=", 1)[1]
    json.loads(report.read_text())  # strict JSON
    # its own report: the advice now offers overwrite=true, and that works when pasted
    line = assert_user_error(run_script("evaluate", f"ckpt={c} {fix}", home), "overwrite=true")
    proc = run_script("evaluate", f"ckpt={c} {fix} overwrite=true", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_intact(before)


@pytest.mark.parametrize("domain", ["speech", "recsys"])
def test_evaluate_into_a_folder_names_a_file(domain: str, ckpt: Callable[[str], Path], home: Path) -> None:
    before = snapshot(home)
    line = assert_user_error(run_script("evaluate", f"ckpt={ckpt(domain)} output=results", home), "is a folder")
    assert "output=results/metrics.json" in line
    assert_intact(before)


def test_predict_overwrite_replaces_only_its_own_predictions(ckpt: Callable[[str], Path], home: Path) -> None:
    c = ckpt("nlp")
    (home / "mine.csv").write_text("my,own\n")
    before = snapshot(home)
    line = assert_user_error(run_script("predict", f"ckpt={c} input=texts.txt output=mine.csv overwrite=true", home))
    assert "did not write" in line and "output=mine-2.csv" in line
    assert_intact(before)
    assert run_script("predict", f"ckpt={c} input=texts.txt", home).returncode == 0
    line = assert_user_error(run_script("predict", f"ckpt={c} input=texts.txt", home), "already exists")
    assert "overwrite=true" in line  # its own file: replacing it is offered
    proc = run_script("predict", f"ckpt={c} input=texts.txt overwrite=true", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_intact(before)
    # edited by the user since: no longer recipezoo's to replace
    (home / "predictions.csv").write_text("edited by hand\n")
    line = assert_user_error(run_script("predict", f"ckpt={c} input=texts.txt overwrite=true", home), "did not write")
    assert (home / "predictions.csv").read_text() == "edited by hand\n"


def test_predict_encoding_advice_works_when_pasted(ckpt: Callable[[str], Path], home: Path) -> None:
    """A Latin-1 file read as UTF-8: the advice names predict's own option (not train's data.encoding)."""
    (home / "latin.txt").write_bytes("un film tr\xe8s bon\nmauvais caf\xe9\n".encode("latin-1"))
    before = snapshot(home)
    c = ckpt("nlp")
    bad = "encoding=utf-8"
    line = assert_user_error(run_script("predict", f"ckpt={c} input=latin.txt {bad}", home), "latin.txt", "encoding=")
    assert "data.encoding" not in line
    fix = re.search(r"(encoding=[\w-]+)", line).group(1)
    proc = run_script("predict", f"ckpt={c} input=latin.txt {fix}", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "très" in (home / "predictions.csv").read_text(encoding="utf-8")
    assert_intact(before)


def test_predict_unknown_encoding(ckpt: Callable[[str], Path], home: Path) -> None:
    before = snapshot(home)
    line = assert_user_error(run_script("predict", f"ckpt={ckpt('nlp')} input=texts.txt encoding=klingon", home))
    assert "klingon" in line and "data.encoding" not in line
    assert_intact(before)
    assert not (home / "predictions.csv").exists()


# -- benchmark: one line for a typo, output where the user says ----------------------------------------------


def test_benchmark_unknown_override_names_close_keys(home: Path) -> None:
    before = snapshot(home)
    shared = sorted((ROOT / "outputs").glob("benchmark/*"))
    args = "+recipe=fraud/tabular_mlp trainer.max_epoch=3"
    line = assert_user_error(run_script("benchmark", args, home), "trainer.max_epoch", "trainer.max_epochs")
    assert "+trainer" not in line  # Hydra's own advice adds a key nothing reads
    assert_intact(before)
    assert not (home / "outputs").exists() and sorted((ROOT / "outputs").glob("benchmark/*")) == shared
    # the corrected override composes: the command then fails only on the folder it was given (out=.)
    proc = run_script("benchmark", args.replace("max_epoch=", "max_epochs=") + " out=.", home)
    assert_user_error(proc, "refusing to write into")


@pytest.mark.parametrize("out", ["out=.", "hydra.run.dir=.", "out=results", "out=notes.txt"])
def test_benchmark_refuses_folders_it_does_not_own(out: str, home: Path) -> None:
    before = snapshot(home)
    assert_user_error(run_script("benchmark", f"+recipe=fraud/tabular_mlp {out}", home), out.split("=")[1])
    assert_intact(before)


def test_benchmark_writes_where_told_relative_to_the_current_folder(home: Path) -> None:
    from tests.conftest import FAST

    before = snapshot(home)
    fast = " ".join(a for a in [*tiny("fraud"), *FAST] if a != "data.synthetic=true")
    args = f"+recipe=fraud/tabular_mlp {fast} steps=2 warmup=1 window=1 rounds=1 infer=false"
    proc = run_script("benchmark", f"{args} hydra.run.dir=bench", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((home / "bench" / "benchmark.json").read_text())["recipes"][0]["recipe"] == "fraud/tabular_mlp"
    # a second run there is refused (its own files: overwrite=true is offered), and that works when pasted
    line = assert_user_error(run_script("benchmark", f"{args} out=bench", home), "overwrite=true")
    assert "out=bench-2" in line
    proc = run_script("benchmark", f"{args} out=bench overwrite=true", home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_intact(before)
