"""--runs R: many runs trained as one vectorized computation, each equal to its single run; the
model's own forward on the stacked parameters (vmap's bits, without vmap); which runs succeeded,
which diverged, and the statistics that can and cannot be computed."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import fit, run_script, seeded_start

import quadratic_regression as qr
from beyond_the_blog.models import MODELS
from beyond_the_blog.replicas import Replicas, replication_data, spread_range, summarize_replications

REPLICATION_CASES = [("params", "sgd", False, 3000), ("linear", "sgd", False, 3000),
                     ("linear", "adam", False, 1000), ("params", "momentum", True, 300), ("linear", "sgd", True, 500)]


@pytest.mark.parametrize("model_name,optimizer,standardize,epochs", REPLICATION_CASES)
def test_replication_equals_its_single_run(model_name, optimizer, standardize, epochs):
    seed, runs = 5, 4
    x, ys, models = replication_data(model_name, range(seed, seed + runs))
    replicas = Replicas(models)
    assert all(p.shape[0] == runs for p in replicas.parameters())  # one tensor per parameter, a leading run axis
    together = fit(replicas, x, ys, model_name=model_name, optimizer=optimizer, standardize=standardize, epochs=epochs)
    for r in range(runs):
        torch.manual_seed(seed + r)
        x1, y1 = qr.make_data()
        alone = fit(MODELS[model_name].build(), x1, y1, model_name=model_name, optimizer=optimizer,
                    standardize=standardize, epochs=epochs)
        assert together.final_loss[r].item() == pytest.approx(alone.final_loss, rel=1e-5)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(together.parameters[name][r], value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("per_run_inputs", [False, True])
def test_replicas_run_the_models_own_forward_with_vmaps_bits(model_name, per_run_inputs):
    """No vmap for the blog's two models (the speed of --runs and the sweep rests on it), the same predictions,
    for one input shared by all runs and for each run's own (minibatches)."""
    x, _, _ = seeded_start(model_name)
    models = [MODELS[model_name].build() for _ in range(4)]
    inputs = torch.stack([x[torch.randperm(len(x))[:10]] for _ in models]) if per_run_inputs else x
    replicas = Replicas(models)
    replicas(inputs)  # the first call decides
    assert replicas.direct is True
    assert torch.equal(replicas(inputs), replicas.mapped_forward(inputs))


def test_success_count_sees_a_stuck_run():
    """All four parameters at 0 is a stationary point of the product model: that run must fail."""
    seeds = list(range(20, 26))
    x, ys, models = replication_data("linear", seeds)
    with torch.no_grad():
        for p in models[2].parameters():
            p.zero_()
    result = fit(Replicas(models), x, ys, model_name="linear", standardize=True)
    summary = summarize_replications(result, x, ys, seeds)
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


def test_replications_name_the_runs_that_diverged(tmp_path):
    result = run_script("--model", "linear", "--runs", "10", "--lr", "1.1e-3", "--epochs", "2000", "-q",
                        "--metrics", "m.json", "--plot", "r.png", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rep = json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)["replications"]
    diverged = rep["diverged_seeds"]
    assert 0 < len(diverged) < 10
    assert f"{len(diverged)} of them diverged" in result.stdout
    assert f"{len(diverged)} of 10 runs diverged (seeds {', '.join(map(str, diverged))})" in result.stderr
    kept = np.array([c for seed, c in zip(rep["seeds"], rep["coefficients"]) if seed not in diverged])
    np.testing.assert_allclose([rep["coefficients_mean"][k] for k in "abc"], kept.mean(axis=0), rtol=1e-9)
    assert not re.search(r"(?<!/)\bnan\b", result.stdout.lower())  # no NaN printed as a number
    assert all(rep["diverged_at_epoch_per_run"][s] > 0 for s in diverged)


def test_too_few_runs_for_a_statistic_say_why(tmp_path):
    result = run_script("--samples", "3", "--runs", "3", "--epochs", "100", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\bnan\b", result.stdout.lower())
    assert "n/a: a standard error needs more than 3 points" in result.stdout


def test_the_spread_range_is_the_sampling_range_of_a_standard_deviation():
    rng = np.random.default_rng(0)
    for runs in (2, 3, 5, 9, 20, 200):
        drawn = rng.standard_normal((200_000, runs)).std(axis=1, ddof=1)  # standard deviations of runs draws
        assert spread_range(runs)[1] == pytest.approx(np.quantile(drawn, 0.975), rel=0.02), runs


@pytest.mark.parametrize("runs", [3, 40])
def test_the_runs_verdict_follows_from_the_runs_and_their_number(tmp_path, runs):
    result = run_script("--runs", runs, "--optimizer", "momentum", "--standardize", "-q", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fits, stderrs = [], []
    for seed in range(runs):  # each run's own least-squares fit and standard errors, numpy float64
        torch.manual_seed(seed)
        x, y = (t.double().numpy().ravel() for t in qr.make_data())
        design = np.stack([x**2, x, np.ones_like(x)], axis=1)
        best, residual = np.linalg.lstsq(design, y, rcond=None)[:2]
        fits.append(best)
        stderrs.append(np.sqrt(residual[0] / (len(x) - 3) * np.linalg.inv(design.T @ design).diagonal()))
    ratio = (np.std(fits, axis=0, ddof=1) / np.mean(stderrs, axis=0)).max()
    drawn = np.random.default_rng(1).standard_normal((100_000, runs)).std(axis=1, ddof=1)
    hi = np.quantile(drawn, 0.975)
    out = " ".join(result.stdout.split())
    if ratio > hi * 1.02:
        assert "the training adds to it" in out
    elif hi > 1.5 * 1.02:
        assert "too few runs to tell" in out
    elif hi < 1.5 / 1.02 and ratio < hi / 1.02:
        assert "it is the noise in the data" in out
    assert ("too few runs to tell" in out) == (runs == 3)


def test_saved_replications_load_into_the_model_class_run_by_run(tmp_path):
    result = run_script("--runs", 3, "--seed", 4, "--model", "linear", "--epochs", 300, "-q", "--no-plot",
                        "--save-model", "runs.pt", "--metrics", "m.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = torch.load(tmp_path / "runs.pt")
    for r, seed in enumerate(range(4, 7)):
        model = MODELS["linear"].build()
        model.load_state_dict(saved[r])  # strict: every name and shape of the class
        alone = run_script("--seed", seed, "--model", "linear", "--epochs", 300, "-q", "--no-plot",
                           "--save-model", f"alone{r}.pt", cwd=tmp_path)
        assert alone.returncode == 0
        for name, tensor in torch.load(tmp_path / f"alone{r}.pt").items():
            torch.testing.assert_close(model.state_dict()[name], tensor)  # to float32 rounding, as the runs are
