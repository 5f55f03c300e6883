"""``python -m apps.finetune`` end to end on a random-weight SAM 2.1 tiny at 64 pixels, 3-frame clips, on the
CPU: resuming after Ctrl-C continues exactly as an uninterrupted run, the files it writes, validation and
``best.pt``, checkpoints that our ``build_sam2`` and the official package load, and what a run does when a
clip fails, the device runs out of memory or the steps stop learning (saves, says what to do, exits 2)."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch

from apps.finetune import run as run_module
from apps.finetune.cli import main
from model import build_sam2
from model.training.data import TrainingDataError
from model.training.data.sampler import ClipSampler
from model.training.train_step import StepResult, TrainStep
from tests.support.finetune_runs import (
    finetune_argv,
    largest_difference,
    losses_by_step,
    read_rows,
    saved_step,
    saved_weights,
    write_random_checkpoint,
    write_videos,
)

pytestmark = pytest.mark.slow  # each run builds the model and trains a few ~1 s steps


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(checkpoint, training data, validation data)."""
    root = tmp_path_factory.mktemp("finetune")
    checkpoint = write_random_checkpoint(root / "sam2.1_hiera_tiny.pt")
    return (
        checkpoint,
        write_videos(root / "train", count=3),
        write_videos(root / "val", count=1, first_seed=9),
    )


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory) -> Path:
    """The run folder of 4 steps run without a stop."""
    checkpoint, data, _ = inputs
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    assert main(finetune_argv(data, checkpoint, out, steps=4)) == 0
    return out


def ctrl_c_after(step: int, monkeypatch) -> None:
    """Press Ctrl-C (a real SIGINT) right after ``step`` is logged, as a person would mid-run."""
    add_step = run_module.TrainingLog.add_step

    def add_step_then_interrupt(self, done, *args, **kwargs):
        add_step(self, done, *args, **kwargs)
        if done == step:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(run_module.TrainingLog, "add_step", add_step_then_interrupt)


def test_a_run_resumed_after_ctrl_c_matches_an_uninterrupted_one(
    inputs, uninterrupted, tmp_path, monkeypatch, capsys
):
    checkpoint, data, _ = inputs
    out = tmp_path / "out"
    argv = finetune_argv(data, checkpoint, out, steps=4)
    ctrl_c_after(2, monkeypatch)
    assert main(argv) == 130
    said = capsys.readouterr().out
    assert "Stopped after step 2 of 4" in said and "Run the same command again to resume" in said
    assert torch.load(out / "last.pt", weights_only=True)["training"]["step"] == 2
    monkeypatch.undo()

    assert main(argv) == 0
    assert "resuming after step 2" in capsys.readouterr().err
    resumed, straight = losses_by_step(out), losses_by_step(uninterrupted)
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):
        for name in ("mask", "dice", "iou", "object_score", "total", "lr_base", "lr_vision", "grad_norm"):
            assert resumed[step][name] == pytest.approx(straight[step][name], rel=1e-6, abs=1e-6), (
                step,
                name,
            )
    assert (
        largest_difference(saved_weights(out / "last.pt"), saved_weights(uninterrupted / "last.pt")) <= 1e-6
    )


def test_the_run_writes_losses_curves_and_an_official_checkpoint(uninterrupted):
    rows = read_rows(uninterrupted / "losses.csv")
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == [
        "step", "mask", "dice", "iou", "object_score", "total", "lr_base", "lr_vision", "grad_norm",
        "skipped", "seconds",
    ]  # fmt: skip
    assert {row["skipped"] for row in rows} == {"0"}
    assert float(rows[0]["lr_base"]) == pytest.approx(5e-6) and float(rows[0]["lr_vision"]) == pytest.approx(
        3e-6
    )
    assert (uninterrupted / "curves.png").stat().st_size > 0
    assert not (uninterrupted / "best.pt").exists()  # best.pt is by validation J&F: no --val, no best.pt
    saved = torch.load(uninterrupted / "last.pt", map_location="cpu", weights_only=True)
    assert set(saved) == {"model", "training"}
    assert saved["training"]["step"] == 4 and saved["training"]["config"] == "sam2.1_hiera_tiny"
    ours = build_sam2("sam2.1_hiera_tiny", uninterrupted / "last.pt", device="cpu")
    assert largest_difference(ours.state_dict(), saved["model"]) == 0.0


