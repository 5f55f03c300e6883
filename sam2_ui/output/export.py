"""Writing masks out: per-object PNGs, DAVIS indexed PNGs, COCO RLE JSON, and an overlay video.

Conventions shared by every exporter:
- ``masks_by_frame`` maps frame index -> {object id -> H, W bool mask}; sizes are (width, height) as in PIL.
- Output is written to a temporary name next to its destination and moved into place only when complete, so
  a failed export leaves no half-written file (a folder export that fails while moving its finished files in
  may leave some of them, never a truncated one).
- A path that cannot be written raises `SessionError` naming the path and what to do; wrong array shapes
  from the caller raise ``ValueError``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from model.images.rle import coco_rle

from ..engine.colors import RGB, davis_palette_flat, object_color
from ..engine.errors import SessionError
from .staging import make_dirs, staged_file, write_error

MasksByFrame = Mapping[int, Mapping[int, np.ndarray]]  # frame -> obj_id -> H, W bool

FRAME_PNG = re.compile(r"^\d{5}\.png$")  # the frame files these exporters own (and may replace)
WRITABLE_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")  # containers that take H.264 and MPEG-4
_PNG_LEVEL = 1  # binary masks compress almost as well at level 1, several times faster than the default 6


# ------------------------------------------------------------------------------------------- PNG masks
def object_folder_name(obj_id: int, name: str | None = None) -> str:
    """The per-object folder of `export_object_pngs`: ``"003_red_car"``, or ``"003"`` without a name.

    The id prefix keeps folders unique (two objects may share a name) and sorted in object order.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return f"{obj_id:03d}_{slug}" if slug else f"{obj_id:03d}"


def export_object_pngs(
    masks_by_frame: MasksByFrame, out_dir: str | Path, names: Mapping[int, str] | None = None
) -> list[Path]:
    """One folder per object (see `object_folder_name`) with a 0/255 grayscale PNG per frame, ``00012.png``.

    Every frame in ``masks_by_frame`` gets a file for every object that has a mask on any frame; an object
    missing from a frame's dict is written as an empty mask there. Older ``NNNNN.png`` files left in those
    object folders by an earlier export are removed, so each folder holds exactly this export.
    Returns the written files, sorted.
    """
    size = _common_size(masks_by_frame)
    object_ids = sorted({oid for masks in masks_by_frame.values() for oid in masks})
    names = names or {}
    written = []
    with _staged_dir(out_dir) as stage:
        for oid in object_ids:
            folder = object_folder_name(oid, names.get(oid))
            (stage / folder).mkdir()
            for frame in sorted(masks_by_frame):
                mask = masks_by_frame[frame].get(oid)
                binary = np.zeros((size[1], size[0]), bool) if mask is None else _as_mask(mask, size)
                pixels = binary.view(np.uint8) * np.uint8(255)  # H, W in {0, 255}
                Image.fromarray(pixels).save(stage / folder / f"{frame:05d}.png", compress_level=_PNG_LEVEL)
                written.append(Path(out_dir) / folder / f"{frame:05d}.png")
    return written


def davis_indices(object_ids: Iterable[int]) -> dict[int, int]:
    """Object id -> pixel value in DAVIS PNGs: 1, 2, ... in increasing id order (0 is background)."""
    ids = sorted(set(object_ids))
    if len(ids) > 255:
        raise SessionError(
            f"DAVIS PNGs hold at most 255 objects and this export has {len(ids)}; "
            "export per-object PNGs or COCO JSON instead."
        )
    return {oid: index for index, oid in enumerate(ids, start=1)}


def export_davis_pngs(
    masks_by_frame: MasksByFrame,
    out_dir: str | Path,
    num_frames: int,
    size: tuple[int, int],
    object_ids: Iterable[int] | None = None,
) -> list[Path]:
    """One indexed PNG (mode "P", DAVIS palette) per frame ``00000.png .. {num_frames-1:05d}.png``.

    A pixel holds the `davis_indices` value of its object. ``object_ids`` fixes that numbering (pass every
    object of the session so an object without masks still keeps its slot); by default it is the ids found in
    ``masks_by_frame``. Where masks overlap the higher object id wins. Frames without masks are all zero.
    Stale ``NNNNN.png`` files in ``out_dir`` from a longer earlier export are removed.
    Returns the written files, in frame order.
    """
    width, height = size
    if object_ids is None:
        object_ids = {oid for masks in masks_by_frame.values() for oid in masks}
    indices = davis_indices(object_ids)
    outside = [f for f in masks_by_frame if not 0 <= f < num_frames]
    if outside:
        raise ValueError(f"masks for frames {outside[:5]} outside 0..{num_frames - 1}")
    palette = davis_palette_flat()
    with _staged_dir(out_dir) as stage:
        for frame in range(num_frames):
            label = np.zeros((height, width), np.uint8)  # H, W
            masks = masks_by_frame.get(frame, {})
            for oid in sorted(masks):  # increasing id: later writes, so the higher id wins overlaps
                if oid not in indices:
                    raise ValueError(f"object {oid} has masks but is not in object_ids")
                label[_as_mask(masks[oid], size)] = indices[oid]
            image = Image.fromarray(label)
            image.putpalette(palette)  # "L" -> "P": the values become palette indices
            image.save(stage / f"{frame:05d}.png", compress_level=_PNG_LEVEL)
    return [Path(out_dir) / f"{frame:05d}.png" for frame in range(num_frames)]


