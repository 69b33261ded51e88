"""Why the fit is where it is, and why a run diverged: each model's diagnosis (the params bowl's
eigenvalues, where exact arithmetic and float32 put plain SGD, the product's Hessian and balance)
checked against an independent computation, and the explanations printed from it."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import bowl_eigenvalues, design, fit, prose, recorded_fit, run_main, run_script, seeded_data

import quadratic_regression as qr
from beyond_the_blog.report import explain
from beyond_the_blog.theory.diagnosis import diagnose_params, diagnose_params_fit
from beyond_the_blog.theory.least_squares import least_squares

RAW_X = np.linspace(np.float32(-2.0), np.float32(12.0), 100, dtype=np.float32)  # the default x, in float32


def test_params_diagnosis_matches_an_independent_eigendecomposition():
    x, _ = seeded_data()
    X = design(x)
    eigenvalues = np.linalg.eigvalsh(2 / len(X) * X.T @ X)
    diagnosis = diagnose_params(x, 2e-5)
    np.testing.assert_allclose(diagnosis.eigenvalues.numpy(), eigenvalues, rtol=1e-9)
    assert diagnosis.condition_number == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-9)
    assert diagnosis.max_stable_lr == pytest.approx(2 / eigenvalues[-1], rel=1e-9)
    # (1 - lr*lambda_min)^k = 1/1000
    assert diagnosis.epochs_to_converge == pytest.approx(np.log(1e-3) / np.log(1 - 2e-5 * eigenvalues[0]), rel=1e-9)
    assert 1e4 < diagnosis.condition_number < 1.2e4  # the badly conditioned bowl of the blog's data


def test_exact_arithmetic_prediction_matches_training():
    """Before float32 runs out of digits, (I - lr H)^k (theta_0 - theta*) predicts SGD's end point."""
    x, y = seeded_data(2)
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=30_000)
    diagnosis = diagnose_params_fit(result, x, y)
    least = least_squares(x, y).coefficients[0]
    remaining = (result.coefficients[0] - least).abs().max().item()
    assert remaining > 1  # still far from the optimum after 30000 epochs, as predicted
    np.testing.assert_allclose(diagnosis.predicted.numpy(), result.coefficients[0].numpy(), atol=1e-3 * remaining)


def test_float32_line_prints_update_over_half_gap():
    x, y = seeded_data()
    targets = y.double().numpy().ravel()
    features = np.stack([x.double().numpy().ravel() ** 2, x.double().numpy().ravel(), np.ones(100)], axis=1)
    # where the default run (seed 0, 500000 epochs) ends, from its metrics: float32 numbers
    end32 = np.array([0.9869005680084229, -11.861327171325684, 31.86570167541504])
    assert np.array_equal(end32.astype(np.float32).astype(np.float64), end32)
    result, _, _ = recorded_fit("params", epochs=10)
    diagnosis = diagnose_params(x, 2e-5, y, torch.zeros(3, dtype=torch.float64), torch.tensor(end32), 10)
    line = prose(explain.frozen_updates(diagnosis, cause=True))  # the line as the default run prints it
    step = np.abs(2e-5 * 2 / 100 * features.T @ (features @ end32 - targets))
    half_gap = np.spacing(np.abs(end32).astype(np.float32)).astype(np.float64) / 2
    printed = [float(v) for v in re.search(r"update / half-gap = ([0-9., ]+),", line).group(1).split(", ")]
    frozen = step < half_gap
    assert len(printed) == frozen.sum() > 0
    for shown, truth in zip(printed, (step / half_gap)[frozen]):
        assert shown < 1 and abs(shown - truth) <= 0.5 * 10 ** -(len(str(shown)) - 2) + 1e-12


def test_digits_below_one():
    assert [explain.digits_below_one(r) for r in (0.8612, 0.99991, 0.999951, 0.5)] == \
        ["0.86", "0.9999", "0.99995", "0.5"]


