"""The notebook, notebooks/lesson.ipynb: one source (the paired py:percent script), run top to bottom in a real
kernel, printing what the program prints, its playground training real runs, its prose quoting only computed numbers."""
import json
import queue
import re
import subprocess
import sys
import time

import jupytext
import nbformat
import numpy as np
import pytest
from conftest import ROOT, SCRIPT, clean_env
from nbclient import NotebookClient

pytestmark = pytest.mark.xdist_group("notebook")  # one worker runs the notebook once for all its tests
NOTEBOOK = ROOT / "notebooks" / "lesson.ipynb"
SOURCE = ROOT / "notebooks" / "lesson.py"
# STALL: nbclient can miss the kernel's reply to the playground's cell (its widgets send many messages) until the
# cell's timeout comes (nbclient issue 312): 30 s of every suite. polled() asks the shell channel again every 0.2 s.
PARAMS_EPOCHS = 20000  # the test's params run: the blog's 500000 epochs would take a minute
CHECKS = """
import json
run = play("params", "z", "sgd", 0.1, 300, seed=3, noise=0.5, draw=False)
print("PLAY", json.dumps({"coefficients": run.coefficients[0].tolist(), "losses": run.log.history[:3]}))
playground.lr.value = 0.05  # as a reader moving the slider: the bound callback trains
moved = playground.last
playground.model.value = "linear"  # resets the lr and epochs to the linear model's, then trains once
switched = playground.last
print("MOVED", json.dumps({"lr": moved.lr, "epochs": moved.log.epochs_run, "inputs": moved.standardize,
                           "coefficients": moved.coefficients[0].tolist(), "switched": switched.model_name,
                           "switched_lr": switched.lr, "switched_epochs": switched.log.epochs_run}))
"""


def test_the_notebook_is_its_paired_script_without_outputs():
    """notebooks/lesson.py is the source: `jupytext --sync notebooks/lesson.py` writes the .ipynb from it."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert jupytext.writes(notebook, fmt="py:percent") == SOURCE.read_text(encoding="utf-8")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def polled(get_msg, every=0.2):
    """get_msg(timeout) as a loop of waits of at most `every` seconds: a reply the first wait missed is found by the
    next (see STALL)."""
    async def get(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return get


@pytest.fixture(scope="module")
def executed():
    """The committed notebook run top to bottom in a python3 kernel, with CHECKS as a last cell, beside the program
    run on the same settings (started first: the two run at once). Returns (cells' text, the program's outputs)."""
    programs = {name: subprocess.Popen([sys.executable, str(SCRIPT), "--model", name, "--gradients", "manual",
                                        "--no-plot", *extra], cwd=ROOT, env=clean_env(), text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for name, extra in (("params", ["--epochs", str(PARAMS_EPOCHS)]), ("linear", []))}
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CHECKS))
    env = clean_env(NOTEBOOK_PARAMS_EPOCHS=str(PARAMS_EPOCHS))
    client = NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with client.setup_kernel(env=env):  # what client.execute() does, with the shell channel polled (see STALL)
        client.kc.shell_channel.get_msg = polled(client.kc.shell_channel.get_msg)
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    outputs = {name: process.communicate(timeout=300)[0] for name, process in programs.items()}
    cells = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells]
    return notebook, cells, outputs


def printed_after(cells, marker):
    """The JSON a check cell printed after `marker`."""
    line = next(line for text in cells for line in text.splitlines() if line.startswith(marker + " "))
    return json.loads(line[len(marker) + 1:])


def cell_printing(cells, start):
    return next(text for text in cells if start in text)


def test_the_blog_runs_print_what_the_program_prints(executed):
    _, cells, outputs = executed
    for name, first in (("params", "a tensor"), ("linear", "linear1.weight tensor")):
        printed = cell_printing(cells, first).splitlines()
        shown = [line for line in printed if re.match(r"Epoch\[|[\w.]+ tensor\(", line)]  # the blog's own lines
        assert len(shown) == (5 if name == "params" else 6)
        program = outputs[name].splitlines()
        assert all(line in program for line in shown), (name, shown)
    explanation = cell_printing(cells, "How fast plain SGD can go").strip().splitlines()
    program = outputs["params"].splitlines()
    start = program.index(explanation[0])
    assert program[start:start + len(explanation)] == explanation


def test_the_first_losses_are_the_blog_loops_own(executed):
    """The notebook's first table: the lesson's autograd loop; its column equals the program's first five lines."""
    _, cells, outputs = executed
    table = cell_printing(cells, "the blog's loss").splitlines()[1:]
    ours = [float(row.split()[2]) for row in table]
    program = [float(line.split("loss:")[1]) for line in outputs["params"].splitlines() if line.startswith("Epoch[")]
    assert ours == program[:5]
    assert "equal autograd's, bit for bit: True" in cell_printing(cells, "bit for bit")