# ------------------------------------------------------------------------------------------- COCO JSON
def export_coco_json(
    masks_by_frame: MasksByFrame,
    path: str | Path,
    names: Mapping[int, str],
    colors: Mapping[int, RGB],
    size: tuple[int, int],
    fps: float | Fraction | None = None,
    num_frames: int | None = None,
) -> Path:
    """COCO-style JSON with compressed RLE masks that ``pycocotools.mask.decode`` reads.

    Layout: ``videos`` (one entry: width, height, num_frames, fps), ``images`` (one per frame: ``id`` = frame
    index), ``categories`` (one per object: ``id`` = object id, name, ``color`` [r, g, b]) and
    ``annotations`` (one per non-empty mask: ids from 1, ``image_id``/``frame_index``, ``category_id`` and
    ``object_id`` = object id, ``segmentation`` RLE, ``area`` in pixels, ``bbox`` [x, y, w, h]). Objects are
    those in ``names`` or with masks; frames are ``0..num_frames-1`` if given, else those with masks.
    """
    width, height = size
    object_ids = sorted(set(names) | {oid for masks in masks_by_frame.values() for oid in masks})
    frames = range(num_frames) if num_frames is not None else sorted(masks_by_frame)
    annotations = []
    for frame in sorted(masks_by_frame):
        for oid, mask in sorted(masks_by_frame[frame].items()):
            annotation = _coco_annotation(len(annotations) + 1, frame, oid, _as_mask(mask, size))
            if annotation is not None:  # COCO has no annotation for an absent object
                annotations.append(annotation)
    rate = float(fps_fraction(fps)) if fps is not None else None
    document = {
        "info": {"description": "Masks exported by sam2-ui", "version": "1.0"},
        "videos": [{"id": 1, "width": width, "height": height, "num_frames": len(frames), "fps": rate}],
        "images": [
            {
                "id": f,
                "frame_index": f,
                "video_id": 1,
                "width": width,
                "height": height,
                "file_name": f"{f:05d}",
            }
            for f in frames
        ],
        "categories": [
            {
                "id": oid,
                "name": names.get(oid) or f"object {oid}",
                "color": list(colors.get(oid) or object_color(oid)),
                "supercategory": "object",
            }
            for oid in object_ids
        ],
        "annotations": annotations,
    }
    path = Path(path)
    with staged_file(path) as tmp:
        tmp.write_text(json.dumps(document, separators=(",", ":")))
    return path


