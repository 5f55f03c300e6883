"""The docs cannot go stale silently: every file the docs cite as `path` and every `path:name` (a class, a
function, a method as ``Class.method``, or a module-level name) exists in the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
SUFFIXES = ("py", "js", "css", "md", "sh", "toml", "ipynb", "txt", "yaml", "json")
# A file path (with at least one folder), optionally followed by ":Name" or ":Class.method".
CITATION = re.compile(rf"`((?:[\w.-]+/)+[\w.-]+\.(?:{'|'.join(SUFFIXES)}))(?::([\w.]+))?`")
# A bare file name in backticks: the docs cite files from the repository root so a reader can open them.
BARE_FILE = re.compile(rf"`([\w-]+\.(?:{'|'.join(SUFFIXES)}))(?::[\w.]+)?`")


def citations(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in CITATION.finditer(text)]


def defined_names(path: Path) -> set[str]:
    """Module-level names of a Python file, and ``Class.member`` for every member of its classes."""
    names = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def missing(text: str) -> list[str]:
    """Citations of ``text`` that do not resolve, and bare file names (which a reader cannot open)."""
    problems = []
    for path, name in citations(text):
        file = ROOT / path
        if not file.is_file():
            problems.append(f"{path}: no such file")
        elif name is not None and (file.suffix != ".py" or name not in defined_names(file)):
            problems.append(f"{path}:{name}: not defined there")
    problems += [f"{m.group(1)}: cite it with its folder" for m in BARE_FILE.finditer(text)]
    return problems


def test_the_architecture_doc_cites_files_and_names_that_exist():
    assert [d.name for d in DOCS] == ["architecture.md"]
    text = DOCS[0].read_text()
    assert len(citations(text)) >= 40  # the walks cite every hop
    assert missing(text) == []


def test_a_stale_citation_is_found():
    text = (
        "`sam2_ui/session.py:Session.add_point` `sam2_ui/session.py:Session.no_such_method` "
        "`sam2_ui/gone.py` `model/video/step.py:condition_group` `render.py`"
    )
    assert missing(text) == [
        "sam2_ui/session.py:Session.no_such_method: not defined there",
        "sam2_ui/gone.py: no such file",
        "render.py: cite it with its folder",
    ]
