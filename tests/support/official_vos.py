"""The official ``tools/vos_inference.py`` semantics, driving the official ``SAM2VideoPredictor`` (test-only).

Written from the behaviour of the official script (``vos_inference`` and
``vos_separate_inference_per_object``), not from our code, so the tests compare two independent readings of
it. The official script is not part of the ``sam2`` package, hence this driver.

It also says which pixels are undecided: those whose outcome hangs on a logit difference smaller than the
float noise between two implementations. With random weights every object's tracked mask is nearly the same
blob, so where two objects overlap their logits can be equal to 1e-7 and the non-overlap constraint picks
one by rounding; comparisons leave those pixels out (and check that they are few).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TIE_EPS = 5e-6
"""Logit differences below this are rounding noise (ours and the official differ by about 4e-7 here)."""


def undecided_pixels(raw: torch.Tensor, score_thresh: float, non_overlap: bool) -> np.ndarray:
    """``H, W`` bool: pixels decided by less than `TIE_EPS`, from ``N, 1, H, W`` logits before the
    non-overlap constraint: the best logit (every logit, without the constraint) within `TIE_EPS` of the
    threshold, or the two best within `TIE_EPS` of each other above it."""
    assert score_thresh >= -10.0, "with the constraint, lower thresholds also keep the losing objects"
    raw = raw.float()[:, 0]
    if not non_overlap or raw.shape[0] == 1:
        return ((raw - score_thresh).abs() < TIE_EPS).any(0).cpu().numpy()
    top = raw.topk(2, dim=0).values
    near = (top[0] - score_thresh).abs() < TIE_EPS
    near |= (top[0] > score_thresh) & (top[0] - top[1] < TIE_EPS)
    return near.cpu().numpy()


def voc_palette() -> list[int]:
    """The DAVIS palette (the PASCAL VOC colour map: the bits of the index spread over R, G and B)."""
    flat = []
    for index in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
        flat += rgb
    return flat


def _load(path: Path) -> tuple[np.ndarray, list[int] | None]:
    with Image.open(path) as image:
        return np.array(image).astype(np.uint8), image.getpalette()


def _read(mask_dir: Path, name: str, per_object: bool, allow_missing: bool) -> tuple[dict, list | None]:
    if not per_object:
        path = mask_dir / f"{name}.png"
        if allow_missing and not path.exists():
            return {}, None
        labels, palette = _load(path)
        return {int(i): labels == i for i in np.unique(labels) if i > 0}, palette
    objects, palette = {}, None
    for folder in sorted(mask_dir.iterdir()):
        path = folder / f"{name}.png"
        if allow_missing and not path.exists():
            continue
        labels, palette = _load(path)
        objects[int(folder.name)] = labels > 0
    return objects, palette


def _write(out: Path, name: str, masks: dict, per_object: bool, palette: list[int], h: int, w: int) -> None:
    def save(path: Path, labels: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(labels)
        image.putpalette(palette)
        image.save(path)

    if per_object:
        for obj_id, mask in masks.items():
            save(out / f"{obj_id:03d}" / f"{name}.png", mask.reshape(h, w).astype(np.uint8))
        return
    labels = np.zeros((h, w), np.uint8)
    for obj_id in sorted(masks, reverse=True):
        labels[masks[obj_id].reshape(h, w)] = obj_id
    save(out / f"{name}.png", labels)


@torch.inference_mode()
def official_vos_video(
    predictor,
    base_video_dir: Path,
    input_mask_dir: Path,
    output_mask_dir: Path,
    video: str,
    per_object: bool = False,
    track_later: bool = False,
    use_all_masks: bool = False,
    score_thresh: float = 0.0,
    find_undecided: bool = True,
) -> dict[str, np.ndarray]:
    """One video, as the official script runs it with the official predictor (built with
    ``++model.non_overlap_masks`` = ``not per_object``); returns the undecided pixels (`undecided_pixels`)
    of every frame written, by frame name (nothing with ``find_undecided=False``, as timing runs want)."""
    video_dir, mask_dir = Path(base_video_dir) / video, Path(input_mask_dir) / video
    names = [p.stem for p in video_dir.iterdir() if p.suffix in (".jpg", ".jpeg", ".JPG", ".JPEG")]
    names.sort(key=int)
    state = predictor.init_state(video_path=str(video_dir), async_loading_frames=False)
    h, w = state["video_height"], state["video_width"]
    results: dict[int, dict] = {}
    undecided: dict[int, np.ndarray] = {}
    if not track_later:
        frame_inds = [0]
        if use_all_masks:
            folders = sorted(mask_dir.iterdir()) if per_object else [mask_dir]
            frame_inds = sorted(
                {i for f in folders for i, n in enumerate(names) if (f / f"{n}.png").exists()}
            )
        first_ids = None
        for idx in frame_inds:
            objects, palette = _read(mask_dir, names[idx], per_object, allow_missing=False)
            first_ids = set(objects) if first_ids is None else first_ids
            assert set(objects) <= first_ids, "an object appears later: the official script stops here"
            for obj_id, mask in objects.items():
                predictor.add_new_mask(state, idx, obj_id, mask)
        assert first_ids, "no object: the official script stops here"
        with _raw_logits_spy(predictor, find_undecided) as raw:
            for idx, obj_ids, logits in predictor.propagate_in_video(state):
                results[idx] = {o: (logits[i] > score_thresh).cpu().numpy() for i, o in enumerate(obj_ids)}
                if find_undecided:
                    before = raw[-1] if predictor.non_overlap_masks else logits
                    undecided[idx] = undecided_pixels(before, score_thresh, predictor.non_overlap_masks)
    else:
        inputs: dict[int, dict[int, np.ndarray]] = {}
        palette = None
        for idx, name in enumerate(names):
            if per_object or (mask_dir / f"{name}.png").exists():
                objects, palette = _read(mask_dir, name, per_object, allow_missing=True)
                for obj_id, mask in objects.items():
                    if mask.any() and (use_all_masks or not inputs.get(obj_id)):
                        inputs.setdefault(obj_id, {})[idx] = mask
        obj_ids = sorted(inputs)
        scores: dict[int, dict[int, np.ndarray]] = {o: {} for o in obj_ids}
        for obj_id in obj_ids:
            predictor.reset_state(state)
            for idx in sorted(inputs[obj_id]):
                predictor.add_new_mask(state, idx, obj_id, inputs[obj_id][idx])
            start = min(inputs[obj_id])
            for idx, _, logits in predictor.propagate_in_video(state, start_frame_idx=start, reverse=False):
                scores[obj_id][idx] = logits.cpu().numpy()
        for idx in range(len(names)):
            stacked = torch.full((len(obj_ids), 1, h, w), -1024.0)
            for i, obj_id in enumerate(obj_ids):
                if idx in scores[obj_id]:
                    stacked[i] = torch.from_numpy(scores[obj_id][idx])
            if find_undecided:
                undecided[idx] = undecided_pixels(stacked, score_thresh, non_overlap=not per_object)
            if not per_object:
                stacked = predictor._apply_non_overlapping_constraints(stacked)
            results[idx] = {o: (stacked[i] > score_thresh).numpy() for i, o in enumerate(obj_ids)}
    out = Path(output_mask_dir) / video
    out.mkdir(parents=True, exist_ok=True)
    for idx, masks in results.items():
        _write(out, names[idx], masks, per_object, palette or voc_palette(), h, w)
    return {names[idx]: pixels for idx, pixels in undecided.items()}


@contextlib.contextmanager
def _raw_logits_spy(predictor, active: bool = True) -> Iterator[list[torch.Tensor]]:
    """Records the logits the official predictor hands to its non-overlap constraint (its outputs before
    the constraint; the constraint touches nothing else)."""
    seen: list[torch.Tensor] = []
    if not active:
        yield seen
        return
    constrain = predictor._apply_non_overlapping_constraints

    def spy(masks: torch.Tensor) -> torch.Tensor:
        seen.append(masks.clone())
        return constrain(masks)

    predictor._apply_non_overlapping_constraints = spy
    try:
        yield seen
    finally:
        del predictor._apply_non_overlapping_constraints
