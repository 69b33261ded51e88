"""Issue 9, item 2: --lr-sweep. The limits are checked against numpy's eigenvalues of the bowl, the
vectorized sweep against single runs with the same learning rates."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import fit, run_script
from torch import nn

import quadratic_regression as qr
from beyond_the_blog import lr_sweep, model_registry, sweep_report
from beyond_the_blog.replications import Replicas, SummedRunLosses
from beyond_the_blog.report import first_epoch_within


def largest_eigenvalue(inputs):
    z = inputs.double().numpy().ravel()
    features = np.stack([z**2, z, np.ones_like(z)], axis=1)
    return np.linalg.eigvalsh(2 / len(z) * features.T @ features)[-1]


def seeded(model_name, seed=0):
    torch.manual_seed(seed)
    x, y = qr.make_data()
    return x, y, model_registry.make_model(model_name)


def test_params_measured_edge_is_2_over_lambda_max_within_3_percent_for_seeds_0_to_9():
    # 1000 epochs tell the two sides apart: 1% above the limit the steepest error grows by |1 - lr λ| = 1.02
    # per epoch (4e8-fold in 1000 epochs), 1% below it shrinks by 0.98
    for seed in range(10):
        x, y, model = seeded("params", seed)
        result = lr_sweep.sweep(qr.train, "params", model, x, y, 16, epochs=1000)
        theory = 2 / largest_eigenvalue(x)
        assert result.predicted_edge == pytest.approx(theory, rel=1e-9)
        assert abs(result.measured_edge / theory - 1) <= 0.03, (seed, result.measured_edge, theory)
        lo, hi = result.edge_bracket
        assert lo == result.measured_edge and hi / lo <= 1.01 + 1e-12  # pinned down to 1%


@pytest.mark.parametrize("optimizer,standardize,factor", [("momentum", False, 1.9), ("sgd", True, 1.0)])
def test_momentum_and_standardized_edges(optimizer, standardize, factor):
    x, y, model = seeded("params")
    result = lr_sweep.sweep(qr.train, "params", model, x, y, 16, optimizer=optimizer, epochs=1500,
                            standardize=standardize)
    inputs = (x - x.mean()) / x.std() if standardize else x
    theory = 2 * factor / largest_eigenvalue(inputs)  # momentum: 2(1 + beta)/lambda_max, beta 0.9
    assert result.predicted_edge == pytest.approx(theory, rel=1e-9)
    assert abs(result.measured_edge / theory - 1) <= 0.03


@pytest.mark.parametrize("model_name,optimizer", [("params", "sgd"), ("linear", "sgd"), ("params", "momentum")])
def test_the_sweep_equals_single_runs_with_those_lrs(model_name, optimizer):
    torch.manual_seed(0)
    x, y = qr.make_data()
    after = torch.get_rng_state()  # each single run draws the same start as the sweep's model
    model = model_registry.make_model(model_name)
    least = float(np.mean((np.polyval(np.polyfit(x.numpy().ravel(), y.numpy().ravel(), 2), x.numpy().ravel())
                           - y.numpy().ravel()) ** 2))
    lrs = [2e-5, 1.5e-4, 3e-3]  # the last one diverges: it must not touch the others
    run = lr_sweep.train_sweep(qr.train, model, x, y, lrs, optimizer, 600, least, record_interval=10)
    assert run.diverged.tolist() == [False, False, True]
    for i, lr in enumerate(lrs[:2]):
        torch.set_rng_state(after)
        single = fit(model_registry.make_model(model_name), x, y, model_name=model_name, optimizer=optimizer,
                     lr=lr, epochs=600, record_interval=10)
        assert run.final_loss[i].item() == pytest.approx(single.final_loss, rel=1e-5)
        assert run.epochs_to_1pct[i] == first_epoch_within(single.log.history, least, 0.01)


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("per_run_inputs", [False, True])
def test_replicas_run_the_models_own_forward_with_vmaps_bits(model_name, per_run_inputs):
    """No vmap for the blog's two models (the speed of --runs and the sweep rests on it), the same predictions,
    for one input shared by all runs and for each run's own (minibatches)."""
    x, _, _ = seeded(model_name)
    models = [model_registry.make_model(model_name) for _ in range(4)]
    inputs = torch.stack([x[torch.randperm(len(x))[:10]] for _ in models]) if per_run_inputs else x
    replicas = Replicas(models)
    replicas(inputs)  # the first call decides
    assert replicas.direct is True
    assert torch.equal(replicas(inputs), replicas.mapped_forward(inputs))


def test_sweep_losses_give_each_run_its_own_gradient():
    torch.manual_seed(1)
    out, target = torch.randn(5, 100, 1, requires_grad=True), torch.randn(5, 100, 1)
    gradients = []
    for criterion in (lr_sweep.SweepLosses(), SummedRunLosses()):
        out.grad = None
        criterion(out, target).backward()
        gradients.append(out.grad.clone())
    single = torch.func.vmap(torch.func.grad(lambda o, t: nn.functional.mse_loss(o, t)))(out.detach(), target)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(gradients[0], single, rtol=1e-6, atol=1e-9)


