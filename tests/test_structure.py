"""The shape of the code that docs/architecture.md promises: one class, one file, composed (no class spread
over files as mixin parts reading state declared elsewhere); no file in ``model/``, ``sam2_ui/`` or ``apps/``
over 500 lines, and no function over 60 lines except literal tables."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "sam2_ui", "apps")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def source_files() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def classes_of(files: list[Path]) -> dict[str, ast.ClassDef]:
    """Every class of our packages by name (names are unique enough for the check; a clash keeps the last)."""
    classes = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node
    return classes


def base_names(node: ast.ClassDef) -> list[str]:
    return [
        b.id if isinstance(b, ast.Name) else b.attr
        for b in node.bases
        if isinstance(b, ast.Name | ast.Attribute)
    ]


def foreign_state(node: ast.ClassDef) -> set[str]:
    """``self.x`` attributes a class reads but neither assigns nor defines: state declared elsewhere."""
    defined = {
        target.id
        for stmt in node.body
        for target in (stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)])
        if isinstance(target, ast.Name)
    }
    defined |= {stmt.name for stmt in node.body if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)}
    read = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
            if isinstance(sub.ctx, ast.Store):
                defined.add(sub.attr)
            elif not sub.attr.startswith("__"):
                read.add(sub.attr)
    return read - defined


def mixins(classes: dict[str, ast.ClassDef]) -> dict[str, list[str]]:
    """Class -> its bases of ours that exist only to be mixed in: no ``__init__`` of their own, and methods
    that read state the base never sets (the class they are mixed into declares it)."""
    found = {}
    for name, node in classes.items():
        parts = []
        for base in base_names(node):
            declared = classes.get(base)
            if declared is None:
                continue
            has_init = any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in declared.body)
            if not has_init and foreign_state(declared):
                parts.append(base)
        if parts:
            found[name] = parts
    return found


def test_no_class_is_made_of_mixin_parts():
    classes = classes_of(source_files())
    assert {"Session", "Interaction", "SAM2VideoPredictor", "SessionState"} <= set(classes)
    assert mixins(classes) == {}


def test_the_mixin_check_finds_a_class_split_over_parts():
    probe = ast.parse(
        "class Reads:\n    def masks(self):\n        return self._state.masks\n"
        "class Owns:\n    def __init__(self):\n        self._items = []\n    def items(self):\n"
        "        return self._items\n"
        "class Whole(Reads, Owns):\n    def __init__(self):\n        self._state = None\n"
    )
    classes = {n.name: n for n in probe.body}
    assert mixins(classes) == {"Whole": ["Reads"]}


def test_no_source_file_is_over_500_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in source_files() if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}


def is_literal_table(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function that only returns (or assigns and returns) one literal: a table of values, not logic."""
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    literal = (ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Call, ast.Constant)
    return (
        len(body) == 1
        and isinstance(body[0], ast.Return)
        and isinstance(body[0].value, literal)
        and not any(
            isinstance(sub, ast.Lambda | ast.IfExp | ast.ListComp | ast.DictComp) for sub in ast.walk(body[0])
        )
    )


def long_functions(files: list[Path]) -> dict[str, int]:
    found = {}
    for path in files:
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and not is_literal_table(node):
                    found[f"{name}:{node.name}"] = lines
    return found


def test_no_function_is_over_60_lines_except_literal_tables():
    assert long_functions(source_files()) == {}


def test_the_length_check_tells_a_table_from_logic(tmp_path):
    table = "def table():\n    return {\n" + "".join(f"        'k{i}': {i},\n" for i in range(70)) + "    }\n"
    logic = "def logic(x):\n" + "".join(f"    x = x + {i}\n" for i in range(70)) + "    return x\n"
    (tmp_path / "probe.py").write_text(table + "\n\n" + logic)
    found = long_functions([tmp_path / "probe.py"])
    assert [name.rsplit(":", 1)[1] for name in found] == ["logic"]
    assert len(found) == 1