def test_rerunning_a_finished_run_has_nothing_to_do(inputs, uninterrupted, capsys):
    checkpoint, data, _ = inputs
    assert main(finetune_argv(data, checkpoint, uninterrupted, steps=4)) == 0
    said = capsys.readouterr().out
    assert "This run finished already (4 steps): nothing to do." in said
    assert f"python app.py --checkpoint {uninterrupted / 'last.pt'} --config sam2.1_hiera_tiny" in said
    assert f'build_sam2("sam2.1_hiera_tiny", "{uninterrupted / "last.pt"}")' in said


def test_resuming_with_other_arguments_is_refused(inputs, uninterrupted, capsys):
    checkpoint, data, _ = inputs
    code = main(finetune_argv(data, checkpoint, uninterrupted, "--lr", "1e-4", "--frames", "4", steps=4))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--lr: 5e-06 in the saved run, 0.0001 now" in err and "--frames: 3 in the saved run, 4 now" in err


@pytest.fixture(scope="module")
def validated(inputs, tmp_path_factory) -> Path:
    """The folder of a 2-step run validated before the first step and after each step."""
    checkpoint, data, val = inputs
    out = tmp_path_factory.mktemp("validated") / "out"
    assert main(finetune_argv(data, checkpoint, out, "--val", str(val), "--val-every", "1", steps=2)) == 0
    return out


def test_validation_scores_the_start_every_step_and_keeps_the_best(validated):
    rows = read_rows(validated / "validation.csv")
    assert [int(row["step"]) for row in rows] == [0, 1, 2]
    scores = {int(row["step"]): float(row["J&F"]) for row in rows}
    assert all(0.0 <= jf <= 100.0 for jf in scores.values())
    best_step = max(scores, key=lambda step: (scores[step], -step))
    training = torch.load(validated / "last.pt", weights_only=True)["training"]
    assert training["best"] == {"jf": pytest.approx(scores[best_step], abs=1e-3), "step": best_step}
    best = torch.load(validated / "best.pt", weights_only=True)
    assert set(best) == {"model"}
    assert (validated / "validation" / f"jf_step_{best_step:06d}.csv").is_file()
    ours = build_sam2("sam2.1_hiera_tiny", validated / "best.pt", device="cpu")
    assert largest_difference(ours.state_dict(), best["model"]) == 0.0


@pytest.mark.parity
def test_last_and_best_load_in_the_official_package(validated):
    from sam2.build_sam import build_sam2 as official_build_sam2

    for name in ("last.pt", "best.pt"):
        official = official_build_sam2(
            "configs/sam2.1/sam2.1_hiera_t.yaml", str(validated / name), device="cpu"
        )
        weights = saved_weights(validated / name)
        assert largest_difference(official.state_dict(), weights) == 0.0


def test_a_clip_that_fails_mid_run_saves_the_steps_done_and_says_what_to_do(
    inputs, tmp_path, monkeypatch, capsys
):
    checkpoint, data, _ = inputs
    clip = ClipSampler.clip

    def clip_of_a_video_cut_short(self, micro_batch, *place):
        if micro_batch >= 1:  # the clip of step 2 (one clip a step)
            raise TrainingDataError("video1: frame 00002.jpg is cut short (truncated JPEG)")
        return clip(self, micro_batch, *place)

    monkeypatch.setattr(ClipSampler, "clip", clip_of_a_video_cut_short)  # in the DataLoader worker too
    code = main(finetune_argv(data, checkpoint, tmp_path, "--workers", "1", steps=2))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "Caught" not in err
    assert (
        "error: A clip of step 2 could not be read: video1: frame 00002.jpg is cut short (truncated JPEG). "
        f"{tmp_path / 'last.pt'} holds step 1. Fix or remove what it names" in err
    )
    assert saved_step(tmp_path) == 1


