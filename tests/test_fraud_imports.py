"""The fraud domain stays light: its own code never imports transformers, torchaudio or timm."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recipezoo"
HEAVY = {"transformers", "torchaudio", "timm", "torchvision"}


@pytest.mark.parametrize(
    "path", sorted((SRC / "fraud").glob("*.py")) + [SRC / "runtime" / "tabular.py"], ids=lambda p: p.name
)
def test_fraud_modules_do_not_import_heavy_libraries(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & HEAVY, f"{path.name} imports {sorted(imported & HEAVY)}"


def test_fraud_networks_and_runtime_load_without_heavy_libraries() -> None:
    # Without Lightning in the way (torchmetrics imports transformers whenever it is installed), the networks and
    # the preprocessing runtime load with none of the heavy libraries.
    code = (
        "import sys; import recipezoo.fraud, recipezoo.fraud.models, recipezoo.runtime.tabular; "
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