def standardized_sgd(x, y, lr, epochs, start):
    """Plain gradient descent on the MSE of a z^2 + b z + c in float64, written out; a, b, c returned in x's units."""
    mean, std = x.mean(), x.std(ddof=1)
    z = (x - mean) / std
    features = np.stack([z**2, z, np.ones_like(z)], axis=1)
    theta = np.array(start, dtype=float)
    for _ in range(epochs):
        theta -= lr * 2 / len(y) * features.T @ (features @ theta - y)
    a, b, c = theta
    return np.array([a / std**2, b / std - 2 * a * mean / std**2, c - b * mean / std + a * mean**2 / std**2])


def data_and_start(seed, noise):
    """The data and the params model's start as a run with `seed` draws them (the lesson's make_data, then three
    standard normals): float64 arrays."""
    import torch

    import quadratic_regression as lesson
    torch.manual_seed(seed)
    x, y = lesson.make_data(noise=noise)
    start = [torch.randn(1, 1).item() for _ in "abc"]  # as ParamQuadratic draws a, b, c
    return x.double().numpy().ravel(), y.double().numpy().ravel(), np.array(start)


def test_the_play_callback_trains_a_real_run(executed):
    _, cells, _ = executed
    played = printed_after(cells, "PLAY")
    x, y, start = data_and_start(seed=3, noise=0.5)
    expected = standardized_sgd(x, y, 0.1, 300, start)
    assert np.allclose(played["coefficients"], expected, atol=2e-3), (played["coefficients"], expected)
    assert np.allclose(played["coefficients"], np.polyfit(x, y, 2), atol=0.01)


def test_moving_a_control_trains_the_run_it_shows(executed):
    _, cells, _ = executed
    moved = printed_after(cells, "MOVED")
    assert moved["lr"] == 0.05 and moved["inputs"] and moved["epochs"] == 1000
    x, y, start = data_and_start(seed=0, noise=1.0)
    assert np.allclose(moved["coefficients"], standardized_sgd(x, y, 0.05, 1000, start), atol=2e-3)
    assert (moved["switched"], moved["switched_lr"], moved["switched_epochs"]) == ("linear", 0.01, 1000)


def test_the_answers_are_right(executed):
    """Exercise 1: 2/lambda_max from numpy's float64 eigenvalues, the run under it stable and the one over it not;
    exercise 2: the first epoch a float64 loop is within 0.01, to float32's few epochs; exercise 4: the true curve."""
    _, cells, _ = executed
    x, y, start = data_and_start(seed=0, noise=1.0)
    features = np.stack([x**2, x, np.ones_like(x)], axis=1)
    limit = 2 / np.linalg.eigvalsh(2 / len(x) * features.T @ features).max()
    answer = cell_printing(cells, "answer: 2/lambda_max = ").splitlines()
    assert f"2/lambda_max = {limit:.4g};" in answer[0]
    assert "final loss" in answer[1] and answer[2].endswith("diverged")
    epochs = int(re.search(r"answer: (\d+) epochs", cell_printing(cells, "(stopped: target)"))[1])
    best = np.polyfit(x, y, 2)
    loop = next(k for k in range(1, 1000) if np.abs(standardized_sgd(x, y, 0.3, k, start) - best).max() <= 0.01)
    assert abs(epochs - loop) <= 2
    assert "a, b, c = 1, -12, 32" in cell_printing(cells, "least squares is the true curve")


def numbers(text):
    return set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?", text))


def test_prose_quotes_only_numbers_that_a_cell_computes_or_the_post_prints(executed):
    notebook, cells, _ = executed
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    quoted = "".join(re.findall(r"```.*?```", "".join(markdown), flags=re.S))  # the post's own code
    computed = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code") + "".join(cells)
    for text in markdown:
        prose = re.sub(r"```.*?```", " ", text, flags=re.S)
        for number in numbers(prose):
            assert float(number) <= 10 or number in numbers(computed) | numbers(quoted), (number, prose[:80])


def test_the_readme_badge_and_the_notebook_clone_the_same_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    badge = re.search(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/[^/]+/([^)\s]+)", readme)
    assert badge and (ROOT / badge[2]).resolve() == NOTEBOOK
    assert f'REPOSITORY = "https://github.com/{badge[1]}"' in SOURCE.read_text(encoding="utf-8")