def largest_stable_lr(tmp_path):
    probe = run_script("--model", "params", "--epochs", "1", "--no-plot", "--metrics", "probe.json", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    metrics = json.loads((tmp_path / "probe.json").read_text())
    printed = float(re.search(r"2/lambda_max = ([\d.e+-]+)", probe.stdout)[1])
    assert printed == pytest.approx(metrics["diagnosis"]["max_stable_lr"], rel=1e-3)
    return metrics["diagnosis"]["max_stable_lr"]


def test_printed_largest_stable_lr_is_the_real_edge(tmp_path, capsys):
    lr = largest_stable_lr(tmp_path)
    below = run_main(capsys, "--model", "params", "--lr", 0.9 * lr, "--epochs", "3000", "-q", "--no-plot",
                       "--metrics", "b.json", cwd=tmp_path)
    assert below.returncode == 0, below.stderr
    history = json.loads((tmp_path / "b.json").read_text())["loss_history"]
    assert history[-1][1] < history[0][1] / 10
    above = run_main(capsys, "--model", "params", "--lr", 1.1 * lr, "--epochs", "3000", "-q", "--no-plot", cwd=tmp_path)
    assert above.returncode == 1
    assert "diverged at epoch" in above.stderr


def test_linear_diagnosis(tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--seed", "3", "--metrics", "m.json", "--no-plot", "-q",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    p = {k: float(np.ravel(v)[0]) for k, v in metrics["parameters"].items()}
    w1, b1, w2, b2 = p["linear1.weight"], p["linear1.bias"], p["linear2.weight"], p["linear2.bias"]
    diagnosis = metrics["diagnosis"]
    assert diagnosis["balance_end"] == pytest.approx((w1**2 + b1**2) - (w2**2 + b2**2), abs=1e-4)
    torch.manual_seed(3)
    qr.make_data()
    start = qr.LinearProduct()  # the initial parameters of seed 3, drawn as the script draws them
    s = [t.item() for t in (start.linear1.weight, start.linear1.bias, start.linear2.weight, start.linear2.bias)]
    assert diagnosis["balance_start"] == pytest.approx((s[0] ** 2 + s[1] ** 2) - (s[2] ** 2 + s[3] ** 2), abs=1e-6)
    assert diagnosis["balance_end"] == pytest.approx(diagnosis["balance_start"], abs=0.05)  # nearly conserved

    # the Hessian at the end, by central finite differences of the loss in numpy
    x, y = seeded_data(3)
    xs, ys = x.double().numpy().ravel(), y.double().numpy().ravel()

    def loss(t):
        return np.mean(((t[0] * xs + t[1]) * (t[2] * xs + t[3]) - ys) ** 2)

    theta, h = np.array([w1, b1, w2, b2]), 1e-4
    hessian = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * h, np.eye(4)[j] * h
            hessian[i, j] = (loss(theta + e_i + e_j) - loss(theta + e_i - e_j)
                             - loss(theta - e_i + e_j) + loss(theta - e_i - e_j)) / (4 * h * h)
    eigenvalues = np.linalg.eigvalsh(hessian)
    np.testing.assert_allclose(sorted(diagnosis["eigenvalues"]), eigenvalues, rtol=1e-3, atol=1e-2)
    assert diagnosis["condition_number"] > 1e5  # the flat valley of equivalent factorizations
    magnitudes = np.sort(np.abs(eigenvalues))
    without_flat = diagnosis["condition_number_without_flat_direction"]
    assert without_flat == pytest.approx(magnitudes[-1] / magnitudes[1], rel=1e-3)
    assert diagnosis["condition_number_without_flat_direction"] < 1e3  # far better than the params bowl's 1.1e4


def test_balance_line_says_what_happened_under_lbfgs(tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--optimizer", "lbfgs", "--no-plot", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = prose(result.stdout)
    assert "(nearly) conserves" not in said and "L-BFGS's steps are not gradient steps" in said
    assert "if their sizes differed by more than 1%, it rescaled them to equal sizes" in said


def test_divergence_stops_at_once_and_names_a_stable_lr(tmp_path, capsys):
    result = run_main(capsys, "--model", "params", "--lr", "1", "--metrics", "m.json", "--plot", "d.png", cwd=tmp_path)
    assert result.returncode == 1
    assert "nan" not in result.stdout.lower().replace("tensor", "")
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    match = re.search(r"diverged at epoch (\d+).*stable below lr ([\d.e+-]+)", message)
    assert match, message
    x, _ = seeded_data()
    features = np.hstack([x.double().numpy() ** 2, x.double().numpy(), np.ones((100, 1))])
    largest = np.linalg.eigvalsh(2 / 100 * features.T @ features).max()
    assert float(match[2]) == pytest.approx(2 / largest, rel=1e-2)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["diverged"] is True and metrics["diverged_at_epoch"] == int(match[1]) < 50
    assert metrics["epochs_run"] == int(match[1])
    assert (tmp_path / "d.png").exists()


@pytest.mark.parametrize("optimizer,lr,factor", [("sgd", "1", 2.0), ("momentum", "1e-3", 3.8)])
def test_divergence_names_its_optimizers_limit_and_keeps_the_outputs(optimizer, lr, factor, tmp_path, capsys):
    result = run_main(capsys, "--optimizer", optimizer, "--lr", lr, "--metrics", "m.json", "--plot", "d.png",
                      cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "overflowed float32" in message
    limit = float(re.search(r"stable below lr ([\d.e+-]+)", message)[1])
    assert limit == pytest.approx(factor / bowl_eigenvalues(RAW_X)[-1], rel=1e-2)
    metrics = json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert metrics["diverged"] is True and metrics["diverged_at_epoch"] == metrics["epochs_run"]
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "d.png").shape[1] >= 1000


@pytest.mark.parametrize("optimizer,lr,says", [("adam", "1e30", "Adam has no such limit"),
                                               ("lbfgs", "1e25", "L-BFGS")])
def test_adam_and_lbfgs_divergence_say_what_is_known(optimizer, lr, says, tmp_path, capsys):
    result = run_main(capsys, "--optimizer", optimizer, "--lr", lr, "--epochs", "30", "--metrics", "m.json",
                      cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        assert says in result.stderr and "2/lambda_max" not in result.stderr
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)
