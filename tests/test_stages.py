"""Issue: the lesson's next stages. Gradients written out (--gradients manual), minibatches
(--batch-size), and stopping once converged. Behaviour only; the speed is the benchmark's job."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import replication_data, run_script
from torch import nn

import quadratic_regression as qr
from beyond_the_blog import command_line, fitting, model_registry, plots, replications, rescaling, stopping
from beyond_the_blog.analysis import least_squares
from beyond_the_blog.model_registry import MODELS, OPTIMIZERS, ModelSettings, register


def fit(model, x, y, train=qr.train, **options):
    """beyond_the_blog's fit around one of the lesson's loops (the blog's, by default)."""
    return fitting.fit(model, x, y, train=train, **options)


def seeded_data(seed):
    torch.manual_seed(seed)
    return qr.make_data()


def polyfit(x, y):
    return np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)


def metrics_of(tmp_path, capsys, *args):
    """The command line, in this process (no start-up cost): its exit status, stdout and metrics."""
    path = tmp_path / "m.json"
    args = [*map(str, args)]
    status = qr.main([*args, *([] if "--plot" in args else ["--no-plot"]), "--metrics", str(path)])
    return status, capsys.readouterr().out, json.loads(path.read_text())


# ----------------------------------------------------------------------------- 1. gradients by hand
@pytest.mark.parametrize(("model_name", "epochs"), [("params", 50_000), ("linear", 20_000)])
def test_manual_gradients_print_what_autograd_prints(tmp_path, model_name, epochs):
    """Every epoch line, the parameters and the whole printout of the real script, bit for bit."""
    runs = {}
    for gradients in ("autograd", "manual"):
        result = run_script("--model", model_name, "--epochs", epochs, "--gradients", gradients, "--no-plot",
                            "--metrics", f"{gradients}.json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs[gradients] = result.stdout, json.loads((tmp_path / f"{gradients}.json").read_text())
    (autograd_out, autograd), (manual_out, manual) = runs["autograd"], runs["manual"]
    assert manual_out.count("Epoch[") == epochs // 100
    assert manual_out.replace("manual.json", "autograd.json") == autograd_out
    assert manual["parameters"] == autograd["parameters"] and manual["loss_history"] == autograd["loss_history"]
    assert (manual["gradients"], autograd["gradients"]) == ("manual", "autograd")


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("optimizer,standardize,epochs", [("momentum", False, 500), ("adam", True, 500),
                                                          ("sgd", True, 500), ("lbfgs", False, 8)])
def test_manual_gradients_drive_every_optimizer_bit_for_bit(model_name, optimizer, standardize, epochs):
    """momentum and Adam read p.grad; L-BFGS's line search calls gradients() itself: no autograd at all."""
    fits = []
    for manual in (None, model_registry.settings_of(model_name).manual_gradients):
        x, y = seeded_data(2)
        model = model_registry.make_model(model_name)
        fits.append(fit(model, x, y, model_name=model_name, optimizer=optimizer, standardize=standardize,
                        epochs=epochs, record_interval=1, **({"train": qr.train_by_hand, "manual_gradients": manual}
                                                             if manual else {})))
    autograd, manual = fits
    assert manual.gradients == "manual" and manual.log.history == autograd.log.history
    for name, value in autograd.parameters.items():
        assert torch.equal(manual.parameters[name], value), name


@pytest.mark.parametrize(("args", "reason"), [
    (["--gradients", "manual", "--runs", "3"], "drop --runs"),
    (["--gradients", "manual", "--batch-size", "10"], "drop --batch-size"),
    (["--batch-size", "10", "--optimizer", "lbfgs"], "lbfgs"),
    (["--batch-size", "0"], "--batch-size must be between 1 and --samples 100"),
    (["--batch-size", "21", "--samples", "20"], "--batch-size must be between 1 and --samples 20"),
])
def test_combinations_that_cannot_work_are_refused_in_one_line(tmp_path, args, reason):
    result = run_script(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("quadratic_regression.py: error: ") and reason in result.stderr
    assert result.stderr.endswith("(see --help)\n") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


class Cubic(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(1, 1))

    def forward(self, x):
        return self.a * x**2


def test_a_model_without_manual_gradients_is_refused(capsys):
    defaults = {(optimizer, standardize): (0.05, 30) for optimizer in OPTIMIZERS for standardize in (False, True)}
    register("cubic", Cubic, ModelSettings("tab:green", defaults))
    try:
        assert qr.main(["--model", "cubic", "--gradients", "manual", "--no-plot"]) == 2
        assert "model cubic has no gradients written by hand" in capsys.readouterr().err
    finally:
        del MODELS["cubic"]


# ----------------------------------------------------------------------------- 2. minibatches
def minibatch_fit(model_name, seed, batch_size, epochs, **options):
    x, y = seeded_data(seed)
    model = model_registry.make_model(model_name)
    return fit(model, x, y, model_name=model_name, epochs=epochs, train=qr.train_in_minibatches,
               batch_size=batch_size, shuffle_seeds=[seed], record_interval=1, **options), x, y


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_a_batch_of_all_points_is_the_full_batch_run_bit_for_bit(model_name):
    minibatch, x, y = minibatch_fit(model_name, 4, 100, 2_000)
    torch.manual_seed(4)
    qr.make_data()
    full = fit(model_registry.make_model(model_name), x, y, model_name=model_name, epochs=2_000, record_interval=1)
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
    together = fit(replications.Replicas(models), x, ys, model_name="params", standardize=True, epochs=200,
                   train=qr.train_in_minibatches, batch_size=10, shuffle_seeds=seeds)
    for r, seed in enumerate(seeds):
        alone, _, _ = minibatch_fit("params", seed, 10, 200, standardize=True)
        assert together.final_loss[r].item() == pytest.approx(alone.final_loss, rel=1e-5)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(together.parameters[name][r], value, rtol=1e-5, atol=1e-5)


def test_batch_size_on_the_command_line_with_runs(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--runs", "3", "--seed", "5", "--standardize",
                                      "--batch-size", "10", "--epochs", "200", "-q")
    assert status == 0 and metrics["batch_size"] == 10 and "3 runs (seeds 5-7), 200 epochs" in out
    alone, _, _ = minibatch_fit("params", 6, 10, 200, standardize=True)
    np.testing.assert_allclose(metrics["replications"]["coefficients"][1], alone.coefficients[0], atol=1e-4)


def test_the_figure_draws_the_full_batch_curve_beside_the_minibatch_one(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--batch-size", "10", "--epochs", "500", "-q",
                                      "--plot", tmp_path / "cli.png", "--no-show")
    full_status, _, full = metrics_of(tmp_path, capsys, "--epochs", "500", "-q")
    assert status == full_status == 0 and metrics["batch_size"] == 10 and full["batch_size"] is None
    assert metrics["final_loss"] < full["final_loss"]  # ten steps an epoch: further along after 500 epochs
    assert f"the same settings on the full batch (drawn dashed in the figure): {full['final_loss']:.6f}" in out
    minibatch, x, y = minibatch_fit("params", 0, 10, 500)
    torch.manual_seed(0)
    qr.make_data()
    full_fit = fit(model_registry.make_model("params"), x, y, model_name="params", epochs=500)
    figure = plots.plot_fits([minibatch], x, y, least_squares(x, y), tmp_path / "f.png", False, [full_fit])
    lines = {line.get_label(): line for line in figure.axes[1].get_lines()}
    assert (tmp_path / "cli.png").stat().st_size > 10_000
    assert lines["params, full batch"].get_linestyle() == "--"
    assert list(lines["params, full batch"].get_ydata()) == [v for _, v in full_fit.log.history]
    assert list(lines["params, batches of 10"].get_ydata()) == [v for _, v in minibatch.log.history]


# ----------------------------------------------------------------------------- 3. stop when done
@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_lbfgs_line_search_on_gradients_by_hand_changes_no_bit(model_name):
    """By default L-BFGS's closure is the model's gradients by hand, for speed: the same run as autograd's."""
    fits = []
    for closure in (None, model_registry.settings_of(model_name).manual_gradients):
        x, y = seeded_data(6)
        model = model_registry.make_model(model_name)
        by_hand = fitting.line_search_gradients("lbfgs", model_name, model, x, y, criterion_given=closure is None)
        assert (by_hand is None) == (closure is None)
        fits.append(fit(model, x, y, model_name=model_name, optimizer="lbfgs", epochs=6, record_interval=1,
                        criterion=nn.MSELoss() if closure is None else None))  # a criterion given: autograd
    assert fits[0].log.history == fits[1].log.history
    for name, value in fits[0].parameters.items():
        assert torch.equal(fits[1].parameters[name], value), name


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("standardize", [False, True])
def test_lbfgs_stops_once_converged_at_least_squares_for_seeds_0_to_9(tmp_path, capsys, model_name, standardize):
    default = model_registry.default_epochs("lbfgs", model_name, standardize)
    for seed in range(10):
        status, out, metrics = metrics_of(tmp_path, capsys, "--model", model_name, "--optimizer", "lbfgs",
                                          "--seed", seed, *(["--standardize"] if standardize else []))
        assert status == 0 and metrics["stop_reason"] == "converged", seed
        assert metrics["epochs_run"] < default and f"stopped at epoch {metrics['epochs_run']} of {default}" in out
        best = polyfit(*seeded_data(seed))
        assert np.abs([metrics["coefficients"][k] - best[i] for i, k in enumerate("abc")]).max() <= 0.01, seed


def test_balance_layers_moves_along_the_valley_only():
    torch.manual_seed(3)
    model = model_registry.make_model("linear")
    with torch.no_grad():
        model.linear1.weight.mul_(40.0)
        model.linear1.bias.mul_(40.0)
    x, _ = seeded_data(3)
    before, curve = dict_of(model), model(x).detach()
    assert rescaling.balance_layers(model)
    sizes = [torch.cat([layer.weight.reshape(-1), layer.bias]).norm().item()
             for layer in (model.linear1, model.linear2)]
    assert sizes[0] == pytest.approx(sizes[1], rel=1e-6)
    torch.testing.assert_close(model(x).detach(), curve, rtol=1e-5, atol=1e-4)  # the same curve
    s = model.linear1.weight.item() / before["linear1.weight"].item()
    assert model.linear2.bias.item() == pytest.approx(before["linear2.bias"].item() / s, rel=1e-6)
    settled = dict_of(model)
    assert not rescaling.balance_layers(model)  # balanced within 1%: left alone, bit for bit
    assert all(torch.equal(settled[k], v) for k, v in dict_of(model).items())
    with torch.no_grad():
        model.linear2.weight.zero_()
        model.linear2.bias.zero_()
    assert not rescaling.balance_layers(model)  # a zero layer has no scale to share


def dict_of(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("seed", [11, 27])
def test_lbfgs_on_raw_x_stalls_without_rebalancing_and_fits_with_it(seed, monkeypatch):
    """Seeds on which L-BFGS, left alone, drifts to unequal layers and stalls far above least squares."""
    best = polyfit(*seeded_data(seed))
    errors = {}
    for rebalance in (None, rescaling.balance_layers):
        monkeypatch.setattr(model_registry.settings_of("linear"), "rebalance", rebalance)
        x, y = seeded_data(seed)
        result = fit(model_registry.make_model("linear"), x, y, model_name="linear", optimizer="lbfgs", epochs=30)
        errors[rebalance is not None] = np.abs(result.coefficients[0].numpy() - best).max()
    assert errors[False] > 0.5 and errors[True] <= 0.01


@pytest.mark.parametrize("optimizer,standardize", [("momentum", False), ("adam", False), ("momentum", True),
                                                   ("adam", True)])
def test_momentum_and_adam_stop_once_converged_at_least_squares(tmp_path, capsys, optimizer, standardize):
    status, _, metrics = metrics_of(tmp_path, capsys, "--model", "both", "--optimizer", optimizer, "--seed", 1,
                                    "-q", *(["--standardize"] if standardize else []))
    best = polyfit(*seeded_data(1))
    for name in ("params", "linear"):
        assert status == 0 and metrics[name]["stop_reason"] in ("converged", "epochs")
        assert np.abs([metrics[name]["coefficients"][k] - best[i] for i, k in enumerate("abc")]).max() <= 0.01
    assert "converged" in {metrics[name]["stop_reason"] for name in ("params", "linear")}


def test_explicit_epochs_and_the_blogs_sgd_run_every_epoch(tmp_path, capsys):
    status, _, metrics = metrics_of(tmp_path, capsys, "--optimizer", "lbfgs", "--epochs", "20", "-q")
    assert status == 0 and metrics["stop_reason"] == "epochs" and metrics["epochs_run"] == 20
    for args in ([], ["--standardize"], ["--model", "linear"]):  # plain sgd, the blog's: never stopped early
        assert not command_line.parse_args(args).stop_when_converged
    assert command_line.parse_args(["--optimizer", "adam", "--model", "both"]).stop_when_converged
    assert not command_line.parse_args(["--optimizer", "adam", "--epochs", "6000"]).stop_when_converged


def test_converged_with_replications_waits_for_every_run(tmp_path, capsys):
    status, _, metrics = metrics_of(tmp_path, capsys, "--runs", "4", "--optimizer", "momentum", "--standardize",
                                    "-q")
    assert status == 0 and metrics["stop_reason"] == "converged" and metrics["epochs_run"] < 500
    assert metrics["replications"]["succeeded"] == [True] * 4
    rule = stopping.Converged(1e-7, 10)
    assert not rule(10, torch.tensor([1.0, 2.0]))
    assert not rule(20, torch.tensor([1.0, float("nan")]))  # a diverged run is not a settled one
    assert not rule(25, torch.tensor([1.0, 2.0]))           # between checks
    assert not rule(30, torch.tensor([1.0, 2.0]))           # (against the NaN)
    assert rule(40, torch.tensor([1.0, 2.0]))


def test_the_help_states_the_rule_the_code_applies(tmp_path):
    result = run_script("--help", cwd=tmp_path)
    stated = re.search(r"changed by at most (\S+) \(relative\)", " ".join(result.stdout.split()))
    assert float(stated[1]) == stopping.CONVERGED_RTOL
    for reason in ("epochs", "converged", "tol", "diverged", "interrupted"):
        assert reason in command_line.STOPPING
    assert "--gradients {autograd,manual}" in result.stdout and "--batch-size B" in result.stdout
