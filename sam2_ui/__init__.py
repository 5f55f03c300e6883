"""sam2-ui's interaction engine: one `Session` that the Gradio app and the notebook widget both drive.

from model import build_sam2_video_predictor
from sam2_ui import Session

session = Session.open("clip.mp4", build_sam2_video_predictor("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt"))
car = session.add_object("car")
session.add_point(0, car, x=320, y=180)
for progress in session.propagate("forward"):
    print(progress.done, "/", progress.total)
session.export_coco("masks.json")

Names are loaded on first use, so ``import sam2_ui.output.render`` or ``sam2_ui.output.export`` does not
pull in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Session": "session",
    "SessionError": "engine.errors",
    "Limits": "engine.media",
    "ObjectInfo": "engine.objects",
    "FramePrompts": "engine.prompts",
    "PropagationProgress": "engine.propagation",
    "PropagationSummary": "engine.propagation",
    "DisplayMapping": "output.render",
    "render_frame": "output.render",
    "object_color": "engine.colors",
    "davis_palette": "engine.colors",
    "MemoryView": "output.memory_view",
    "SegmentWidget": "widget.widget",
    "ErrorWidget": "widget.widget_error",
    "show": "widget.notebook",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sam2_ui' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
