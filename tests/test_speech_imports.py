"""The speech domain keeps its layers apart: networks and front-end free of Lightning and Hydra, the bundle runtime
free of torch, and other domains free of the speech libraries."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recipezoo"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("name", ["models.py", "frontend.py"])
def test_networks_and_frontend_import_no_training_framework(name: str) -> None:
    assert not imports(SRC / "speech" / name) & {"lightning", "pytorch_lightning", "hydra", "omegaconf"}


def test_bundle_runtime_needs_numpy_soundfile_and_onnxruntime_only() -> None:
    stdlib = set(sys.stdlib_module_names)
    assert imports(SRC / "runtime" / "audio.py") - stdlib == {"numpy", "soundfile", "onnxruntime"}


def test_fraud_and_vision_do_not_load_torchaudio() -> None:
    code = "import sys, recipezoo.fraud.models, recipezoo.vision.models; print('torchaudio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
