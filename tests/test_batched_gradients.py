"""The batched gradients by hand (batched_gradients.py) against a loop over the points written here in numpy
float64: every run's gradient and loss, at ordinary and at huge parameters; the loss is inf exactly where a single
run's float32 sum of the squares overflows; the data's sums are taken a block of runs at a time, to the same
numbers."""
import copy

import numpy as np
import pytest
import torch
from conftest import seeded_start

from beyond_the_blog.many_runs.replicas import Replicas, replication_data
from beyond_the_blog.steps import batched_gradients
from beyond_the_blog.steps.batched_gradients import BatchedLinearGradients, BatchedParamsGradients

BATCHED = {"params": BatchedParamsGradients, "linear": BatchedLinearGradients}
FLOAT32_MAX = float(np.finfo(np.float32).max)


def per_point(model_name, values, x, y):
    """One run's loss and gradients in float64, point by point: the chain rule of the MSE, written out here."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n = len(x)
    if model_name == "params":
        a, b, c = values["a"], values["b"], values["c"]
        out = a * x**2 + b * x + c
        g = 2 / n * (out - y)
        grads = {"a": np.sum(g * x**2), "b": np.sum(g * x), "c": np.sum(g)}
    else:
        w1, b1 = values["linear1.weight"], values["linear1.bias"]
        w2, b2 = values["linear2.weight"], values["linear2.bias"]
        h1, h2 = w1 * x + b1, w2 * x + b2
        out = h1 * h2
        g = 2 / n * (out - y)
        grads = {"linear1.weight": np.sum(g * h2 * x), "linear1.bias": np.sum(g * h2),
                 "linear2.weight": np.sum(g * h1 * x), "linear2.bias": np.sum(g * h1)}
    return np.mean((out - y) ** 2), grads


def batched_step(model_name, seeds, scale=1.0):
    """The runs of `seeds` as --runs draws them, their parameters times `scale`: the batched losses and grads."""
    x, ys, starts = replication_data(model_name, seeds)
    replicas = Replicas(starts)
    with torch.no_grad():
        for p in replicas.parameters():
            p.mul_(scale)
    gradients = BATCHED[model_name](replicas, x, ys)
    gradients()
    return x, ys, replicas, gradients.run_losses()


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e-3])
def test_each_runs_gradient_and_loss_are_the_float64_sums_over_its_points(model_name, scale):
    """Rounded to float32 once: within a few float32 roundings of the float64 loop, for every run."""
    seeds = range(7)
    x, ys, replicas, losses = batched_step(model_name, seeds, scale)
    named = dict(replicas.named_parameters())
    for r in range(len(seeds)):
        values = {name: float(p.detach()[r].reshape(-1)[0]) for name, p in named.items()}
        loss, grads = per_point(model_name, values, x.numpy().ravel(), ys[r].numpy().ravel())
        assert losses[r].item() == pytest.approx(loss, rel=1e-6)
        for name, expected in grads.items():
            got = named[name].grad[r].item()
            # near the fit a gradient is a difference of sums near 1e4: float64 keeps it to about 1e-12 of those
            assert got == pytest.approx(expected, rel=1e-6, abs=1e-9 * scale**2 * 1e4), name


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_the_loss_is_inf_where_a_float32_sum_of_the_squares_overflows(model_name):
    """A single run computes its loss as the float32 sum of n squares, then a division: inf once that sum passes
    float32's largest number, though the mean itself would fit. The batched loss follows that sum."""
    x, y, model = seeded_start(model_name)
    n = x.shape[0]
    values = {name: float(p.detach().reshape(-1)[0]) for name, p in model.named_parameters()}
    degree = 1 if model_name == "params" else 2  # the loss grows as scale^(2 degree)
    # at such sizes y no longer counts: the sum of the squares is that of the outputs, scale^(2 degree) times
    sum_of_squares = n * per_point(model_name, values, x.numpy().ravel(), 0 * y.numpy().ravel())[0]
    # parameters scaled so that the sum of the squares is 0.5 and 2 times float32's largest number
    for factor, finite in ((0.5, True), (2.0, False)):
        scale = (factor * FLOAT32_MAX / sum_of_squares) ** (1 / (2 * degree))
        replicas = Replicas([copy.deepcopy(model)])
        with torch.no_grad():
            for p in replicas.parameters():
                p.mul_(scale)
        gradients = BATCHED[model_name](replicas, x, y.expand(1, *y.shape).contiguous())
        gradients()
        loss = gradients.run_losses()[0].item()
        assert np.isfinite(loss) == finite, (factor, loss)
        assert sum_of_squares * factor / n < FLOAT32_MAX  # the mean fits in float32 either way


def test_the_data_sums_do_not_depend_on_the_block_of_runs():
    """G, -v and the mean of y² taken 3 runs at a time equal those taken all at once, and numpy's."""
    x, ys, _ = replication_data("params", range(10))
    at_once = batched_gradients.data_sums(x, ys, torch.float64)
    in_blocks = batched_gradients.data_sums(x, ys, torch.float64, points_at_once=300)
    for a, b in zip(at_once, in_blocks):
        assert torch.equal(a, b)
    x64 = x.numpy().ravel().astype(np.float64)  # x² of float32 x, squared in float64: exact
    q = np.stack([x64**2, x64, np.ones(100)], axis=1)
    y = ys.numpy().reshape(10, 100).astype(np.float64)
    np.testing.assert_allclose(at_once[0].numpy(), 2 / 100 * q.T @ q, rtol=1e-13)
    np.testing.assert_allclose(at_once[1].numpy(), -2 / 100 * q.T @ y.T, rtol=1e-12)
    np.testing.assert_allclose(at_once[2].numpy(), np.mean(y**2, axis=1), rtol=1e-13)


def test_float32_sums_would_lose_the_gradient_near_the_fit():
    """Why the sums are float64: 0.075 from the least-squares fit along the bowl's flattest direction, G q - v in
    float32 gets dL/da wrong by more than 10%; in float64, by less than 1e-7 of it (against the loop over the
    points in numpy float64)."""
    x, ys, _ = replication_data("params", [0])
    x64, y64 = x.numpy().ravel().astype(np.float64), ys[0].numpy().ravel().astype(np.float64)
    q_matrix = np.stack([x64**2, x64, np.ones_like(x64)], axis=1)
    fit = np.linalg.lstsq(q_matrix, y64, rcond=None)[0]
    flattest = np.linalg.eigh(q_matrix.T @ q_matrix)[1][:, 0]
    q = fit + 0.075 * flattest / np.abs(flattest).max()
    expected = per_point("params", dict(zip("abc", q)), x64, y64)[1]["a"]
    for dtype, within in ((torch.float32, None), (torch.float64, 1e-7)):
        gram, neg_v, _ = batched_gradients.data_sums(x, ys, dtype)
        got = (gram @ torch.tensor(q, dtype=dtype).reshape(3, 1) + neg_v)[0, 0].item()
        error = abs(got - expected) / abs(expected)
        assert error > 0.1 if within is None else error < within, (dtype, error)
