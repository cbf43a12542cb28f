"""Run the command-line tools as a user would, for the bad-input catalogue (``tests/test_bad_input_*.py``).

Each catalogue case runs one command on bad input and checks the promise of the README: exit status 2, exactly one
``error:`` line, no traceback, every file that existed before intact, and (where the message suggests a fix) that
the suggested text, pasted into bash, is accepted by the same command line.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(
    args: Sequence[str] | str, cwd: Path = ROOT, script: str = "train.py", timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python <script> args``; ``args`` given as one string goes through bash exactly as typed."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if isinstance(args, str):
        cmd = f"{sys.executable} {ROOT / script} {args}"
        return subprocess.run(
            ["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
        )
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def assert_user_error(proc: subprocess.CompletedProcess, *contains: str) -> str:
    """Exit status 2, exactly one ``error:`` line naming ``contains``, no traceback; returns the error line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:], proc.stdout[-1000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert "Error executing job" not in proc.stderr, proc.stderr[-3000:]  # Hydra's wrapper
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for text in contains:
        assert text in errors[0], (text, errors[0])
    return errors[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` with its content hash (compare before and after a command)."""
    return {str(p): digest(p) for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def assert_intact(before: dict[str, str]) -> None:
    """Every file of a :func:`snapshot` still exists with the same content."""
    for path, h in before.items():
        assert Path(path).is_file(), f"{path} was deleted"
        assert digest(Path(path)) == h, f"{path} was changed"
