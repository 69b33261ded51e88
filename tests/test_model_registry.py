"""A model is one class plus one registration: a third parametrization of the quadratic, defined
here, runs through training, printing, least squares, the figure, metrics and --runs."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import quadratic_regression as qr
from beyond_the_blog.model_registry import MODELS, OPTIMIZERS, ModelSettings, register


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
        return torch.stack([a, -2 * a * h, a * h**2 + k], dim=-1).reshape(-1, 3)

    @staticmethod
    def to_x_units(p, mean, std):
        """a (z - h)² + k with z = (x - mean)/std is (a/std²)(x - mean - std·h)² + k."""
        return {"a": p["a"] / std**2, "h": mean + std * p["h"], "k": p["k"]}


@pytest.fixture
def vertex():
    defaults = {(optimizer, standardize): (0.05, 3000) for optimizer in OPTIMIZERS for standardize in (False, True)}
    register("vertex", VertexForm, ModelSettings("tab:green", defaults))
    yield "vertex"
    del MODELS["vertex"]


def polyfit(seed, noise=1.0):
    torch.manual_seed(seed)
    x, y = qr.make_data(noise=noise)
    return np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)


def test_a_registered_model_runs_through_everything(vertex, tmp_path, capsys):
    args = ["--model", "vertex", "--optimizer", "adam", "--standardize", "--seed", "4", "--no-show",
            "--plot", str(tmp_path / "v.png"), "--metrics", str(tmp_path / "v.json")]
    assert qr.main(args) == 0
    out = capsys.readouterr().out
    assert "Epoch[3000/3000]" in out and "a tensor(" in out and "h tensor(" in out and "k tensor(" in out
    assert "fitted: y = " in out and "The best possible fit: least squares" in out
    metrics = json.loads((tmp_path / "v.json").read_text())
    assert metrics["model"] == "vertex" and set(metrics["parameters"]) == {"a", "h", "k"}
    np.testing.assert_allclose([metrics["coefficients"][k] for k in "abc"], polyfit(4), atol=0.01)
    np.testing.assert_allclose([metrics["least_squares"][k] for k in "abc"], polyfit(4), rtol=1e-6)
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "v.png").shape[1] >= 1000


def test_a_registered_model_replicates(vertex, tmp_path, capsys):
    args = ["--model", "vertex", "--optimizer", "adam", "--standardize", "--runs", "3", "--no-show",
            "--plot", str(tmp_path / "r.png"), "--metrics", str(tmp_path / "r.json")]
    assert qr.main(args) == 0
    assert "3 of 3 succeeded" in capsys.readouterr().out
    replications = json.loads((tmp_path / "r.json").read_text())["replications"]
    for seed, coefficients in zip(range(3), replications["coefficients"]):
        np.testing.assert_allclose(coefficients, polyfit(seed), atol=0.01)
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_a_model_without_settings_is_refused():
    with pytest.raises(ValueError, match="needs its ModelSettings"):
        register("cubic", VertexForm)
