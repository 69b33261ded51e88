"""The default run is the blog's run: same random numbers, same losses, same printed lines."""
import re

import pytest
import torch
from conftest import blog_run, fit, run_script

import quadratic_regression as qr
from beyond_the_blog import fitting, model_registry, training


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_fit_matches_blog_loop_loss_for_loss(model_name):
    epochs, seed = 3000, 7
    _, blog_losses, blog_params, (bx, by) = blog_run(model_name, seed, epochs)

    torch.manual_seed(seed)
    x, y = qr.make_data()
    assert torch.equal(x, bx) and torch.equal(y, by)  # noise drawn first, exactly as the blog
    model = model_registry.make_model(model_name)
    result = fit(model, x, y, model_name=model_name, epochs=epochs)

    ours = [v for e, v in result.log.history if e % 100 == 0]
    assert len(ours) == len(blog_losses) == epochs // 100
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(blog_losses), rtol=1e-6, atol=0)
    for name, value in blog_params.items():
        torch.testing.assert_close(result.parameters[name], value, rtol=1e-6, atol=0)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_printed_lines_are_the_blogs(model_name, tmp_path):
    """The script's stdout starts with exactly what the blog's program prints for the same seed."""
    epochs, seed = 1500, 11
    blog_lines, *_ = blog_run(model_name, seed, epochs)
    result = run_script("--model", model_name, "--epochs", epochs, "--seed", seed, "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ours = result.stdout.splitlines()[: len(blog_lines)]
    assert ours == blog_lines
    assert all(re.fullmatch(r"Epoch\[\d+/1500\], loss:\d+\.\d{6}", line) for line in ours[: epochs // 100])


def test_plain_sgd_is_torch_sgd_bit_for_bit():
    """PlainSGD, the default optimizer, computes exactly what torch.optim.SGD computes."""
    finals = []
    for make in (lambda p: training.PlainSGD(p, 2e-5), lambda p: torch.optim.SGD(p, lr=2e-5)):
        torch.manual_seed(0)
        x, y = qr.make_data()
        model = qr.ParamQuadratic()
        qr.train(model, x, y, make(model.parameters()), epochs=500)
        finals.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(finals[0], finals[1])


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
    expanded = qr.LinearProduct.coefficients(fitting.named_tensors(linear))[0]
    torch.testing.assert_close(expanded, torch.tensor([w1 * w2, w1 * b2 + w2 * b1, b1 * b2]), rtol=1e-6, atol=1e-6)
    assert "a·x² + b·x + c" in qr.ParamQuadratic.__doc__
    assert "(w1·x + b1)(w2·x + b2)" in qr.LinearProduct.__doc__
