"""Every test is marked by what it needs, so the fast loop leaves out exactly those tests.

The fast loop is ``pytest -m "not (browser or notebook or server or parity or slow)"`` (scripts/test_fast.sh).
A test that uses Playwright must be marked ``browser``, nbclient ``notebook``, gradio_client ``server`` and
the official ``sam2`` package ``parity``. The test modules are read with `ast`, not imported, and a test
needs a mark when:

- its module imports the package at module level (the module cannot even be collected without it);
- it imports the package itself, or uses a function, fixture or test helper that does (a fixture from a
  conftest.py included; a ``tests.support`` module counts as importing what it imports at module level);
- it uses a test helper listed in `HELPER_MARKS` (launching the app, driving JupyterLab).

``slow`` (more than ~5 s here) cannot be read from the source: it is set by hand from ``--durations``.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MARKS = ("browser", "notebook", "server", "parity", "slow")
FAST = "not (browser or notebook or server or parity or slow)"

PACKAGE_MARKS = {"playwright": "browser", "nbclient": "notebook", "gradio_client": "server", "sam2": "parity"}
"""Top-level package -> the mark a test using it needs (``sam2`` is the official package, not ``sam2_ui``)."""

HELPER_MARKS = {
    "tests.support.app_helpers.running_app": "server",  # launches the app on 127.0.0.1
    "tests.support.jupyter_lab": "notebook",  # runs notebook cells in a JupyterLab server
}
"""Test helpers (a name, or every name of a module) that need a mark although they import none of those."""


# ----------------------------------------------------------------------------------------------- reading
def _statements(body: list[ast.stmt]):
    """The statements run when a module (or class) body runs: not the bodies of the functions it defines."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for name in ("body", "orelse", "finalbody", "handlers"):
            yield from _statements(getattr(node, name, []))


def _imports(nodes) -> dict[str, str]:
    """Bound name -> qualified name of every absolute import among ``nodes``."""
    bound = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _package_mark(qualified: str) -> set[str]:
    mark = PACKAGE_MARKS.get(qualified.split(".")[0])
    return {mark} if mark else set()


def _helper_marks(qualified: str) -> set[str]:
    return {
        mark
        for helper, mark in HELPER_MARKS.items()
        if qualified == helper or qualified.startswith(helper + ".")
    }


def _local_module(qualified: str) -> Path | None:
    """The file of a ``tests.*`` module named by ``qualified`` (a module or a name in one), if any."""
    parts = qualified.split(".")
    if parts[0] != "tests":
        return None
    for n in range(len(parts), 1, -1):
        path = REPO.joinpath(*parts[:n])
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@functools.cache
def _support_needs(path: Path) -> frozenset[str]:
    """The marks needed to import a test support module: what it imports at module level, transitively."""
    tree = ast.parse(path.read_text(), str(path))
    return frozenset(_import_needs(_imports(_statements(tree.body)).values(), skip=path))


def _import_needs(qualified_names, skip: Path | None = None) -> set[str]:
    needs: set[str] = set()
    for qualified in qualified_names:
        needs |= _package_mark(qualified)
        local = _local_module(qualified)
        if local is not None and local != skip:
            needs |= _support_needs(local)
    return needs


def _marks_in(node: ast.AST) -> set[str]:
    """Every ``pytest.mark.X`` named in an expression (a decorator, a ``pytestmark`` value)."""
    marks = set()
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "mark"
            and isinstance(sub.value.value, ast.Name)
            and sub.value.value.id == "pytest"
        ):
            marks.add(sub.attr)
    return marks


def _pytestmark(body: list[ast.stmt]) -> set[str]:
    marks = set()
    for node in body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            marks |= _marks_in(node.value)
    return marks


@dataclass
class _Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    marks: set[str]  # its own decorators, its class's and its module's
    own_needs: set[str] = field(default_factory=set)


def _functions(tree: ast.Module) -> dict[str, list[_Function]]:
    """Name -> the functions of that name defined at module level or in a module-level class."""
    module_marks = _pytestmark(tree.body)
    found: dict[str, list[_Function]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            marks = module_marks | set().union(*map(_marks_in, node.decorator_list))
            found.setdefault(node.name, []).append(_Function(node, marks))
        elif isinstance(node, ast.ClassDef):
            class_marks = (
                module_marks | _pytestmark(node.body) | set().union(*map(_marks_in, node.decorator_list))
            )
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    marks = class_marks | set().union(*map(_marks_in, item.decorator_list))
                    found.setdefault(item.name, []).append(_Function(item, marks))
    return found


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]


