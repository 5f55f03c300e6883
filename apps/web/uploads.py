"""What the web app accepts: upload size, video duration and frame size, checked before a session opens.

A video longer than ``max_seconds`` is cut to its first ``max_seconds`` (the user is told); frames larger than
``max_side`` are downscaled by the engine (the user is told). Everything else that cannot be read is left to
the engine, whose `SessionError` says what is wrong.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from model.video.frame_source import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from sam2_ui.engine.errors import SessionError
from sam2_ui.engine.media import Limits


@dataclass(frozen=True)
class AppLimits:
    """The web app's budget per upload and for the whole server.

    max_upload_mb: largest accepted file. max_seconds: longest video worked on (the rest is cut).
    max_frames: most frames of a video, whatever its rate. max_side: longest frame side (larger frames are
    downscaled). max_sessions: live sessions (browser tabs) at once. session_ttl_min: minutes without use
    after which a session is closed.
    """

    max_upload_mb: float = 200.0
    max_seconds: float = 60.0
    max_frames: int = 1800
    max_side: int = 1024
    max_sessions: int = 16
    session_ttl_min: float = 30.0

    def engine_limits(self, max_frames: int | None = None) -> Limits:
        frames = self.max_frames if max_frames is None else min(max_frames, self.max_frames)
        return Limits(max_frames=frames, max_side=self.max_side)


MB = 2**20  # as Gradio counts max_file_size
ACCEPTED = VIDEO_SUFFIXES + IMAGE_SUFFIXES + (".webp", ".bmp")
SESSION_SUFFIX = ".json"


def check_upload(path: str | os.PathLike | None, limits: AppLimits) -> tuple[Limits, list[str]]:
    """The engine limits to open an upload with, and notes for the user; `SessionError` for a refused file."""
    if path is None:
        raise SessionError("No file was uploaded: choose a video (mp4, mov, webm, mkv, avi) or an image.")
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as error:
        raise SessionError(
            f"The upload {path.name} could not be read ({error.strerror}): upload it again."
        ) from error
    if size == 0:
        raise SessionError(f"{path.name} is empty (0 bytes): upload the file again.")
    if size > limits.max_upload_mb * MB:
        raise SessionError(
            f"{path.name} is {size / MB:.1f} MB, over this app's limit of {limits.max_upload_mb:g} MB: "
            "trim or compress the video, or run the app yourself with a higher --max-upload-mb."
        )
    if suffix not in ACCEPTED:
        raise SessionError(
            f"{path.name} is not a video or image this app reads: "
            "upload an mp4, mov, webm, mkv or avi video, "
            "or a jpg or png image."
        )
    if suffix not in VIDEO_SUFFIXES:
        return limits.engine_limits(), []
    seconds, fps = _probe_video(path)
    if seconds is None or fps is None or seconds <= limits.max_seconds:
        return limits.engine_limits(), []
    keep = max(1, math.floor(limits.max_seconds * fps))
    note = (
        f"{path.name} lasts {seconds:.0f} s; this app works on its first {limits.max_seconds:.0f} s "
        f"({keep} frames at {fps:g} fps). Trim the video to segment a later part."
    )
    return limits.engine_limits(max_frames=keep), [note]


def _probe_video(path: Path) -> tuple[float | None, float | None]:
    """(duration in seconds, frames per second) from the container, without decoding; Nones if unknown.

    A file PyAV cannot open is refused here with the reason; a file with no video stream too.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SessionError(f"{path.name} has no video stream (is it an audio file?): upload a video.")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1e6
            elif stream.frames and fps:
                seconds = stream.frames / fps
            else:
                seconds = None
    except SessionError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise SessionError(  # the decoder's words (errno, the upload's temporary folder) help nobody
            f"{path.name} is not a readable video (damaged, cut short, or not a video at all): "
            "upload an mp4, mov, webm, mkv or avi file."
        ) from error
    return seconds, fps


def uploaded_file(payload: object, upload_folder: str | os.PathLike, what: str = "the video or image") -> str:
    """The server path of a file a script sent (a ``gradio_client.handle_file`` payload), checked to be one
    Gradio stored from an upload: a script can send a file, never name one on the server."""
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        raise SessionError(
            f"Send {what} itself: client.predict(handle_file('clip.mp4'), ...) uploads it "
            "(a plain file name or path is not read on the server)."
        )
    folder = Path(upload_folder).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        raise SessionError(f"Send {what} with handle_file(...): the server reads only files uploaded to it.")
    return str(resolved)
