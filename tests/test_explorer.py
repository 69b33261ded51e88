"""--explore: the batched gradients by hand against autograd's replicas; the explorer's runs against single runs,
numpy's eigenvalues and float64 losses; its refusals; and the page itself, opened in a real browser (headless
Chromium driven by selenium): no console error, "diverged" past the limit, the readout equal to the metrics."""
import contextlib
import copy
import io
import json
import re
import shutil
import time

import numpy as np
import pytest
import torch
from conftest import bowl_eigenvalues, design, fit, lstsq_loss, polyfit, prose, run_script, seeded_start

import quadratic_regression as qr
from beyond_the_blog import cli
from beyond_the_blog.cli.options import parse_args
from beyond_the_blog.many_runs.explorer_runs import Combination, train_setting
from beyond_the_blog.many_runs.replicas import Replicas
from beyond_the_blog.many_runs.sweep import SweepLosses, predicted_limit
from beyond_the_blog.optimizers import OPTIMIZERS
from beyond_the_blog.report import explorer_page
from beyond_the_blog.report.explorer_page import MAX_PAGE_BYTES, bowl_data
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


def test_a_diverged_run_diverged_where_its_single_run_does(params_runs):
    """Diverged at epoch K: the loss after K epochs is inf/NaN, after K - 1 it was not. A single run's monitor
    sees it one epoch later (its loss at epoch k is the loss before step k)."""
    runs, x, y = params_runs
    diverged = [(lr, k) for lr, k in zip(runs.lrs, runs.diverged_at) if k is not None]
    assert [lr for lr, _ in diverged] == [lr for lr in runs.lrs if lr > runs.limit]  # exactly those above 2/λmax
    for lr, k in diverged:
        single = fit(seeded_start("params")[2], x, y, model_name="params", lr=lr, epochs=k + 5)
        assert single.log.diverged_at == k + 1, lr


def test_the_bowl_and_the_paths_against_numpy(params_runs):
    runs, x, y = params_runs
    bowl = bowl_data(runs, runs.bowl.errors(runs.trained_coefficients.reshape(-1, 3)).reshape(len(runs.lrs), -1, 3))
    features = design(x)
    eigenvalues, eigenvectors = np.linalg.eigh(2 / len(features) * features.T @ features)
    optimum = polyfit(x, y)
    errors = (runs.trained_coefficients.numpy() - optimum) @ eigenvectors  # (R, T, 3), up to each vector's sign
    stable = [r for r, k in enumerate(runs.diverged_at) if k is None]
    np.testing.assert_allclose(np.abs(np.array(bowl["flat"])[stable]), np.abs(errors[stable][..., 0]),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.array(bowl["steep"])[stable]), np.abs(errors[stable][..., 2]),
                               rtol=1e-6, atol=1e-9)
    sign_flat, sign_steep = (np.sign(v[np.argmax(np.abs(v))]) for v in (eigenvectors[:, 0], eigenvectors[:, 2]))
    for i, j in ((0, 0), (7, 31), (40, 40)):  # the slice's loss is the data's MSE at those (a, b, c)
        point = (optimum + sign_steep * bowl["grid_steep"][i] * eigenvectors[:, 2]
                 + sign_flat * bowl["grid_flat"][j] * eigenvectors[:, 0])
        mse = np.mean((features @ point - y.double().numpy().ravel()) ** 2)
        assert 10 ** bowl["grid_log10_loss"][i][j] == pytest.approx(mse, rel=1e-6)


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


@pytest.mark.xdist_group("explorer")
def test_the_page_draws_a_run_that_rose_as_diverged(risen_page):
    """Panel (d) of the page in a browser: the runs that rose are drawn as diverged, the others as not."""
    from selenium.webdriver.common.by import By
    folder, _, setting, rose = risen_page
    with opened(folder / "page.html") as driver:
        slider = driver.find_element(By.ID, "lr-slider")
        driver.execute_script("arguments[0].value = arguments[0].max; arguments[0].dispatchEvent(new Event('input'))",
                              slider)
        assert driver.find_element(By.ID, "readout-status").text == \
            "diverged: its loss ended above its start (without overflowing float32)"
        traces = json.loads(driver.find_element(By.ID, "explorer-traces").get_attribute("textContent"))
        drawn = driver.execute_script("return document.getElementById('explorer-plot').data.map("
                                      "(t) => ({x: Array.from(t.x || []), y: Array.from(t.y || []), text: t.text}))")
        lrs = setting["lrs"]
        assert drawn[traces["final_losses"]]["x"] == [lr for lr, r in zip(lrs, rose) if not r]
        assert drawn[traces["diverged"]]["x"] == [lr for lr, r in zip(lrs, rose) if r]
        assert all(t.startswith("ended above its start") for t in drawn[traces["diverged"]]["text"])
        assert drawn[traces["chosen_lr"]] == {"x": [lrs[-1]], "y": [setting["start_loss"]], "text": None}


