"""The code's shape is part of the lesson: a short script that is the lesson and nothing else, and a
package of small modules beside it that imports the lesson, never the other way round."""
import ast
import subprocess
import sys

import pytest
from conftest import ROOT, SCRIPT, clean_env

PACKAGE = ROOT / "beyond_the_blog"
SOURCES = [SCRIPT, *sorted(PACKAGE.glob("*.py"))]
TORCH_FREE = ("cli", "models", "optimizers", "paths", "status", "interruptions")
HEAVY = ("torch", "matplotlib", "numpy")


def is_main_block(node):
    """`if __name__ == "__main__":`"""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and [getattr(c, "value", None) for c in test.comparators] == ["__main__"])


def test_the_script_is_the_lesson():
    text = SCRIPT.read_text()
    assert len(text.splitlines()) <= 170
    assert "noqa" not in text
    for piece in ("def make_data", "class ParamQuadratic", "class LinearProduct", "def train", "loss.backward()",
                  "optimizer.step()", "'Epoch[{}/{}], loss:{:.6f}'"):
        assert piece in text
    assert "def main" not in text  # the command line's main() is the package's (beyond_the_blog/cli.py)
    # top-down: the data, the models, the loop
    order = ["def make_data", "class ParamQuadratic", "class LinearProduct", "def train"]
    assert [text.index(p) for p in order] == sorted(text.index(p) for p in order)


def test_the_script_hands_over_to_the_command_line_in_a_few_lines():
    body = ast.parse(SCRIPT.read_text()).body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    blocks = [node for node in body if is_main_block(node)]
    assert len(blocks) == 1 and blocks[0] in (body[0], body[-1])  # at the start or at the end
    block = blocks[0]
    assert block.end_lineno - block.lineno + 1 <= 3
    imports = [node for node in ast.walk(block) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [(node.module, [a.name for a in node.names]) for node in imports] == [("beyond_the_blog.cli", ["main"])]


def test_the_lesson_imports_nothing_of_the_package():
    """Only its hand-over to the command line imports beyond_the_blog; the package imports the lesson."""
    tree = ast.parse(SCRIPT.read_text())
    handed_over = {id(node) for block in tree.body if is_main_block(block) for node in ast.walk(block)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in handed_over:
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert all(name.split(".")[0] in ("torch", "__future__") for name in names), ast.dump(node)
    lesson_users = [path.stem for path in PACKAGE.glob("*.py") if "quadratic_regression" in module_imports(path)[1]]
    assert lesson_users  # the package imports the lesson: fit, run, monitor, ...


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_small_modules_short_functions_short_lines(path):
    text = path.read_text()
    assert len(text.splitlines()) <= (170 if path == SCRIPT else 350)
    assert max(len(line) for line in text.splitlines()) <= 120
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


def module_level(tree):
    """The nodes that run when the module is imported: everything outside function bodies (lazy
    imports inside functions are on purpose, so that torch loads only when it is needed)."""
    pending = list(ast.iter_child_nodes(tree))
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def module_imports(path):
    """(the package modules `path` imports at module level (relative imports), the other modules it imports there)."""
    package, others = set(), set()
    for node in module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                package.add(node.module.split(".")[0])
            else:
                package.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            others.add(node.module)
        elif isinstance(node, ast.Import):
            others.update(a.name for a in node.names)
    return package, others


def package_graph():
    return {path.stem: module_imports(path) for path in PACKAGE.glob("*.py")}


def test_no_import_cycles_among_the_package_modules():
    graph = {name: package for name, (package, _) in package_graph().items()}
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


@pytest.mark.parametrize("name", TORCH_FREE)
def test_the_command_line_and_its_tables_are_torch_free(name):
    """Neither the module nor any package module it imports at module level imports torch, matplotlib,
    numpy, or the lesson (which imports torch)."""
    graph, seen, pending = package_graph(), set(), [name]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        package, others = graph[module]
        heavy = {other for other in others if other.split(".")[0] in HEAVY + ("quadratic_regression",)}
        assert not heavy, f"{name} imports {module}, which imports {sorted(heavy)}"
        pending.extend(package)


def test_help_does_not_import_torch(tmp_path):
    """`python quadratic_regression.py --help`, as typed: -X importtime lists every module imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), "--help"], cwd=tmp_path,
                            env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "beyond_the_blog.cli" in imported  # the list is real
    assert not {name for name in imported if name.split(".")[0] in HEAVY}
