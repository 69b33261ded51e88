"""When training stops: --tol; momentum, Adam and L-BFGS once converged at their default epochs (the
rule --help states), replicated runs once every run has; an explicit --epochs and the blog's SGD
always run every epoch."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import fit, metrics_of, polyfit, run_main, run_script, seeded_data

from beyond_the_blog.cli import options as cli
from beyond_the_blog.many_runs.replicas import Replicas, replication_data
from beyond_the_blog.models import default_epochs
from beyond_the_blog.training import monitor


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
    result = fit(Replicas(models), x, ys, model_name="linear", standardize=True, tol=1e-7,
                 record_interval=10)
    assert result.log.stop_reason == "tol" and result.log.epochs_run < 1000


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("standardize", [False, True])
def test_lbfgs_stops_once_converged_at_least_squares_for_seeds_0_to_9(tmp_path, capsys, model_name, standardize):
    default = default_epochs("lbfgs", model_name, standardize)
    for seed in range(10):
        status, out, metrics = metrics_of(tmp_path, capsys, "--model", model_name, "--optimizer", "lbfgs",
                                          "--seed", seed, *(["--standardize"] if standardize else []))
        assert status == 0 and metrics["stop_reason"] == "converged", seed
        assert metrics["epochs_run"] < default and f"stopped at epoch {metrics['epochs_run']} of {default}" in out
        best = polyfit(*seeded_data(seed))
        assert np.abs([metrics["coefficients"][k] - best[i] for i, k in enumerate("abc")]).max() <= 0.01, seed


@pytest.mark.parametrize("optimizer,standardize", [("momentum", False), ("adam", False), ("momentum", True),
                                                   ("adam", True)])
def test_momentum_and_adam_stop_once_converged_at_least_squares(tmp_path, capsys, optimizer, standardize):
    status, _, metrics = metrics_of(tmp_path, capsys, "--model", "both", "--optimizer", optimizer, "--seed", 1,
                                    "-q", *(["--standardize"] if standardize else []))
    best = polyfit(*seeded_data(1))
    for name in ("params", "linear"):
        assert status == 0 and metrics[name]["stop_reason"] in ("converged", "epochs")
        assert np.abs([metrics[name]["coefficients"][k] - best[i] for i, k in enumerate("abc")]).max() <= 0.01
    assert "converged" in {metrics[name]["stop_reason"] for name in ("params", "linear")}


@pytest.mark.parametrize("args,data", [(("--optimizer", "momentum", "--lr", "1e-30"), {}),
                                       (("--optimizer", "adam", "--lr", "1e-8"), {}),
                                       (("--optimizer", "lbfgs", "--lr", "1e-12"), {}),
                                       (("--optimizer", "lbfgs", "--x-range", "0", "0.05"), {"x_range": (0, 0.05)}),
                                       (("--optimizer", "lbfgs", "--noise", "1e18"), {"noise": 1e18})])
def test_a_stop_far_from_least_squares_is_called_stalled_not_converged(tmp_path, capsys, args, data):
    status, out, metrics = metrics_of(tmp_path, capsys, *args, "-q")
    x, y = seeded_data(0, **data)
    distance = np.abs([metrics["coefficients"][k] - polyfit(x, y)[i] for i, k in enumerate("abc")]).max()
    assert status == 0 and distance > 0.01, distance  # the stop rule fired far from the optimum
    assert metrics["stop_reason"] == "stalled" and "converged" not in out.replace("not converged", "")
    assert f"stopped at epoch {metrics['epochs_run']} of " in out and "stalled, not converged" in out
    gap = re.search(r"a, b or c is (\S+) from", " ".join(out.split()))
    assert float(gap[1]) == pytest.approx(distance, rel=1e-2)


def test_explicit_epochs_and_the_blogs_sgd_run_every_epoch(tmp_path, capsys):
    status, _, metrics = metrics_of(tmp_path, capsys, "--optimizer", "lbfgs", "--epochs", "20", "-q")
    assert status == 0 and metrics["stop_reason"] == "epochs" and metrics["epochs_run"] == 20
    for args in ([], ["--standardize"], ["--model", "linear"]):  # plain sgd, the blog's: never stopped early
        assert not cli.parse_args(args).stop_when_converged
    assert cli.parse_args(["--optimizer", "adam", "--model", "both"]).stop_when_converged
    assert not cli.parse_args(["--optimizer", "adam", "--epochs", "6000"]).stop_when_converged


def test_converged_with_replications_waits_for_every_run(tmp_path, capsys):
    status, _, metrics = metrics_of(tmp_path, capsys, "--runs", "4", "--optimizer", "momentum", "--standardize",
                                    "-q")
    assert status == 0 and metrics["stop_reason"] == "converged" and metrics["epochs_run"] < 500
    assert metrics["replications"]["succeeded"] == [True] * 4
    rule = monitor.Converged(1e-7, 10)
    assert not rule(10, torch.tensor([1.0, 2.0]))
    assert not rule(20, torch.tensor([1.0, float("nan")]))  # a diverged run is not a settled one
    assert not rule(25, torch.tensor([1.0, 2.0]))           # between checks
    assert not rule(30, torch.tensor([1.0, 2.0]))           # (against the NaN)
    assert rule(40, torch.tensor([1.0, 2.0]))


def test_the_help_states_the_rule_the_code_applies(tmp_path, capsys):
    result = run_main(capsys, "--help", cwd=tmp_path)
    stated = re.search(r"changed by at most (\S+) \(relative\) over (\d+) epochs \(a tenth of a shorter run\), "
                       "whatever --log-interval is", " ".join(result.stdout.split()))
    assert float(stated[1]) == monitor.CONVERGED_RTOL
    span = int(stated[2])  # the span of a run of 1000 epochs or more; a tenth of a shorter one
    assert [monitor.stall_span(epochs) for epochs in (500, 999, 1000, 5000)] == [50, 99, span, span]
    assert monitor.convergence_rule("momentum", 500).span == 50  # the run's epochs set it, never its log interval
    for reason in ("epochs", "converged", "stalled", "tol", "diverged", "interrupted"):
        assert reason in cli.STOPPING
    assert "--gradients {autograd,manual}" in result.stdout and "--batch-size B" in result.stdout
