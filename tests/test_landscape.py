"""--landscape: the recorded trajectory, the figure of the loss bowl read back, and the errors along
the bowl's eigenvectors against plain SGD's (1 - lr λ)^k until float32 stalls them. Oracles: numpy
(polyfit, eigh) and a float64 gradient-descent loop written in the test."""
import json
import re

import matplotlib.text
import numpy as np
import pytest
import torch
from conftest import recorded_fit, run_main

import quadratic_regression as qr
from beyond_the_blog.report import landscape_figure


def bowl_oracle(inputs, y):
    """numpy: the least-squares optimum, the Hessian's eigenvalues and eigenvectors (largest entry positive)."""
    z = inputs.double().numpy().ravel()
    features = np.stack([z**2, z, np.ones_like(z)], axis=1)
    eigenvalues, vectors = np.linalg.eigh(2 / len(z) * features.T @ features)
    vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), range(3)])
    return np.polyfit(z, y.double().numpy().ravel(), 2), eigenvalues, vectors, features


def quadratic_of(model, x, inputs):
    """The (a, b, c) in x's units that `model` draws on `inputs`, read off its predictions by polyfit."""
    with torch.no_grad():
        return np.polyfit(x.double().numpy().ravel(), model(inputs).double().numpy().ravel(), 2)


