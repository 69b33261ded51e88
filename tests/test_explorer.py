"""--explore: the batched gradients by hand against autograd's replicas; the explorer's runs against single runs,
numpy's eigenvalues and float64 losses; its refusals, before any training; a signal that keeps the settings
already trained; and the committed page's limits against its runs' verdicts. The page in a browser:
test_explorer_browser.py."""
import copy
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    SCRIPT,
    bowl_eigenvalues,
    clean_env,
    design,
    fit,
    lstsq_loss,
    polyfit,
    prose,
    run_script,
    seeded_start,
)

import quadratic_regression as qr
from beyond_the_blog import cli
from beyond_the_blog.cli.options import parse_args
from beyond_the_blog.many_runs.explorer_runs import Combination, train_setting
from beyond_the_blog.many_runs.replicas import Replicas
from beyond_the_blog.many_runs.sweep import predicted_limit
from beyond_the_blog.many_runs.sweep_runs import SweepLosses
from beyond_the_blog.optimizers import OPTIMIZERS
from beyond_the_blog.report import explorer_page
from beyond_the_blog.report.explorer_page import MAX_PAGE_BYTES, bowl_data, page_size_bound
from beyond_the_blog.steps.batched_gradients import BatchedLinearGradients, BatchedParamsGradients
from beyond_the_blog.steps.updates import PerRunSGD

EPOCHS = 300  # the page's test runs: enough for the largest lrs to overflow float32, a second to train


