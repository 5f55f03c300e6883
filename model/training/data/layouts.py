"""`open_source`: the one entry point from a path to a training data `Source`, recognising its layout.

The layouts, in the order they are tried:

- a folder with ``JPEGImages/<video>/`` and ``Annotations/<video>/`` (DAVIS, MOSE, YouTube-VOS, our app's
  DAVIS export and ``apps.vos`` output); DAVIS 2017's ``480p`` level inside them is taken when present;
- a folder of SA-V videos: ``<video>.mp4`` with ``<video>_manual.json`` (its subfolders searched too);
- a folder of SA-1B images: ``<name>.jpg`` with ``<name>.json``;
- a COCO instances JSON file (its image folder found next to it, or given as ``image_root``).

sam2-ui session files belong to the app layer (they need the session engine): the fine-tune app opens them
with ``apps.finetune.session_source.SessionSource``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.training.data.coco import CocoSource
from model.training.data.davis import DavisSource
from model.training.data.report import TrainingDataError
from model.training.data.sa1b import SA1BSource
from model.training.data.sav import SAVSource
from model.training.data.source import Source

ACCEPTED = """Training data can be:
  - a folder with JPEGImages/<video>/00000.jpg ... and Annotations/<video>/00000.png ... (palette PNGs:
    DAVIS, MOSE, YouTube-VOS, or this app's DAVIS export);
  - a folder of SA-V videos: <video>.mp4 with <video>_manual.json beside it;
  - a folder of SA-1B images: <name>.jpg with <name>.json beside it;
  - a COCO instances JSON file (with its image folder next to it, or given as image_root);
  - a sam2-ui session file (.json) saved by the app, with its video."""
DAVIS_RESOLUTIONS = ("480p", "Full-Resolution")  # DAVIS 2017 keeps one folder per resolution


def open_source(
    path: str | Path,
    *,
    videos: Sequence[str] | str | Path | None = None,
    image_root: str | Path | None = None,
    annotation_every: int = 4,
) -> Source:
    """Open training data, recognising its layout from what is at ``path`` (see the module docstring).

    Arguments:
        path: a dataset folder or a COCO JSON file.
        videos: the videos (or SA-1B images) to use: names, or a text file of names one a line (as the
            official ``file_list_txt``, e.g. DAVIS's ``ImageSets/2017/train.txt``); None: all.
        image_root: for a COCO JSON, the folder of its images (None: found next to the JSON).
        annotation_every: for SA-V, video frames per annotated frame.
    Returns:
        An unchecked `Source`: run `check_sources` on it (or hand it to `ClipSampler`, which does).
        Raises `TrainingDataError` naming the accepted layouts when the path is none of them.
    """
    path = Path(path)
    names = _video_names(videos)
    if not path.exists():
        raise TrainingDataError(f"There is no file or folder {path}: check the path.\n{ACCEPTED}")
    if path.is_file():
        if names is not None:
            raise ValueError("videos= selects videos of a folder; a COCO JSON is used whole")
        return _open_json(path, image_root)
    folders = davis_folders(path)
    if folders is not None:
        return DavisSource(path, videos=names, frames_folder=folders[0], masks_folder=folders[1])
    if next(path.rglob("*_manual.json"), None) is not None:
        return SAVSource(path, videos=names, annotation_every=annotation_every)
    if _has_sa1b_pairs(path):
        return SA1BSource(path, videos=names)
    raise TrainingDataError(
        f"{path} is not training data in a layout this reader knows{_hint(path)}.\n{ACCEPTED}"
    )


def _video_names(videos: Sequence[str] | str | Path | None) -> list[str] | None:
    if videos is None:
        return None
    if isinstance(videos, (str, Path)):
        try:
            lines = Path(videos).read_text().splitlines()
        except OSError as error:
            raise TrainingDataError(f"cannot read the list of videos {videos}: {error}") from error
        return [Path(line.strip()).stem for line in lines if line.strip()]
    return [str(name) for name in videos]


def davis_folders(path: Path) -> tuple[str, str] | None:
    """The frame and annotation folders of a DAVIS-style root, relative to it (None: not one): ``JPEGImages``
    and ``Annotations``, or their ``480p`` (first) or ``Full-Resolution`` level as DAVIS 2017 has them."""
    frames, masks = path / "JPEGImages", path / "Annotations"
    if not (frames.is_dir() and masks.is_dir()):
        return None
    for resolution in DAVIS_RESOLUTIONS:
        if (frames / resolution).is_dir() and (masks / resolution).is_dir():
            return f"JPEGImages/{resolution}", f"Annotations/{resolution}"
    return "JPEGImages", "Annotations"


def _has_sa1b_pairs(path: Path) -> bool:
    return any(image.with_suffix(".json").is_file() for image in path.glob("*.jpg"))


def _hint(path: Path) -> str:
    """Where the data might be instead, when the folder was one level off."""
    if path.name in ("JPEGImages", "Annotations"):
        return f": give the folder that holds {path.name}, {path.parent}"
    inside = sorted(p.parent.name for p in path.glob("*/JPEGImages"))
    if inside:
        return f" (it holds {', '.join(inside)} with JPEGImages inside: give one of those folders)"
    return ""


def _open_json(path: Path, image_root: str | Path | None) -> Source:
    try:
        document: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise TrainingDataError(f"{path} cannot be read as JSON ({error}).\n{ACCEPTED}") from error
    if not isinstance(document, dict):
        raise TrainingDataError(f"{path} is JSON but not training data.\n{ACCEPTED}")
    if document.get("format") == "sam2-ui-session":
        raise TrainingDataError(
            f"{path} is a sam2-ui session file: the fine-tune app reads it (apps.finetune.session_source)."
        )
    if isinstance(document.get("images"), list) and isinstance(document.get("annotations"), list):
        return CocoSource(path, image_root, document=document)
    if "masklet" in document:
        raise TrainingDataError(
            f"{path} is an SA-V annotation file: give the folder of the .mp4 and .json files."
        )
    if "image" in document and "annotations" in document:
        raise TrainingDataError(
            f"{path} is an SA-1B annotation file: give the folder of the .jpg and .json files."
        )
    raise TrainingDataError(
        f"{path} is JSON but not training data in a layout this reader knows.\n{ACCEPTED}"
    )
