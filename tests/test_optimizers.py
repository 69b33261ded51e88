"""--optimizer and --standardize: every optimizer's defaults reach least squares for seeds 0-9, on x
and on z, reported in x's units; L-BFGS's line search on the gradients by hand, and its rescaling of
the product's layers along their valley. Behaviour only; speed is the benchmark's job."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import fit, polyfit, run_script, seeded_data
from torch import nn

import quadratic_regression as qr
from beyond_the_blog.many_runs.replicas import Replicas, replication_data
from beyond_the_blog.models import BLOG_MODELS, MODELS, default_epochs, default_lr
from beyond_the_blog.steps import rescaling
from beyond_the_blog.training.fit import FitConfig, line_search_gradients

SEEDS = list(range(10))


def check_reaches_least_squares(x, ys, coefficients, final_losses):
    """Coefficients within 0.01 of least squares and loss within 0.1% of its loss, per run."""
    for r in range(len(ys)):
        best = polyfit(x, ys[r])
        floor = np.mean((np.polyval(best, x.double().numpy().ravel()) - ys[r].double().numpy().ravel()) ** 2)
        assert np.abs(coefficients[r] - best).max() <= 0.01, (r, coefficients[r], best)
        assert final_losses[r] <= floor * 1.001, (r, final_losses[r], floor)


VECTORIZABLE = [(opt, std) for opt in ("sgd", "momentum", "adam") for std in (False, True)
                if (opt, std) != ("sgd", False)]


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("optimizer,standardize", VECTORIZABLE,
                         ids=[f"{o}{'-std' if s else ''}" for o, s in VECTORIZABLE])
def test_optimizer_defaults_reach_least_squares_for_seeds_0_to_9(model_name, optimizer, standardize):
    x, ys, models = replication_data(model_name, SEEDS)
    result = fit(Replicas(models), x, ys, model_name=model_name, optimizer=optimizer,
                 standardize=standardize)
    assert result.log.epochs_run == default_epochs(optimizer, model_name, standardize)
    check_reaches_least_squares(x, ys, result.coefficients.numpy(), result.final_loss.numpy())


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("standardize", [False, True])
def test_lbfgs_defaults_reach_least_squares_for_seeds_0_to_9(model_name, standardize):
    coefficients, losses, ys = [], [], []
    for seed in SEEDS:
        torch.manual_seed(seed)
        x, y = qr.make_data()
        result = fit(MODELS[model_name].build(), x, y, model_name=model_name, optimizer="lbfgs",
                     standardize=standardize)
        coefficients.append(result.coefficients[0].numpy())
        losses.append(result.final_loss)
        ys.append(y)
    check_reaches_least_squares(x, ys, coefficients, losses)


def test_sgd_standardized_needs_at_most_1000_epochs():
    assert all(default_epochs("sgd", m, True) <= 1000 for m in BLOG_MODELS)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_standardize_reports_in_x_units(model_name):
    torch.manual_seed(1)
    x, y = qr.make_data()
    result = fit(MODELS[model_name].build(), x, y, model_name=model_name, standardize=True)
    assert result.lr == default_lr("sgd", model_name, True) > 1e-3  # an lr that suits z, not the blog's
    np.testing.assert_allclose(result.coefficients[0].numpy(), polyfit(x, y), atol=0.01)
    # the model returned predicts on x what the trained model predicted on z
    trained = MODELS[model_name].build()
    trained.load_state_dict({k: v.reshape(p.shape) for (k, v), p in zip(result.trained.items(), trained.parameters())})
    z = (x - x.mean()) / x.std()
    torch.testing.assert_close(result.model(x), trained(z), rtol=1e-4, atol=1e-3)


def test_standardize_on_the_command_line(tmp_path):
    result = run_script("--model", "linear", "--standardize", "--metrics", "m.json", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "on z = (x - mean)/std" in result.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["standardize"] is True and metrics["epochs"] == 1000
    assert set(metrics["standardization"]) == {"mean", "std"}
    ls = metrics["least_squares"]
    assert all(abs(metrics["coefficients"][k] - ls[k]) <= 0.01 for k in "abc")


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_lbfgs_line_search_on_gradients_by_hand_changes_no_bit(model_name):
    """By default L-BFGS's closure is the model's gradients by hand, for speed: the same run as autograd's."""
    fits = []
    for closure in (None, MODELS[model_name].manual_gradients):
        x, y = seeded_data(6)
        model = MODELS[model_name].build()
        by_hand = line_search_gradients(FitConfig(model_name=model_name, optimizer="lbfgs"), model, x, y,
                                        criterion_given=closure is None)
        assert (by_hand is None) == (closure is None)
        fits.append(fit(model, x, y, model_name=model_name, optimizer="lbfgs", epochs=6, record_interval=1,
                        criterion=nn.MSELoss() if closure is None else None))  # a criterion given: autograd
    assert fits[0].log.history == fits[1].log.history
    for name, value in fits[0].parameters.items():
        assert torch.equal(fits[1].parameters[name], value), name


def test_balance_layers_moves_along_the_valley_only():
    torch.manual_seed(3)
    model = MODELS["linear"].build()
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
        monkeypatch.setitem(MODELS, "linear", dataclasses.replace(MODELS["linear"], rebalance=rebalance))
        x, y = seeded_data(seed)
        result = fit(MODELS["linear"].build(), x, y, model_name="linear", optimizer="lbfgs", epochs=30)
        errors[rebalance is not None] = np.abs(result.coefficients[0].numpy() - best).max()
    assert errors[False] > 0.5 and errors[True] <= 0.01
