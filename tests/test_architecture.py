"""The house by role: imports follow the data's path, and task kinds are asked, not named.

features → pipeline / datasets / models → deploy → evaluation; the `mtlrec` orchestration
package on top may import any of them. A package imports only the packages before it.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED = {
    "features": set(),
    "pipeline": {"features"},
    "datasets": {"features"},
    "models": {"features"},
    "deploy": {"features", "models"},
    "evaluation": {"features", "models", "deploy"},
}
TASK_KINDS = {"retrieval", "binary", "esmm", "regression"}
KIND_HOME = ROOT / "models" / "tasks"


def _modules(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_packages(tree: ast.AST) -> set[str]:
    """mtlrec.<package> names this module imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[1] for n in names if n.startswith("mtlrec.") and n.count(".") >= 1}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_before_it(package):
    backward = {}
    for path in _modules(package):
        imported = _imported_packages(ast.parse(path.read_text())) - {package}
        wrong = imported - ALLOWED[package]
        if wrong:
            backward[str(path.relative_to(ROOT))] = sorted(wrong)
    assert backward == {}, f"{package} may import only {sorted(ALLOWED[package])}"


def _kind_branches(tree: ast.AST) -> list[int]:
    """Lines comparing a task's `.kind` with a kind name, or reading `.esmm_parent`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            on_kind = any(isinstance(o, ast.Attribute) and o.attr == "kind" for o in operands)
            constants = {
                c.value
                for o in operands
                for c in ast.walk(o)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
            if on_kind and constants & TASK_KINDS:
                lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "esmm_parent":
            lines.append(node.lineno)
    return lines


def test_only_the_task_kinds_branch_on_a_task_kind():
    found = {}
    for package in [*ALLOWED, "mtlrec", "bench"]:
        for path in _modules(package):
            if path.is_relative_to(KIND_HOME):
                continue
            lines = _kind_branches(ast.parse(path.read_text()))
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert found == {}, "ask the task's kind (mtlrec.models.tasks.kind_of) instead"


def test_the_checks_see_a_kind_branch():
    branch = ast.parse('if task.kind == "binary" and task.esmm_parent is None:\n    pass\n')
    assert _kind_branches(branch) == [1, 1]
    backward = ast.parse("def f():\n    from mtlrec.evaluation import bless\n")
    assert _imported_packages(backward) == {"evaluation"}


def _imports_in_functions(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def test_imports_are_deferred_only_in_the_cli_handlers():
    """The CLI defers heavy imports so `mtlrec --help` is instant; everything else imports at
    the top, where a reader sees what a module depends on."""
    found = {}
    for package in [*ALLOWED, "mtlrec"]:
        for path in _modules(package):
            if path == ROOT / "mtlrec" / "cli.py":
                continue
            lines = _imports_in_functions(ast.parse(path.read_text()))
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert found == {}


def test_the_cli_loads_no_tensorflow_before_a_step_runs():
    """The console filter for TensorFlow's native start-up lines is installed when a command
    starts; a module that imports TensorFlow at CLI import time prints them before it."""
    code = "import sys, mtlrec.cli; print(sorted(m for m in sys.modules if m == 'tensorflow'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
