"""Session files: one JSON document with everything needed to carry on where a session was saved.

Layout (``"format": "sam2-ui-session"``, ``"version": 1``):

- ``source``: ``{"kind": "path", "path": absolute, "relative": from the JSON file's folder}``, or
  ``{"kind": "memory", "description": ...}`` for frames given as arrays (pass them again to load);
- ``video``: frame count, size and fps the session worked at, the original size and frame count, and a
  SHA-1 of frame 0, so loading onto different frames is refused instead of giving wrong masks;
- ``limits``: the `Limits` the media was opened with (reopened with the same ones);
- ``objects`` (id, name, colour), ``next_object_id``, ``selected``;
- ``log``: the prompt log (`prompts.action_to_json`), which replays to the predictor's state;
- ``masks``: every stored mask as exact run lengths, with its origin and clock, plus ``prompt_clocks`` and
  ``clock``, so stale frames survive the round trip; ``iou`` and ``score`` (the model's predicted IoU and
  object score logit) where known: optional, files written without them still load;
- ``model``: the network's image size, for a warning when loading with another model;
- ``corrections_as_conditioning``: whether corrections on tracked frames were conditioning frames (the log
  replays to the same masks only with the same setting; files without it were made with False).

The undo history is not saved: a loaded session starts with nothing to undo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.document import SavedDocument, SessionState, from_document
from ..engine.errors import SessionError
from ..engine.media import Limits, Media
from .staging import staged_file

FORMAT = "sam2-ui-session"
VERSION = 1


def frame_digest(frame) -> str:
    return hashlib.sha1(frame.tobytes()).hexdigest()


def to_document(
    state: SessionState,
    media: Media,
    frame0: np.ndarray,
    limits: Limits,
    image_size: int | None,
    corrections_as_conditioning: bool,
    portable: bool = False,
) -> dict[str, Any]:
    """The JSON-ready document of a session: its media, limits and model, and its state's document.

    ``portable``: name the source by its file name only (a download from a server must not reveal the
    server's folders); loading then looks for it beside the session file, or takes ``source=``.
    """
    if media.path is not None and portable:
        source = {"kind": "path", "path": media.path.name, "relative": media.path.name, "portable": True}
    elif media.path is not None:
        source = {"kind": "path", "path": str(media.path), "relative": None}
    else:
        source = {"kind": "memory", "description": media.description}
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "video": {
            "num_frames": len(media.frames),
            "width": media.frames.width,
            "height": media.frames.height,
            "fps": media.fps,
            "original_width": media.original_size[0],
            "original_height": media.original_size[1],
            "original_num_frames": media.original_num_frames,
            "frame0_sha1": frame_digest(frame0),
        },
        "limits": limits.to_json(),
        "model": {"image_size": image_size},
        "corrections_as_conditioning": corrections_as_conditioning,
        **state.to_document(),
    }


def write(document: dict[str, Any], path: Path) -> Path:
    """Write the document atomically (a failed write leaves no partial file); `SessionError` if it cannot."""
    source = document["source"]
    if source["kind"] == "path" and not source.get("portable"):
        try:
            source["relative"] = os.path.relpath(source["path"], path.resolve().parent)
        except ValueError:  # another drive on Windows
            source["relative"] = None
    with staged_file(path) as tmp:
        tmp.write_text(json.dumps(document, separators=(",", ":")))
    return path


@dataclass
class SessionFile:
    """A session file, read and checked: where and how to open its media, and its document."""

    video: dict[str, Any]  # frame count, size and fps it was saved on, and frame 0's digest
    limits: Limits
    fps: float
    source: Any  # what to open (the caller's source=, or the saved path)
    image_size: int | None  # the model input size it was saved with
    document: SavedDocument
    corrections_as_conditioning: bool  # as the session was opened (False in files from before the setting)


def read(path: Path, source: Any, replay: bool, limits: Limits | None = None) -> SessionFile:
    """Read and check a session file; nothing in it is used before every field was checked.

    ``source``: the media to open (None: the path saved in the file). ``replay``: skip the saved masks (the
    caller recomputes them). ``limits``: the caller's, which win over the file's.
    """
    document = _read(path)
    try:
        video = document["video"]
        if limits is None:
            limits = Limits.from_json(document["limits"])
        bounds = _Bounds.of(video, document)
        saved = from_document(document, bounds, with_masks=not replay)
        fps = float(video["fps"])
        as_cond = document.get("corrections_as_conditioning", False)
        if not isinstance(as_cond, bool):
            raise ValueError(f"corrections_as_conditioning must be true or false, not {as_cond!r}")
        image_size = document.get("model", {}).get("image_size")
        image_size = None if image_size is None else int(image_size)
        # Only now, with the file checked, is a path inside it ever used (and only without source=).
        if source is None:
            source = _saved_source(document["source"], path)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as error:
        raise SessionError(
            f"{path.name} is not a valid sam2-ui session file ({_what_is_wrong(error)})."
        ) from error
    return SessionFile(video, limits, fps, source, image_size, saved, as_cond)


# Python's own wording of a failed conversion ("invalid literal for int() with base 10: 'x'"), as opposed to
# the checks' sentences ("frame 999 is outside the video's 6 frames").
_PYTHON_WORDING = re.compile(r"\(\)|invalid literal|could not convert|cannot convert|values to unpack")


def _what_is_wrong(error: Exception) -> str:
    """What is wrong in a session file, in words about the file rather than about Python."""
    if isinstance(error, KeyError):
        return f"the field {error.args[0]!r} is missing" if error.args else "a field is missing"
    if isinstance(error, OverflowError):
        return "a number is too large"
    if isinstance(error, ValueError) and not _PYTHON_WORDING.search(str(error)):
        return str(error)
    if isinstance(error, ValueError):
        return "a field that must be a number holds something else"
    return "a field holds a value of the wrong kind"


def _read(path: Path) -> dict[str, Any]:
    # Messages name the file only: on a server its folder is an upload's temporary folder.
    name = path.name
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise SessionError(f"There is no session file {name} at the path given: check the path.") from error
    except IsADirectoryError as error:
        raise SessionError(f"{name} is a folder, not a session file: give the .json file.") from error
    except OSError as error:
        raise SessionError(f"Cannot read {name}: {error.strerror or 'the system refused'}.") from error
    except UnicodeDecodeError as error:
        raise SessionError(f"{name} is not a sam2-ui session file (not text: binary data).") from error
    except json.JSONDecodeError as error:
        raise SessionError(
            f"{name} is not a sam2-ui session file (not JSON: {error.msg} at line {error.lineno})."
        ) from error
    except RecursionError as error:
        raise SessionError(f"{name} is not a sam2-ui session file (JSON nested too deeply).") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SessionError(f'{name} is not a sam2-ui session file (no "format": "{FORMAT}").')
    if document.get("version") != VERSION:
        raise SessionError(
            f"{name} is a version {document.get('version')!r} session file; this sam2-ui reads "
            f"version {VERSION}."
        )
    return document


class _Bounds:
    """What a session file may contain for the video it names: frames, object ids, mask sizes, counts.

    Checked before anything is decoded or installed, so a damaged or forged file is refused with a message
    instead of failing later, or allocating a mask far larger than the video.
    """

    MAX_LOG = 1_000_000

    def __init__(self, num_frames: int, height: int, width: int, next_object_id: int) -> None:
        self.num_frames, self.height, self.width = num_frames, height, width
        self.next_object_id = next_object_id

    @classmethod
    def of(cls, video: dict[str, Any], document: dict[str, Any]) -> _Bounds:
        bounds = cls(
            int(video["num_frames"]),
            int(video["height"]),
            int(video["width"]),
            int(document["next_object_id"]),
        )
        if bounds.num_frames < 1 or bounds.height < 1 or bounds.width < 1:
            raise ValueError(f"the video has {bounds.num_frames} frames of {bounds.width}x{bounds.height}")
        return bounds

    def check_frame(self, frame: Any) -> None:
        if not 0 <= int(frame) < self.num_frames:
            raise ValueError(f"frame {frame} is outside the video's {self.num_frames} frames")

    def check_object(self, obj: Any) -> None:
        if not 0 <= int(obj) < self.next_object_id:
            raise ValueError(f"object id {obj} was never handed out (next id {self.next_object_id})")

    def check_count(self, count: int, what: str) -> None:
        limit = (
            self.MAX_LOG if what == "prompt log records" else self.num_frames * max(1, self.next_object_id)
        )
        if count > limit:
            raise ValueError(f"{count} {what} is more than a session of this video can hold ({limit})")

    def checked_rle(self, rle: Any) -> Any:
        if [int(s) for s in rle["size"]] != [self.height, self.width]:
            raise ValueError(f"a mask of size {rle['size']} on {self.height}x{self.width} frames")
        return rle

    def check_action(self, record: dict[str, Any]) -> None:
        if "frame" in record:
            self.check_frame(record["frame"])
        if "object" in record:
            self.check_object(record["object"])
        if "mask" in record:
            self.checked_rle(record["mask"])
        for leg in record.get("legs", ()):
            self.check_frame(leg["start"])
            if not 0 <= int(leg["count"]) <= self.num_frames:
                raise ValueError(f"a tracking run of {leg['count']} frames on {self.num_frames}")


def _saved_source(source: dict[str, Any], path: Path) -> Path:
    if source["kind"] == "memory":
        raise SessionError(
            f"This session was made from frames in memory ({source.get('description')}): pass the same "
            "frames as source= to load it."
        )
    candidates = []
    if source.get("relative"):
        candidates.append(path.resolve().parent / source["relative"])
    candidates.append(Path(source["path"]))
    for candidate in candidates:
        if candidate.exists():
            return candidate
    name = re.split(r"[\\/]", str(source["path"]))[-1]  # the file only, whichever system wrote the path
    raise SessionError(
        f"The video of this session, {name}, is not there anymore (not where it was saved from, nor beside "
        "the session file): pass its new location as source=."
    )


def check_same_video(media: Media, frame0: np.ndarray, video: dict[str, Any], path: Path) -> None:
    """Refuse media whose frames are not the ones the session file was saved on."""
    num_frames, width, height = len(media.frames), media.frames.width, media.frames.height
    saved = (int(video["num_frames"]), int(video["width"]), int(video["height"]))
    if (num_frames, width, height) != saved:
        raise SessionError(
            f"The video given for {path.name} has {num_frames} frames of {width}x{height}, but the "
            f"session was saved on {saved[0]} frames of {saved[1]}x{saved[2]}: give the same video."
        )
    if frame_digest(frame0) != video["frame0_sha1"]:
        raise SessionError(
            f"The video given for {path.name} has a different first frame than the one the session was saved "
            "on: give the same video."
        )


def image_size_of(predictor: Any) -> int | None:
    """The model input size of a predictor (None for one that does not say)."""
    size = getattr(predictor, "image_size", None)
    return int(size) if size is not None else None


def model_change_notes(saved: SessionFile, predictor: Any) -> list[str]:
    """What a person should know when a session file is loaded with another model than it was saved with."""
    current = image_size_of(predictor)
    if saved.image_size is None or saved.image_size == current:
        return []
    return [
        f"This session was saved with a model of image size {saved.image_size} and is loaded with {current}: "
        "saved masks are kept, but new prompts and tracking use the new model."
    ]
