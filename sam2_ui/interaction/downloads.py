"""The downloads an `Interaction` writes for a session: mask zips (per-object PNGs or DAVIS palette PNGs),
COCO RLE JSON, the overlay video and the portable session file, named after the session's media."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..engine.errors import SessionError
from ..session import Session
from .commands import EXPORT_KINDS


def write_download(session: Session | None, kind: str, out_dir: str | Path) -> Path:
    """Write one download of ``session`` into ``out_dir`` and return its path.

    kind: "pngs" (zip of per-object PNG masks), "davis" (zip of DAVIS-palette PNGs), "coco" (COCO RLE
    JSON), "video" (overlay mp4), "session" (session JSON). Raises `SessionError` with a message.
    """
    if session is None:
        raise SessionError("Nothing to export yet: upload a video or image first.")
    if kind not in EXPORT_KINDS:
        raise SessionError(f"Unknown export {kind!r}: choose one of {', '.join(EXPORT_KINDS)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(session)
    if kind in ("pngs", "davis"):
        if not session.tracked_frames():
            raise SessionError("There are no masks to export yet: click on an object first.")
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            folder = Path(scratch) / f"{stem}_{kind}"
            (session.export_pngs if kind == "pngs" else session.export_davis)(folder)
            archive = shutil.make_archive(str(out / f"{stem}_{kind}"), "zip", folder)
        return Path(archive)
    if kind == "coco":
        return session.export_coco(out / f"{stem}_coco.json")
    if kind == "video":
        return session.export_video(out / f"{stem}_overlay.mp4")
    return session.save(out / f"{stem}_session.json", portable=True)


def _stem(session: Session) -> str:
    """The media's file name, safe for a download's name ("frames" for media without one)."""
    path = session.source_path
    stem = path.stem if path is not None else "frames"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "frames"