# ----------------------------------------------------------------------------- the gradients by hand, batched
@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("optimizer,standardize", [("sgd", False), ("momentum", False), ("sgd", True)])
def test_batched_gradients_train_as_autograds_replicas(model_name, optimizer, standardize):
    """The same lrs from the same start, once with loss.backward() through the replicas (the sweep's way), once
    with the gradients by hand: the same parameters to float32 rounding, the same runs diverged."""
    x, y, model = seeded_start(model_name)
    inputs = (x - x.mean()) / x.std() if standardize else x
    limit = predicted_limit(model_name, model, inputs, y, optimizer)[0]
    # well inside the product's limit at its balanced end point too (about 0.37 of the start's on x): nearer that
    # edge a run oscillates on it, and there float32's rounding differences grow instead of dying out
    lrs = [limit * f for f in (0.02, 0.15, 3.0)]  # the last one diverges
    ys = y.expand(len(lrs), *y.shape).contiguous()
    rates, beta = torch.tensor(lrs, dtype=torch.float64), OPTIMIZERS[optimizer].beta
    by_autograd, by_hand = (Replicas([copy.deepcopy(model) for _ in lrs]) for _ in range(2))
    qr.train(by_autograd, inputs, ys, PerRunSGD(by_autograd.parameters(), rates, beta), 400, lambda *a: None,
             SweepLosses())
    batched = {"params": BatchedParamsGradients, "linear": BatchedLinearGradients}[model_name]
    qr.train_by_hand(batched(by_hand, inputs, ys),
                     PerRunSGD(by_hand.parameters(), rates, beta), 400, lambda *a: None)
    for (name, expected), (_, got) in zip(by_autograd.named_parameters(), by_hand.named_parameters()):
        finite = torch.isfinite(expected).reshape(len(lrs), -1).all(dim=1)
        assert finite.tolist() == torch.isfinite(got).reshape(len(lrs), -1).all(dim=1).tolist(), name
        assert finite[0] and not finite[-1]
        torch.testing.assert_close(got[finite], expected[finite], rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the runs
@pytest.fixture(scope="module")
def params_runs():
    x, y, model = seeded_start("params")
    return train_setting(Combination("params", False, "sgd"), (x, y, model), EPOCHS), x, y


def test_the_lrs_the_epochs_and_the_limit(params_runs):
    runs, x, _ = params_runs
    limit = 2 / bowl_eigenvalues(x)[-1]  # numpy's eigenvalues of (2/n) FᵀF
    assert runs.limit == pytest.approx(limit, rel=1e-9) and not runs.limit_is_local
    assert 2e-5 in runs.lrs and runs.default_lr == 2e-5  # the blog's lr, exactly
    others = [lr for lr in runs.lrs if lr != 2e-5]
    assert len(others) == 24 and others[0] == pytest.approx(2e-6) and others[-1] == pytest.approx(2 * limit)
    np.testing.assert_allclose(np.diff(np.log(others)), np.log(others[1] / others[0]), rtol=1e-9)  # log-spaced
    epochs = runs.recorded_epochs
    assert len(epochs) == 60 and epochs[:3] == [0, 1, 2] and epochs[-1] == EPOCHS and epochs == sorted(set(epochs))


def test_each_run_is_its_single_run_and_its_losses_are_the_loss_of_its_coefficients(params_runs):
    runs, x, y = params_runs
    r = runs.lrs.index(2e-5)
    single = fit(seeded_start("params")[2], x, y, model_name="params", lr=2e-5, epochs=EPOCHS)
    torch.testing.assert_close(runs.coefficients[r, -1], single.coefficients[0], rtol=1e-5, atol=1e-6)
    assert runs.loss[r, -1].item() == pytest.approx(single.final_loss, rel=1e-5)
    features, targets = design(x), y.double().numpy().ravel()
    coefficients, losses = runs.coefficients.numpy(), runs.loss.double().numpy()
    finite = np.isfinite(losses)
    float64 = ((coefficients @ features.T - targets) ** 2).mean(axis=2)  # (R, T): the MSE of each recorded a, b, c
    np.testing.assert_allclose(losses[finite], float64[finite], rtol=1e-5)


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_a_diverged_run_diverged_at_the_epoch_its_single_run_says(model_name):
    """The page's "diverged at epoch K" is the single run's K (TrainLog.diverged_at: the first epoch whose loss,
    computed before its step, is inf/NaN), for every lr that overflowed, each against fit() with that lr."""
    x, y, model = seeded_start(model_name)
    runs = train_setting(Combination(model_name, False, "sgd"), (x, y, model), EPOCHS)
    diverged = [(lr, k) for lr, k in zip(runs.lrs, runs.diverged_at) if k is not None]
    assert diverged
    if model_name == "params":  # exactly those above 2/λmax
        assert [lr for lr, _ in diverged] == [lr for lr in runs.lrs if lr > runs.limit]
    else:  # the largest lr only: near the product's edge float32's rounding differences grow (docs/explorer.md)
        diverged = diverged[-1:]
    for lr, k in diverged:
        single = fit(seeded_start(model_name)[2], x, y, model_name=model_name, lr=lr, epochs=k + 5)
        assert single.log.diverged_at == k, lr


def test_the_bowl_and_the_paths_against_numpy(params_runs):
    runs, x, y = params_runs
    bowl = bowl_data(runs, runs.bowl.errors(runs.trained_coefficients.reshape(-1, 3)).reshape(len(runs.lrs), -1, 3))
    features = design(x)
    eigenvalues, eigenvectors = np.linalg.eigh(2 / len(features) * features.T @ features)
    optimum = polyfit(x, y)
    errors = (runs.trained_coefficients.numpy() - optimum) @ eigenvectors  # (R, T, 3), up to each vector's sign
    stable = [r for r, k in enumerate(runs.diverged_at) if k is None]
    # stored to 6 significant digits: within half a unit of the 6th
    np.testing.assert_allclose(np.abs(np.array(bowl["flat"], dtype=float)[stable]), np.abs(errors[stable][..., 0]),
                               rtol=5e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.array(bowl["steep"], dtype=float)[stable]), np.abs(errors[stable][..., 2]),
                               rtol=5e-6, atol=1e-9)
    sign_flat, sign_steep = (np.sign(v[np.argmax(np.abs(v))]) for v in (eigenvectors[:, 0], eigenvectors[:, 2]))
    for i, j in ((0, 0), (7, 31), (40, 40)):  # the slice's loss is the data's MSE at those (a, b, c)
        point = (optimum + sign_steep * bowl["grid_steep"][i] * eigenvectors[:, 2]
                 + sign_flat * bowl["grid_flat"][j] * eigenvectors[:, 0])
        mse = np.mean((features @ point - y.double().numpy().ravel()) ** 2)
        assert 10 ** bowl["grid_log10_loss"][i][j] == pytest.approx(mse, rel=2e-3)  # log10 to 4 digits: a colour


