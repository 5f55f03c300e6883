"""`Session`: the object every front end drives over one opened video (or image). A facade over objects that
each own one job: the document (`SessionState`), the guard (locks, flags), the executor where model calls run,
the `Editor`, the `TrackingRuns`, and the outputs as functions over the document (docs/architecture.md walks
a click and a tracking run through them). User mistakes raise `SessionError` and change nothing; reads may
run on a UI thread during a tracking run. Coordinates are frame pixels (x right, y down; pixel (i, j) has its
centre at x = i, y = j), sizes (width, height), frame indices from 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from model.loading.precision import Precision, resolve_precision

from .engine.colors import RGB
from .engine.document import SessionState
from .engine.editor import Editor
from .engine.executor import ExecutorFactory, SessionModel, start_executor
from .engine.guard import SessionGuard
from .engine.media import Limits, Media, open_media
from .engine.objects import ObjectInfo
from .engine.predictor import VideoPredictor, predictor_device
from .engine.prompts import Action, FramePrompts
from .engine.propagation import PropagationProgress, PropagationSummary, TrackingRuns
from .engine.quality import DoubtRule
from .engine.tracker import Tracker
from .output import document_outputs, persist
from .output.document_outputs import frame_drawing
from .output.memory_view import MemoryView, read_memory_view
from .output.render import DisplayMapping, Layers, render_frame, render_layers

Fit = tuple[int, int] | None  # (max width, max height) to fit a rendered frame into; None: the frame's size


class Session:
    """One video (or image) being segmented. Create it with `Session.open` or `Session.load`."""

    def __init__(
        self,
        media: Media,
        predictor: VideoPredictor,
        limits: Limits,
        state_on_cpu: bool = False,
        precision: Precision = "fp32",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool = True,
    ) -> None:
        self._media = media
        self._predictor = predictor
        self.limits = limits
        self.messages: list[str] = list(media.messages)
        self._corrections_as_conditioning = bool(corrections_as_conditioning)
        model = SessionModel(predictor, media, state_on_cpu, precision, self._corrections_as_conditioning)
        self._executor = start_executor(executor or Tracker.for_session, model)
        self._state = SessionState((media.frames.height, media.frames.width), limits.max_undo)
        self._guard = SessionGuard()
        self._editor = Editor(
            self._state, self._guard, self._executor, media, predictor.non_overlap_masks, self.messages
        )
        self._runs = TrackingRuns(self._state, self._guard, self._executor, len(media.frames))
        self._last_mapping: DisplayMapping | None = None  # of the last render, for display_to_frame
        self.doubt_rule = DoubtRule()  # what `doubtful_frames` flags; replace it to change the thresholds

    # ============================================================================================ media
    @classmethod
    def open(
        cls,
        source: Any,
        predictor: VideoPredictor,
        limits: Limits | None = None,
        fps: float | None = None,
        state_on_cpu: bool = False,
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool = True,
    ) -> Session:
        """Open a video file, a folder of frames, an image, a T, H, W, 3 uint8 array or a list of frames.

        Arguments:
          source: a path (video file: mp4, mov, webm, mkv, avi; a folder of JPEG/PNG frames; one image file),
            an array (T, H, W, 3 frames, or H, W, 3 for one image), a list of frames or a PIL image.
          predictor: a ``SAM2VideoPredictor`` (``model.build_sam2_video_predictor``).
          limits: the budget (`Limits`); over it frames are downscaled or the video cut, said in `messages`.
          fps: the frame rate, for sources that do not carry one (default 30) or to override it.
          state_on_cpu: keep the tracking state on the CPU between calls (``offload_state_to_cpu``).
          precision: "auto" (bf16 autocast where the predictor's device has fast bf16, else fp32; the
            ``SAM2_UI_PRECISION`` environment variable replaces "auto"), "fp32" or "bf16" (see `precision`).
          executor: where model calls run: None in this process; ``WorkerExecutors`` in ZeroGPU workers.
          corrections_as_conditioning: a correction (prompt on a tracked frame) becomes a conditioning frame,
            so tracking again keeps it (as SAM 2 was trained: ``add_all_frames_to_correct_as_cond``). False:
            the official default, where the next run over the frame replaces it (`replaced_prompt_frames`).
        Raises `SessionError` for a missing, unreadable or empty source, ``ValueError`` for a bad precision.
        """
        limits = limits or Limits()
        precision = resolve_precision(precision, predictor_device(predictor))
        media = open_media(source, limits, fps)
        return cls(media, predictor, limits, state_on_cpu, precision, executor, corrections_as_conditioning)

    @property
    def num_frames(self) -> int:
        return len(self._media.frames)

    @property
    def fps(self) -> float:
        return self._media.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames the session works on (after any downscaling)."""
        return self._media.frames.width, self._media.frames.height

    @property
    def original_size(self) -> tuple[int, int]:
        """(width, height) of the source before downscaling."""
        return self._media.original_size

    @property
    def is_image(self) -> bool:
        return self.num_frames == 1

    @property
    def source_path(self) -> Path | None:
        """The opened file or folder, or None for frames given in memory."""
        return self._media.path

    @property
    def predictor(self) -> VideoPredictor:
        return self._predictor

    @property
    def corrections_as_conditioning(self) -> bool:
        """Whether a correction on a tracked frame becomes a conditioning frame (see `open`)."""
        return self._corrections_as_conditioning

    @property
    def precision(self) -> Precision:
        """The mode the network runs in: "bf16" (bf16 autocast) or "fp32". Masks are bool either way."""
        return self._executor.precision

    @property
    def precision_label(self) -> str:
        """`precision` for people, with the device: "bf16 autocast on CPU (AVX-512 BF16)", "fp32 on CUDA"."""
        return self._executor.precision_label

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as a read-only H, W, 3 uint8 RGB array, decoded on first use (bounded cache)."""
        index = self._editor.check_frame(index)
        self._guard.check_open()
        return self._media.rgb(index)

    def close(self) -> None:
        """Stop any tracking run, release frames, features and tracking state; masks stay readable."""
        self._guard.close(self._executor.close)

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.size
        objects = self._state.objects.ids
        return (
            f"Session({self._media.description!r}, frames={self.num_frames}, size={w}x{h}, objects={objects})"
        )

    # ============================================================================================ objects
    @property
    def objects(self) -> list[ObjectInfo]:
        """The objects, by increasing id."""
        return self._guard.read(lambda: list(self._state.objects))

    def object(self, obj: int) -> ObjectInfo:
        return self._guard.read(lambda: self._state.objects.get(obj))

    @property
    def colors(self) -> dict[int, RGB]:
        return self._guard.read(lambda: {info.id: info.color for info in self._state.objects})

    @property
    def names(self) -> dict[int, str]:
        return self._guard.read(lambda: {info.id: info.name for info in self._state.objects})

    @property
    def selected(self) -> int | None:
        """The selected object (prompts go to it when no object is given), or None."""
        return self._guard.read(self._state.selected_object)

    def select_object(self, obj: int | None) -> None:
        """Select an object (None: none). Not an edit: it is not undone."""
        self._editor.select_object(obj)

    def add_object(self, name: str | None = None, select: bool = True) -> int:
        """Add an object and return its id (ids count up from 1 and are never reused)."""
        return self._editor.add_object(name, select)

    def rename_object(self, obj: int, name: str) -> None:
        self._editor.rename_object(obj, name)

    def remove_object(self, obj: int) -> None:
        """Remove an object with its prompts and masks (undoable)."""
        self._editor.remove_object(obj)

    # ============================================================================================ prompts
    def add_point(
        self, frame: int, obj: int | None, x: float, y: float, positive: bool = True
    ) -> dict[int, np.ndarray]:
        """Click on a frame for an object: positive (part of it) or negative (not part of it).

        On a frame the object was tracked on, the click corrects the tracked mask, as in the video predictor.
        ``obj`` None means the selected object. Returns the frame's masks (object id -> H, W bool).
        """
        return self.masks(self._editor.add_point(frame, obj, x, y, positive))

    def add_box(
        self, frame: int, obj: int | None, x0: float, y0: float, x1: float, y1: float
    ) -> dict[int, np.ndarray]:
        """Give an object's box on a frame (replacing its earlier box there; its clicks there stay).

        Corners may come in any order; a box running past the frame's edge is clipped to it (a drag that
        overshoots), one entirely outside or without area raises `SessionError`. Returns the frame's masks.
        """
        return self.masks(self._editor.add_box(frame, obj, (x0, y0, x1, y1)))

    def add_mask(self, frame: int, obj: int | None, mask: np.ndarray) -> dict[int, np.ndarray]:
        """Give an object's mask on a frame (H, W at the session size; nonzero = object), replacing its clicks
        and box there. Returns the frame's masks."""
        return self.masks(self._editor.add_mask(frame, obj, mask))

    def remove_point(self, frame: int, obj: int | None, index: int) -> dict[int, np.ndarray]:
        """Remove one click (``index`` in the order added on that frame); returns the frame's masks."""
        return self.masks(self._editor.remove_point(frame, obj, index))

    def clear(self, frame: int | None = None, obj: int | None = None) -> None:
        """Remove prompts and the masks they made: of one object on one frame, of every object on a frame
        (``obj`` None), of one object everywhere (``frame`` None), or everything (both None)."""
        self._editor.clear(frame, obj)

    def segment_everything(self, frame: int = 0, **amg_kwargs: Any) -> list[int]:
        """Find every object on a frame with the automatic mask generator; each mask becomes a new object
        (one undo step). Keyword arguments go to ``SAM2AutomaticMaskGenerator``. Returns the new ids."""
        return self._editor.segment_everything(frame, amg_kwargs)

    # ============================================================================================ history
    @property
    def can_undo(self) -> bool:
        return self._guard.read(lambda: self._state.history.can_undo)

    @property
    def can_redo(self) -> bool:
        return self._guard.read(lambda: self._state.history.can_redo)

    def undo(self) -> str:
        """Undo the last edit; returns its label ("add point", "propagate forward", ...)."""
        return self._editor.undo()

    def redo(self) -> str:
        """Redo the last undone edit; returns its label."""
        return self._editor.redo()

    # ============================================================================================ reading
    def prompts(self, frame: int) -> dict[int, FramePrompts]:
        """The prompts on a frame: object id -> `FramePrompts` (points (x, y, positive), box, mask)."""
        frame = self._editor.check_frame(frame)
        return self._guard.read(lambda: self._state.table.on_frame(frame))

    def prompted_frames(self, obj: int | None = None) -> list[int]:
        """Frames holding prompts (of one object, or of any)."""
        return self._guard.read(lambda: self._state.table.frames(obj))

    def find_point(
        self, frame: int, x: float, y: float, radius: float | None = None
    ) -> tuple[int, int] | None:
        """The click nearest (x, y) on a frame within ``radius`` frame pixels (default: 2% of the shorter
        side, at least 3), as (object id, index), or None."""
        frame = self._editor.check_frame(frame)
        with self._guard.lock:
            return self._state.find_point(
                frame, x, y, max(3.0, 0.02 * min(self.size)) if radius is None else radius
            )

    @property
    def prompt_log(self) -> list[Action]:
        """Every predictor call in effect, oldest first (what `save` writes and replay runs)."""
        return self._guard.read(lambda: self._state.history.log())

    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """The masks on a frame: object id -> H, W bool (new arrays).

        Objects never segmented on the frame are absent; one tracked there but not found has an empty mask.
        """
        frame = self._editor.check_frame(frame)
        with self._guard.lock:
            entries = self._state.store.entries(frame)
        return {obj: entry.mask(self._state.store.shape) for obj, entry in entries.items()}

    def mask(self, frame: int, obj: int) -> np.ndarray | None:
        frame = self._editor.check_frame(frame)
        with self._guard.lock:
            entry = self._state.store.get(frame, obj)
        return None if entry is None else entry.mask(self._state.store.shape)

    def tracked_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a mask (of one object, or of any)."""
        return self._guard.read(lambda: sorted({f for f, _ in self._state.store.keys(obj)}))

    def stale_frames(self, obj: int | None = None) -> list[int]:
        """Frames with a tracked mask computed before a later change to its object's prompts."""
        return self._guard.read(lambda: self._state.stale_frames(obj))

    def replaced_prompt_frames(self, obj: int | None = None) -> list[int]:
        """Frames whose prompts the shown mask does not follow: a run computed the frame again over them."""
        return self._guard.read(lambda: self._state.replaced_prompt_frames(obj))

    def doubtful_frames(self, obj: int | None = None) -> list[int]:
        """Frames where a mask of one object (or of any) deserves a second look, by `doubt_rule`."""
        return self._guard.read(lambda: self._state.doubtful_frames(obj, self.doubt_rule))

    def doubt_reasons(self, obj: int) -> dict[int, str]:
        """One object's doubtful frames, each with a sentence saying why (see `doubtful_frames`)."""
        return self._guard.read(lambda: self._state.doubt_reasons(obj, self.doubt_rule))

    def mask_quality(self, frame: int) -> dict[int, tuple[float | None, float | None, int]]:
        """Object id -> (predicted IoU, object score logit, area in pixels) of each mask on a frame."""
        frame = self._editor.check_frame(frame)
        with self._guard.lock:
            entries = self._state.store.entries(frame)
        return {obj: (e.iou, e.score, e.area) for obj, e in entries.items()}

    def memory_view(self, frame: int, obj: int | None = None) -> MemoryView:
        """Which frames ``obj``'s (default: the selected object's) memory bank gives ``frame``, and its object
        scores (see `read_memory_view`)."""
        frame, obj = self._editor.check_frame(frame), self._editor.check_object(obj)
        return read_memory_view(self._state, self._guard, self._executor, frame, obj, self.num_frames)

    # =========================================================================================== tracking
    def propagate(
        self, direction: str = "forward", start: int | None = None, end: int | tuple[int, int] | None = None
    ) -> Iterator[PropagationProgress]:
        """Track every prompted object through the video; a generator of `PropagationProgress`, one per frame.

        Arguments:
          direction: "forward", "backward" or "both" (forward, then backward from the same start).
          start: the frame to start from. Default: the first prompted frame ("forward", "both") or the last
            one ("backward").
          end: where to stop, inclusive: a frame >= start for "forward" (default: the last), <= start for
            "backward" (default: 0), a (first, last) pair around start for "both" (default: the whole video).
        Masks are stored as frames are done. The run is one undo step; `cancel` (any thread) or closing the
        generator ends it before the next frame. Bad arguments raise `SessionError` here, before any work.
        """
        return self._runs.start(direction, start, end)

    def cancel(self) -> bool:
        """Stop the tracking run before its next frame (any thread); returns whether one was going on. A run
        created but not started yet stops at once when started."""
        return self._guard.stop_run()

    @property
    def is_propagating(self) -> bool:
        return self._guard.read(lambda: self._guard.propagating)

    @property
    def seconds_per_frame(self) -> float | None:
        """Measured seconds per tracked frame (recent runs weigh more); None before any was tracked."""
        return self._runs.seconds_per_frame()

    def estimate_seconds(
        self, direction: str = "forward", start: int | None = None, end: int | tuple[int, int] | None = None
    ) -> tuple[int, float | None]:
        """How many frames `propagate` with these arguments would track, and about how many seconds it would
        take (None until `seconds_per_frame` is measured). Raises `SessionError` as `propagate` would."""
        return self._runs.estimate(direction, start, end)

    @property
    def last_propagation(self) -> PropagationSummary | None:
        """How the last tracking run ended (frames done, planned, cancelled, seconds)."""
        return self._guard.read(lambda: self._runs.last)

    # ============================================================================================ outputs
    def render(
        self,
        frame: int,
        display_size: Fit = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> tuple[np.ndarray, DisplayMapping]:
        """The frame with each object's mask overlaid and (``prompts``) its clicks and boxes, fit into
        ``display_size`` (never enlarged); returns the image and its `DisplayMapping` to frame pixels."""
        image, mapping = render_frame(*self._drawing(frame, prompts), display_size, alpha, outline)
        self._last_mapping = mapping
        return image, mapping

    def render_layers(
        self,
        frame: int,
        display_size: Fit = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> Layers:
        """`render` as three layers (the frame, the masks as RGBA, the prompt markers as RGBA), for a canvas
        that redraws only the layers that changed. Arguments as for `render`."""
        layers = render_layers(*self._drawing(frame, prompts), display_size, alpha, outline)
        self._last_mapping = layers.mapping
        return layers

    def _drawing(self, frame: int, prompts: bool) -> tuple:
        """The arguments of ``render_frame`` before the display size: the frame and what is drawn over it."""
        rgb = self.frame(frame)
        return self._guard.read(lambda: (rgb, *frame_drawing(self._state, frame, prompts).args()))

    def display_to_frame(self, x: float, y: float, display_size: Fit = None) -> tuple[float, float]:
        """Display pixel (x, y) -> frame pixel, for an image rendered at ``display_size`` (None: as last)."""
        if display_size is not None:
            return DisplayMapping.fit(self.size, display_size).to_frame(x, y)
        return (self._last_mapping or DisplayMapping.fit(self.size)).to_frame(x, y)

    def export_pngs(self, out_dir: str | Path) -> list[Path]:
        """Per-object 0/255 PNG masks, ``out_dir/003_name/00012.png``; returns the written files."""
        return document_outputs.export_pngs(self._state, self._guard, self.num_frames, out_dir)

    def export_davis(self, out_dir: str | Path) -> list[Path]:
        """One indexed PNG per frame (DAVIS palette); object i (in id order) has value i, background 0."""
        return document_outputs.export_davis(self._state, self._guard, self.num_frames, self.size, out_dir)

    def export_coco(self, path: str | Path) -> Path:
        """COCO RLE JSON of every mask, with object names and colours (see ``export.export_coco_json``)."""
        return document_outputs.export_coco(self._state, self._guard, self._media, path)

    def export_video(
        self, path: str | Path, display_size: tuple[int, int] | None = None, prompts: bool = False
    ) -> Path:
        """An overlay video (``.mp4`` etc.) at the source fps with exactly one video frame per frame."""
        return document_outputs.export_video(
            self._state, self._guard, self._media, self.frame, path, display_size, prompts
        )

    def save(self, path: str | Path, portable: bool = False) -> Path:
        """Write the session file (`document_outputs.save`); ``portable``: the source by file name only."""
        settings = (self.limits, self._predictor, self._corrections_as_conditioning)
        return document_outputs.save(
            self._state, self._guard, self._media, lambda: self.frame(0), settings, path, portable
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        predictor: VideoPredictor,
        source: Any = None,
        replay: bool = False,
        state_on_cpu: bool = False,
        limits: Limits | None = None,
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool | None = None,
    ) -> Session:
        """Restore a session written by `save`: same objects, prompts, masks and stale frames.

        Arguments:
          source: the video, if not at the saved path (or made from frames in memory): the same frames.
          replay: recompute every mask by replaying the prompt log instead of reading the saved masks.
          limits: open the video within these instead of the file's (the frames must come out the same).
          corrections_as_conditioning: as for `open`; None takes the file's (False for files saved before).
          state_on_cpu, precision, executor: as for `open`.
        A damaged or forged file raises `SessionError`.
        """
        path = Path(path)
        saved = persist.read(path, source, replay, limits)
        as_cond = (
            saved.corrections_as_conditioning
            if corrections_as_conditioning is None
            else corrections_as_conditioning
        )
        session = cls.open(
            saved.source, predictor, saved.limits, saved.fps, state_on_cpu, precision, executor, as_cond
        )
        try:
            persist.check_same_video(session._media, session.frame(0), saved.video, path)
            session.messages.extend(persist.model_change_notes(saved, predictor))
            with session._guard.lock:
                session._state.install(saved.document)
            if saved.document.entries is None:
                session._editor.replay(saved.document.log)
        except BaseException:
            session.close()
            raise
        return session
