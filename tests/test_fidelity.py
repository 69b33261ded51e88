"""The default run is the blog's run: same random numbers, same losses, same printed lines as the blog's
own program (reference/blog_program.py); and at the blog's full settings both models end where the
blog says, for the reasons the output gives."""
import json
import re

import pytest
import torch
from conftest import blog_run, fit, lstsq_loss, run_script, seeded_data

import quadratic_regression as qr
from beyond_the_blog.models import MODELS
from beyond_the_blog.steps.updates import PlainSGD


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_fit_matches_blog_loop_loss_for_loss(model_name):
    epochs, seed = 3000, 7
    _, blog_losses, blog_params, (bx, by) = blog_run(model_name, seed, epochs)

    torch.manual_seed(seed)
    x, y = qr.make_data()
    assert torch.equal(x, bx) and torch.equal(y, by)  # noise drawn first, exactly as the blog
    model = MODELS[model_name].build()
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
    for make in (lambda p: PlainSGD(p, 2e-5), lambda p: torch.optim.SGD(p, lr=2e-5)):
        torch.manual_seed(0)
        x, y = qr.make_data()
        model = qr.ParamQuadratic()
        qr.train(model, x, y, make(model.parameters()), epochs=500)
        finals.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(finals[0], finals[1])


@pytest.mark.slow
@pytest.mark.xdist_group("default_both")  # one worker runs the shared blog-length fixture
def test_default_fits_reach_the_least_squares_loss(default_both):
    """Both models at the blog's settings end within 1% of the best possible loss."""
    folder, result = default_both
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "m.json").read_text())
    floor = lstsq_loss(*seeded_data())
    for name, epochs in (("params", 500_000), ("linear", 20_000)):
        assert metrics[name]["epochs_run"] == epochs
        assert metrics[name]["final_loss"] <= 1.01 * floor
    assert metrics["params"]["least_squares"]["loss"] == pytest.approx(floor, rel=1e-9)


@pytest.mark.slow
@pytest.mark.xdist_group("default_both")  # one worker runs the shared blog-length fixture
def test_model_both_prints_and_writes_both(default_both):
    folder, result = default_both
    assert result.returncode == 0, result.stderr
    out = result.stdout
    order = ["== model params ==", "a tensor(", "== model linear ==", "linear1.weight tensor("]
    assert [out.index(text) for text in order] == sorted(out.index(text) for text in order)
    assert out.count("fitted: y =") == 2 and "== params and linear side by side ==" in out
    assert re.search(r"linear got there [\d.]+ times sooner", out)
    metrics = json.loads((folder / "m.json").read_text())
    assert set(metrics) == {"params", "linear"}
    assert metrics["params"]["epochs_run"] == 500_000 and metrics["linear"]["epochs_run"] == 20_000
    for m in metrics.values():
        assert {"least_squares", "diagnosis"} <= set(m)
        assert set(m["least_squares"]["stderr"]) == {"a", "b", "c"}
    assert {"condition_number", "max_stable_lr", "epochs_to_converge"} <= set(metrics["params"]["diagnosis"])
    assert {"condition_number", "balance_start", "balance_end"} <= set(metrics["linear"]["diagnosis"])
    # the blog's settings leave c visibly short of least squares, and the output says which and why
    assert re.search(r"after 500000 epochs c is still 0\.\d+ from least squares", out)
    assert "float32 stopped it there" in out
    since = int(re.search(r"the logged loss has not changed since epoch (\d+)", out)[1])
    losses = [h[1] for h in metrics["params"]["loss_history"] if h[0] >= since]
    assert since < 500_000 and len(set(losses)) == 1  # the blog's repeated last lines, explained
    import matplotlib.image
    assert matplotlib.image.imread(folder / "both.png").shape[1] >= 1000
