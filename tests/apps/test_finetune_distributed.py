"""``torchrun -m apps.finetune``: two CPU processes (gloo, DDP) compute the same steps as one process
accumulating two micro-batches, and only rank 0 writes and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.finetune.cli import main
from tests.support.finetune_runs import (
    finetune_argv,
    largest_difference,
    losses_by_step,
    saved_weights,
    write_random_checkpoint,
    write_videos,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # starts torchrun with two training processes
def test_two_processes_give_the_parameters_of_one_accumulating_two(tmp_path):
    checkpoint = write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")
    data = write_videos(tmp_path / "data", count=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAM2_UI_PRECISION": "fp32"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run(
        [*launcher, "-m", "apps.finetune", *finetune_argv(data, checkpoint, tmp_path / "two", steps=3)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-4000:]
    assert two.stderr.count("Training data:") == 1  # rank 0 reports; the other process is quiet
    assert "on 2 processes" in two.stderr

    assert main(finetune_argv(data, checkpoint, tmp_path / "one", "--accumulate", "2", steps=3)) == 0

    difference = largest_difference(
        saved_weights(tmp_path / "two" / "last.pt"), saved_weights(tmp_path / "one" / "last.pt")
    )
    assert difference <= 1e-5
    two_losses, one_losses = losses_by_step(tmp_path / "two"), losses_by_step(tmp_path / "one")
    assert sorted(two_losses) == sorted(one_losses) == [1, 2, 3]
    for step in (1, 2, 3):
        assert two_losses[step]["total"] == pytest.approx(one_losses[step]["total"], rel=1e-5)
