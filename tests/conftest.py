"""Shared helpers: run the real script in a subprocess, and the blog's own code as an oracle."""
import os
import subprocess
import sys
from pathlib import Path

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


def blog_run(model_name, seed, epochs, lr=2e-5):
    """The blog's program, copied from the post, with torch.manual_seed(seed) put at its top.

    Returns the lines it prints (epoch lines and parameters) and its final parameters.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class SquareRegression(nn.Module):  # the blog's first model, verbatim
        def __init__(self):
            nn.Module.__init__(self)
            self.a = nn.Parameter(torch.randn(1, 1), requires_grad=True)
            self.b = nn.Parameter(torch.randn(1, 1), requires_grad=True)
            self.c = nn.Parameter(torch.randn(1, 1), requires_grad=True)

        def forward(self, x_):
            p_ = (x_ ** 2).mm(self.a)
            q_ = x_.mm(self.b)
            t_ = self.c
            return p_ + q_ + t_.expand_as(p_)

    class LinearSquareRegression(nn.Module):  # the blog's second model, verbatim
        def __init__(self):
            nn.Module.__init__(self)
            self.linear1 = nn.Linear(1, 1)
            self.linear2 = nn.Linear(1, 1)

        def forward(self, x_):
            return self.linear2(x_) * self.linear1(x_)

    n = 100
    x = torch.linspace(-2, 12, n).resize_((n, 1))
    y = (x - 4) * (x - 8) + torch.randn(x.size())
    model = SquareRegression() if model_name == "params" else LinearSquareRegression()
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    lines, losses = [], []
    for epoch in range(epochs):
        out = model(x)
        loss = criterion(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (epoch + 1) % 100 == 0:
            losses.append(loss.item())
            lines.append('Epoch[{}/{}], loss:{:.6f}'.format(epoch + 1, epochs, loss.item()))
    for name, param in model.named_parameters():
        lines.append(f"{name} {param.data}")
    return lines, losses, {k: v.detach().clone() for k, v in model.named_parameters()}, (x, y)


@pytest.fixture(scope="session")
def default_both(tmp_path_factory):
    """One run of `--model both` at the blog's settings (500000 + 20000 epochs), shared by the
    tests that need the full default fits; it is the slowest thing in the suite (about a minute)."""
    folder = tmp_path_factory.mktemp("both")
    result = run_script("--model", "both", "--metrics", "m.json", "--plot", "both.png", cwd=folder, timeout=600)
    return folder, result
