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
- ``model``: the network's image size, for a warning when loading with another model.

The undo history is not saved: a loaded session starts with nothing to undo.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SessionError
from .masks import ORIGINS, MaskEntry, decode_rle, encode_rle
from .media import Limits
from .objects import ObjectInfo
from .prompts import action_from_json, action_to_json
from .staging import staged_file

if TYPE_CHECKING:
    from .session import Session

FORMAT = "sam2-ui-session"
VERSION = 1


def frame_digest(frame) -> str:
    return hashlib.sha1(frame.tobytes()).hexdigest()


def to_document(session: Session, portable: bool = False) -> dict[str, Any]:
    """The JSON-ready document of a session (call with the session's lock held).

    ``portable``: name the source by its file name only (a download from a server must not reveal the
    server's folders); loading then looks for it beside the session file, or takes ``source=``.
    """
    state = session._persist_state()
    media = state["media"]
    store = state["store"]
    width, height = session.size
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
            "num_frames": session.num_frames,
            "width": width,
            "height": height,
            "fps": session.fps,
            "original_width": media.original_size[0],
            "original_height": media.original_size[1],
            "original_num_frames": media.original_num_frames,
            "frame0_sha1": frame_digest(session.frame(0)),
        },
        "limits": session.limits.to_json(),
        "model": {"image_size": _image_size(session.predictor)},
        "objects": [{"id": o.id, "name": o.name, "color": list(o.color)} for o in state["objects"]],
        "next_object_id": state["objects"].next_id,
        "selected": state["selected"],
        "clock": state["clock"],
        "prompt_clocks": {str(obj): clock for obj, clock in sorted(state["prompt_clocks"].items())},
        "log": [action_to_json(action) for action in state["log"]],
        "masks": [
            {
                "frame": frame,
                "object": obj,
                "origin": entry.origin,
                "clock": entry.clock,
                "rle": encode_rle(entry.mask(store.shape)),
                **_quality(entry),
            }
            for (frame, obj), entry in store.items()
        ],
    }


def _quality(entry: MaskEntry) -> dict[str, float]:
    values = {"iou": entry.iou, "score": entry.score}
    return {key: value for key, value in values.items() if value is not None}


def _number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    return None if value is None else float(value)


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


def load(
    cls: type[Session],
    path: Path,
    predictor: Any,
    source: Any,
    replay: bool,
    state_on_cpu: bool = False,
    limits: Limits | None = None,
) -> Session:
    document = _read(path)
    try:
        video = document["video"]
        if limits is None:
            limits = Limits.from_json(document["limits"])
        bounds = _Bounds.of(video, document)
        objects = [
            ObjectInfo(int(o["id"]), str(o["name"]), tuple(int(c) for c in o["color"]))
            for o in document["objects"]
        ]
        for info in objects:
            bounds.check_object(info.id)
        records = document["log"]
        bounds.check_count(len(records), "prompt log records")
        for record in records:
            bounds.check_action(record)
        log = [action_from_json(record) for record in records]
        entries = None
        if not replay:
            entries = {}
            bounds.check_count(len(document["masks"]), "masks")
            for record in document["masks"]:
                if record["origin"] not in ORIGINS:
                    raise ValueError(f"unknown mask origin {record['origin']!r}")
                bounds.check_frame(record["frame"])
                bounds.check_object(record["object"])
                mask = decode_rle(bounds.checked_rle(record["rle"]))
                iou, score = _number(record, "iou"), _number(record, "score")
                entries[int(record["frame"]), int(record["object"])] = MaskEntry.from_mask(
                    mask, record["origin"], int(record["clock"]), iou, score
                )
        prompt_clocks = {int(obj): int(clock) for obj, clock in document["prompt_clocks"].items()}
        fps = float(video["fps"])
        # Only now, with the file checked, is a path inside it ever used (and only without source=).
        if source is None:
            source = _saved_source(document["source"], path)
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise SessionError(
            f"{path.name} is not a valid sam2-ui session file ({type(error).__name__}: {error})."
        ) from error

    session = cls.open(source, predictor, limits=limits, fps=fps, state_on_cpu=state_on_cpu)
    try:
        _check_same_video(session, video, path)
        saved_size = document.get("model", {}).get("image_size")
        if saved_size is not None and saved_size != _image_size(predictor):
            session.messages.append(
                f"This session was saved with a model of image size {saved_size} and is loaded with "
                f"{_image_size(predictor)}: saved masks are kept, but new prompts and tracking use the "
                "new model."
            )
        selected = document.get("selected")
        session._restore_state(
            objects,
            int(document["next_object_id"]),
            None if selected is None else int(selected),
            log,
            entries,
            prompt_clocks,
            int(document["clock"]),
        )
    except BaseException:
        session.close()
        raise
    return session


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise SessionError(f"There is no session file at {path}: check the path.") from error
    except OSError as error:
        raise SessionError(f"Cannot read {path}: {error.strerror or error}.") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SessionError(f"{path} is not a sam2-ui session file (not JSON: {error}).") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SessionError(f'{path} is not a sam2-ui session file (no "format": "{FORMAT}").')
    if document.get("version") != VERSION:
        raise SessionError(
            f"{path} is a version {document.get('version')} session file; this sam2-ui reads "
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
    raise SessionError(
        f"The video of this session, {source['path']}, is not there anymore: pass its new location as "
        "source=."
    )


def _check_same_video(session: Session, video: dict[str, Any], path: Path) -> None:
    width, height = session.size
    saved = (int(video["num_frames"]), int(video["width"]), int(video["height"]))
    if (session.num_frames, width, height) != saved:
        raise SessionError(
            f"The video given for {path} has {session.num_frames} frames of {width}x{height}, but the "
            f"session was saved on {saved[0]} frames of {saved[1]}x{saved[2]}: give the same video."
        )
    if frame_digest(session.frame(0)) != video["frame0_sha1"]:
        raise SessionError(
            f"The video given for {path} has a different first frame than the one the session was saved on: "
            "give the same video."
        )


def _image_size(predictor: Any) -> int | None:
    size = getattr(predictor, "image_size", None)
    return int(size) if size is not None else None
