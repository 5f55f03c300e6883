"""``python -m apps.finetune`` end to end on a random-weight SAM 2.1 tiny at 64 pixels, 3-frame clips, on the
CPU: resuming after Ctrl-C continues exactly as an uninterrupted run, the files it writes, validation and
``best.pt``, and checkpoints that our ``build_sam2`` and the official package load."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from apps.finetune import run as run_module
from apps.finetune.cli import main
from model import build_sam2
from tests.support.finetune_runs import (
    finetune_argv,
    largest_difference,
    losses_by_step,
    read_rows,
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
        "step", "mask", "dice", "iou", "object_score", "total", "lr_base", "lr_vision", "grad_norm", "seconds"
    ]  # fmt: skip
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
