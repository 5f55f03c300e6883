"""The pieces of ``apps.finetune`` a run leans on: which micro-batches each process computes, Ctrl-C
stopping at the end of a step, the CSV files after a resume, ``last.pt``'s plain contents and its flush to
the disk, how errors of several processes are said, and the timeouts of the process group."""

from __future__ import annotations

import os
import random
import signal
import stat
from datetime import timedelta

import numpy as np
import pytest
import torch

from apps.finetune import distributed
from apps.finetune.arguments import parse_arguments
from apps.finetune.checkpoints import (
    random_states,
    read_last,
    restore_random_states,
    save_atomically,
    save_last,
)
from apps.finetune.cli import main, usage
from apps.finetune.distributed import Processes
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


def test_a_checkpoint_reaches_the_disk_before_it_replaces_the_previous_one(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(descriptor):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        fsync(descriptor)

    def recorded_replace(source, target):
        events.append("rename")
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    save_atomically({"model": {"w": torch.ones(2)}}, tmp_path / "last.pt")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["model"]["w"].tolist() == [1.0, 1.0]
    assert [path.name for path in tmp_path.iterdir()] == ["last.pt"]


def gathered(monkeypatch, problems: list[str | None]) -> None:
    """Make ``all_gather_object`` hand back ``problems``: what each of the processes met."""

    def all_gather_object(output, problem, group=None):
        output[:] = problems

    monkeypatch.setattr(distributed.dist, "all_gather_object", all_gather_object)


def test_a_setup_problem_of_one_process_stops_every_process_naming_its_rank(monkeypatch):
    gathered(monkeypatch, [None, "cannot read runs/x/last.pt", None, "cannot read runs/x/last.pt"])
    with pytest.raises(FinetuneError) as raised:
        with Processes(rank=0, world_size=4).together():
            pass  # rank 0 itself was fine
    assert str(raised.value) == "[ranks 1, 3] cannot read runs/x/last.pt" and raised.value.shared

    gathered(monkeypatch, ["--precision bf16: no", "--precision bf16: no"])
    with pytest.raises(FinetuneError) as raised:
        with Processes(rank=1, world_size=2).together():
            raise FinetuneError("--precision bf16: no")
    assert str(raised.value) == "--precision bf16: no"  # every process had it: said as it is

    gathered(monkeypatch, [None, None])
    with Processes(rank=0, world_size=2).together():
        pass


@pytest.mark.parametrize("rank", [0, 1])
def test_an_error_one_process_meets_alone_is_printed_by_it_after_its_rank(rank, monkeypatch, capsys):
    def start_processes(device):
        return Processes(rank=rank, world_size=2)

    def run(args, processes):
        raise FinetuneError("A clip of step 9 could not be read: video3 is cut short.")

    barriers = []
    monkeypatch.setattr("apps.finetune.cli.start_processes", start_processes)
    monkeypatch.setattr("apps.finetune.cli.run", run)
    monkeypatch.setattr(distributed.dist, "barrier", lambda group=None: barriers.append(group))
    assert main(["--data", "d", "--out", "o", "--steps", "9"]) == 2
    err = capsys.readouterr().err
    assert err == f"[rank {rank}] error: A clip of step 9 could not be read: video3 is cut short.\n"
    assert barriers == []  # the other process may be anywhere: leave at once

    def shared(args, processes):
        raise FinetuneError("[rank 1] cannot read o/last.pt", shared=True)

    monkeypatch.setattr("apps.finetune.cli.run", shared)
    assert main(["--data", "d", "--out", "o", "--steps", "9"]) == 2
    assert capsys.readouterr().err == ("error: [rank 1] cannot read o/last.pt\n" if rank == 0 else "")
    assert len(barriers) == 1  # no process leaves before rank 0 has said it


def test_only_the_waits_for_rank_0_have_a_long_timeout(monkeypatch):
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kw: calls.update(init=kw))
    monkeypatch.setattr(distributed.dist, "new_group", lambda **kw: calls.update(wait=kw) or "wait group")
    processes = distributed.start_processes("cpu")
    assert calls["init"] == {"timeout": timedelta(minutes=30)}  # the collectives of every step
    assert calls["wait"] == {"backend": "gloo", "timeout": timedelta(hours=3)}  # data check, validation
    assert processes.wait_group == "wait group" and processes.rank == 1
