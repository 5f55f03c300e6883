"""Small fine-tuning runs for the tests of ``python -m apps.finetune``: a random-weight SAM 2.1 tiny in the
official file format, tiny DAVIS-layout data sets, the flags of a run that takes about a second a step on
one CPU thread, ``torchrun`` runs of several CPU processes, and readers of what a run writes.

Run as ``torchrun ... -m tests.support.finetune_runs ARGS``, it is ``python -m apps.finetune ARGS`` in which
one process meets a problem the others do not: ``$FINETUNE_FAILING_RANK`` names the process, and
``$FINETUNE_FAILURE`` the problem, one of `FAILURES`."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from tests.support.checkpoints import save_official_checkpoint
from tests.support.vos_datasets import frames_dir, write_palette_video

IMAGE_SIZE = 64  # a step of 3 frames at 64 pixels takes ~1.5 s on one CPU thread
FRAMES = 3  # a tracked frame in every clip (at most 2 are conditioning frames), so every clip has gradients
VIDEO_FRAMES = 4
REPO = Path(__file__).resolve().parents[2]
FAILING_RANK, FAILURE = "FINETUNE_FAILING_RANK", "FINETUNE_FAILURE"
FAILURES = {
    "out-of-memory": "the process runs out of memory building the network, as one GPU of several can",
    "bad-clip": "the process cannot read a clip of micro-batch 2 onwards (its second step of 2 processes)",
}


def write_random_checkpoint(path: Path, seed: int = 0) -> Path:
    """SAM 2.1 tiny with seeded random weights as ``{"model": state_dict}`` (named so its config is known)."""
    from model import build_sam2

    torch.manual_seed(seed)
    model = build_sam2("sam2.1_hiera_tiny", device="cpu", image_size=IMAGE_SIZE)
    return save_official_checkpoint(model, Path(path))


def write_videos(root: Path, count: int = 3, num_frames: int = VIDEO_FRAMES, first_seed: int = 0) -> Path:
    """``count`` DAVIS-layout videos (the disc and the block moving), annotated on every frame."""
    for i in range(count):
        write_palette_video(
            root,
            f"video{i}",
            tuple(range(num_frames)),
            False,
            None,
            seed=first_seed + i,
            num_frames=num_frames,
        )
    return Path(root)


def add_broken_jpeg_video(root: Path, name: str = "broken") -> None:
    """A video whose frames are not JPEGs at all (bytes Pillow cannot identify)."""
    write_palette_video(root, name, tuple(range(VIDEO_FRAMES)), False, None, seed=7, num_frames=VIDEO_FRAMES)
    for frame in (frames_dir(root) / name).iterdir():
        frame.write_bytes(b"this is not a JPEG")


def add_video_without_frames(root: Path, name: str = "empty") -> None:
    """A video with annotations but an empty frame folder."""
    write_palette_video(root, name, tuple(range(VIDEO_FRAMES)), False, None, seed=8, num_frames=VIDEO_FRAMES)
    for frame in (frames_dir(root) / name).iterdir():
        frame.unlink()


def finetune_argv(data: Path, checkpoint: Path, out: Path, *extra: str, steps: int = 4) -> list[str]:
    """The flags of a tiny CPU run (fp32, clips made in the training process)."""
    return [
        "--data", str(data),
        "--checkpoint", str(checkpoint),
        "--out", str(out),
        "--steps", str(steps),
        "--image-size", str(IMAGE_SIZE),
        "--frames", str(FRAMES),
        "--objects", "2",
        "--workers", "0",
        "--device", "cpu",
        "--precision", "fp32",
        *extra,
    ]  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def losses_by_step(out: Path) -> dict[int, dict[str, float]]:
    """``losses.csv`` of a run: step -> column -> value."""
    return {
        int(row["step"]): {k: float(v) for k, v in row.items() if k != "step" and v != ""}
        for row in read_rows(Path(out) / "losses.csv")
    }


def saved_step(out: Path) -> int:
    """The step ``out/last.pt`` holds."""
    return torch.load(Path(out) / "last.pt", weights_only=True)["training"]["step"]


def saved_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel())


def torchrun(argv: list[str], processes: int = 2, module: str = "apps.finetune", **env: str):
    """``torchrun --standalone --nproc_per_node processes -m module argv`` on the CPU (one thread a process,
    fp32), from the repository root; the finished `subprocess.CompletedProcess` with its output."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    # Its own process group, so a run that hangs is stopped whole (workers included), not left behind.
    with subprocess.Popen(
        [*launcher, str(processes), "-m", module, *argv],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SAM2_UI_PRECISION": "fp32", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as launched:
        try:
            out, err = launched.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(launched.pid, signal.SIGKILL)
            out, err = launched.communicate()
            raise AssertionError(f"torchrun did not finish in 600 s:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(launched.args, launched.returncode, out, err)


def main_failing_on(rank: int, failure: str, argv: list[str]) -> int:
    """``apps.finetune``'s ``main(argv)``, in which the process of ``rank`` meets ``failure`` (`FAILURES`)."""
    from apps.finetune import cli, model_setup
    from model.training.data import TrainingDataError
    from model.training.data.sampler import ClipSampler

    failing = int(os.environ.get("RANK", "0")) == rank
    build_network, clip = model_setup.build_network, ClipSampler.clip

    def build_or_run_out_of_memory(*args, **kwargs):
        if failing:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB. GPU 1 has no room")
        return build_network(*args, **kwargs)

    def clip_or_fail(self, micro_batch, *place):
        if failing and micro_batch >= 2:
            raise TrainingDataError("video1: frame 00002.jpg is cut short (truncated JPEG)")
        return clip(self, micro_batch, *place)

    if failure == "out-of-memory":
        model_setup.build_network = build_or_run_out_of_memory
    elif failure == "bad-clip":
        ClipSampler.clip = clip_or_fail
    else:
        raise ValueError(f"${FAILURE}: one of {', '.join(FAILURES)}, not {failure!r}")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main_failing_on(int(os.environ[FAILING_RANK]), os.environ[FAILURE], sys.argv[1:]))
