"""sam2-ui session files as training data: the masks a person made in the app, on the frames of its video.

A session file (``sam2_ui/output/persist.py`` documents it) names its media and stores every mask the
session holds, by frame and object. The frames with stored masks are the annotated frames; an object with
no mask on such a frame, or an empty one (tracked as absent), is absent there. The file is read and checked
by the engine's own reader (`persist.read`), the media opened by the engine (`open_media`, within the
session's limits, so frames come at the size the masks were drawn at) and compared with the saved video
(`persist.check_same_video`), exactly as `Session.load` does. A session on a single image is an image source
(its clips have one frame, as COCO's and SA-1B's).

`open_training_source` is the fine-tune app's one entry point: session files here, every other layout by
`model.training.data.open_source`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.training.data import Source, TrainingDataError, VideoItem, open_source
from model.training.data.report import Problem
from sam2_ui.engine.errors import SessionError
from sam2_ui.engine.masks import ORIGINS, MaskEntry
from sam2_ui.engine.media import Media, MediaRef, open_media
from sam2_ui.output import persist

SKIPPED = "session skipped"
_FORMAT = re.compile(r'"format"\s*:\s*"' + re.escape(persist.FORMAT) + '"')


class SessionSource(Source):
    """One sam2-ui session file and its video, as a training source of one video.

    Arguments:
        path: the session file (``.json``, written by ``Session.save``).
        source: the session's video if it moved (as ``source=`` of ``Session.load``); None: the saved path,
            or the file of that name beside the session file.
        origins: which masks count: ``"prompt"`` (on frames the person prompted) and ``"propagation"``
            (tracked); both by default.
    """

    layout = "sam2-ui session file"

    def __init__(self, path: str | Path, *, source: Any = None, origins: Sequence[str] = ORIGINS) -> None:
        unknown = set(origins) - set(ORIGINS)
        if unknown or not origins:
            raise ValueError(f"origins must be some of {ORIGINS}, got {tuple(origins)}")
        self.path = Path(path)
        super().__init__(str(self.path))
        self.source = source
        self.origins = tuple(origins)
        self._entries: dict[tuple[int, int], MaskEntry] = {}  # (frame, object) -> mask at session size
        self._shape = (0, 0)  # H, W of the session's frames and masks
        self._media_ref: MediaRef | None = None
        self._media: Media | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_media": None}  # a decoder does not travel: a worker opens its own

    # -- the check -----------------------------------------------------------------------------------------

    def video_names(self) -> tuple[list[str], list[Problem]]:
        if not self.path.is_file():
            return [], [self.problem("", "there is no session file here", "nothing to train on here")]
        return [self.path.stem], []

    def check_video(self, name: str) -> tuple[VideoItem | None, list[Problem]]:
        try:
            saved = persist.read(self.path, self.source, replay=False)
        except SessionError as error:
            return None, [self.problem(name, "the session cannot be loaded", SKIPPED, str(error))]
        try:
            media = open_media(saved.source, saved.limits, saved.fps)
            persist.check_same_video(media, media.rgb(0), saved.video, self.path)
        except SessionError as error:
            issue = "its video cannot be opened as the session saw it"
            return None, [self.problem(name, issue, SKIPPED, str(error))]
        entries = {key: e for key, e in (saved.document.entries or {}).items() if e.origin in self.origins}
        on_frame: dict[int, list[int]] = {}
        for (frame, obj), entry in sorted(entries.items()):
            objects = on_frame.setdefault(frame, [])
            if entry.area > 0:
                objects.append(obj)
        if not on_frame:
            issue = f"no {' or '.join(self.origins)} masks saved in it"
            outcome = f"{SKIPPED}: segment objects in the app, then save the session again"
            return None, [self.problem(name, issue, outcome)]
        if not any(on_frame.values()):
            return None, [self.problem(name, "every saved mask is empty", SKIPPED)]
        self._entries = entries
        self._shape = (media.frames.height, media.frames.width)
        self._media_ref, self._media = media.ref, media
        self.images = len(media.frames) == 1  # a session on one image trains as images do: 1-frame clips
        frames = tuple(on_frame)
        return VideoItem(name, frames, tuple(tuple(on_frame[f]) for f in frames)), []

    # -- reading -------------------------------------------------------------------------------------------

    def read_frames(self, item: VideoItem, frames: Sequence[int]) -> dict[int, np.ndarray]:
        media = self._opened()
        try:
            return {frame: np.array(media.rgb(frame)) for frame in sorted(set(frames))}
        except (SessionError, IndexError) as error:
            raise TrainingDataError(f"{self.name}: {error}") from error

    def read_masks(
        self, item: VideoItem, frame: int, objects: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        wanted = [obj for f, obj in self._entries if f == frame] if objects is None else objects
        masks = {}
        for obj in wanted:
            entry = self._entries.get((frame, int(obj)))
            if entry is not None and entry.area > 0:
                masks[int(obj)] = entry.mask(self._shape)
        return masks

    def _opened(self) -> Media:
        if self._media is None:
            if self._media_ref is None:
                raise TrainingDataError(f"{self.name} was not checked: run the check first")
            try:
                self._media = self._media_ref.open()
            except SessionError as error:
                raise TrainingDataError(f"{self.name}: {error}") from error
        return self._media


def is_session_file(path: str | Path) -> bool:
    """Whether ``path`` is a sam2-ui session file (read from its first few kilobytes only)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open("rb") as file:
            head = file.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return _FORMAT.search(head) is not None


def open_training_source(path: str | Path, **options: Any) -> Source:
    """A training source for any ``--data`` path: a session file, or a layout `open_source` knows.

    ``options`` go to `SessionSource` (``source``, ``origins``) or to `open_source` (``videos``,
    ``image_root``, ``annotation_every``). Raises `TrainingDataError` naming the accepted layouts.
    """
    if is_session_file(path):
        return SessionSource(path, **options)
    return open_source(path, **options)
