"""--gradients manual: beyond_the_blog/manual_gradients.py, the hand-written gradients, against
loss.backward() bit for bit (one step, then whole SGD runs), and against central differences in
float64, so that the tests do not only compare the code with itself; then the lesson's
train_by_hand with them, through fit() and the command line, against the autograd loop."""
import copy
import functools
import json

import pytest
import torch
from conftest import fit, run_main, seeded_data, seeded_start
from torch import nn

import quadratic_regression as qr
from beyond_the_blog.models import MODELS as REGISTRY
from beyond_the_blog.steps.manual_gradients import (
    LinearGradients,
    ParamsGradients,
    linear_gradients,
    params_gradients,
)

WRITTEN_OUT = {"params": params_gradients, "linear": linear_gradients}  # the readable functions
FAST = {"params": ParamsGradients, "linear": LinearGradients}  # the classes the package trains with

LR = 2e-5
LONG_EPOCHS = 20_000  # long enough for any drift in the last bit to compound
MODELS = {"params": qr.ParamQuadratic, "linear": qr.LinearProduct}  # the lesson's own classes


def manual_step(kind, model_name, model, x, y):
    """A call that sets every p.grad and returns the loss: the plain function or the class."""
    if kind == "class":
        return FAST[model_name](model, x, y)
    return functools.partial(WRITTEN_OUT[model_name], model, x, y)


def autograd_gradients(model, x, y):
    loss = nn.MSELoss()(model(x), y)
    for p in model.parameters():
        p.grad = None
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def train(model, epochs, step=None, x=None, y=None):
    """Plain SGD; step=None is the autograd loop. Returns the loss every 100 epochs."""
    params, criterion, logged = list(model.parameters()), nn.MSELoss(), []
    for epoch in range(epochs):
        if step is None:
            loss = criterion(model(x), y)
            for p in params:
                p.grad = None
            loss.backward()
        else:
            loss = step()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
        if (epoch + 1) % 100 == 0:
            logged.append(loss.item())
    return logged


@functools.cache
def autograd_run(model_name, seed, epochs):
    x, y, model = seeded_start(model_name, seed)
    logged = train(model, epochs, x=x, y=y)
    return logged, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["function", "class"])
@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_one_step_gradients_equal_autograd(kind, model_name, seed):
    x, y, model = seeded_start(model_name, seed)
    step = manual_step(kind, model_name, model, x, y)
    for _ in range(3):  # at the blog's start, then after two large steps (the class reuses its buffers)
        loss, grads = autograd_gradients(model, x, y)
        manual_loss = step()
        assert torch.equal(manual_loss, loss)
        assert not manual_loss.requires_grad
        for (name, p), grad in zip(model.named_parameters(), grads):
            assert torch.equal(p.grad, grad), name
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-1e-4)


@pytest.mark.parametrize(("kind", "model_name", "seed", "epochs"), [  # the class is what --gradients manual runs
    ("class", "params", 3, LONG_EPOCHS), ("class", "linear", 5, LONG_EPOCHS),  # seed 0: below, through the command line
    ("class", "params", 7, 5_000), ("class", "linear", 7, 5_000),
    ("function", "params", 1, 5_000), ("function", "linear", 1, 5_000),
])
def test_sgd_run_is_bit_identical_to_autograd(kind, model_name, seed, epochs):
    expected_losses, expected_params = autograd_run(model_name, seed, epochs)
    x, y, model = seeded_start(model_name, seed)
    losses = train(model, epochs, step=manual_step(kind, model_name, model, x, y))
    assert len(losses) == epochs // 100
    mismatches = [i for i, (a, b) in enumerate(zip(losses, expected_losses)) if a != b]
    assert not mismatches, f"first logged loss that differs: #{mismatches[:1]}"
    for (name, p), expected in zip(model.named_parameters(), expected_params):
        assert torch.equal(p.detach(), expected), name


def central_differences(model, x, y, h=1e-3):
    """dL/dθ for every scalar θ, by (L(θ + h) - L(θ - h)) / 2h. The loss is quadratic in each
    single parameter of both models, so this is exact up to float64 rounding."""
    criterion, grads = nn.MSELoss(), []
    with torch.no_grad():
        for p in model.parameters():
            grad = torch.empty_like(p)
            for i in range(p.numel()):
                flat = p.view(-1)
                old = flat[i].item()
                flat[i] = old + h
                plus = criterion(model(x), y).item()
                flat[i] = old - h
                minus = criterion(model(x), y).item()
                flat[i] = old
                grad.view(-1)[i] = (plus - minus) / (2 * h)
            grads.append(grad)
    return grads


@pytest.mark.parametrize("kind", ["function", "class"])
@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("seed", [0, 3])
def test_gradients_match_central_differences_in_float64(kind, model_name, seed):
    x, y, model = seeded_start(model_name, seed)
    model, x, y = copy.deepcopy(model).double(), x.double(), y.double()
    loss = manual_step(kind, model_name, model, x, y)()
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(nn.MSELoss()(model(x), y).item(), rel=1e-14)
    for (name, p), expected in zip(model.named_parameters(), central_differences(model, x, y)):
        assert p.grad.dtype == torch.float64
        assert p.grad.shape == p.shape, name
        torch.testing.assert_close(p.grad, expected, rtol=1e-8, atol=1e-8, msg=name)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_a_wrong_gradient_fails_the_central_differences(model_name):
    """The float64 check has teeth: a gradient off by one part in a million does not pass it."""
    x, y, model = seeded_start(model_name, 0)
    model, x, y = model.double(), x.double(), y.double()
    WRITTEN_OUT[model_name](model, x, y)
    expected = central_differences(model, x, y)
    first = next(model.parameters())
    with pytest.raises(AssertionError):
        torch.testing.assert_close(first.grad * (1 + 1e-6), expected[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_class_sets_the_gradients_again_after_zero_grad(model_name):
    x, y, model = seeded_start(model_name, 0)
    step = FAST[model_name](model, x, y)
    step()
    model.zero_grad(set_to_none=True)
    step()
    manual = [p.grad.clone() for p in model.parameters()]
    assert [torch.equal(a, b) for a, b in zip(manual, autograd_gradients(model, x, y)[1])] == [True] * len(manual)


def test_each_model_entry_builds_the_lessons_class_with_its_manual_gradients():
    for name in ("params", "linear"):
        x, y = seeded_data()
        model = REGISTRY[name].build()
        assert type(REGISTRY[name].manual_gradients(model, x, y)) is FAST[name]
        assert type(model) is MODELS[name]


# ----------------------------------------------------------------------------- the lesson's train_by_hand


@pytest.mark.parametrize(("model_name", "epochs"), [("params", 5000), ("linear", 5000)])
def test_manual_gradients_print_what_autograd_prints(tmp_path, capsys, model_name, epochs):
    """Every epoch line, the parameters and the whole printout of the command line, bit for bit."""
    runs = {}
    for gradients in ("autograd", "manual"):
        result = run_main(capsys, "--model", model_name, "--epochs", epochs, "--gradients", gradients, "--no-plot",
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
    for loop in ("blog", "manual"):  # the lesson's train, then its train_by_hand with the model's gradients
        x, y = seeded_data(2)
        model = REGISTRY[model_name].build()
        fits.append(fit(model, x, y, model_name=model_name, optimizer=optimizer, standardize=standardize,
                        epochs=epochs, record_interval=1, loop=loop))
    autograd, manual = fits
    assert manual.gradients == "manual" and manual.log.history == autograd.log.history
    for name, value in autograd.parameters.items():
        assert torch.equal(manual.parameters[name], value), name