# ----------------------------------------------------------------------------- the command line
REFUSED = [
    (["--explore", "page.txt"], ".html"),
    (["--explore", "no/such/folder/page.html"], "does not exist"),
    (["--explore", "page.html", "--runs", "3", "--model", "params"], "--runs"),
    (["--explore", "page.html", "--lr", "1e-4"], "--lr"),
    (["--explore", "page.html", "--plot", "f.png"], "--plot"),
    (["--explore", "page.html", "--optimizer", "adam"], "adam"),
    (["--explore", "page.html", "--metrics", "page.html"], "same file"),
]


@pytest.mark.parametrize("args,mentions", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refusals_in_one_line(args, mentions, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and mentions in err, err
    assert not list(tmp_path.iterdir())


def test_a_page_over_the_size_limit_is_not_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(explorer_page, "MAX_PAGE_BYTES", 1000)
    status = cli.main(["--explore", "page.html", "--model", "params", "--optimizer", "sgd", "--standardize",
                       "--epochs", "20", "-q"])
    err = capsys.readouterr().err
    assert status == 74 and len(err.splitlines()) == 1 and "the limit of 1000 B" in err, err
    assert not list(tmp_path.iterdir())


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
        said = f"{len(diverged)} diverged (the smallest lr of them {min(diverged):.3g})" if diverged else "none"
        assert said in line, line
    assert f"explorer written to page.html ({(folder / 'page.html').stat().st_size / 2**20:.1f} MB)" in result.stdout


def browser():
    """Headless Chromium through selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


def wait_for(condition, seconds=30):
    """Poll until condition() is true (a page on a busy machine draws late); False if it never is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def opened(page_path):
    """The page in headless Chromium, once its script has filled the readout; no console error by the end."""
    from selenium.webdriver.common.by import By
    driver = browser()
    try:
        driver.get(page_path.as_uri())
        assert wait_for(lambda: driver.find_element(By.ID, "readout-loss").text != ""), \
            "the script never filled the readout"
        yield driver
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()


@pytest.mark.xdist_group("explorer")
def test_the_page_in_a_browser(page):
    from matplotlib.image import imread
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select
    folder, _, metrics = page
    with opened(folder / "page.html") as driver:
        def text(element_id):
            return driver.find_element(By.ID, element_id).text

        setting = metrics["settings"][0]  # params on x, plain SGD: the page opens on it, at the blog's lr
        assert text("readout-lr") == "0.00002" and text("readout-epoch") == str(EPOCHS)
        driver.find_element(By.ID, "lr-slider").send_keys(Keys.END)  # the largest lr: twice the limit
        assert text("readout-status") == f"diverged at epoch {setting['diverged_at_epoch'][-1]}: its loss " \
                                         "overflowed float32 (inf/NaN)"
        assert "above it" in text("lr-value")
        driver.find_element(By.ID, "lr-slider").send_keys(Keys.HOME)  # the smallest lr
        epoch_slider = driver.find_element(By.ID, "epoch-slider")
        epoch_slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 7)
        assert text("readout-epoch") == str(setting["recorded_epochs"][7])
        assert float(text("readout-loss")) == float(f"{setting['loss'][0][7]:.7g}")
        assert text("readout-coefficients") == ", ".join(f"{n} = {setting[n][0][7]:.4f}" for n in "abc")
        for select, value in (("model-select", "linear"), ("inputs-select", "z"), ("optimizer-select", "momentum")):
            Select(driver.find_element(By.ID, select)).select_by_value(value)
        chosen = metrics["settings"][-1]
        assert text("readout-setting") == "linear on z, SGD with momentum 0.9"
        assert float(text("readout-lr")) == pytest.approx(chosen["default_lr"], rel=1e-5)
        last = chosen["lrs"].index(chosen["default_lr"])
        assert float(text("readout-loss")) == float(f"{chosen['loss'][last][-1]:.7g}")
        driver.find_element(By.ID, "play").click()  # from the first epoch on
        assert wait_for(lambda: int(epoch_slider.get_attribute("value")) >= 3)
        driver.find_element(By.ID, "play").click()  # pause
        shown = int(epoch_slider.get_attribute("value"))
        assert text("readout-epoch") == str(chosen["recorded_epochs"][shown])
        pixels = imread(io.BytesIO(driver.get_screenshot_as_png()), format="png")
        colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
        assert len(colours) > 100, f"a blank page: {len(colours)} colours"