def _function_needs(tree: ast.Module, outside: dict[str, set[str]]) -> dict[str, set[str]]:
    """Name -> the marks each module-level function (test, fixture, helper) needs, its callees' and
    fixtures' included; ``outside``: fixtures from conftest files by name."""
    bindings = _imports(_statements(tree.body))
    functions = _functions(tree)
    needs: dict[str, set[str]] = {}
    uses: dict[str, set[str]] = {}
    for name, defs in functions.items():
        needs[name], uses[name] = set(), set()
        for fn in defs:
            inner = [n for n in ast.walk(fn.node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            needs[name] |= _import_needs(_imports(inner).values())
            referenced = {n.id for n in ast.walk(fn.node) if isinstance(n, ast.Name)} | set(_params(fn.node))
            for ref in referenced:
                qualified = bindings.get(ref)
                if qualified is not None:
                    needs[name] |= _import_needs([qualified]) | _helper_marks(qualified)
            uses[name] |= referenced
    for name in needs:  # fixtures from conftest files, unless this module defines its own
        for ref in uses[name]:
            if ref not in functions and ref in outside:
                needs[name] |= outside[ref]
    changed = True
    while changed:  # through the module's own functions and fixtures
        changed = False
        for name in needs:
            for ref in uses[name] & needs.keys():
                if ref != name and not needs[ref] <= needs[name]:
                    needs[name] |= needs[ref]
                    changed = True
    return needs


def conftest_fixture_needs(test_path: Path) -> dict[str, set[str]]:
    """Fixture name -> the marks it needs, from the conftest.py files above a test module (nearest wins)."""
    fixtures: dict[str, set[str]] = {}
    folders = [p for p in (test_path.parent, *test_path.parent.parents) if p == TESTS or TESTS in p.parents]
    for folder in reversed(folders):  # the root first, so nearer conftest files replace its fixtures
        conftest = folder / "conftest.py"
        if conftest.is_file():
            tree = ast.parse(conftest.read_text(), str(conftest))
            needs = _function_needs(tree, fixtures)
            for name, defs in _functions(tree).items():
                if any(_is_fixture(fn.node) for fn in defs):
                    fixtures[name] = needs[name]
    return fixtures


def unmarked(source: str, fixtures: dict[str, set[str]] | None = None, label: str = "<source>") -> list[str]:
    """``label::test needs X`` for every test in ``source`` that lacks a mark it needs."""
    tree = ast.parse(source, label)
    module_needs = _import_needs(_imports(_statements(tree.body)).values())
    needs = _function_needs(tree, fixtures or {})
    problems = []
    for name, defs in _functions(tree).items():
        if not name.startswith("test"):
            continue
        for fn in defs:
            if _is_fixture(fn.node):
                continue
            missing = (module_needs | needs[name]) - fn.marks
            problems += [f"{label}::{name} needs @pytest.mark.{mark}" for mark in sorted(missing)]
    return problems


def modules_under_test() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "support" not in p.relative_to(TESTS).parts)


# ------------------------------------------------------------------------------------------------- tests
def test_every_test_using_a_browser_notebook_server_or_the_official_package_is_marked():
    problems = []
    for path in modules_under_test():
        problems += unmarked(path.read_text(), conftest_fixture_needs(path), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_module_level_import_without_its_mark():
    source = "from gradio_client import Client\n\ndef test_api():\n    Client('http://127.0.0.1')\n"
    assert unmarked(source) == ["<source>::test_api needs @pytest.mark.server"]
    marked = "import pytest\nfrom gradio_client import Client\n\npytestmark = pytest.mark.server\n\n" + source
    assert unmarked(marked) == []
    several = (
        "import pytest\nimport playwright\n\npytestmark = [pytest.mark.slow]\n\ndef test_page():\n    pass\n"
    )
    assert unmarked(several) == ["<source>::test_page needs @pytest.mark.browser"]


def test_the_check_follows_imports_in_tests_helpers_and_fixtures_but_not_sam2_ui():
    source = """
import pytest
import sam2_ui

def official_model():
    from sam2.build_sam import build_sam2
    return build_sam2

@pytest.fixture
def official():
    return official_model()

def test_ours_only():
    sam2_ui.Session

def test_compares(official):
    pass

@pytest.mark.parity
def test_compares_marked(official):
    pass

class TestGroup:
    def test_in_a_class(self):
        import nbclient
"""
    assert unmarked(source) == [
        "<source>::test_compares needs @pytest.mark.parity",
        "<source>::test_in_a_class needs @pytest.mark.notebook",
    ]


def test_the_check_reads_conftest_fixtures_and_support_modules():
    uses_fixture = "def test_widget_in_lab(browser, random_checkpoint):\n    pass\n"
    fixtures = conftest_fixture_needs(TESTS / "apps" / "test_anything.py")
    assert fixtures["browser"] == {"browser"} and fixtures["random_checkpoint"] == {"parity"}
    assert unmarked(uses_fixture, fixtures) == [
        "<source>::test_widget_in_lab needs @pytest.mark.browser",
        "<source>::test_widget_in_lab needs @pytest.mark.parity",
    ]
    support = "from tests.support.official_ref import build_official\n\ndef test_build():\n    pass\n"
    assert unmarked(support) == ["<source>::test_build needs @pytest.mark.parity"]
    helper = (
        "from tests.support.app_helpers import running_app, write_clip\n\ndef test_clip():\n    write_clip\n"
    )
    assert unmarked(helper) == []
    assert unmarked(helper.replace("    write_clip", "    running_app")) == [
        "<source>::test_clip needs @pytest.mark.server"
    ]


def test_the_marks_are_registered_and_the_fast_script_leaves_out_each_of_them():
    pyproject = (REPO / "pyproject.toml").read_text()
    section = pyproject.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    assert "--strict-markers" in section  # a misspelt mark is an error, not a silently unmarked test
    registered = set(re.findall(r'^\s*"(\w+):', section, re.M))
    assert set(MARKS) <= registered
    assert f'-m "{FAST}"' in (REPO / "scripts" / "test_fast.sh").read_text()
    addopts = re.search(r'^addopts\s*=\s*"([^"]*)"', section, re.M)
    assert addopts and not re.search(r"(^|\s)(-m|-k|--deselect|--ignore)\b", addopts.group(1))
    runs = [line for line in (REPO / "scripts" / "test.sh").read_text().splitlines() if "-m pytest" in line]
    assert runs, "scripts/test.sh runs pytest"
    for line in runs:  # the full command (CI's) selects nothing away
        assert not re.search(r"\s(-m|-k|--deselect|--ignore)\b", line.split("-m pytest", 1)[1]), line