def test_a_pilot_places_the_linear_window_and_changes_the_cost_not_the_answer(monkeypatch):
    """The product's local prediction misses its limit: a pilot at a twentieth of the epochs places the window,
    and one computation pins the limit to 1%, where the window around the prediction needs a second one."""
    results, original = [], lr_sweep.edge_window
    for use_pilot in (True, False):
        if not use_pilot:  # edge_window as for an exact prediction: around it, no pilot
            monkeypatch.setattr(lr_sweep, "edge_window", lambda *args: original(*args[:6], False, *args[7:]))
        x, y, model = seeded("linear")
        results.append(lr_sweep.sweep(qr.train, "linear", model, x, y, 32, epochs=3000))
    with_pilot, without = results
    assert with_pilot.window_from_pilot and with_pilot.pilot_epochs == 150 and with_pilot.vectorized_runs == 1
    assert without.pilot_epochs is None and without.vectorized_runs == 2
    lo, hi = with_pilot.edge_bracket
    assert hi / lo <= 1.01 + 1e-12 and not 0.9 <= lo / with_pilot.predicted_edge <= 1.1  # far from the prediction
    assert with_pilot.edge_bracket == without.edge_bracket and with_pilot.measured_edge == without.measured_edge


def test_an_interrupted_sweep_calls_its_limit_provisional(capsys):
    x, y, model = seeded("params")
    result = lr_sweep.sweep(qr.train, "params", model, x, y, 8, epochs=2000, signals=["SIGINT"])  # Ctrl-C at once
    assert result.stop_reason == "interrupted" and result.vectorized_runs == 1
    sweep_report.print_sweep(result)
    assert "measured limit (provisional: training was interrupted)" in capsys.readouterr().out


def test_linear_prediction_is_local_and_said_so(tmp_path):
    result = run_script("--model", "linear", "--lr-sweep", "8", "--epochs", "400", "--metrics", "m.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "local: from the Hessian at the start" in result.stdout
    sweep = json.loads((tmp_path / "m.json").read_text())["lr_sweep"]
    assert sweep["edge_is_local"] is True
    window = sweep["refined"][0]["lrs"]  # 8 lrs: the pilot's bracket is too wide for 63 steps of 1%
    said = re.search(r"with (\d+) more, ([\d.]+)% apart, inside the bracket that a pilot found", result.stdout)
    assert said and int(said[1]) == len(window) and float(said[2]) == pytest.approx(100 * (window[1] / window[0] - 1),
                                                                                      rel=0.05)
    assert (tmp_path / "quadratic_regression_linear_sweep.png").stat().st_size > 10_000  # the default name


def test_sweep_on_the_command_line(tmp_path):
    result = run_script("--lr-sweep", "12", "--epochs", "800", "--metrics", "m.json", "--plot", "s.png",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    sweep = metrics["lr_sweep"]
    assert {"lrs", "final_loss", "diverged", "epochs_to_1pct", "predicted_edge", "measured_edge"} <= set(sweep)
    lrs = np.array(sweep["lrs"])
    assert len(lrs) == 12 and lrs[0] == pytest.approx(2e-6) and lrs[-1] == pytest.approx(2 * sweep["predicted_edge"])
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(lrs[1] / lrs[0]))  # log-spaced
    assert sweep["diverged"][-1] is True and sweep["final_loss"][-1] is None  # strict JSON: NaN is null
    assert f"measured limit {sweep['measured_edge']:.4g}" in result.stdout
    from matplotlib.image import imread
    assert imread(tmp_path / "s.png").shape[1] > 800


def test_sweep_figure_marks_the_theory(tmp_path):
    from beyond_the_blog.why_figures import plot_sweep
    x, y, model = seeded("params")
    result = lr_sweep.sweep(qr.train, "params", model, x, y, 8, epochs=300)
    fig = plot_sweep(result, tmp_path / "s.png")
    loss_ax, speed_ax = fig.axes
    assert loss_ax.get_xscale() == loss_ax.get_yscale() == speed_ax.get_xscale() == "log"
    marks = {line.get_gid(): line.get_xdata()[0] for line in loss_ax.get_lines()
             if (line.get_gid() or "").startswith("mark")}
    z = x.double().numpy().ravel()
    features = np.stack([z**2, z, np.ones_like(z)], axis=1)
    lam = np.linalg.eigvalsh(2 / len(z) * features.T @ features)
    assert marks["mark:predicted limit 2/lambda_max"] == pytest.approx(2 / lam[-1])
    assert marks["mark:plain SGD's fastest 2/(lambda_min+lambda_max)"] == pytest.approx(2 / (lam[0] + lam[-1]))
    assert marks["mark:the blog's lr"] == 2e-5


@pytest.mark.parametrize("args,message", [
    (["--lr-sweep", "1"], "between 2 and"),
    (["--lr-sweep", "100000"], "between 2 and"),
    (["--lr-sweep", "8", "--optimizer", "adam"], "sgd or momentum"),
    (["--lr-sweep", "8", "--optimizer", "lbfgs"], "sgd or momentum"),
    (["--lr-sweep", "8", "--runs", "3"], "drop --runs"),
    (["--lr-sweep", "8", "--model", "both"], "drop --runs / --model both"),
    (["--lr-sweep", "8", "--lr", "1e-4"], "drop --animate / --tol / --lr"),
])
def test_sweep_refusals(tmp_path, args, message):
    result = run_script(*args, "--metrics", "m.json", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_benchmark_rows_for_the_sweep():
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.bench_lr_sweep(8, epochs=300, rounds=1)
    assert [r["model"] for r in rows] == ["params", "linear"]
    for r in rows:
        assert r["ratio_to_one_run"] == pytest.approx(r["sweep_seconds"] / r["single_run_seconds"])
        assert r["vectorized_runs"] >= 1 and r["single_run_seconds"] > 0
    x, _, _ = seeded("params")
    assert rows[0]["predicted_edge"] == pytest.approx(2 / largest_eigenvalue(x))
    table = bench.markdown_lr_sweep(rows)
    assert "### `--lr-sweep` against one run of the same epochs" in table
    assert all(f"| {r['model']} | 8 | 300 |" in table for r in rows)
