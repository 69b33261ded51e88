"""Shared helpers: run the real script (in a subprocess, or its main() in this process), fit as the
command line fits, the blog's own program (reference/blog_program.py) as an oracle, and the numpy
oracles that several test files use."""
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.font_manager  # noqa: F401  builds matplotlib's font cache now, not inside a run whose stderr a test checks
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "quadratic_regression.py"
sys.path.insert(0, str(ROOT))
from beyond_the_blog.system.environment import same_numbers_on_every_processor  # noqa: E402

same_numbers_on_every_processor()  # before torch loads in this process, as the command line does
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread a worker, as the command line's default: two workers on
# two cores each spinning two threads over tiny tensors ran several times slower


# ----------------------------------------------------------------------------- the command line
def clean_env(**extra):
    """The environment of a user with no display: no DISPLAY, no forced matplotlib backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_script(*args, cwd, timeout=300, env=None, preexec_fn=None):
    """python quadratic_regression.py ARGS, as a user would type it; returns the CompletedProcess. preexec_fn runs
    in the child before the script: a limit (resource.setrlimit), or another working folder. Its output is read in
    the encoding the environment's PYTHONIOENCODING asks the script to write (a user's value it echoes may need it)."""
    env = env or clean_env()
    encoding = (env.get("PYTHONIOENCODING") or "utf-8").split(":")[0] or "utf-8"
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          encoding=encoding, timeout=timeout, preexec_fn=preexec_fn)


def run_main(capsys, *args, cwd, env=None):
    """The command line's main(argv) in this process, as run_script runs the script: for what is decided before any
    training (a refusal costs no interpreter and no torch import). Returns a CompletedProcess of its status and of
    what it printed (read through pytest's capsys); the working folder is `cwd` and the environment `env` (default:
    a user's without a display), both as in run_script. Nothing it changes outlives the call: the environment, the
    working folder, the warnings held back for a run (environment.WARNINGS) and torch's random state are put back."""
    import contextlib

    from beyond_the_blog.cli import main
    from beyond_the_blog.system import environment
    saved_env, saved_warnings, here = dict(os.environ), list(environment.WARNINGS), os.getcwd()
    capsys.readouterr()  # what the test printed before is not the program's
    try:
        os.environ.clear()
        os.environ.update(env or clean_env())
        environment.WARNINGS.clear()
        os.chdir(cwd)
        with contextlib.ExitStack() as stack:
            if "torch" in sys.modules:  # a run seeds torch before its data checks: the next test's draws stay its own
                stack.enter_context(sys.modules["torch"].random.fork_rng(devices=[]))
            status = main([*map(str, args)])
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved_env)
        environment.WARNINGS[:] = saved_warnings
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, int(status), out, err)


def prose(text):
    """Printed text with its line wrapping undone: every run of whitespace as one space."""
    return " ".join(text.split())


def metrics_of(tmp_path, capsys, *args):
    """The command line, in this process (no start-up cost): its exit status, stdout and metrics."""
    from beyond_the_blog import cli
    path = tmp_path / "m.json"
    args = [*map(str, args)]
    status = cli.main([*args, *([] if "--plot" in args else ["--no-plot"]), "--metrics", str(path)])
    return status, capsys.readouterr().out, json.loads(path.read_text())


# ----------------------------------------------------------------------------- data, models and fits
def seeded_data(seed=0, **options):
    """The lesson's data after torch.manual_seed(seed), as a run with that seed draws it."""
    import torch

    import quadratic_regression as qr
    torch.manual_seed(seed)
    return qr.make_data(**options)


def seeded_start(model_name, seed=0):
    """x, y and the initial model of a run with `seed`: the data, then the model, as the script draws them."""
    from beyond_the_blog.models import MODELS
    x, y = seeded_data(seed)
    return x, y, MODELS[model_name].build()


def fit(model, x, y, criterion=None, signals=None, **config):
    """beyond_the_blog.fit.fit as the command line runs it; `config` are FitConfig's fields
    (model_name, optimizer, lr, epochs, standardize, loop, batch_size, record_interval, ...)."""
    from beyond_the_blog.training.fit import FitConfig
    from beyond_the_blog.training.fit import fit as fit_with
    return fit_with(model, x, y, FitConfig(**config), signals=signals, criterion=criterion)


def recorded_fit(model_name, seed=0, **config):
    """A fit with the trajectory recorder hooked in, as the command line runs a single fit."""
    from beyond_the_blog.training.monitor import TrajectoryRecorder
    x, y, model = seeded_start(model_name, seed)
    recorder = TrajectoryRecorder(model)
    result = fit(model, x, y, model_name=model_name, on_record=recorder, **config)
    result.trajectory = recorder.trajectory(result)
    return result, x, y


# ----------------------------------------------------------------------------- numpy oracles
def polyfit(x, y):
    """numpy's least-squares quadratic through (x, y): (a, b, c)."""
    return np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)


def design(x):
    """F = [x², x, 1] in float64 numpy, from a tensor or an array of x."""
    x = np.asarray(x.double().numpy() if hasattr(x, "double") else x, dtype=np.float64).ravel()
    return np.stack([x**2, x, np.ones_like(x)], axis=1)


def bowl_eigenvalues(x):
    """Ascending eigenvalues of the params model's constant Hessian (2/n) FᵀF on x, by numpy."""
    features = design(x)
    return np.linalg.eigvalsh(2 / len(features) * features.T @ features)


def lstsq_loss(x, y):
    """The best possible MSE of any quadratic on (x, y): an independent torch.linalg.lstsq."""
    import torch
    x, y = x.double(), y.double()
    features = torch.cat([x**2, x, torch.ones_like(x)], dim=1)
    solution = torch.linalg.lstsq(features, y).solution
    return ((features @ solution - y) ** 2).mean().item()


# ----------------------------------------------------------------------------- the blog's own program
def blog_run(model_name, seed, epochs, lr=2e-5):
    """The blog's program (reference/blog_program.py, as the post has it) with torch.manual_seed(seed)
    put at its top.

    Returns the lines it prints (epoch lines and parameters) and its final parameters.
    """
    import torch

    from reference.blog_program import LinearSquareRegression, SquareRegression, blog_data, blog_training

    torch.manual_seed(seed)
    x, y = blog_data()
    model = SquareRegression() if model_name == "params" else LinearSquareRegression()
    lines, losses = blog_training(model, x, y, epochs, lr)
    return lines, losses, {k: v.detach().clone() for k, v in model.named_parameters()}, (x, y)


@pytest.fixture(scope="session")
def default_both(tmp_path_factory):
    """One run of `--model both` at the blog's settings (500000 + 20000 epochs), shared by the tests that need the
    full default fits. It runs with --gradients manual: every line it prints but the seconds is the default
    autograd run's (test_manual_gradients_print_what_autograd_prints), in 12 s instead of 40."""
    folder = tmp_path_factory.mktemp("both")
    result = run_script("--model", "both", "--gradients", "manual", "--metrics", "m.json", "--plot", "both.png",
                        cwd=folder, timeout=600)
    return folder, result
