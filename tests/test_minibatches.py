"""--batch-size B, the lesson's train_in_minibatches: a batch of all points is the blog's full batch
bit for bit, batches of B match a loop written here, replicated runs train each as alone, and the
figure draws the full-batch curve of the same settings beside the minibatch one."""
import numpy as np
import pytest
import torch
from conftest import fit, metrics_of, prose, seeded_data
from torch import nn

import quadratic_regression as qr
from beyond_the_blog.many_runs.replicas import Replicas, replication_data
from beyond_the_blog.models import MODELS
from beyond_the_blog.report import figures
from beyond_the_blog.theory.least_squares import least_squares


def minibatch_fit(model_name, seed, batch_size, epochs, **options):
    x, y = seeded_data(seed)
    model = MODELS[model_name].build()
    return fit(model, x, y, model_name=model_name, epochs=epochs, loop="minibatches",
               batch_size=batch_size, shuffle_seeds=[seed], record_interval=1, **options), x, y


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_a_batch_of_all_points_is_the_full_batch_run_bit_for_bit(model_name):
    minibatch, x, y = minibatch_fit(model_name, 4, 100, 2_000)
    torch.manual_seed(4)
    qr.make_data()
    full = fit(MODELS[model_name].build(), x, y, model_name=model_name, epochs=2_000, record_interval=1)
    assert minibatch.log.history == full.log.history and len(full.log.history) == 2_000
    for name, value in full.parameters.items():
        assert torch.equal(minibatch.parameters[name], value), name


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_minibatches_match_a_loop_written_here(model_name):
    """The blog's torch.optim.SGD over batches of 16 (the last one 4 points), reshuffled every epoch by
    a generator of its own seeded with the seed; the log is the full-data loss before each epoch."""
    seed, batch, epochs = 3, 16, 300
    result, x, y = minibatch_fit(model_name, seed, batch, epochs)
    torch.manual_seed(seed)
    x, y = qr.make_data()  # the global generator: the data, then the initial parameters, as without batches
    model = qr.ParamQuadratic() if model_name == "params" else qr.LinearProduct()
    optimizer, criterion = torch.optim.SGD(model.parameters(), lr=2e-5), nn.MSELoss()
    shuffle, losses = torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        losses.append(criterion(model(x), y).item())
        order = torch.randperm(100, generator=shuffle)
        for start in range(0, 100, batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            criterion(model(x[index]), y[index]).backward()
            optimizer.step()
    assert [v for _, v in result.log.history] == losses
    assert result.log.history[-1][1] != result.log.history[-2][1]  # it trained
    for name, value in model.named_parameters():
        assert torch.equal(result.parameters[name], value.detach()), name


def test_minibatch_replications_train_each_run_as_alone():
    seeds = [5, 6, 7]
    x, ys, models = replication_data("params", seeds)
    together = fit(Replicas(models), x, ys, model_name="params", standardize=True, epochs=200,
                   loop="minibatches", batch_size=10, shuffle_seeds=seeds)
    for r, seed in enumerate(seeds):
        alone, _, _ = minibatch_fit("params", seed, 10, 200, standardize=True)
        assert together.final_loss[r].item() == pytest.approx(alone.final_loss, rel=1e-5)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(together.parameters[name][r], value, rtol=1e-5, atol=1e-5)


def test_batch_size_on_the_command_line_with_runs(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--runs", "3", "--seed", "5", "--standardize",
                                      "--batch-size", "10", "--epochs", "200", "-q")
    assert status == 0 and metrics["batch_size"] == 10 and "3 runs (seeds 5-7), 200 epochs" in out
    assert metrics["gradients"] == "autograd"  # each batch's gradients through autograd, not the batched ones
    alone, _, _ = minibatch_fit("params", 6, 10, 200, standardize=True)
    np.testing.assert_allclose(metrics["replications"]["coefficients"][1], alone.coefficients[0], atol=1e-4)


def test_the_figure_draws_the_full_batch_curve_beside_the_minibatch_one(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--batch-size", "10", "--epochs", "500", "-q",
                                      "--plot", tmp_path / "cli.png", "--no-show")
    full_status, _, full = metrics_of(tmp_path, capsys, "--epochs", "500", "-q")
    assert status == full_status == 0 and metrics["batch_size"] == 10 and full["batch_size"] is None
    assert metrics["final_loss"] < full["final_loss"]  # ten steps an epoch: further along after 500 epochs
    assert f"the same settings on the full batch (drawn dashed in the figure): {full['final_loss']:.6f}" in prose(out)
    minibatch, x, y = minibatch_fit("params", 0, 10, 500)
    torch.manual_seed(0)
    qr.make_data()
    full_fit = fit(MODELS["params"].build(), x, y, model_name="params", epochs=500)
    figure = figures.plot_fits([minibatch], x, y, least_squares(x, y), tmp_path / "f.png", False, [full_fit])
    lines = {line.get_label(): line for line in figure.axes[1].get_lines()}
    assert (tmp_path / "cli.png").stat().st_size > 10_000
    assert lines["params, full batch"].get_linestyle() == "--"
    assert list(lines["params, full batch"].get_ydata()) == [v for _, v in full_fit.log.history]
    assert list(lines["params, batches of 10"].get_ydata()) == [v for _, v in minibatch.log.history]
