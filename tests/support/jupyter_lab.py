"""JupyterLab for browser tests: a server on 127.0.0.1 (no token, settings in a temporary folder) and the
steps a person takes in it (run a cell, wait for a canvas to show something).

The widget's front-end code is the prebuilt ipycanvas / ipywidgets / ipyevents extensions pip installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.app_helpers import free_port

CANVAS_PIXELS_JS = """
(canvas) => Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)
"""


@contextmanager
def jupyter_lab_server(root: Path) -> Iterator[tuple[str, Path]]:
    """(base url, notebook folder) of a JupyterLab server on 127.0.0.1 serving ``root/notebooks``."""
    (root / "notebooks").mkdir()
    settings = root / "settings"
    port = free_port()
    env = dict(
        os.environ, JUPYTER_CONFIG_DIR=str(settings / "config"), JUPYTER_RUNTIME_DIR=str(settings / "rt")
    )
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={root / 'notebooks'}", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", f"--LabApp.user_settings_dir={settings / 'user'}",
        f"--LabApp.workspaces_dir={settings / 'workspaces'}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
    ]  # fmt: skip
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url, root / "notebooks"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def run_cell(page, index: int) -> None:
    """Select a cell and run it (Shift+Enter); pressed again if the first press came before the kernel
    was wired to the page (the cell's prompt stays "[ ]")."""
    cell = page.locator(".jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(10):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if prompt.inner_text().strip() not in ("[ ]:", ""):
                return
            time.sleep(0.2)
    raise AssertionError(f"cell {index} did not start: {prompt.inner_text()!r}")


def changed_pixels(before: list[int], after: list[int]) -> int:
    """How many pixels differ (any RGBA channel)."""
    return sum(1 for i in range(0, len(before), 4) if before[i : i + 4] != after[i : i + 4])


def wait_for_pixels(canvas, condition, what: str, timeout_s: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        pixels = canvas.evaluate(CANVAS_PIXELS_JS)
        if condition(pixels) or time.monotonic() > deadline:
            assert condition(pixels), f"timed out waiting until {what}"
            return pixels
        time.sleep(0.5)


def open_widget_notebook(page, url: str, name: str):
    """Open notebook ``name`` in JupyterLab, run its first cell (which shows a widget) once the kernel is
    up, and wait until the widget's canvas draws something. Returns (the canvas, its pixels then)."""
    page.goto(f"{url}/lab/tree/{name}", timeout=120_000)
    page.locator(".jp-Notebook").wait_for(timeout=120_000)
    page.get_by_text("| Idle").wait_for(timeout=120_000)  # the kernel is up
    run_cell(page, 0)
    canvas = page.locator(".jp-OutputArea-output canvas").first
    canvas.wait_for(timeout=180_000)
    return canvas, wait_for_pixels(canvas, lambda pixels: max(pixels) > 0, "the frame is drawn")
