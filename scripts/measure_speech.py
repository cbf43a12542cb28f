"""Measure the speech recipes on real data: accuracy / CER / WER, wall time, export parity, bundle agreement.

usage (outputs go under the current folder unless told):
    python scripts/measure_speech.py fsdd=/path/to/free-spoken-digit-dataset/recordings an4=/path/to/an4 \\
        [runs=fsdd,fsdd_speakers,an4] [speakers=all|theo,...] [target_acc=0.98] [out=outputs/measure_speech/<time>] \\
        [key=value overrides passed to every train.py run, e.g. trainer.max_epochs=10]

Runs (each trains with train.py in a subprocess, exactly as a user would):

- ``fsdd``: Free Spoken Digit Dataset, ``speech/audio_classification`` at 8 kHz, the customary split (recording
  index 0-4 of every speaker and digit is the test set; validation carved at random from the rest);
- ``fsdd_speakers``: the speaker-independent split: each speaker in ``speakers`` held out in turn as the test set,
  validation another whole speaker (``data.group_by=speaker``);
- ``an4``: CMU AN4 (its Sphinx transcription file read directly), ``speech/asr_ctc`` from scratch, validation and
  test by held-out speakers.

For every run: the test metrics, train wall time, ONNX and TorchScript export parity, and whether the ONNX bundle
on the raw test files gives the training-time test predictions. Prints recipes/README.md rows and writes
measurement.json. Exits 1 when the customary FSDD split misses ``target_acc``.
"""

import csv
import json
import platform
import sys
import time
from pathlib import Path

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def hardware() -> str:
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", CPU only"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads{gpu}"


def measure(recipe: str, overrides: list[str], run_dir: Path) -> dict:
    """Train, export both ways, and check the ONNX bundle against the run's own test predictions."""
    from recipezoo.cli import train_in_subprocess
    from recipezoo.export import export
    from recipezoo.predict import predict

    summary, wall = train_in_subprocess(ROOT, recipe, overrides, run_dir)
    best = summary["best_checkpoint"]
    parity = {fmt: export(best, fmt, run_dir / "export" / fmt)["parity"] for fmt in ("onnx", "torchscript")}
    result = {
        "recipe": recipe,
        "command": " ".join(["python train.py", f"+recipe={recipe}", *overrides]),
        "test": summary["test"],
        "best_val": {summary["monitor"]: summary["best_score"]},  # what defaults are chosen on (never test)
        "epochs": summary["epochs"],
        "train_wall_time_s": round(wall, 1),
        "fit_time_s": summary["fit_time_s"],
        "export": {f: {"max_abs_diff": p["max_abs_diff"], **p.get("latency_ms_batch1", {})} for f, p in parity.items()},
    }
    # The raw test files through the torch-free ONNX bundle, against what the run itself predicted on test.
    transcripts = run_dir / "test_transcripts.csv"
    if transcripts.is_file():
        rows = list(csv.DictReader(open(transcripts, encoding="utf-8")))
        (run_dir / "test_files.txt").write_text("".join(r["path"] + "\n" for r in rows))
        start = time.perf_counter()
        got = predict(run_dir / "export" / "onnx", run_dir / "test_files.txt", run_dir / "onnx_transcripts.csv")
        seconds = time.perf_counter() - start
        by_path = {r["path"]: r["transcript"] for r in got}
        same = sum(by_path.get(r["path"]) == r["hypothesis"] for r in rows)
        audio = sum(r["seconds"] for r in got)
        result["onnx_bundle"] = {
            "files": len(rows),
            "same_transcript_as_training_time": same,
            "audio_seconds_per_second": round(audio / seconds, 1),
        }
    return result


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {
        "fsdd": None,
        "an4": None,
        "runs": "fsdd,fsdd_speakers,an4",
        "speakers": "all",
        "target_acc": "0.98",
        "out": str(Path("outputs") / "measure_speech" / time.strftime("%Y-%m-%d_%H-%M-%S")),
    }
    from recipezoo.cli import split_options
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import report_folder, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    runs = opts["runs"].split(",")
    if ("an4" in runs and not opts["an4"]) or (any(r.startswith("fsdd") for r in runs) and not opts["fsdd"]):
        raise ConfigError("pass fsdd=<recordings folder> and an4=<an4 folder> for these runs (see --help).")
    out = report_folder(Path(opts["out"]).resolve(), default_name="measure_speech")
    results = []
    fsdd = [
        "data.root=" + str(Path(opts["fsdd"] or ".").expanduser().resolve()),
        "data.pattern='{label}_{speaker}_{index}.wav'",
    ]
    fsdd.append("data.sample_rate=8000")
    if "fsdd" in runs:
        r = measure(
            "speech/audio_classification", [*fsdd, "data.test_where={index:[0,1,2,3,4]}", *overrides], out / "fsdd"
        )
        results.append({"name": "fsdd customary split (index 0-4 = test)", **r})
    if "fsdd_speakers" in runs:
        speakers = FSDD_SPEAKERS if opts["speakers"] == "all" else opts["speakers"].split(",")
        for speaker in speakers:
            split = [f"data.test_where={{speaker:[{speaker}]}}", "data.group_by=speaker", "data.val_fraction=0.2"]
            r = measure("speech/audio_classification", [*fsdd, *split, *overrides], out / f"fsdd_without_{speaker}")
            results.append({"name": f"fsdd speaker-independent (test speaker {speaker})", **r})
    if "an4" in runs:
        an4 = Path(opts["an4"]).expanduser().resolve()
        manifest = an4 / "etc" / "an4_train.transcription"
        r = measure("speech/asr_ctc", [f"data.manifest={manifest}", "data.group_by=speaker", *overrides], out / "an4")
        results.append({"name": "an4 from scratch (speaker-held-out val/test)", **r})

    write_text(out / "measurement.json", json.dumps({"hardware": hardware(), "runs": results}, indent=2) + "\n")
    print(f"\nhardware: {hardware()}")
    for r in results:
        t = r["test"]
        score = (
            f"acc {t['test/acc']:.4f}, macro F1 {t['test/f1']:.4f}"
            if "test/acc" in t
            else f"CER {t['test/cer']:.4f}, WER {t['test/wer']:.4f}"
        )
        exp = r["export"]
        val = ", ".join(f"best {k} {v:.4f}" for k, v in r["best_val"].items() if v is not None)
        print(
            f"| {r['name']} | {score} ({val}) | {r['train_wall_time_s']:.0f} s ({r['epochs']} epochs) | "
            f"onnx {exp['onnx']['max_abs_diff']:.1e}, torchscript {exp['torchscript']['max_abs_diff']:.1e} |"
            + (f" {r['onnx_bundle']} |" if "onnx_bundle" in r else "")
        )
    speakers = [r["test"]["test/acc"] for r in results if r["name"].startswith("fsdd speaker")]
    if speakers:
        print(
            f"speaker-independent mean acc over {len(speakers)} held-out speakers: {sum(speakers) / len(speakers):.4f}"
        )
    customary = [r for r in results if r["name"].startswith("fsdd customary")]
    if customary and customary[0]["test"]["test/acc"] < float(opts["target_acc"]):
        print(f"FAILED: FSDD test accuracy {customary[0]['test']['test/acc']:.4f} < target {opts['target_acc']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
