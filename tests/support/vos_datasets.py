"""Small generated VOS datasets (JPEG frames + input masks in both layouts) and output comparison.

Objects are the synthetic clip's shapes with fixed ids: disc 1, block 2, kite 3 (the kite enters late).
A dataset root holds ``JPEGImages/<video>/00000.jpg ...`` and ``Annotations/<video>/...``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.video_clips import make_clip, write_jpeg_folder

NUM_FRAMES, HEIGHT, WIDTH = 6, 64, 96
IDS = {"disc": 1, "block": 2, "kite": 3}
# A palette unlike DAVIS's, so that the tests see the input palette carried to the outputs.
CUSTOM_PALETTE = [v for i in range(256) for v in ((37 * i) % 256, (91 * i + 40) % 256, (13 * i + 200) % 256)]


def frames_dir(root: Path) -> Path:
    return Path(root) / "JPEGImages"


def masks_dir(root: Path) -> Path:
    return Path(root) / "Annotations"


def _labels(clip, frame_idx: int, names: tuple[str, ...]) -> np.ndarray:
    labels = np.zeros((clip.height, clip.width), np.uint8)
    for name in names:
        labels[clip.mask(name, frame_idx)] = IDS[name]
    return labels


def _save(path: Path, labels: np.ndarray, palette: list[int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels)  # grey level ("L") unless a palette is given
    if palette is not None:
        image.putpalette(palette)
    image.save(path)


def write_palette_video(
    root: Path,
    video: str,
    annotated: tuple[int, ...],
    late_object: bool,
    palette: list[int] | None,
    seed: int = 0,
    num_frames: int = NUM_FRAMES,
    height: int = HEIGHT,
    width: int = WIDTH,
) -> None:
    """One video in the palette layout: ``Annotations/<video>/<frame>.png`` on the ``annotated`` frames.

    ``late_object``: the kite enters on frame 3 (else it never shows). ``palette`` None: grey-level PNGs.
    """
    appear = 3 if late_object else num_frames
    clip = make_clip(num_frames=num_frames, height=height, width=width, appear_frame=appear, seed=seed)
    write_jpeg_folder(clip, frames_dir(root) / video)
    for t in annotated:
        _save(masks_dir(root) / video / f"{t:05d}.png", _labels(clip, t, tuple(IDS)), palette)


def write_per_object_video(root: Path, video: str, annotated: tuple[int, ...], seed: int = 0) -> None:
    """One video in the per-object layout (SA-V): ``Annotations/<video>/<id:03d>/<frame>.png`` 0/1 palette
    PNGs for every object on every annotated frame (empty where the object is not visible); the kite
    enters on frame 3."""
    clip = make_clip(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH, appear_frame=3, seed=seed)
    write_jpeg_folder(clip, frames_dir(root) / video)
    for name, obj_id in IDS.items():
        for t in annotated:
            mask = clip.mask(name, t).astype(np.uint8)
            _save(masks_dir(root) / video / f"{obj_id:03d}" / f"{t:05d}.png", mask, CUSTOM_PALETTE)


def write_palette_dataset(root: Path) -> Path:
    """``clip_a``: custom palette, the kite entering on frame 3, masks on frames 0, 3 and 5;
    ``clip_b``: grey-level masks, disc and block only, masks on frames 0 and 4."""
    write_palette_video(root, "clip_a", (0, 3, 5), late_object=True, palette=CUSTOM_PALETTE, seed=1)
    write_palette_video(root, "clip_b", (0, 4), late_object=False, palette=None, seed=2)
    return Path(root)


def write_per_object_dataset(root: Path) -> Path:
    """``clip_c``: per-object masks on frames 0 and 3, the kite entering on frame 3."""
    write_per_object_video(root, "clip_c", (0, 3), seed=3)
    return Path(root)


def output_files(out_dir: Path) -> list[str]:
    """Every PNG under an output folder, relative, sorted (hidden folders such as ``.partial`` excluded)."""
    out_dir = Path(out_dir)
    return sorted(
        str(p.relative_to(out_dir))
        for p in out_dir.rglob("*.png")
        if not any(part.startswith(".") for part in p.relative_to(out_dir).parts)
    )


def _read(path: Path) -> tuple[np.ndarray, str, list[int] | None]:
    with Image.open(path) as image:
        return np.array(image), image.mode, image.getpalette()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same_outputs(
    ours: Path,
    reference: Path,
    per_object: bool,
    undecided: dict[tuple[str, str], np.ndarray] | None = None,
    min_iou: float = 0.999,
    max_undecided: float = 0.05,
) -> int:
    """Same files, same palettes, and per file and object a mask IoU of at least ``min_iou``; returns the
    number of files compared.

    ``undecided``: per ``(video, frame name)``, pixels left out of the IoU (ties the implementations may
    break either way, see `tests.support.official_vos`); they may be at most ``max_undecided`` of the
    masks' pixels, so the comparison stays about the masks.
    """
    files = output_files(ours)
    assert files == output_files(reference), "the two runs wrote different files"
    assert files, "nothing was written"
    left_out = compared = 0
    for rel in files:
        labels, mode, palette = _read(Path(ours) / rel)
        ref_labels, ref_mode, ref_palette = _read(Path(reference) / rel)
        assert (mode, labels.shape) == (ref_mode, ref_labels.shape), rel
        assert palette == ref_palette, f"{rel}: palettes differ"
        if per_object:
            assert set(np.unique(labels)) <= {0, 1}, f"{rel}: per-object masks hold 0 and 1 only"
            pairs = {1: (labels > 0, ref_labels > 0)}
        else:
            ids = set(np.unique(labels)) | set(np.unique(ref_labels))
            pairs = {int(i): (labels == i, ref_labels == i) for i in ids if i}
        skip = np.zeros(labels.shape, bool)
        if undecided is not None:
            skip = undecided[Path(rel).parts[0], Path(rel).stem]
        for obj_id, (a, b) in pairs.items():
            union = a | b
            left_out += int((union & skip).sum())
            compared += int(union.sum())
            score = iou(a & ~skip, b & ~skip)
            assert score >= min_iou, f"{rel}, object {obj_id}: IoU {score:.4f} < {min_iou}"
    assert left_out <= max_undecided * compared, f"{left_out} of {compared} mask pixels were undecided"
    return len(files)
