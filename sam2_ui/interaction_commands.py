"""Commands of an `Interaction` by name (buttons, keys, the API) and the exports they write.

`CommandDispatch` is part of `Interaction` (a mixin over its state).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .commands import (
    EXPORT_KINDS,
)
from .errors import SessionError
from .keys import command_for_key
from .session import Session
from .view import (
    INFO,
    View,
)


class CommandDispatch:
    """Part of `Interaction` (see the module docstring)."""

    def export(self, kind: str, out_dir: str | Path) -> Path:
        """Write one download into ``out_dir`` and return its path.

        kind: "pngs" (zip of per-object PNG masks), "davis" (zip of DAVIS-palette PNGs), "coco" (COCO RLE
        JSON), "video" (overlay mp4), "session" (session JSON). Raises `SessionError` with a message.
        """
        session = self.session
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

    def command(self, name: str, /, **kwargs: Any) -> View:
        """Run a command by its stable name (`COMMANDS`); propagation commands run to the end here (use
        `propagate` to stream). Unknown names give an error message."""
        if name.startswith("select_object_"):
            return self._select_nth(int(name.rsplit("_", 1)[1]))
        if name.startswith("tool_"):
            return self.set_tool(name[len("tool_") :])
        if name.startswith("propagate_"):
            views = list(self.propagate(name[len("propagate_") :], min_interval_s=float("inf")))
            return views[-1]
        handler = self._handlers().get(name)
        if handler is None:
            return self._error(f"Unknown command {name!r}.")
        try:
            return handler(**kwargs)
        except TypeError as error:  # missing or unknown arguments: say which the command takes
            import inspect

            takes = ", ".join(inspect.signature(handler).parameters) or "no arguments"
            return self._error(f"Command {name!r} takes {takes} ({error}).")

    def key(self, key: str, ctrl: bool = False, shift: bool = False, meta: bool = False) -> View:
        """A key press (DOM key names): runs the command of the shared key map, if any."""
        name = command_for_key(key, ctrl=ctrl, shift=shift, meta=meta)
        if name is None:
            return self.view()
        return self.command(name)

    def _handlers(self) -> dict[str, Callable[..., View]]:
        last = lambda: (self.session.num_frames - 1) if self.session else 0  # noqa: E731
        return {
            "add_object": self.add_object,
            "select_object": self.select_object,
            "rename_object": self.rename_object,
            "remove_object": self.remove_object,
            "remove_last_point": self.remove_last_point,
            "undo": self.undo,
            "redo": self.redo,
            "clear_frame": self.clear_frame,
            "clear_object": self.clear_object,
            "reset": self.reset,
            "stop": self.stop,
            "segment_everything": self.segment_everything,
            "open": self.open,
            "load": self.load,
            "export": self._export_command,
            "save": lambda out_dir: self._export_command("session", out_dir),
            "next_frame": lambda: self.go_to(self.frame + 1),
            "prev_frame": lambda: self.go_to(self.frame - 1),
            "first_frame": lambda: self.go_to(0),
            "last_frame": lambda: self.go_to(last()),
            "next_doubtful": lambda: self.go_to_doubtful(+1),
            "prev_doubtful": lambda: self.go_to_doubtful(-1),
        }

    def go_to_doubtful(self, step: int) -> View:
        """Show the next (``step`` > 0) or previous doubtful frame of any object, saying why it is doubtful;
        a note when there is none that way."""
        session = self._require_session()
        if session is None:
            return self.view()
        frames = session.doubtful_frames()
        ahead = [f for f in frames if f > self.frame] if step > 0 else [f for f in frames if f < self.frame]
        if not ahead:
            way = "after" if step > 0 else "before"
            self._note(INFO, f"No doubtful frame {way} frame {self.frame}.")
            return self.view()
        target = ahead[0] if step > 0 else ahead[-1]
        self._show(target)
        reasons = []
        for info in session.objects:
            reason = session.doubt_reasons(info.id).get(target)
            if reason:
                reasons.append(f"{info.name}: {reason}")
        self._note(INFO, f"Frame {target} is doubtful ({'; '.join(reasons)}).")
        return self.view()

    def _export_command(self, kind: str, out_dir: str | Path) -> View:
        try:
            path = self.export(kind, out_dir)
        except SessionError as error:
            return self._error(error)
        self.last_export = path
        self._note(INFO, f"Wrote {path.name}.")
        return self.view()

    def _select_nth(self, n: int) -> View:
        session = self._require_session()
        if session is None:
            return self.view()
        objects = session.objects
        if not 1 <= n <= len(objects):
            return self._error(f"There is no object {n} in the list (it has {len(objects)}).")
        return self.select_object(objects[n - 1].id)


def _stem(session: Session) -> str:
    path = session.source_path
    stem = path.stem if path is not None else "frames"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "frames"
