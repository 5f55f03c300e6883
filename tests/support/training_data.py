"""Tiny training data sets in every layout the readers know, written to a folder, with their ground truth.

A video is ``num_frames`` frames of ``height`` x ``width`` whose flat background level says which frame it is
(`frame_level`), so a test can tell which frames a reader returned even after JPEG or H.264 coding. Its
objects (`video_labels`): object 1, a red block moving right on every frame; object 2, a green block on the
first frames only (it leaves the video after frame 2); a band of the ignore label 255 on frame 1.

Writers: `write_davis_video` (JPEG + palette PNG, optionally sparse), `write_sav_video` (H.264 mp4 + a
``_manual.json`` masklet every 4th frame, RLE by our codec), `write_coco` (a COCO JSON with a compressed RLE,
an uncompressed RLE and a polygon), `write_sa1b_image`, and `write_session` (a sam2-ui session file through
the engine's own writer, on a PNG folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from model.images.rle import coco_rle, run_lengths

HEIGHT, WIDTH = 48, 64
RED, GREEN = (220, 30, 30), (30, 200, 40)
PALETTE = [v for i in range(256) for v in ((50 * i) % 256, (90 * i) % 256, (130 * i) % 256)]


def frame_level(t: int) -> int:
    """The background grey level of frame ``t``: far enough apart to survive lossy coding."""
    return 20 + (12 * t) % 200


def video_labels(num_frames: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """T, H, W uint8 object ids of the test video (0 background, 255 ignore)."""
    labels = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        x0 = 4 + 2 * t
        labels[t, 8:24, x0 : x0 + 14] = 1
        if t <= 2:
            labels[t, 30:44, 40:56] = 2
        if t == 1:
            labels[t, :, :3] = 255
    return labels


def video_frames(labels: np.ndarray) -> np.ndarray:
    """T, H, W, 3 uint8 frames drawn from labels: the frame's grey level, objects in their colours."""
    frames = np.empty((*labels.shape, 3), np.uint8)
    for t, frame_labels in enumerate(labels):
        frames[t] = frame_level(t)
        frames[t][frame_labels == 1] = RED
        frames[t][frame_labels == 2] = GREEN
    return frames


def save_labels(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels)
    image.putpalette(PALETTE)
    image.save(path)


