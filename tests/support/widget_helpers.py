"""Driving the notebook widget without a kernel, through its real ipycanvas / ipyevents / ipywidgets handlers.

Outside a kernel the widgets' comms are inert, so what the widget sends to the browser is read where
ipycanvas hands it over: `DrawLog` records every draw command with the layer it went to and decodes its
image.
Events are fed where the front end's messages arrive: the canvas's custom-message handler (ipycanvas) and the
ipyevents ``Event``'s message handler.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
from ipycanvas.canvas import _CANVAS_MANAGER, COMMANDS
from PIL import Image

from sam2_ui.widget.widget import FRAME_LAYER, MARKER_LAYER, MASK_LAYER, SegmentWidget

COMMAND_NAMES = {code: name for name, code in COMMANDS.items()}
LAYER_NAMES = {FRAME_LAYER: "frame", MASK_LAYER: "masks", MARKER_LAYER: "markers"}


@dataclass
class DrawLog:
    """(layer name, command name, decoded image or None) for every draw command sent."""

    widget: SegmentWidget
    entries: list[tuple[str, str, np.ndarray | None]] = field(default_factory=list)

    def record(self, canvas, name, args=(), buffers=()):
        layers = {id(self.widget.canvas[i]): LAYER_NAMES[i] for i in LAYER_NAMES}
        image = None
        if buffers:
            image = np.asarray(Image.open(io.BytesIO(bytes(buffers[0]))))
        self.entries.append((layers.get(id(canvas), "other"), COMMAND_NAMES.get(name, str(name)), image))

    def images(self, layer: str) -> list[np.ndarray]:
        return [img for lay, cmd, img in self.entries if lay == layer and cmd == "putImageData"]

    def clear(self) -> None:
        self.entries.clear()


def record_draws(widget: SegmentWidget, monkeypatch) -> DrawLog:
    log = DrawLog(widget)
    original = _CANVAS_MANAGER.send_draw_command

    def send(canvas, name, args=[], buffers=[]):  # noqa: B006 - ipycanvas's own signature
        log.record(canvas, name, args, buffers)
        return original(canvas, name, args, buffers)

    monkeypatch.setattr(_CANVAS_MANAGER, "send_draw_command", send)
    return log


def canvas_event(widget: SegmentWidget, event: str, **content) -> None:
    """A message from the canvas's front end, as ipycanvas receives it."""
    widget.canvas._handle_custom_msg({"event": event, **content}, [])


def click(widget: SegmentWidget, x: float, y: float, button: int = 0, shift: bool = False) -> None:
    """A click at canvas-buffer position (x, y) (0 at the left edge of the first pixel), as the browser
    sends it: ipyevents' mousedown (button, modifiers), then ipycanvas' mouse down and up."""
    if widget.dom_events:
        dom = {"event": "mousedown", "button": button, "shiftKey": shift, "relativeX": x, "relativeY": y}
        widget.dom_events[0]._handle_mouse_msg(None, dom, [])
    canvas_event(widget, "mouse_down", x=x, y=y)
    canvas_event(widget, "mouse_up", x=x, y=y)


def click_frame_pixel(widget: SegmentWidget, fx: float, fy: float, **kwargs) -> None:
    """A click on the centre of frame pixel (fx, fy), wherever the canvas shows it."""
    mapping = widget._last_view.mapping
    u, v = mapping.to_display(fx, fy)
    click(widget, u + 0.5, v + 0.5, **kwargs)


def drag(widget: SegmentWidget, x0: float, y0: float, x1: float, y1: float) -> None:
    canvas_event(widget, "mouse_down", x=x0, y=y0)
    canvas_event(widget, "mouse_move", x=(x0 + x1) / 2, y=(y0 + y1) / 2)
    canvas_event(widget, "mouse_up", x=x1, y=y1)


def key(widget: SegmentWidget, name: str, ctrl: bool = False, shift: bool = False) -> None:
    canvas_event(widget, "key_down", key=name, shift_key=shift, ctrl_key=ctrl, meta_key=False)


def wait_until(condition, timeout: float = 60.0, interval: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return condition()