def test_the_products_end_point_limits_against_finite_differences():
    x, y, model = seeded_start("linear")
    runs = train_setting(Combination("linear", False, "sgd"), (x, y, model), EPOCHS)
    assert runs.limit_is_local
    r = runs.lrs.index(2e-5)
    single = fit(seeded_start("linear")[2], x, y, model_name="linear", lr=2e-5, epochs=EPOCHS)
    theta = np.array([single.trained[k].double().item() for k in
                      ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")])
    xs, ys = x.double().numpy().ravel(), y.double().numpy().ravel()

    def loss(t):
        return np.mean(((t[0] * xs + t[1]) * (t[2] * xs + t[3]) - ys) ** 2)

    h, step = np.zeros((4, 4)), 1e-4
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * step, np.eye(4)[j] * step
            h[i, j] = (loss(theta + e_i + e_j) - loss(theta + e_i - e_j) - loss(theta - e_i + e_j)
                       + loss(theta - e_i - e_j)) / (4 * step**2)
    assert runs.end_point_limits[r] == pytest.approx(2 / np.abs(np.linalg.eigvalsh(h)).max(), rel=1e-4)


def test_ctrl_c_stops_a_setting_and_no_page_is_claimed():
    x, y, model = seeded_start("params")
    assert train_setting(Combination("params", False, "sgd"), (x, y, model), 1000, signals=["SIGINT"]) is None


RISEN_EPOCHS = 3  # the lrs past the limit have not overflowed yet, but their loss rose


@pytest.fixture(scope="module")
def risen_page(tmp_path_factory):
    """A page of params+sgd for 3 epochs, and which of its lrs a float64 gradient descent written here says rose."""
    folder = tmp_path_factory.mktemp("risen")
    result = run_script("--explore", "page.html", "--model", "params", "--optimizer", "sgd", "--epochs", RISEN_EPOCHS,
                        "-q", "--metrics", "m.json", cwd=folder)
    assert result.returncode == 0, result.stderr
    setting = json.loads((folder / "m.json").read_text())["explorer"]["settings"][0]
    x, y, model = seeded_start("params")
    features = design(x)
    target, start = y.double().numpy().ravel(), np.array([float(p.detach()) for p in model.parameters()])
    rose = []
    for lr in setting["lrs"]:
        theta = start.copy()
        for _ in range(RISEN_EPOCHS):
            theta -= lr * 2 * features.T @ (features @ theta - target) / len(target)
        rose.append(bool(np.mean((features @ theta - target) ** 2) > np.mean((features @ start - target) ** 2)))
    assert any(rose) and not all(rose)
    return folder, result, setting, rose


def test_a_run_that_rose_without_overflowing_is_counted_as_diverged(risen_page):
    """They diverged, by the single run's rule, in the page's data and in the printed line."""
    _, result, setting, rose = risen_page
    assert (setting["inputs"], setting["diverged_at_epoch"]) == ("x", [None] * len(setting["lrs"]))
    assert setting["ended_above_start"] == setting["diverged"] == rose
    said = prose(result.stdout).split("params on z")[0]
    assert f"{sum(rose)} diverged (the smallest lr of them {min(np.array(setting['lrs'])[rose]):.3g})" in said, said


# ----------------------------------------------------------------------------- the command line
REFUSED = [
    (["--explore", "page.txt"], ".html"),
    (["--explore", "no/such/folder/page.html"], "does not exist"),
    (["--explore", "page.html", "--runs", "3", "--model", "params"], "--runs"),
    (["--explore", "page.html", "--lr", "1e-4"], "--lr"),
    (["--explore", "page.html", "--plot", "f.png"], "--plot"),
    (["--explore", "page.html", "--optimizer", "adam"], "adam"),
    (["--explore", "page.html", "--metrics", "page.html"], "same file"),
    (["--explore", "page.html", "--gradients", "autograd"], "--gradients autograd"),
    (["--explore", "page.html", "--log-interval", "5"], "--log-interval"),
    # the page's size follows from the settings: refused before training, not after (--epochs 5: quick if trained)
    (["--explore", "big.html", "--samples", "200000", "--epochs", "5", "--metrics", "m.json"], "--samples"),
]


@pytest.mark.parametrize("args,mentions", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refusals_in_one_line(args, mentions, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and mentions in err, err
    assert not list(tmp_path.iterdir())


def test_a_page_over_the_size_limit_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(explorer_page, "MAX_PAGE_BYTES", 1000)
    status = cli.main(["--explore", "page.html", "--model", "params", "--optimizer", "sgd", "--standardize",
                       "--epochs", "20", "-q", "--metrics", "m.json"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and "the limit of 1000 B" in err, err
    assert not list(tmp_path.iterdir())


def test_the_size_bound_holds_for_a_real_page(page):
    """The bound checked before training is at least the size of the page written after it."""
    folder, _, metrics = page
    size = (folder / "page.html").stat().st_size
    bound = page_size_bound(len(metrics["settings"]), 25, len(metrics["settings"][0]["recorded_epochs"]),
                            metrics["samples"])
    assert size <= bound < size + 2 * 2**20


def test_the_options_narrow_the_page(capsys):
    settings = parse_args(["--explore", "p.html", "--model", "linear", "--standardize", "--optimizer", "sgd"])
    request = settings.explore
    assert (request.models, request.standardizations, request.optimizers) == (("linear",), (True,), ("sgd",))
    everything = parse_args(["--explore", "p.html"]).explore
    assert everything.models == ("params", "linear") and everything.standardizations == (False, True)
    assert everything.optimizers == ("sgd", "momentum") and everything.epochs is None


# ----------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer")
    result = run_script("--explore", "page.html", "--metrics", "m.json", "--epochs", EPOCHS, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, result, json.loads((folder / "m.json").read_text())["explorer"]


def test_the_page_is_one_file_with_the_metrics_numbers(page):
    folder, result, metrics = page
    html = (folder / "page.html").read_text(encoding="utf-8")
    assert (folder / "page.html").stat().st_size <= MAX_PAGE_BYTES
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", html)  # plotly.js is inline, not from a CDN
    embedded = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)[1]
    assert json.loads(embedded)["explorer"] == metrics
    assert [(s["model"], s["inputs"], s["optimizer"]) for s in metrics["settings"]] == [
        (m, i, o) for m in ("params", "linear") for i in ("x", "z") for o in ("sgd", "momentum")]
    x, y, _ = seeded_start("params")
    floor = lstsq_loss(x, y)
    assert metrics["least_squares"]["loss"] == pytest.approx(floor, rel=1e-9)
    for setting in metrics["settings"]:
        last = [row[-1] for row in setting["loss"]]
        assert setting["within_1pct_of_least_squares"] == [v is not None and v <= 1.01 * floor for v in last]
        assert setting["ended_above_start"] == [v is not None and v > setting["start_loss"] for v in last]
        assert [v is None for v in last] == [k is not None for k in setting["diverged_at_epoch"]]
    text = prose(result.stdout.split("explorer written to")[0])
    lines = re.split(r"(?=\b(?:params|linear) on [xz], )", text)[1:]  # one claim per setting
    assert len(lines) == len(metrics["settings"])
    for setting, line in zip(metrics["settings"], lines):
        gone = [k is not None or rose for k, rose in zip(setting["diverged_at_epoch"], setting["ended_above_start"])]
        assert setting["diverged"] == gone
        diverged = [lr for lr, g in zip(setting["lrs"], gone) if g]
        assert f"{len(setting['lrs'])} lrs x {EPOCHS} epochs" in line and f"= {setting['limit']:.3g} (" in line
        if setting["start_limit"] is not None:
            assert f"at the balanced fit, {setting['start_limit']:.3g} at the start)" in line
        said = f"{len(diverged)} diverged (the smallest lr of them {min(diverged):.3g})" if diverged else "none"
        assert said in line, line
    assert f"explorer written to page.html ({(folder / 'page.html').stat().st_size / 2**20:.1f} MB)" in result.stdout




# ----------------------------------------------------------------------------- a signal keeps what is finished
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_after_the_first_setting_writes_the_finished_ones_marked_partial(signum, status, tmp_path):
    """Stepped by the program's own output: its line for the first setting is printed once that setting is done;
    the signal is sent on reading it, while a later one trains (on a busy machine it may land a setting later).
    The page and the metrics hold exactly the settings whose lines were printed, marked partial."""
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--explore", "page.html", "--metrics", "m.json",
                                "--model", "linear", "--epochs", "20000"], cwd=tmp_path, env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    assert first.startswith("linear on x, plain SGD: 25 lrs x 20000 epochs"), first
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status and "Traceback" not in stderr, stderr
    metrics = json.loads((tmp_path / "m.json").read_text())["explorer"]
    labels = {("x", "sgd"): "linear on x, plain SGD", ("x", "momentum"): "linear on x, SGD with momentum 0.9",
              ("z", "sgd"): "linear on z, plain SGD", ("z", "momentum"): "linear on z, SGD with momentum 0.9"}
    kept = [labels[s["inputs"], s["optimizer"]] for s in metrics["settings"]]
    printed = [label for label in labels.values() if f"{label}: 25 lrs" in prose(first + stdout)]
    assert metrics["partial"] is True and kept == printed and 1 <= len(kept) < 4, (kept, printed)
    stopped = list(labels.values())[len(kept)]
    count = f"{len(kept)} setting{'s' if len(kept) > 1 else ''}"
    assert f"interrupted while training {stopped}: the page holds the {count} already trained" in prose(stderr)
    html = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "this page holds only the settings that had finished" in html
    assert re.search(r"explorer written to page\.html \([0-9.]+ MB, partial\)", stdout), stdout
    assert "metrics written to m.json, partial" in stdout


# ----------------------------------------------------------------------------- the committed page's limits
def committed_settings():
    html = (Path(__file__).resolve().parent.parent / "docs" / "explorer.html").read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)[1]
    return json.loads(data)["explorer"]["settings"]


def test_the_committed_pages_limits_against_its_runs():
    """Plain SGD: no run below the page's limit diverged (exact for params, at the balanced fit for the product),
    every run above it diverged or settled at the edge (2/λmax at its end is its lr, to 1%), or never reached
    least squares. The product's limit at the start does not predict: runs below it diverged."""
    below_start = 0
    for s in committed_settings():
        runs = list(zip(s["lrs"], s["diverged"], s["within_1pct_of_least_squares"], s["end_point_limits"] or
                        [None] * len(s["lrs"])))
        if s["optimizer"] == "sgd":
            assert not [lr for lr, gone, _, _ in runs if lr < s["limit"] and gone], s["model"]
        for lr, gone, near, end in runs:
            if lr > s["limit"] and not gone and near:  # reached least squares above the limit: at the edge
                assert end is not None and abs(end / lr - 1) <= 0.01, (s["model"], lr)
        assert s["limit_where"] == ("exact" if s["model"] == "params" else "the balanced fit")
        if s["model"] == "linear":
            below_start += sum(lr < s["start_limit"] and gone for lr, gone, _, _ in runs)
            assert s["at_edge"] == [bool(near and not gone and end is not None and abs(end / lr - 1) <= 0.01)
                                    for lr, gone, near, end in runs]
    assert below_start > 0