def _coco_annotation(number: int, frame: int, oid: int, mask: np.ndarray) -> dict | None:
    """One COCO annotation of an object's H, W bool mask on a frame (None for an empty mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return {
        "id": number,
        "image_id": frame,
        "frame_index": frame,
        "category_id": oid,
        "object_id": oid,
        "segmentation": coco_rle(mask),
        "area": int(mask.sum()),
        "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)],
        "iscrowd": 0,
    }  # bbox: x, y, w, h in pixels, as pycocotools.mask.toBbox gives


# ------------------------------------------------------------------------------------------ overlay video
def fps_fraction(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: 25 -> 25, 29.97 -> 30000/1001, 23.976 -> 24000/1001, 12.5 -> 25/2.

    Floats within 0.001 of an integer or of an NTSC rate (n * 1000/1001) snap to it, because video files
    store those rates as fractions and a float has already lost the exact value.
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        fps = float(fps)
        if not np.isfinite(fps):
            raise ValueError(f"fps must be a positive number, got {fps}")
        ntsc = round(fps * 1.001)
        if abs(fps - round(fps)) < 1e-3:
            rate = Fraction(round(fps))
        elif abs(fps - ntsc * 1000 / 1001) < 1e-3:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return rate


def export_overlay_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float | Fraction,
    size: tuple[int, int] | None = None,
) -> Path:
    """Encode rendered H, W, 3 uint8 frames as a video at exactly ``fps`` with one video frame per input.

    H.264 (``libx264``) when PyAV has it, else MPEG-4 Part 2; yuv420p. ``size`` (width, height) defaults to
    the first frame's; frames of another size are resized to it. yuv420p needs even dimensions, so an odd
    width or height is padded by repeating the last column or row (the file is then one pixel larger).
    The time base is 1/fps as a fraction (see `fps_fraction`), so readers see the same rate back
    (``average_rate`` == 30000/1001 for 29.97). The container follows the suffix (`WRITABLE_VIDEO_SUFFIXES`).
    """
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_VIDEO_SUFFIXES:
        raise SessionError(
            f"Cannot write a video to {path}: the name must end in one of "
            f"{', '.join(WRITABLE_VIDEO_SUFFIXES)} (for example overlay.mp4)."
        )
    rate = fps_fraction(fps)
    count = 0
    with staged_file(path, errors=(av.FFmpegError,)) as tmp:
        container = av.open(str(tmp), mode="w")
        try:
            stream = None
            for frame in frames:
                rgb = np.asarray(frame)
                if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                    raise ValueError(f"frame {count} is {rgb.shape} {rgb.dtype}, expected H, W, 3 uint8")
                if stream is None:
                    size = size or (rgb.shape[1], rgb.shape[0])
                    stream = _add_video_stream(container, rate, size)
                packet_frame = av.VideoFrame.from_ndarray(_even(_fit(rgb, size)), format="rgb24")
                packet_frame.pts = count  # in 1/fps units: frame i is shown at i / fps
                container.mux(stream.encode(packet_frame))
                count += 1
            if stream is None:
                raise SessionError(f"Nothing to write to {path}: there are no frames. Open a video first.")
            container.mux(stream.encode(None))  # flush the frames the encoder still holds
        finally:
            container.close()
    return path


def _add_video_stream(container: av.container.OutputContainer, rate: Fraction, size: tuple[int, int]):
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = 1 / rate
    if codec == "libx264":
        stream.options = {"crf": "18", "preset": "veryfast"}  # visually clean overlays, quick on a laptop
    else:
        # MPEG-4's default 200 kb/s smears mask edges; about 0.25 bit per pixel keeps them sharp.
        stream.bit_rate = int(stream.width * stream.height * float(rate) * 0.25)
    return stream


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.Resampling.BILINEAR))


def _even(rgb: np.ndarray) -> np.ndarray:
    """Pad H, W, 3 to even H and W by repeating the last row / column."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# ---------------------------------------------------------------------------------------- arrays and paths
def _as_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (size[1], size[0]):
        raise ValueError(f"mask of shape {mask.shape} does not match the video size {size} (width, height)")
    return mask.astype(bool, copy=False)


def _common_size(masks_by_frame: MasksByFrame) -> tuple[int, int]:
    shapes = {np.shape(mask) for masks in masks_by_frame.values() for mask in masks.values()}
    if len(shapes) > 1:
        raise ValueError(f"masks of different shapes: {sorted(shapes)}")
    if not shapes:
        raise SessionError("There are no masks to export yet: add a prompt or propagate first.")
    height, width = shapes.pop()
    return width, height


@contextmanager
def _staged_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder inside ``out_dir``; if the block succeeds, move what it wrote into place.

    Every folder that receives files loses the ``NNNNN.png`` files it had that this export did not write.
    On failure the staging folder is deleted, and ``out_dir`` too if this call created it.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SessionError(f"Cannot export into {out_dir}: it is a file. Choose a folder instead.")
    created = not out_dir.exists()
    make_dirs(out_dir, out_dir)
    stage = out_dir / f".partial-{uuid.uuid4().hex[:8]}"
    done = False
    try:
        stage.mkdir()
        yield stage
        for folder in sorted({p.parent.relative_to(stage) for p in stage.rglob("*") if p.is_file()}):
            target = out_dir / folder
            target.mkdir(parents=True, exist_ok=True)
            written = {p.name for p in (stage / folder).iterdir()}
            for old in target.iterdir():
                if FRAME_PNG.match(old.name) and old.name not in written and old.is_file():
                    old.unlink()
            for name in sorted(written):
                os.replace(stage / folder / name, target / name)
        done = True
    except OSError as error:
        raise write_error(out_dir, error) from error
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out_dir, ignore_errors=True)
