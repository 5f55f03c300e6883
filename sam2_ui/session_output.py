"""What a `Session` gives out: rendered frames, exports, session files, and "segment everything".

`SessionOutput` is part of `Session` (a mixin over the session's state, media and locks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from model.errors import VideoSourceError

from . import export, persist
from .colors import RGB
from .errors import SessionError
from .executor import ExecutorFactory
from .masks import FrameMasksView
from .media import Limits
from .predictor import VideoPredictor
from .prompts import SetMask, read_only
from .render import DisplayMapping, Layers, render_frame, render_frames, render_layers

S = TypeVar("S", bound="SessionOutput")


class SessionOutput:
    """Part of `Session` (see the module docstring)."""

    def segment_everything(self, frame: int = 0, **amg_kwargs: Any) -> list[int]:
        """Find every object on a frame with the automatic mask generator; each mask becomes a new object.

        Each mask is given to the predictor as that object's mask prompt, so it can be refined with clicks,
        tracked through a video, and undone (the whole call is one undo step). Keyword arguments go to
        ``SAM2AutomaticMaskGenerator`` (``points_per_side``, ``pred_iou_thresh``, ...). Masks are added
        largest first. Returns the new object ids (empty, with a message, if nothing was found).
        """
        if amg_kwargs.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("segment_everything needs output_mode='binary_mask'")
        frame = self._check_frame(frame)
        with self._edit("segment everything") as change:
            try:
                found = self._executor.segment(frame, amg_kwargs)
            except VideoSourceError as error:
                raise SessionError(
                    f"Cannot decode frame {frame} of {self._media.description}: {error}"
                ) from error
            found.sort(key=lambda f: -f.area)
            new_ids, prompts = [], []
            for record in found:
                info = change.edit_objects(lambda objects: objects.add(None))
                new_ids.append(info.id)
                prompts.append(SetMask(frame, info.id, read_only(record.mask)))
            if prompts:
                self._execute(change, *prompts)  # one model call for all of them
        if not new_ids:
            self.messages.append(
                f"No objects were found on frame {frame}; try a lower pred_iou_thresh or "
                "stability_score_thresh, or more points_per_side."
            )
        return new_ids

    def render(
        self,
        frame: int,
        display_size: tuple[int, int] | None = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> tuple[np.ndarray, DisplayMapping]:
        """The frame with each object's mask as a semi-transparent overlay with an outline, and (``prompts``)
        its clicks and boxes, resized to fit ``display_size`` (max width, max height; never enlarged).

        Returns the h, w, 3 uint8 image and the `DisplayMapping` from its pixels to the frame's (kept for
        `display_to_frame`).
        """
        image, mapping = render_frame(*self._render_inputs(frame, prompts), display_size, alpha, outline)
        with self._lock:
            self._last_mapping = mapping
        return image, mapping

    def render_layers(
        self,
        frame: int,
        display_size: tuple[int, int] | None = None,
        prompts: bool = True,
        alpha: float = 0.45,
        outline: bool = True,
    ) -> Layers:
        """`render` as three layers (the frame, the masks as RGBA, the prompt markers as RGBA), for a canvas
        that redraws only the layers that changed. Arguments as for `render`."""
        layers = render_layers(*self._render_inputs(frame, prompts), display_size, alpha, outline)
        with self._lock:
            self._last_mapping = layers.mapping
        return layers

    def _render_inputs(self, frame: int, prompts: bool) -> tuple:
        """What the renderer draws for a frame: (rgb, masks, colors, points, boxes, selected)."""
        frame = self._check_frame(frame)
        rgb = self.frame(frame)
        with self._lock:
            entries = self._state.store.entries(frame)
            colors = {info.id: info.color for info in self._state.objects}
            on_frame = self._state.table.on_frame(frame) if prompts else {}
            selected = self.selected
        masks = {obj: e.mask(self._state.store.shape) for obj, e in entries.items() if obj in colors}
        points = [(obj, x, y, pos) for obj, p in on_frame.items() for x, y, pos in p.points]
        boxes = [(obj, *p.box) for obj, p in on_frame.items() if p.box is not None]
        return rgb, masks, colors, points, boxes, selected

    def display_to_frame(
        self, x: float, y: float, display_size: tuple[int, int] | None = None
    ) -> tuple[float, float]:
        """Display pixel (x, y) -> frame pixel coordinates.

        ``display_size`` is the ``display_size`` the image was rendered with; None uses the last `render`'s
        mapping (or the frame size if nothing was rendered yet). Check the result with `add_point`, which
        refuses clicks outside the frame.
        """
        if display_size is not None:
            mapping = DisplayMapping.fit(self.size, display_size)
        else:
            with self._lock:
                mapping = self._last_mapping or DisplayMapping.fit(self.size)
        return mapping.to_frame(x, y)

    def export_pngs(self, out_dir: str | Path) -> list[Path]:
        """Per-object 0/255 PNG masks, ``out_dir/003_name/00012.png``, for every frame and object with masks.

        Returns the written files.
        """
        view, names, _ = self._export_view()
        return export.export_object_pngs(view, out_dir, names)

    def export_davis(self, out_dir: str | Path) -> list[Path]:
        """One indexed PNG per frame (DAVIS palette); object i (in id order) has value i, background 0."""
        view, names, _ = self._export_view()
        return export.export_davis_pngs(view, out_dir, self.num_frames, self.size, object_ids=list(names))

    def export_coco(self, path: str | Path) -> Path:
        """COCO RLE JSON of every mask, with object names and colours (see ``export.export_coco_json``)."""
        view, names, colors = self._export_view()
        return export.export_coco_json(
            view, path, names, colors, self.size, fps=self.fps, num_frames=self.num_frames
        )

    def export_video(
        self, path: str | Path, display_size: tuple[int, int] | None = None, prompts: bool = False
    ) -> Path:
        """An overlay video (``.mp4`` etc.) at the source fps with exactly one video frame per frame."""
        view, names, colors = self._export_view()
        with self._lock:
            table = self._state.table
            on_frames = {f: table.on_frame(f) for f in table.frames()} if prompts else {}
        points = {
            f: [(o, x, y, pos) for o, p in on.items() for x, y, pos in p.points]
            for f, on in on_frames.items()
        }
        boxes = {f: [(o, *p.box) for o, p in on.items() if p.box is not None] for f, on in on_frames.items()}
        frames = render_frames(self.num_frames, self.frame, view, colors, points, boxes, display_size)
        return export.export_overlay_video(frames, path, self.fps)

    def _export_view(self) -> tuple[FrameMasksView, dict[int, str], dict[int, RGB]]:
        with self._lock:
            snapshot = self._state.store.snapshot()
            names = {info.id: info.name for info in self._state.objects}
            colors = {info.id: info.color for info in self._state.objects}
        return FrameMasksView(snapshot, self.num_frames, self._state.store.shape), names, colors

    def save(self, path: str | Path, portable: bool = False) -> Path:
        """Write the session as JSON: source reference, limits, objects, the prompt log, and every mask.

        The undo history is not saved. A session opened from frames in memory saves no source: pass the
        same frames to `load`. ``portable``: name the source by its file name only (not its folder).
        """
        with self._lock:
            if self._propagating:
                raise SessionError("Tracking is running: wait for it to finish or cancel it, then save.")
            document = persist.to_document(
                self._state,
                self._media,
                self.frame(0),
                self.limits,
                persist.image_size_of(self._predictor),
                self._corrections_as_conditioning,
                portable,
            )
        return persist.write(document, Path(path))

    @classmethod
    def load(
        cls: type[S],
        path: str | Path,
        predictor: VideoPredictor,
        source: Any = None,
        replay: bool = False,
        state_on_cpu: bool = False,
        limits: Limits | None = None,
        precision: str = "auto",
        executor: ExecutorFactory | None = None,
        corrections_as_conditioning: bool | None = None,
    ) -> S:
        """Restore a session written by `save`: same objects, prompts, masks and stale frames.

        Arguments:
          source: the video, if not at the saved path (or if the session was made from frames in memory).
            It must have the same frames as the saved one.
          replay: recompute every mask by replaying the prompt log through ``predictor`` instead of reading
            the saved masks (slower; the same model gives identical masks).
          state_on_cpu, precision, executor: as for `open` (the saved masks are kept whatever precision
            made them).
          limits: open the video within these instead of the limits saved in the file (a server keeps its
            own); the frames must still come out as they were saved.
          corrections_as_conditioning: as for `open`; None takes the file's (a file written before the
            setting was saved was made with corrections outside the conditioning frames: False).
        A damaged or forged file (frames, objects or mask sizes the video cannot have) raises `SessionError`.
        The predictor's state is rebuilt from the prompt log before the first new prompt either way.
        """
        path = Path(path)
        saved = persist.read(path, source, replay, limits)
        session = cls.open(
            saved.source,
            predictor,
            limits=saved.limits,
            fps=saved.fps,
            state_on_cpu=state_on_cpu,
            precision=precision,
            executor=executor,
            corrections_as_conditioning=(
                saved.corrections_as_conditioning
                if corrections_as_conditioning is None
                else corrections_as_conditioning
            ),
        )
        try:
            persist.check_same_video(session._media, session.frame(0), saved.video, path)
            current = persist.image_size_of(predictor)
            if saved.image_size is not None and saved.image_size != current:
                session.messages.append(
                    f"This session was saved with a model of image size {saved.image_size} and is loaded "
                    f"with {current}: saved masks are kept, but new prompts and tracking use the new model."
                )
            with session._lock:
                session._state.install(saved.document)
            if saved.document.entries is None:
                session._replay(saved.document.log)
        except BaseException:
            session.close()
            raise
        return session
