"""The recommendation domain stays light: no heavy library at import, the text encoder only when a text column is
configured, a torch-free bundle runtime, and the fraud domain never imports it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recipezoo"
HEAVY = {"transformers", "torchaudio", "timm", "torchvision"}


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(
    "path", sorted((SRC / "recsys").glob("*.py")) + [SRC / "runtime" / "recsys.py"], ids=lambda p: p.name
)
def test_recsys_modules_do_not_import_heavy_libraries(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & HEAVY, f"{path.name} imports {sorted(imported & HEAVY)}"


def test_networks_load_without_heavy_libraries_and_runtime_without_torch() -> None:
    # Without Lightning in the way (torchmetrics imports transformers whenever it is installed).
    code = (
        "import sys; import recipezoo.recsys, recipezoo.recsys.models; "
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    )
    assert _run(code) == "[]"
    code = (
        "import sys; import recipezoo.runtime.recsys; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    assert _run(code) == "[]"


def test_fraud_never_imports_recsys_and_recsys_loads_no_text_encoder_without_text() -> None:
    # One interpreter for both checks (each start-up imports Lightning: seconds on a busy machine).
    code = (
        "import sys; import recipezoo.fraud, recipezoo.fraud.data, recipezoo.fraud.task, recipezoo.fraud.predict; "
        "print(any(m.startswith('recipezoo.recsys') or m == 'recipezoo.runtime.recsys' for m in sys.modules)); "
        "from recipezoo.recsys.data import InteractionsDataModule; "
        "dm = InteractionsDataModule(synthetic=True, synthetic_users=20, synthetic_items=20, "
        "item_multi_columns=['genres']); dm.setup(); dm.feature_tables(); "
        "print('recipezoo.nlp.models' in sys.modules)"
    )
    assert _run(code).splitlines() == ["False", "False"]
