"""The multi-node path the README documents, run once on one machine: two ``torchrun --nnodes=2`` launchers.

Each launcher stands for one node with one CPU process; they meet at a rendezvous on 127.0.0.1 and train the default
recipe as one two-rank DDP run. Each node writes into its own run folder, as two machines with their own disks would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_distributed import CRASH_MARKS, distributed_env

NODES = 2
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_meet_at_a_rendezvous(tmp_path: Path) -> None:
    port = _free_port()
    procs = []
    for node in range(NODES):
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nnodes={NODES}", "--nproc-per-node=1",
            f"--node-rank={node}", "--master-addr=127.0.0.1", f"--master-port={port}",
            "train.py", "trainer=ddp", f"trainer.num_nodes={NODES}", "trainer.accelerator=cpu", "trainer.devices=1",
            "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / f'node{node}'}",
        ]  # fmt: skip
        log = (tmp_path / f"node{node}.log").open("w")
        procs.append((subprocess.Popen(
            command, cwd=ROOT, env=distributed_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        ), log))  # fmt: skip
    try:
        codes = [proc.wait(timeout=TIMEOUT_S) for proc, _ in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    outputs = [(tmp_path / f"node{node}.log").read_text() for node in range(NODES)]
    tails = "\n".join(f"--- node {node}:\n{out[-3000:]}" for node, out in enumerate(outputs))
    assert codes is not None, f"the two nodes did not finish within {TIMEOUT_S} s:\n{tails}"
    assert codes == [0] * NODES, f"exit codes {codes}:\n{tails}"
    # Not "Traceback": torchrun's agent on node 1 may log one from its exit barrier when node 0's agent, which hosts
    # the rendezvous store, has already left (the runs are over by then and every exit status is 0).
    crashes = [mark for out in outputs for mark in CRASH_MARKS if mark != "Traceback" and mark in out]
    assert not crashes, tails
    assert "Traceback" not in outputs[0], tails
    summary = json.loads((tmp_path / "node0" / "summary.json").read_text())
    assert summary["world_size"] == NODES
    assert len(summary["global_steps_per_rank"]) == NODES and len(set(summary["global_steps_per_rank"])) == 1
    assert summary["test"]
    assert not (tmp_path / "node1" / "summary.json").exists(), "only the global rank 0 writes the summary"
