"""The layers of docs/architecture.md: ``model/`` imports nothing from ``sam2_ui/``; inside ``model/`` the
network imports nothing from the image or video parts; inside ``sam2_ui/`` the engine imports nothing above
it, the outputs only the engine, the session (the facade the front ends hold) the engine and the outputs, and
the interaction layer nothing of the widget; only the notebook widget imports a front-end toolkit; nothing
imports ``apps/``; and no two modules import each other, even through a chain. Checked by reading every
import statement (including those inside functions and under ``TYPE_CHECKING``), and by importing the
packages in a fresh interpreter and looking at what got loaded."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_END_TOOLKITS = ("gradio", "ipycanvas", "ipywidgets")
# The layers of sam2_ui, bottom up: a layer may import only the layers below it (and itself).
SAM2_UI_LAYERS = (
    "sam2_ui.engine",
    "sam2_ui.output",
    "sam2_ui.session",
    "sam2_ui.interaction",
    "sam2_ui.widget",
)


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
    """Every file of ``sam2_ui`` but the notebook widget's (the package ``sam2_ui.widget``)."""
    return [p for p in sorted((ROOT / "sam2_ui").rglob("*.py")) if "widget" not in p.relative_to(ROOT).parts]


def test_model_source_imports_nothing_from_sam2_ui():
    files = sorted((ROOT / "model").rglob("*.py"))
    assert len(files) > 30
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


@pytest.mark.slow
def test_importing_model_and_the_engine_loads_no_front_end_and_no_reverse_import():
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts) for p in engine_files() if p.stem != "__init__"
    ]
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


PACKAGES = ("model", "sam2_ui", "apps")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages (a package is its __init__.py)."""
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from pkg import submodule`` counts as the submodule)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files]
                targets.update(subs if subs else [base])
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other through some chain (strongly connected, 2 or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_two_modules_import_each_other():
    assert import_cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_chain_of_three():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_the_network_imports_neither_images_nor_video_nor_loading():
    graph = import_graph()
    network = [m for m in graph if m.startswith("model.network.")]
    assert len(network) >= 13
    offenders = {
        m: t
        for m in network
        for t in graph[m]
        if t.startswith(("model.images", "model.video", "model.loading", "sam2_ui", "apps"))
    }
    assert offenders == {}


def test_nothing_imports_the_apps():
    graph = import_graph()
    offenders = [(m, t) for m, targets in graph.items() for t in targets if t.startswith("apps")]
    assert [(m, t) for m, t in offenders if not m.startswith("apps")] == []


def layer_of(module: str) -> int | None:
    """Index of the ``sam2_ui`` layer a module belongs to (None for the package's own ``__init__``)."""
    for index, layer in enumerate(SAM2_UI_LAYERS):
        if module == layer or module.startswith(layer + "."):
            return index
    return None


def test_every_sam2_ui_module_lives_in_a_layer():
    graph = import_graph()
    modules = [m for m in graph if m.startswith("sam2_ui.")]
    assert len(modules) > 30
    assert [m for m in modules if layer_of(m) is None] == []


def test_sam2_ui_layers_import_only_the_layers_below_them():
    graph = import_graph()
    upward = sorted(
        (m, t)
        for m, targets in graph.items()
        if m.startswith("sam2_ui.")
        for t in targets
        if t.startswith("sam2_ui.") and layer_of(t) > layer_of(m)
    )
    assert upward == []
    assert {SAM2_UI_LAYERS[layer_of(m)] for m in graph if m.startswith("sam2_ui.")} == set(SAM2_UI_LAYERS)


def test_the_layer_check_sees_an_upward_import():
    assert (
        layer_of("sam2_ui.engine.tracker")
        < layer_of("sam2_ui.output.render")
        < layer_of("sam2_ui.widget.widget")
    )
    assert layer_of("sam2_ui.session") < layer_of("sam2_ui.interaction.view")
