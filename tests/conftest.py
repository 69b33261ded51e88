"""Shared helpers: run the real script in a subprocess, and the blog's own code as an oracle."""
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.font_manager  # noqa: F401  builds matplotlib's font cache now, not inside a run whose stderr a test checks
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "quadratic_regression.py"
sys.path.insert(0, str(ROOT))


def clean_env(**extra):
    """The environment of a user with no display: no DISPLAY, no forced matplotlib backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_script(*args, cwd, timeout=300, env=None):
    """python quadratic_regression.py ARGS, as a user would type it; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def fit(model, x, y, **options):
    """beyond_the_blog.fitting.fit with the lesson's own training loop, as the command line runs it."""
    import quadratic_regression as qr
    from beyond_the_blog import fitting
    return fitting.fit(model, x, y, train=qr.train, **options)


def replication_data(model_name, seeds, **options):
    """Data and initial models for each seed, drawn with the lesson's make_data."""
    import quadratic_regression as qr
    from beyond_the_blog import replications
    return replications.replication_data(model_name, seeds, qr.make_data, **options)


def blog_run(model_name, seed, epochs, lr=2e-5):
    """The blog's program (blog_program.py, as the post has it) with torch.manual_seed(seed) put
    at its top.

    Returns the lines it prints (epoch lines and parameters) and its final parameters.
    """
    import torch
    from blog_program import LinearSquareRegression, SquareRegression, blog_data, blog_training

    torch.manual_seed(seed)
    x, y = blog_data()
    model = SquareRegression() if model_name == "params" else LinearSquareRegression()
    lines, losses = blog_training(model, x, y, epochs, lr)
    return lines, losses, {k: v.detach().clone() for k, v in model.named_parameters()}, (x, y)


@pytest.fixture(scope="session")
def default_both(tmp_path_factory):
    """One run of `--model both` at the blog's settings (500000 + 20000 epochs), shared by the
    tests that need the full default fits; it is the slowest thing in the suite (about a minute)."""
    folder = tmp_path_factory.mktemp("both")
    result = run_script("--model", "both", "--metrics", "m.json", "--plot", "both.png", cwd=folder, timeout=600)
    return folder, result
