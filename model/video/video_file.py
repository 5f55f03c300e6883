"""A video file as a `FrameSource`, decoded with PyAV on demand.

Opening reads the container once without decoding (demuxing only) to count the frames exactly and to record
each frame's presentation timestamp and the keyframes. Reading a frame then decodes as little as possible:
the decoder stays open, so the next frame forward costs one decode; a jump backwards, or far forwards, seeks
to the last keyframe at or before the target and decodes forward from there. Rotation metadata (the display
matrix phones write) is applied, so `height`, `width` and the pixels are as a player would show them.

PyAV is imported here, lazily, so the rest of `model/` works without it.
"""

from __future__ import annotations

import bisect
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import VideoSourceError
from model.video.frame_source import FrameSource


class VideoFileSource(FrameSource):
    """Frames of a video file (mp4, mov, webm, mkv, avi, ...): the first video stream, decoded lazily."""

    def __init__(self, path: str | Path, *, cache_size: int = 8) -> None:
        try:
            import av
        except ImportError as error:  # pragma: no cover - av is a dependency, but say what to install
            raise VideoSourceError(f"reading {path} needs PyAV: pip install av") from error
        self._av = av
        self.path = Path(path)
        self._container: Any = None
        timestamps, keyframes, fps = self._index_packets()
        if not timestamps:
            raise VideoSourceError(f"{self.path} has no video frames")
        # Timestamps let us find a frame after a seek; without them (some raw streams) frames are counted
        # from the start of the file instead.
        self._by_timestamp = None not in timestamps and len(set(timestamps)) == len(timestamps)
        self._pts = sorted(timestamps) if self._by_timestamp else []
        self._keyframe_pts = sorted(k for k in keyframes if k is not None) if self._by_timestamp else []
        self._decoder: Any = None
        self._last_pts: int | None = None  # timestamp mode: pts of the last frame the decoder gave
        self._last_index = -1  # counting mode: index of the last frame the decoder gave
        self._rotation = 0
        self._warned = False

        self._open_decoder()
        try:
            first = self._decode_next()
            if first is None:
                raise VideoSourceError(f"{self.path} has no decodable video frames")
            # The display matrix gives counterclockwise degrees; only quarter turns are meaningful for frames.
            self._rotation = int(round((first.rotation or 0) / 90.0)) % 4
            rgb = self._to_rgb(first)
        except BaseException:
            self.close_container()
            raise
        super().__init__(
            len(timestamps), rgb.shape[0], rgb.shape[1], cache_size=cache_size, name=str(self.path)
        )
        self.fps = fps
        # The first frame is where a user clicks first: keep it.
        self._remember(0, rgb)

    # -- opening ---------------------------------------------------------------------------------------

    def _open_container(self) -> Any:
        try:
            container = self._av.open(str(self.path))
        except (self._av.FFmpegError, OSError) as error:
            raise VideoSourceError(f"cannot open {self.path} as a video: {error}") from error
        if not container.streams.video:
            container.close()
            raise VideoSourceError(f"{self.path} contains no video stream")
        return container

    def _index_packets(self) -> tuple[list[int | None], list[int | None], float | None]:
        """One pass over the packets, without decoding: (pts of every frame, pts of keyframes, fps)."""
        container = self._open_container()
        try:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            timestamps: list[int | None] = []
            keyframes: list[int | None] = []
            for packet in container.demux(stream):
                # Empty packets flush the demuxer; discard-flagged ones are decoded only as references (edit
                # lists) and never shown, so neither is a frame.
                if packet.size == 0 or packet.is_discard:
                    continue
                timestamps.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
        except self._av.FFmpegError as error:
            raise VideoSourceError(f"cannot read the packets of {self.path}: {error}") from error
        finally:
            container.close()
        return timestamps, keyframes, fps

    def _open_decoder(self) -> None:
        self.close_container()
        self._container = self._open_container()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        self._decoder = self._container.decode(stream)
        self._last_pts = None
        self._last_index = -1

    def close_container(self) -> None:
        """Close the file and the decoder (the frame caches are kept)."""
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoder = None

    def close(self) -> None:
        super().close()
        self.close_container()

    # -- decoding --------------------------------------------------------------------------------------

    def _decode_next(self) -> Any:
        """The next frame from the decoder, or None at the end of the stream."""
        try:
            frame = next(self._decoder)
        except StopIteration:
            return None
        except self._av.FFmpegError as error:
            raise VideoSourceError(f"cannot decode {self.path}: {error}") from error
        self._last_pts = frame.pts
        self._last_index += 1
        return frame

    def _to_rgb(self, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if self._rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._rotation))
        return rgb

    def _read(self, index: int) -> np.ndarray:
        if self._decoder is None:
            self._open_decoder()
        if self._by_timestamp:
            return self._read_by_timestamp(index)
        return self._read_by_counting(index)

    def _read_by_timestamp(self, index: int) -> np.ndarray:
        target = self._pts[index]
        keyframe = self._keyframe_before(target)
        going_back = self._last_pts is None or target <= self._last_pts
        # Decoding on is cheaper than seeking while the target is in the GOP the decoder is already in.
        if going_back or keyframe > self._last_pts:
            self._seek(keyframe)
        # After a backward jump keep the frames just before the target: reverse playback asks for them next.
        keep_from = index - self.cache_size + 1 if going_back else index
        previous = None
        retried = keyframe == self._pts[0]
        while True:
            frame = self._decode_next()
            if frame is None or frame.pts is None:
                return self._missing(index, previous)
            if frame.pts == target:
                return self._to_rgb(frame)
            if frame.pts > target:
                if previous is None and not retried:
                    # The seek landed after the target (an imprecise container index): start over.
                    retried = True
                    self._seek(self._pts[0])
                    continue
                return self._missing(index, previous)
            position = bisect.bisect_left(self._pts, frame.pts)
            if keep_from <= position < index and self._frames.get(position) is None:
                self._remember(position, self._to_rgb(frame))
            previous = frame

    def _read_by_counting(self, index: int) -> np.ndarray:
        if index <= self._last_index:
            self._open_decoder()  # no timestamps to seek by: start over
        while True:
            frame = self._decode_next()
            if frame is None:
                return self._missing(index, None)
            if self._last_index == index:
                return self._to_rgb(frame)

    def _keyframe_before(self, target: int) -> int:
        position = bisect.bisect_right(self._keyframe_pts, target) - 1
        return self._keyframe_pts[position] if position >= 0 else self._pts[0]

    def _seek(self, pts: int) -> None:
        try:
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        except self._av.FFmpegError:
            self._open_decoder()  # unseekable: decode from the start instead
            return
        self._decoder = self._container.decode(self._stream)
        self._last_pts = None

    def _missing(self, index: int, fallback: Any) -> np.ndarray:
        """Stand-in for a frame the packets announced but the decoder did not give (a damaged stream): the
        closest earlier frame, with a warning, so that frame indices stay those of the packets."""
        if fallback is None and index == 0:
            raise VideoSourceError(f"frame 0 of {self.path} cannot be decoded")
        if not self._warned:
            warnings.warn(
                f"{self.path}: frame {index} cannot be decoded; the previous frame stands in for it",
                stacklevel=3,
            )
            self._warned = True
        return self._to_rgb(fallback) if fallback is not None else self.rgb(index - 1)