def write_davis_video(
    root: Path,
    name: str,
    num_frames: int = 6,
    annotated: tuple[int, ...] | None = None,
    height: int = HEIGHT,
    width: int = WIDTH,
) -> np.ndarray:
    """``JPEGImages/<name>/00000.jpg ...`` and palette ``Annotations/<name>/00000.png ...`` on ``annotated``
    frames (None: all). Returns the T, H, W labels."""
    labels = video_labels(num_frames, height, width)
    frames = video_frames(labels)
    (root / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
    for t in range(num_frames):
        Image.fromarray(frames[t]).save(root / "JPEGImages" / name / f"{t:05d}.jpg", quality=95)
        if annotated is None or t in annotated:
            save_labels(root / "Annotations" / name / f"{t:05d}.png", labels[t])
    return labels


def write_mp4(frames: np.ndarray, path: Path, fps: int = 24) -> Path:
    """H.264 (yuv420p, near-lossless) with PyAV; H and W must be even."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_sav_video(folder: Path, name: str, num_frames: int = 13, every: int = 4) -> np.ndarray:
    """``<name>.mp4`` and ``<name>_manual.json`` (SA-V fields; masklet every ``every`` frames, objects 0 and
    1 being label ids 1 and 2). Returns the T, H, W labels."""
    labels = video_labels(num_frames)
    labels[labels == 255] = 0
    write_mp4(video_frames(labels), folder / f"{name}.mp4")
    masklet = [[coco_rle(labels[t] == obj) for obj in (1, 2)] for t in range(0, num_frames, every)]
    document = {
        "video_id": name,
        "video_frame_count": num_frames,
        "video_height": float(HEIGHT),
        "video_width": float(WIDTH),
        "masklet": masklet,
        "masklet_id": [0, 1],
        "masklet_num": 2,
    }
    (folder / f"{name}_manual.json").write_text(json.dumps(document))
    return labels


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's list form: column-major runs (what pycocotools' ``iscrowd`` masks use)."""
    return {"size": list(mask.shape), "counts": run_lengths(mask.ravel(order="F")) or [0]}


def coco_masks() -> dict[str, dict[int, np.ndarray]]:
    """The masks of `write_coco`'s images: file name -> annotation id -> H, W bool."""
    labels = video_labels(3)
    polygon = np.zeros((HEIGHT, WIDTH), bool)
    polygon[10:30, 20:40] = True  # the square [20, 40) x [10, 30) drawn as a polygon
    return {
        "a.jpg": {11: labels[0] == 1, 12: labels[0] == 2},
        "b.jpg": {21: labels[2] == 1, 22: polygon},
    }


def write_coco(root: Path) -> Path:
    """``root/images/{a,b}.jpg`` and ``root/annotations/instances_images.json`` (compressed and uncompressed
    RLE and a polygon; a crowd annotation and an empty one, both left out by the reader)."""
    masks = coco_masks()
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (file, objects) in enumerate(masks.items(), start=1):
        frame = np.full((HEIGHT, WIDTH, 3), frame_level(image_id), np.uint8)
        for mask in objects.values():
            frame[mask] = RED
        Image.fromarray(frame).save(root / "images" / file, quality=95)
        images.append({"id": image_id, "file_name": file, "width": WIDTH, "height": HEIGHT})
        for ann_id, mask in objects.items():
            form = coco_rle(mask) if ann_id % 10 == 1 else uncompressed_rle(mask)
            if ann_id == 22:
                form = [[20, 10, 40, 10, 40, 30, 20, 30]]
            annotations.append(
                {"id": ann_id, "image_id": image_id, "segmentation": form, "area": int(mask.sum())}
            )
    crowd = {"id": 99, "image_id": 1, "iscrowd": 1, "segmentation": coco_rle(masks["a.jpg"][11]), "area": 5}
    empty = {"id": 98, "image_id": 2, "segmentation": coco_rle(np.zeros((HEIGHT, WIDTH), bool)), "area": 0}
    document = {"images": images, "annotations": [*annotations, crowd, empty], "categories": [{"id": 1}]}
    path = root / "annotations" / "instances_images.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def write_sa1b_image(folder: Path, name: str) -> list[np.ndarray]:
    """``<name>.jpg`` + ``<name>.json`` (SA-1B fields); returns the masks in annotation order (the second one
    empty, so left out)."""
    labels = video_labels(1)[0]
    masks = [labels == 1, np.zeros_like(labels, bool), labels == 2]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(video_frames(labels[None])[0]).save(folder / f"{name}.jpg", quality=95)
    document = {
        "image": {"image_id": 1, "width": WIDTH, "height": HEIGHT, "file_name": f"{name}.jpg"},
        "annotations": [
            {"id": i, "segmentation": coco_rle(m), "area": int(m.sum()), "predicted_iou": 0.9}
            for i, m in enumerate(masks)
        ],
    }
    (folder / f"{name}.json").write_text(json.dumps(document))
    return masks


def write_session(
    folder: Path, num_frames: int = 6, annotated: tuple[int, ...] = (1, 2, 4), image: bool = False
) -> Path:
    """A sam2-ui session file on a PNG folder of the test video, written by the engine's writer: objects 1
    and 2 have the video's masks on the ``annotated`` frames (object 2 an empty mask where it has left).
    ``image``: a session on the first frame's PNG file alone (annotated on frame 0)."""
    from sam2_ui.engine.document import SessionState
    from sam2_ui.engine.masks import PROMPT, PROPAGATION, MaskEntry
    from sam2_ui.engine.media import Limits, open_media
    from sam2_ui.output import persist

    labels = video_labels(num_frames)
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video_frames(labels)):
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.png")
    limits = Limits()
    media = open_media(frames_dir / "00000.png" if image else frames_dir, limits)
    state = SessionState((HEIGHT, WIDTH), max_undo=10)
    for name in ("red", "green"):
        state.objects.add(name)
    for t in annotated:
        origin = PROMPT if t == annotated[0] else PROPAGATION
        for obj in (1, 2):
            state.store.put(t, obj, MaskEntry.from_mask(labels[t] == obj, origin, state.tick()))
    document = persist.to_document(state, media, media.rgb(0), limits, 256, False)
    media.frames.close()
    return persist.write(document, folder / "session.json")
