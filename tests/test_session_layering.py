"""The layers of DESIGN.md: ``model/`` imports nothing from ``sam2_ui/``, and the engine (everything in
``sam2_ui/`` but the notebook widget) imports no front-end toolkit. Checked twice: by reading every import
statement (including those inside functions), and by importing the packages in a fresh interpreter and
looking at what got loaded."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRONT_END_TOOLKITS = ("gradio", "ipycanvas", "ipywidgets")
WIDGET_FILES = {"widget.py"}


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved against its package)."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.lstrip("."))
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


def engine_files() -> list[Path]:
    return [p for p in sorted((ROOT / "sam2_ui").glob("*.py")) if p.name not in WIDGET_FILES]


def test_model_source_imports_nothing_from_sam2_ui():
    files = sorted((ROOT / "model").glob("*.py"))
    assert files
    offenders = {p.name: n for p in files for n in imported_modules(p) if _top(n) == "sam2_ui"}
    assert offenders == {}


def test_engine_source_imports_no_front_end_toolkit():
    files = engine_files()
    assert any(p.name == "session.py" for p in files)
    offenders = {p.name: n for p in files for n in imported_modules(p) if _top(n) in FRONT_END_TOOLKITS}
    assert offenders == {}


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    import gradio as gr\n    from ipycanvas import Canvas\n    from .. import x\n"
    )
    assert imported_modules(probe, package="sam2_ui.sub") == {"gradio", "ipycanvas", "sam2_ui"}


def test_importing_model_and_the_engine_loads_no_front_end_and_no_reverse_import():
    modules = [f"sam2_ui.{p.stem}" for p in engine_files() if p.stem != "__init__"]
    script = (
        "import importlib, json, sys\n"
        "import model\n"
        "after_model = sorted(m for m in sys.modules if m.split('.')[0] == 'sam2_ui')\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from sam2_ui import Session\n"
        f"toolkits = sorted(m for m in sys.modules if m.split('.')[0] in {FRONT_END_TOOLKITS!r})\n"
        "print(json.dumps({'after_model': after_model, 'toolkits': toolkits}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"after_model": [], "toolkits": []}