@pytest.mark.parametrize("model_name,extra", [("linear", []), ("params", ["--standardize"])])
def test_trajectory_starts_at_the_initial_model_and_ends_at_the_printed_fit(tmp_path, model_name, extra, capsys):
    result = run_main(capsys, "--model", model_name, "--epochs", "1500", *extra, "--metrics", "m.json",
                        "--landscape", "l.png", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "landscape written to l.png" in result.stdout and (tmp_path / "l.png").stat().st_size > 10_000
    metrics = json.loads((tmp_path / "m.json").read_text())
    path = metrics["trajectory"]
    epochs, coefficients = path["epochs"], np.array(path["coefficients"])
    assert epochs[0] == 0 and epochs[-1] == metrics["epochs_run"] == 1500
    assert all(a < b for a, b in zip(epochs, epochs[1:])) and len(coefficients) == len(epochs)
    assert {e for e, _ in metrics["loss_history"]} <= set(epochs)  # every recorded epoch
    torch.manual_seed(0)
    x, _ = qr.make_data()
    initial = qr.ParamQuadratic() if model_name == "params" else qr.LinearProduct()
    inputs = (x - x.mean()) / x.std() if extra else x
    np.testing.assert_allclose(coefficients[0], quadratic_of(initial, x, inputs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(coefficients[-1], [metrics["coefficients"][k] for k in "abc"], rtol=1e-6, atol=1e-6)
    printed = re.search(r"fitted: y = (\S+) x\^2 ([+-]) (\S+) x ([+-]) (\S+)", result.stdout).groups()
    a, b, c = float(printed[0]), float(printed[1] + printed[2]), float(printed[3] + printed[4])
    np.testing.assert_allclose(coefficients[-1], [a, b, c], atol=6e-5)


def test_landscape_figure_panels_and_paths_read_back(tmp_path):
    params, x, y = recorded_fit("params", epochs=3000)
    torch.manual_seed(0)
    linear, _, _ = recorded_fit("linear", epochs=3000)
    fig = landscape_figure.plot_landscape([params, linear], x, y, tmp_path / "l.png")
    image = __import__("matplotlib.image", fromlist=["imread"]).imread(tmp_path / "l.png")
    assert image.shape[0] > 300 and image.shape[1] > 3 * image.shape[0] / 2
    bowl_ax, error_ax, balance_ax = [ax for ax in fig.axes if ax.get_title()]
    assert "sliced through its optimum" in bowl_ax.get_title() and "x" in bowl_ax.get_title()
    assert "steepest" in bowl_ax.get_xlabel() and "flattest" in bowl_ax.get_ylabel()
    assert error_ax.get_xscale() == error_ax.get_yscale() == "log"
    assert "two layers" in balance_ax.get_title()
    optimum, _, vectors, _ = bowl_oracle(x, y)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    for fitted in (params, linear):
        errors = (fitted.trajectory.coefficients_in_x().numpy() - optimum) @ vectors
        line = lines[f"path:{fitted.model_name}"]
        np.testing.assert_allclose(line.get_xdata(), errors[:, 2], atol=1e-6)
        np.testing.assert_allclose(line.get_ydata(), errors[:, 0], atol=1e-5)
    p = linear.trajectory.parameters
    first = np.hypot(p["linear1.weight"].numpy().ravel(), p["linear1.bias"].numpy().ravel())
    second = np.hypot(p["linear2.weight"].numpy().ravel(), p["linear2.bias"].numpy().ravel())
    np.testing.assert_allclose(lines["balance:path"].get_xdata(), second)
    np.testing.assert_allclose(lines["balance:path"].get_ydata(), first)
    curve = lines["balance:curve"]  # every point of it keeps the start's balance
    balance = np.asarray(curve.get_ydata()) ** 2 - np.asarray(curve.get_xdata()) ** 2
    np.testing.assert_allclose(balance, first[0] ** 2 - second[0] ** 2, atol=1e-9)
    assert "predicted:linear:0" not in lines and "predicted:params:0" in lines  # (1 - lr λ)^k: params only


@pytest.mark.parametrize("standardize,epochs", [(False, 5000), (True, 1000)])
def test_eigen_errors_follow_the_prediction_until_float32_stalls(tmp_path, standardize, epochs):
    result, x, y = recorded_fit("params", epochs=epochs, standardize=standardize)
    inputs = (x - x.mean()) / x.std() if standardize else x
    optimum, eigenvalues, vectors, features = bowl_oracle(inputs, y)
    targets = y.double().numpy().ravel()
    theta = result.trajectory.coefficients_trained()[0].numpy().copy()
    wanted, exact = set(result.trajectory.epochs), {0: theta.copy()}
    for k in range(1, epochs + 1):  # plain gradient descent in float64, written out
        theta -= result.lr * 2 / len(targets) * features.T @ (features @ theta - targets)
        if k in wanted:
            exact[k] = theta.copy()
    oracle = (np.array([exact[e] for e in result.trajectory.epochs]) - optimum) @ vectors
    fig = landscape_figure.plot_landscape([result], x, y, tmp_path / "l.png")
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    measured = np.abs((result.trajectory.coefficients_trained().numpy() - optimum) @ vectors)
    stall = next((line.get_xdata()[0] for gid, line in lines.items() if gid == "stall:params"), None)
    for i in range(3):
        predicted = lines[f"predicted:params:{i}"].get_ydata()
        above_float64 = np.abs(oracle[1:, i]) > 1e-6  # below, the float64 loop has its own rounding floor
        np.testing.assert_allclose(predicted[above_float64], np.abs(oracle[1:, i])[above_float64], rtol=1e-6)
        before = np.array(result.trajectory.epochs) < (stall or np.inf)
        big = before & (np.abs(oracle[:, i]) > 1e-3)
        assert big.sum() >= 3
        np.testing.assert_allclose(measured[big, i], np.abs(oracle[big, i]), rtol=1e-2)
    if standardize:  # 1000 epochs at lr 0.3 on z reach float32's floor: the stall is drawn, and real
        assert stall is not None and stall < epochs
        after = np.array(result.trajectory.epochs) >= stall
        assert np.all(measured[after] == measured[after][0])
        assert np.abs(oracle[-1]).max() < 1e-6 < measured[-1].max()  # exact arithmetic would have gone on


def rendered(fig):
    """The figure drawn once on an Agg canvas, laid out as it is saved; returns the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_landscape_shows_both_paths_their_ends_and_every_lr(tmp_path):
    params, x, y = recorded_fit("params", epochs=1000, standardize=True)  # both runs end at the optimum
    torch.manual_seed(0)
    linear, _, _ = recorded_fit("linear", epochs=1000, standardize=True)
    fig = landscape_figure.plot_landscape([params, linear], x, y, tmp_path / "l.png")
    renderer = rendered(fig)
    bowl_ax, error_ax, balance_ax = [ax for ax in fig.axes if ax.get_title()]
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    # params' path on top of the product's, thinner and in another style: it shows where the two overlap
    on_top, under = lines["path:params"], lines["path:linear"]
    assert on_top.get_zorder() > under.get_zorder() and on_top.get_linewidth() < under.get_linewidth()
    assert on_top.get_linestyle() != under.get_linestyle()
    # the ends lie on the optimum: an inset zooms on them, with both end markers, the start ones and the star
    (inset,) = bowl_ax.child_axes
    assert inset.get_gid() == "zoom"
    zoomed = {line.get_gid(): line for line in inset.get_lines()}
    for name in ("params", "linear"):
        end = zoomed[f"zoom:end:{name}"]
        assert end.get_zorder() > zoomed[f"zoom:path:{name}"].get_zorder()
        (s,), (t,) = end.get_xdata(), end.get_ydata()
        assert inset.get_xlim()[0] < s < inset.get_xlim()[1] and inset.get_ylim()[0] < t < inset.get_ylim()[1]
        assert f"start:{name}" in lines and f"end:{name}" in lines
    assert (np.diff(bowl_ax.get_xlim()) / np.diff(inset.get_xlim())).item() > 100
    # the inset sits where no path runs
    box = inset.get_window_extent(renderer)
    for gid in ("path:params", "path:linear"):
        vertices = np.column_stack([lines[gid].get_xdata(), lines[gid].get_ydata()])
        xy = bowl_ax.transData.transform(landscape_figure.along(vertices))  # all along each segment
        assert not np.all((xy >= box.p0) & (xy <= box.p1), axis=1).any()
    # every legend below its axes, off the data; every text at least 9 pt
    for ax in (bowl_ax, error_ax, balance_ax):
        assert ax.get_legend().get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    assert texts and min(t.get_fontsize() for t in texts) >= 9
    # every title states the lr of every curve it draws, every axis its units
    for ax in (bowl_ax, error_ax):
        assert "params lr 0.3" in ax.get_title() and "linear lr 0.01" in ax.get_title()
    assert "linear lr 0.01" in balance_ax.get_title()
    for label in (bowl_ax.get_xlabel(), bowl_ax.get_ylabel(), error_ax.get_ylabel(), balance_ax.get_xlabel(),
                  balance_ax.get_ylabel()):
        assert label.endswith("on z"), label
    # the product's path over the curve it keeps to, wide and translucent so the curve shows through
    path, curve = lines["balance:path"], lines["balance:curve"]
    assert path.get_zorder() > curve.get_zorder() and path.get_alpha() < 1 < path.get_linewidth() / 2
    assert "balance:start" in lines and "balance:end" in lines


def test_no_inset_when_the_ends_are_apart(tmp_path):
    params, x, y = recorded_fit("params", epochs=3000)  # still far along the flat direction
    fig = landscape_figure.plot_landscape([params], x, y, tmp_path / "l.png")
    assert fig.axes[0].child_axes == []
