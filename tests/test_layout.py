"""The code's shape is part of the lesson: a short script that is the lesson and nothing else, and a package
beside it in layers, each importing only those below it, that imports the lesson, never the other way round."""
import ast
import subprocess
import sys

import pytest
from conftest import ROOT, SCRIPT, clean_env

from beyond_the_blog import LAYERS, TORCH_FREE  # the order is written there, once

PACKAGE = ROOT / "beyond_the_blog"
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)
SOURCES = [SCRIPT, *MODULES]
HEAVY = ("torch", "matplotlib", "numpy", "plotly", "tqdm")


def dotted(path):
    """beyond_the_blog/training/fit.py -> beyond_the_blog.training.fit (a package's __init__ is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


ALL = {dotted(path): path for path in MODULES}


def layer(module):
    """The index in LAYERS of a module of the package: its folder, or the table it is."""
    return LAYERS.index(module.split(".")[1])


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
    assert "def main" not in text  # the command line's main() is the package's (beyond_the_blog/cli)
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
    lesson_users = [module for module, path in ALL.items() if "quadratic_regression" in imports(path)]
    assert lesson_users  # the package imports the lesson: fit, run, monitor, ...


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_small_modules_short_functions_short_lines(path):
    text = path.read_text()
    assert len(text.splitlines()) <= (170 if path == SCRIPT else 350)  # each file readable in one sitting
    assert max(len(line) for line in text.splitlines()) <= 120
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


def module_level(tree):
    """The nodes that run when the module is imported: everything outside function bodies."""
    pending = list(ast.iter_child_nodes(tree))
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def imports(path, everywhere=True):
    """The modules `path` imports, relative imports resolved: at any depth (inside functions too), or, with
    everywhere=False, only those that run when it is imported. `from . import x` counts as the module x."""
    tree = ast.parse(path.read_text())
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree) if everywhere else module_level(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in ALL)
    return found


def package_imports(module, everywhere=True):
    """The package's modules that `module` imports (a package counts as its __init__)."""
    return {m for m in imports(ALL[module], everywhere) if m in ALL and m != module}


def test_every_module_lives_in_a_layer():
    """Every folder of the package is a layer, and a module at its top is one of the two tables."""
    for path in MODULES:
        first = path.relative_to(PACKAGE).parts[0]
        assert first == "__init__.py" or first.removesuffix(".py") in LAYERS, path
    assert set(LAYERS) == {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in MODULES} - {"__init__"}


def test_every_import_goes_down_the_layers():
    """Each module imports only from its own layer and those below it, inside functions too; the package's
    __init__ holds the map and LAYERS, and imports nothing."""
    assert not imports(ALL["beyond_the_blog"])
    for module in ALL:
        if module == "beyond_the_blog":
            continue
        for target in package_imports(module) - {"beyond_the_blog"}:
            assert layer(target) <= layer(module), (f"{module} ({LAYERS[layer(module)]}) imports {target} "
                                                    f"({LAYERS[layer(target)]}), a layer above it")


def test_no_import_cycle_at_any_depth():
    """Counting the imports inside functions; the lesson's hand-over to the command line is the one exception
    (the lesson is outside the package, below every layer)."""
    graph = {module: package_imports(module) for module in ALL}
    done, visiting = set(), []

    def visit(module):
        assert module not in visiting, f"import cycle: {' -> '.join(visiting + [module])}"
        if module in done:
            return
        visiting.append(module)
        for dependency in sorted(graph[module]):
            visit(dependency)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_layout_test_sees_an_import_inside_a_function(tmp_path):
    """The check above is real: a lazy upward import, the kind that hid a cycle before, is found."""
    probe = PACKAGE / "theory" / "probe_for_the_layout_test.py"
    probe.write_text("def f():\n    from ..program.run import run\n    return run\n")
    try:
        ALL[dotted(probe)] = probe
        assert "beyond_the_blog.program.run" in package_imports(dotted(probe))
        assert layer("beyond_the_blog.program.run") > layer(dotted(probe))
    finally:
        del ALL[dotted(probe)]
        probe.unlink()


@pytest.mark.parametrize("name", TORCH_FREE)
def test_the_command_line_and_its_tables_are_torch_free(name):
    """No module of the layer, nor any package module it imports when imported, imports torch, matplotlib,
    numpy, or the lesson (which imports torch)."""
    pending = [m for m in ALL if m.split(".")[1:2] == [name]]
    assert pending
    seen = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        found = imports(ALL[module], everywhere=False)
        heavy = {other for other in found if other.split(".")[0] in HEAVY + ("quadratic_regression",)}
        assert not heavy, f"{name} imports {module}, which imports {sorted(heavy)}"
        pending.extend(m for m in found if m in ALL)


def test_help_does_not_import_torch(tmp_path):
    """`python quadratic_regression.py --help`, as typed: -X importtime lists every module imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), "--help"], cwd=tmp_path,
                            env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "beyond_the_blog.cli" in imported  # the list is real
    assert not {name for name in imported if name.split(".")[0] in HEAVY}
