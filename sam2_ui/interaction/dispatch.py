"""Commands by name: what a button, a key or an API call naming one of `COMMANDS` runs on an interaction.

`Commands` maps each name (and each key of the shared key map) to one of the interaction's public calls (typed
by `Verbs`), says what is wrong with an unknown name or its arguments, moves between doubtful frames, and owns
what the export commands wrote last.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..engine.errors import SessionError
from ..session import Session
from .keys import command_for_key
from .notes import Notes
from .verbs import Verbs
from .view import INFO, View


class Commands:
    """The commands of one interaction by name.

    Arguments:
      ui: the interaction whose calls the commands run.
      notes: where a wrong name or argument, a doubtful frame and what an export wrote are said.
      require_session: the interaction's session, or None once it said why there is none to work on.
    """

    def __init__(self, ui: Verbs, notes: Notes, require_session: Callable[[], Session | None]) -> None:
        self._ui = ui
        self._notes = notes
        self._require_session = require_session
        self.last_export: Path | None = None  # what the "export" and "save" commands wrote last

    def run(self, name: str, kwargs: Mapping[str, Any]) -> View:
        """Run command ``name`` with ``kwargs`` (see `Interaction.command`)."""
        if name.startswith("select_object_"):
            return self._select_nth(int(name.rsplit("_", 1)[1]))
        if name.startswith("tool_"):
            return self._ui.set_tool(name[len("tool_") :])
        if name.startswith("propagate_"):
            views = list(self._ui.propagate(name[len("propagate_") :], min_interval_s=float("inf")))
            return views[-1]
        handler = self._handlers().get(name)
        if handler is None:
            return self._error(f"Unknown command {name!r}.")
        try:
            return handler(**kwargs)
        except TypeError as error:  # missing or unknown arguments: say which the command takes
            takes = ", ".join(inspect.signature(handler).parameters) or "no arguments"
            return self._error(f"Command {name!r} takes {takes} ({error}).")

    def key(self, key: str, ctrl: bool = False, shift: bool = False, meta: bool = False) -> View:
        """Run the command a key press names in the shared key map (see `Interaction.key`)."""
        name = command_for_key(key, ctrl=ctrl, shift=shift, meta=meta)
        if name is None:
            return self._ui.view()
        return self.run(name, {})

    def _handlers(self) -> dict[str, Callable[..., View]]:
        ui = self._ui
        last = lambda: (ui.session.num_frames - 1) if ui.session else 0  # noqa: E731
        return {
            "add_object": ui.add_object,
            "select_object": ui.select_object,
            "rename_object": ui.rename_object,
            "remove_object": ui.remove_object,
            "remove_last_point": ui.remove_last_point,
            "undo": ui.undo,
            "redo": ui.redo,
            "clear_frame": ui.clear_frame,
            "clear_object": ui.clear_object,
            "reset": ui.reset,
            "stop": ui.stop,
            "segment_everything": ui.segment_everything,
            "open": ui.open,
            "load": ui.load,
            "export": self._export,
            "save": lambda out_dir: self._export("session", out_dir),
            "next_frame": lambda: ui.go_to(ui.frame + 1),
            "prev_frame": lambda: ui.go_to(ui.frame - 1),
            "first_frame": lambda: ui.go_to(0),
            "last_frame": lambda: ui.go_to(last()),
            "next_doubtful": lambda: self.go_to_doubtful(+1),
            "prev_doubtful": lambda: self.go_to_doubtful(-1),
        }

    def go_to_doubtful(self, step: int) -> View:
        """Show the next (``step`` > 0) or previous doubtful frame of any object, saying why it is doubtful;
        a note when there is none that way."""
        session = self._require_session()
        if session is None:
            return self._ui.view()
        frame = self._ui.frame
        frames = session.doubtful_frames()
        ahead = [f for f in frames if f > frame] if step > 0 else [f for f in frames if f < frame]
        if not ahead:
            way = "after" if step > 0 else "before"
            self._notes.note(INFO, f"No doubtful frame {way} frame {frame}.")
            return self._ui.view()
        target = ahead[0] if step > 0 else ahead[-1]
        reasons = []
        for info in session.objects:
            reason = session.doubt_reasons(info.id).get(target)
            if reason:
                reasons.append(f"{info.name}: {reason}")
        self._notes.note(INFO, f"Frame {target} is doubtful ({'; '.join(reasons)}).")
        return self._ui.go_to(target)

    def _export(self, kind: str, out_dir: str | Path) -> View:
        try:
            path = self._ui.export(kind, out_dir)
        except SessionError as error:
            return self._error(error)
        self.last_export = path
        self._notes.note(INFO, f"Wrote {path.name}.")
        return self._ui.view()

    def _select_nth(self, n: int) -> View:
        session = self._require_session()
        if session is None:
            return self._ui.view()
        objects = session.objects
        if not 1 <= n <= len(objects):
            return self._error(f"There is no object {n} in the list (it has {len(objects)}).")
        return self._ui.select_object(objects[n - 1].id)

    def _error(self, error: SessionError | str) -> View:
        self._notes.error(error)
        return self._ui.view()
