"""The pieces of ``apps.finetune`` a run leans on: which micro-batches each process computes, Ctrl-C
stopping at the end of a step, the CSV files after a resume, and ``last.pt``'s plain contents."""

from __future__ import annotations

import random
import signal

import numpy as np
import pytest
import torch

from apps.finetune.arguments import parse_arguments
from apps.finetune.checkpoints import random_states, read_last, restore_random_states, save_last
from apps.finetune.cli import usage
from apps.finetune.errors import FinetuneError
from apps.finetune.interrupt import StopRequest
from apps.finetune.logs import TrainingLog
from apps.finetune.micro_batches import schedule_of
from apps.finetune.run import RunState
from tests.support.finetune_runs import read_rows


def test_two_processes_split_the_micro_batches_of_one_accumulating_two():
    one = schedule_of(3, 6, accumulate=2, rank=0, world_size=1)
    rank0 = schedule_of(3, 6, accumulate=1, rank=0, world_size=2)
    rank1 = schedule_of(3, 6, accumulate=1, rank=1, world_size=2)
    assert one == [6, 7, 8, 9, 10, 11]
    assert sorted(rank0 + rank1) == one and rank0 == [6, 8, 10]


def test_the_first_ctrl_c_asks_to_stop_and_the_second_stops_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with StopRequest(announce=False) as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_resume_drops_the_rows_after_the_saved_step(tmp_path):
    log = TrainingLog(tmp_path, ("mask", "dice", "iou", "object_score", "total"))
    log.start(0)
    losses = {"mask": 1.0, "dice": 2.0, "iou": 3.0, "object_score": 4.0, "total": 0.1 + 0.2}
    for step in (1, 2, 3):
        log.add_step(step, losses, {"base": 1e-5}, 0.5, 1.0)
    log.add_validation(2, 50.0, 60.0, 55.0, 3, 1.0)
    log.add_validation(3, 51.0, 61.0, 56.0, 3, 1.0)

    resumed = TrainingLog(tmp_path, ("mask", "dice", "iou", "object_score", "total"))
    resumed.start(2)
    rows = read_rows(tmp_path / "losses.csv")
    assert [row["step"] for row in rows] == ["1", "2"]
    assert float(rows[0]["total"]) == 0.1 + 0.2  # every digit kept
    assert rows[0]["lr_vision"] == ""  # no vision group (a frozen image encoder)
    assert [row["step"] for row in read_rows(tmp_path / "validation.csv")] == ["2"]
    assert resumed.losses == [(1, 0.1 + 0.2), (2, 0.1 + 0.2)] and resumed.scores == [(2, 55.0)]


def test_last_pt_holds_only_plain_values_and_restores_the_random_states(tmp_path):
    model = torch.nn.Linear(2, 3)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    training = {"format": 1, "step": 7, "settings": {"lr": 1e-5}, "rng": random_states(torch.device("cpu"))}
    save_last(tmp_path, model, training)
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    saved = read_last(tmp_path)  # torch.load(..., weights_only=True) inside
    assert saved["training"]["step"] == 7 and set(saved["model"]) == {"weight", "bias"}
    restore_random_states(saved["training"]["rng"], torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected


def test_a_last_pt_that_is_not_ours_is_refused_with_what_to_do(tmp_path):
    torch.save({"model": {}}, tmp_path / "last.pt")
    with pytest.raises(FinetuneError, match="choose another --out|Choose another --out"):
        read_last(tmp_path)
    (tmp_path / "last.pt").write_bytes(b"cut short")
    with pytest.raises(FinetuneError, match="Delete it to start over"):
        read_last(tmp_path)


def test_the_closing_message_says_how_to_load_best_pt(tmp_path):
    args = parse_arguments(["--data", "d", "--out", str(tmp_path), "--steps", "5"])
    (tmp_path / "best.pt").write_bytes(b"")
    state = RunState(5, 5, {}, best={"jf": 71.25, "step": 3})
    text = usage(args, "sam2.1_hiera_tiny", state)
    assert f"Best validation J&F 71.2 at step 3: {tmp_path / 'best.pt'}" in text
    assert f"python app.py --checkpoint {tmp_path / 'best.pt'} --config sam2.1_hiera_tiny\n" in text
    assert f'build_sam2("sam2.1_hiera_tiny", "{tmp_path / "best.pt"}")' in text
