"""Issue: explain the fit. Each number is checked against an independent computation."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import fit, run_script

import quadratic_regression as qr
from beyond_the_blog import analysis, plots, training


def data(seed=0, **kwargs):
    torch.manual_seed(seed)
    return qr.make_data(**kwargs)


def design(x):
    x = x.double().numpy().ravel()
    return np.stack([x**2, x, np.ones_like(x)], axis=1)


@pytest.mark.parametrize("seed,samples,noise", [(0, 100, 1.0), (3, 17, 5.0), (9, 4, 0.3)])
def test_least_squares_matches_numpy_polyfit(seed, samples, noise):
    x, y = data(seed, samples=samples, noise=noise)
    result = analysis.least_squares(x, y)
    expected = np.polyfit(x.double().numpy().ravel(), y.double().numpy().ravel(), 2)
    np.testing.assert_allclose(result.coefficients[0].numpy(), expected, rtol=1e-6, atol=1e-6)
    residuals = np.polyval(expected, x.double().numpy().ravel()) - y.double().numpy().ravel()
    assert result.loss[0].item() == pytest.approx(np.mean(residuals**2), rel=1e-6)


def test_standard_errors_match_the_textbook_formula():
    x, y = data(4)
    result = analysis.least_squares(x, y)
    X, Y = design(x), y.double().numpy().ravel()
    beta = np.linalg.solve(X.T @ X, X.T @ Y)
    sigma2 = np.sum((Y - X @ beta) ** 2) / (len(Y) - 3)  # unbiased: n - p degrees of freedom
    expected = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    np.testing.assert_allclose(result.stderr[0].numpy(), expected, rtol=1e-8)


def test_no_standard_errors_from_three_points():
    x, y = data(0, samples=3)
    assert analysis.least_squares(x, y).stderr is None


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (10, 2.2281), (30, 2.0423), (97, 1.9847)])
def test_student_t_quantile_matches_printed_tables(df, expected):
    assert analysis.student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_params_diagnosis_matches_an_independent_eigendecomposition():
    x, _ = data()
    X = design(x)
    eigenvalues = np.linalg.eigvalsh(2 / len(X) * X.T @ X)
    diagnosis = analysis.diagnose_params(x, 2e-5)
    np.testing.assert_allclose(diagnosis.eigenvalues.numpy(), eigenvalues, rtol=1e-9)
    assert diagnosis.condition_number == pytest.approx(eigenvalues[-1] / eigenvalues[0], rel=1e-9)
    assert diagnosis.max_stable_lr == pytest.approx(2 / eigenvalues[-1], rel=1e-9)
    # (1 - lr*lambda_min)^k = 1/1000
    assert diagnosis.epochs_to_converge == pytest.approx(np.log(1e-3) / np.log(1 - 2e-5 * eigenvalues[0]), rel=1e-9)
    assert 1e4 < diagnosis.condition_number < 1.2e4  # the badly conditioned bowl of the blog's data


def test_exact_arithmetic_prediction_matches_training():
    """Before float32 runs out of digits, (I - lr H)^k (theta_0 - theta*) predicts SGD's end point."""
    x, y = data(2)
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=30_000)
    diagnosis = analysis.diagnose_params_fit(result, x, y)
    least = analysis.least_squares(x, y).coefficients[0]
    remaining = (result.coefficients[0] - least).abs().max().item()
    assert remaining > 1  # still far from the optimum after 30000 epochs, as predicted
    np.testing.assert_allclose(diagnosis.predicted.numpy(), result.coefficients[0].numpy(), atol=1e-3 * remaining)


def largest_stable_lr(tmp_path):
    probe = run_script("--model", "params", "--epochs", "1", "--no-plot", "--metrics", "probe.json", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    metrics = json.loads((tmp_path / "probe.json").read_text())
    printed = float(re.search(r"2/lambda_max = ([\d.e+-]+)", probe.stdout)[1])
    assert printed == pytest.approx(metrics["diagnosis"]["max_stable_lr"], rel=1e-3)
    return metrics["diagnosis"]["max_stable_lr"]


def test_printed_largest_stable_lr_is_the_real_edge(tmp_path):
    lr = largest_stable_lr(tmp_path)
    below = run_script("--model", "params", "--lr", 0.9 * lr, "--epochs", "3000", "-q", "--no-plot",
                       "--metrics", "b.json", cwd=tmp_path)
    assert below.returncode == 0, below.stderr
    history = json.loads((tmp_path / "b.json").read_text())["loss_history"]
    assert history[-1][1] < history[0][1] / 10
    above = run_script("--model", "params", "--lr", 1.1 * lr, "--epochs", "3000", "-q", "--no-plot", cwd=tmp_path)
    assert above.returncode == 1
    assert "diverged at epoch" in above.stderr


def test_linear_diagnosis(tmp_path):
    result = run_script("--model", "linear", "--seed", "3", "--metrics", "m.json", "--no-plot", "-q", cwd=tmp_path)
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
    x, y = data(3)
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


def test_figure_has_fit_and_loss_panels(tmp_path):
    x, y = data()
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=2000)
    fig = plots.plot_fits([result], x, y, analysis.least_squares(x, y), path=str(tmp_path / "fit.png"), show=False)
    left, right = fig.axes
    labels = [line.get_label() for line in left.get_lines()]
    assert labels == ["Original Data", "Fitting Line", "True: (x-4)(x-8)", "Least squares"]
    assert left.get_lines()[3].get_linestyle() == "--"
    assert right.get_xscale() == "log" and right.get_yscale() == "log"
    epochs = right.get_lines()[0].get_xdata()
    assert list(epochs) == [e for e, _ in result.log.history]
    assert "final loss" in left.get_title() and "params" in left.get_title()


def test_animation_has_the_promised_frames(tmp_path):
    result = run_script("--model", "linear", "--epochs", "5000", "--animate", "fit.gif", "--no-plot", "-q",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    promised = int(re.search(r"animation written to fit.gif \((\d+) frames\)", result.stdout)[1])
    assert 60 <= promised <= 120
    from PIL import Image
    with Image.open(tmp_path / "fit.gif") as gif:
        assert gif.n_frames == promised


def test_frames_are_recorded_only_when_asked():
    x, y = data()
    plain = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=500)
    assert plain.log.frames == []
    epochs = training.frame_epochs(500)
    assert len(epochs) == len(set(epochs)) == 90 and epochs[0] == 1 and epochs[-1] == 500
    recorded = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=500, frame_epochs=epochs)
    assert [e for e, _ in recorded.log.frames] == epochs


@pytest.mark.slow
@pytest.mark.xdist_group("default_both")  # one worker runs the shared one-minute fixture
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
