"""The models --model knows. The lesson's two state their formula; and a model is one class plus one
entry in models.MODELS: a third parametrization of the quadratic, defined here, runs through training,
printing, least squares, the figure, metrics and --runs, and what it lacks (gradients by hand) is refused."""
import json

import numpy as np
import pytest
import torch
from conftest import polyfit, seeded_data
from torch import nn

import quadratic_regression as qr
from beyond_the_blog import cli
from beyond_the_blog.models import MODELS, OPTIMIZER_NAMES, Model, coefficients_of
from beyond_the_blog.training.fit import named_tensors


def test_models_state_their_formula():
    torch.manual_seed(0)
    x = torch.linspace(-2, 12, 100).reshape(100, 1)
    params = qr.ParamQuadratic()
    a, b, c = params.a.item(), params.b.item(), params.c.item()
    torch.testing.assert_close(params(x), a * x**2 + b * x + c)
    linear = qr.LinearProduct()
    w1, b1 = linear.linear1.weight.item(), linear.linear1.bias.item()
    w2, b2 = linear.linear2.weight.item(), linear.linear2.bias.item()
    torch.testing.assert_close(linear(x), (w1 * x + b1) * (w2 * x + b2))
    expanded = coefficients_of("linear", named_tensors(linear))[0]
    torch.testing.assert_close(expanded, torch.tensor([w1 * w2, w1 * b2 + w2 * b1, b1 * b2]), rtol=1e-6, atol=1e-6)
    assert "a·x² + b·x + c" in qr.ParamQuadratic.__doc__
    assert "(w1·x + b1)(w2·x + b2)" in qr.LinearProduct.__doc__


class VertexForm(nn.Module):
    """y = a·(x - h)² + k: the vertex form, three scalar parameters."""

    def __init__(self):
        super().__init__()
        self.a, self.h, self.k = (nn.Parameter(torch.randn(())) for _ in range(3))

    def forward(self, x):
        return self.a * (x - self.h) ** 2 + self.k

    @staticmethod
    def coefficients(p):
        a, h, k = p["a"], p["h"], p["k"]
        return a, -2 * a * h, a * h**2 + k

    @staticmethod
    def to_x_units(p, mean, std):
        """a (z - h)² + k with z = (x - mean)/std is (a/std²)(x - mean - std·h)² + k."""
        return {"a": p["a"] / std**2, "h": mean + std * p["h"], "k": p["k"]}


@pytest.fixture
def vertex():
    defaults = {(optimizer, standardize): (0.05, 3000) for optimizer in OPTIMIZER_NAMES
                for standardize in (False, True)}
    MODELS["vertex"] = Model(VertexForm, VertexForm.coefficients, VertexForm.to_x_units, "tab:green", defaults,
                             stop_when_converged=False)  # its defaults are epoch counts to run in full
    yield "vertex"
    del MODELS["vertex"]


def test_a_model_in_the_table_runs_through_everything(vertex, tmp_path, capsys):
    args = ["--model", "vertex", "--optimizer", "adam", "--standardize", "--seed", "4", "--no-show",
            "--plot", str(tmp_path / "v.png"), "--metrics", str(tmp_path / "v.json")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Epoch[3000/3000]" in out and "a tensor(" in out and "h tensor(" in out and "k tensor(" in out
    assert "fitted: y = " in out and "The best possible fit: least squares" in out
    metrics = json.loads((tmp_path / "v.json").read_text())
    assert metrics["model"] == "vertex" and set(metrics["parameters"]) == {"a", "h", "k"}
    np.testing.assert_allclose([metrics["coefficients"][k] for k in "abc"], polyfit(*seeded_data(4)), atol=0.01)
    np.testing.assert_allclose([metrics["least_squares"][k] for k in "abc"], polyfit(*seeded_data(4)), rtol=1e-6)
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "v.png").shape[1] >= 1000


def test_a_model_in_the_table_replicates(vertex, tmp_path, capsys):
    args = ["--model", "vertex", "--optimizer", "adam", "--standardize", "--runs", "3", "--no-show",
            "--plot", str(tmp_path / "r.png"), "--metrics", str(tmp_path / "r.json")]
    assert cli.main(args) == 0
    assert "3 of 3 succeeded" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "r.json").read_text())
    assert metrics["gradients"] == "autograd"  # no batched_gradients in its entry: autograd through the runs
    replications = metrics["replications"]
    for seed, coefficients in zip(range(3), replications["coefficients"]):
        np.testing.assert_allclose(coefficients, polyfit(*seeded_data(seed)), atol=0.01)
    assert (tmp_path / "r.png").stat().st_size > 10_000


@pytest.mark.parametrize("runs,lacks", [("1", "by hand (give its Model a manual_gradients"),
                                        ("3", "by hand over the runs (give its Model a batched_gradients")])
def test_a_model_without_manual_gradients_is_refused_in_one_line(vertex, capsys, runs, lacks):
    assert cli.main(["--model", "vertex", "--gradients", "manual", "--runs", runs, "--no-plot"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("quadratic_regression.py: error: ")
    assert f"model vertex has no gradients written {lacks}" in captured.err
