"""The code's shape is part of the lesson: a short script, a package of small modules beside it."""
import ast
import re

import pytest
from conftest import ROOT

PACKAGE = ROOT / "beyond_the_blog"
SOURCES = [ROOT / "quadratic_regression.py", *sorted(PACKAGE.glob("*.py"))]


def test_the_script_is_the_lesson():
    text = (ROOT / "quadratic_regression.py").read_text()
    assert len(text.splitlines()) <= 250
    for piece in ("def make_data", "class ParamQuadratic", "class LinearProduct", "def train", "loss.backward()",
                  "optimizer.step()", "'Epoch[{}/{}], loss:{:.6f}'", "def main(argv=None) -> int"):
        assert piece in text
    # top-down: the data, the models, the loop, then main
    order = ["def make_data", "class ParamQuadratic", "class LinearProduct", "def train", "def main"]
    assert [text.index(p) for p in order] == sorted(text.index(p) for p in order)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_small_modules_short_functions_short_lines(path):
    text = path.read_text()
    assert path.name == "quadratic_regression.py" or len(text.splitlines()) <= 350
    assert max(len(line) for line in text.splitlines()) <= 120
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


def imports_of(path):
    """The package modules `path` imports (relative imports), and whether it imports the script."""
    modules, script = set(), False
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            modules.add(node.module)
        names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
        module = getattr(node, "module", None) or ""
        script |= "quadratic_regression" in names or module.startswith("quadratic_regression")
    return modules, script


def test_the_package_never_imports_the_script_and_has_no_import_cycles():
    graph = {}
    for path in PACKAGE.glob("*.py"):
        modules, script = imports_of(path)
        assert not script, path.name
        graph[path.stem] = modules
    done, visiting = set(), []

    def visit(module):
        assert module not in visiting, f"import cycle: {' -> '.join(visiting + [module])}"
        if module in done:
            return
        visiting.append(module)
        for dependency in graph.get(module, ()):
            visit(dependency)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_command_line_and_registry_are_torch_free():
    for name in ("command_line.py", "model_registry.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|matplotlib|numpy)", (PACKAGE / name).read_text(), re.M)