def test_running_out_of_memory_saves_the_steps_done_and_says_what_to_change(
    inputs, tmp_path, monkeypatch, capsys
):
    checkpoint, data, _ = inputs
    run = TrainStep.run

    def out_of_memory_in_step_2(self, step, batches):
        if step == 1:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of "
                "which 1.02 GiB is free. Of the allocated memory 20.1 GiB is allocated by PyTorch. See the "
                "documentation for Memory Management (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True)"
            )
        return run(self, step, batches)

    monkeypatch.setattr(TrainStep, "run", out_of_memory_in_step_2)
    code = main(finetune_argv(data, checkpoint, tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(
        "error: The device ran out of memory during step 2 (CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of 23.65 GiB of which 1.02 GiB is free). "
        f"{tmp_path / 'last.pt'} holds step 1. To use less memory: add --activation-checkpointing"
    )
    assert all(flag in line for flag in ("--freeze image-encoder", "--image-size", "--frames", "--objects"))
    assert saved_step(tmp_path) == 1


def skipping_from_step_2(monkeypatch, after_step_1: dict) -> None:
    """Every step after the first is skipped, as `TrainStep` skips a step whose gradients are not finite
    (no update); ``after_step_1`` gets the weights the first step left."""
    run = TrainStep.run

    def skipped(self, step, batches):
        if step == 0:
            return run(self, step, batches)
        if not after_step_1:
            after_step_1.update({k: v.clone() for k, v in self.training.model.state_dict().items()})
        self.optimizer.zero_grad(set_to_none=True)
        losses = {name: math.nan for name in ("mask", "dice", "iou", "object_score", "total")}
        return StepResult(step, losses, {"base": 5e-6, "vision": 3e-6}, math.nan, skipped=True)

    monkeypatch.setattr(TrainStep, "run", skipped)


def test_ten_skipped_steps_in_a_row_stop_the_run_with_the_last_good_weights(
    inputs, tmp_path, monkeypatch, capsys
):
    checkpoint, data, _ = inputs
    after_step_1: dict = {}
    skipping_from_step_2(monkeypatch, after_step_1)
    code = main(finetune_argv(data, checkpoint, tmp_path, steps=20))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "step 2 skipped: its loss or gradients were not finite (NaN or inf)" in err
    assert (
        "error: Stopped after step 11: the last 10 steps had a loss or gradients that were not finite" in err
    )
    assert "the weights last changed in step 1" in err and "Lower the learning rate (--lr 5e-06" in err
    rows = read_rows(tmp_path / "losses.csv")
    assert [(row["step"], row["skipped"]) for row in rows] == [("1", "0")] + [
        (str(s), "1") for s in range(2, 12)
    ]
    assert saved_step(tmp_path) == 11
    assert largest_difference(saved_weights(tmp_path / "last.pt"), after_step_1) == 0.0


def test_weights_that_are_not_finite_never_replace_last_pt(inputs, tmp_path, monkeypatch, capsys):
    checkpoint, data, _ = inputs
    run = TrainStep.run

    def poisoned_in_step_2(self, step, batches):
        result = run(self, step, batches)
        if step == 1:  # finite gradients, yet an update that overflowed (a learning rate far too high)
            with torch.no_grad():
                next(self.training.model.parameters()).fill_(math.inf)
        return result

    monkeypatch.setattr(TrainStep, "run", poisoned_in_step_2)
    code = main(finetune_argv(data, checkpoint, tmp_path, "--save-every", "1", steps=3))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert (
        "error: Stopped after step 2: the weights are no longer finite (NaN or inf), so they were not saved "
        f"({tmp_path / 'last.pt'} holds step 1)" in err
    )
    assert saved_step(tmp_path) == 1
    assert all(torch.isfinite(weight).all() for weight in saved_weights(tmp_path / "last.pt").values())
