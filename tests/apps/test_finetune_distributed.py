"""``torchrun -m apps.finetune``: two CPU processes (gloo, DDP) compute the same steps as one process
accumulating their micro-batches, only rank 0 writes and reports, and a problem on one process stops both
with rank 0 saying which."""

from __future__ import annotations

import pytest

from apps.finetune.cli import main
from tests.support.finetune_runs import (
    FAILING_RANK,
    FAILURE,
    finetune_argv,
    largest_difference,
    losses_by_step,
    saved_step,
    saved_weights,
    torchrun,
    write_random_checkpoint,
    write_videos,
)


@pytest.mark.slow  # starts torchrun with two training processes
def test_two_processes_give_the_parameters_of_one_accumulating_two(tmp_path):
    checkpoint = write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")
    data = write_videos(tmp_path / "data", count=4)
    two = torchrun(finetune_argv(data, checkpoint, tmp_path / "two", steps=3))
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


@pytest.mark.slow  # starts torchrun with two training processes, each accumulating two micro-batches
def test_two_processes_accumulating_two_give_the_parameters_of_one_accumulating_four(tmp_path):
    """With validation, so the other process also waits for rank 0 on the long-timeout group."""
    checkpoint = write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")
    data = write_videos(tmp_path / "data", count=4)
    val = ["--val", str(write_videos(tmp_path / "val", count=1, first_seed=9))]
    two = torchrun(finetune_argv(data, checkpoint, tmp_path / "two", "--accumulate", "2", *val, steps=2))
    assert two.returncode == 0, two.stderr[-4000:]
    assert "on 2 processes" in two.stderr and two.stderr.count("validating after") == 2

    assert main(finetune_argv(data, checkpoint, tmp_path / "one", "--accumulate", "4", *val, steps=2)) == 0

    difference = largest_difference(
        saved_weights(tmp_path / "two" / "last.pt"), saved_weights(tmp_path / "one" / "last.pt")
    )
    assert difference <= 1e-5
    two_losses, one_losses = losses_by_step(tmp_path / "two"), losses_by_step(tmp_path / "one")
    assert sorted(two_losses) == sorted(one_losses) == [1, 2]
    for step in (1, 2):
        assert two_losses[step]["total"] == pytest.approx(one_losses[step]["total"], rel=1e-5)


@pytest.mark.slow  # starts torchrun with two processes (they stop before the first step)
def test_out_of_memory_on_one_process_stops_both_and_rank_0_says_which(tmp_path):
    checkpoint = write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")
    data = write_videos(tmp_path / "data", count=2)
    argv = finetune_argv(data, checkpoint, tmp_path / "out", steps=2)
    run = torchrun(
        argv, module="tests.support.finetune_runs", **{FAILING_RANK: "1", FAILURE: "out-of-memory"}
    )
    assert run.returncode != 0
    said = [line for line in run.stderr.splitlines() if "error:" in line and "out of memory" in line]
    assert said == [
        "error: [rank 1] The device ran out of memory during the setup (building the network on the "
        "device) (CUDA out of memory. Tried to allocate 1.50 GiB. GPU 1 has no room). To use less memory: "
        "add --activation-checkpointing (a run may resume with it), or start a new --out with --freeze "
        "image-encoder, a smaller --image-size, fewer --frames or fewer --objects."
    ]
    assert "]: Traceback" not in run.stderr  # no process failed with a traceback ([rank0]: Traceback ...)


@pytest.mark.slow  # starts torchrun with two training processes
def test_a_bad_clip_on_one_process_stops_both_after_rank_0_saved(tmp_path):
    checkpoint = write_random_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")
    data = write_videos(tmp_path / "data", count=2)
    out = tmp_path / "out"
    argv = finetune_argv(data, checkpoint, out, steps=3)
    run = torchrun(argv, module="tests.support.finetune_runs", **{FAILING_RANK: "1", FAILURE: "bad-clip"})
    assert run.returncode != 0
    said = [line for line in run.stderr.splitlines() if "error:" in line]
    assert said == [
        "error: [rank 1] A clip of step 2 could not be read: video1: frame 00002.jpg is cut short (truncated "
        f"JPEG). {out / 'last.pt'} holds step 1. Fix or remove what it names (--check-frames decodes every "
        "frame in the check before training), then run the same command again to resume."
    ]
    assert "]: Traceback" not in run.stderr  # no process failed with a traceback ([rank0]: Traceback ...)
    assert saved_step(out) == 1
