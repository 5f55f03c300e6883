"""What the page handlers and the scripting API need from the app: the `Host` protocol (`App` is one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sam2_ui.interaction.interaction import Interaction
from sam2_ui.interaction.view import View

from .tab_state import TabState


class Host(Protocol):
    """The app as its handlers see it: each tab's interaction and page state, files in and out."""

    examples: list[Path]
    example_thumbnails: list[dict[str, str]]

    @property
    def upload_folder(self) -> str: ...

    def interaction(self, request: Any) -> Interaction: ...

    def tab(self, ui: Interaction) -> TabState: ...

    def memory(self, ui: Interaction, view: View) -> str | None: ...

    def open_media(self, path: str | None, request: Any) -> View: ...

    def load_session(self, session_file: str | None, media: str | None, request: Any) -> View: ...

    def export(self, kind: str, request: Any) -> str: ...

    def close_session(self, request: Any) -> None: ...
