"""Issue: fast fits and many runs. Behaviour only; speed is the benchmark's job."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, fit, replication_data, run_script

import quadratic_regression as qr
from beyond_the_blog import model_registry, replications

SEEDS = list(range(10))


def polyfit(x, y):
    return np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)


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
    result = fit(replications.Replicas(models), x, ys, model_name=model_name, optimizer=optimizer,
                 standardize=standardize)
    assert result.log.epochs_run == model_registry.default_epochs(optimizer, model_name, standardize)
    check_reaches_least_squares(x, ys, result.coefficients.numpy(), result.final_loss.numpy())


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("standardize", [False, True])
def test_lbfgs_defaults_reach_least_squares_for_seeds_0_to_9(model_name, standardize):
    coefficients, losses, ys = [], [], []
    for seed in SEEDS:
        torch.manual_seed(seed)
        x, y = qr.make_data()
        result = fit(model_registry.make_model(model_name), x, y, model_name=model_name, optimizer="lbfgs",
                     standardize=standardize)
        coefficients.append(result.coefficients[0].numpy())
        losses.append(result.final_loss)
        ys.append(y)
    check_reaches_least_squares(x, ys, coefficients, losses)


def test_sgd_standardized_needs_at_most_1000_epochs():
    assert all(model_registry.default_epochs("sgd", m, True) <= 1000 for m in model_registry.BLOG_MODELS)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_standardize_reports_in_x_units(model_name):
    torch.manual_seed(1)
    x, y = qr.make_data()
    result = fit(model_registry.make_model(model_name), x, y, model_name=model_name, standardize=True)
    assert result.lr == model_registry.default_lr("sgd", model_name, True) > 1e-3  # an lr that suits z, not the blog's
    np.testing.assert_allclose(result.coefficients[0].numpy(), polyfit(x, y), atol=0.01)
    # the model returned predicts on x what the trained model predicted on z
    trained = model_registry.make_model(model_name)
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


REPLICATION_CASES = [("params", "sgd", False, 3000), ("linear", "sgd", False, 3000),
                     ("linear", "adam", False, 1000), ("params", "momentum", True, 300), ("linear", "sgd", True, 500)]


@pytest.mark.parametrize("model_name,optimizer,standardize,epochs", REPLICATION_CASES)
def test_replication_equals_its_single_run(model_name, optimizer, standardize, epochs):
    seed, runs = 5, 4
    x, ys, models = replication_data(model_name, range(seed, seed + runs))
    replicas = replications.Replicas(models)
    assert all(p.shape[0] == runs for p in replicas.parameters())  # one tensor per parameter, a leading run axis
    together = fit(replicas, x, ys, model_name=model_name, optimizer=optimizer, standardize=standardize, epochs=epochs)
    for r in range(runs):
        torch.manual_seed(seed + r)
        x1, y1 = qr.make_data()
        alone = fit(model_registry.make_model(model_name), x1, y1, model_name=model_name, optimizer=optimizer,
                    standardize=standardize, epochs=epochs)
        assert together.final_loss[r].item() == pytest.approx(alone.final_loss, rel=1e-5)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(together.parameters[name][r], value, rtol=1e-5, atol=1e-5)


def test_success_count_sees_a_stuck_run():
    """All four parameters at 0 is a stationary point of the product model: that run must fail."""
    seeds = list(range(20, 26))
    x, ys, models = replication_data("linear", seeds)
    with torch.no_grad():
        for p in models[2].parameters():
            p.zero_()
    result = fit(replications.Replicas(models), x, ys, model_name="linear", standardize=True)
    summary = replications.summarize_replications(result, x, ys, seeds)
    assert summary.succeeded.tolist() == [True, True, False, True, True, True]
    assert summary.failed_seeds == [22]
    assert result.coefficients[2].abs().max().item() == 0.0  # it never moved


def test_runs_on_the_command_line(tmp_path):
    result = run_script("--model", "params", "--runs", "8", "--seed", "3", "--standardize", "--metrics", "m.json",
                        "--plot", "runs.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 runs (seeds 3-10)" in result.stdout and "8 of 8 succeeded" in result.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    rep = metrics["replications"]
    assert rep["seeds"] == list(range(3, 11)) and rep["succeeded"] == [True] * 8 and rep["success_rate"] == 1.0
    for key in ("final_loss", "coefficients_mean", "coefficients_std"):
        assert key in rep
    coefficients = np.array(rep["coefficients"])
    np.testing.assert_allclose([rep["coefficients_mean"][k] for k in "abc"], coefficients.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose([rep["coefficients_std"][k] for k in "abc"], coefficients.std(axis=0, ddof=1), rtol=1e-9)
    mean_line = re.search(r"^\s+c\s+32\s+([-\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", result.stdout, re.M)
    assert float(mean_line[1]) == pytest.approx(rep["coefficients_mean"]["c"], abs=1e-4)
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "runs.png").shape[1] >= 1000


def test_tol_stops_early_and_says_so(tmp_path):
    result = run_script("--model", "params", "--standardize", "--tol", "1e-6", "--metrics", "m.json", "--no-plot",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["stop_reason"] == "tol" and metrics["epochs_run"] < metrics["epochs"] == 1000
    assert f"stopped early at epoch {metrics['epochs_run']}" in result.stdout
    without = run_script("--model", "params", "--standardize", "--metrics", "n.json", "--no-plot", "-q", cwd=tmp_path)
    assert without.returncode == 0
    assert json.loads((tmp_path / "n.json").read_text())["stop_reason"] == "epochs"


def test_tol_with_replications():
    x, ys, models = replication_data("linear", range(4))
    result = fit(replications.Replicas(models), x, ys, model_name="linear", standardize=True, tol=1e-7,
                 record_interval=10)
    assert result.log.stop_reason == "tol" and result.log.epochs_run < 1000


def test_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"faithful", "time_to_fit", "replications", "frames", "startup", "machine", "busy_machine"} <= set(report)
    assert report["faithful"]["identical_losses"] is True
    assert "| " in result.stdout  # markdown tables
