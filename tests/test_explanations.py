"""Explanations that fit their case: the cause of a divergence named for the model and the steps
taken, the remedy not the option already in use, comparisons and numbers as they are."""
import json
import re

import numpy as np
from conftest import prose, run_main, seeded_data


def test_a_minibatch_divergence_of_the_constant_hessian_model_blames_one_points_curvature(tmp_path, capsys):
    result = run_main(capsys, "--model", "params", "--standardize", "--batch-size", 1, "--lr", 0.3, "--epochs", 200,
                        "-q", "--no-plot", cwd=tmp_path)
    assert result.returncode == 1
    x, _ = seeded_data(0)
    z = ((x - x.mean()) / x.std()).double().numpy().ravel()
    point = max(2 * (v**4 + v**2 + 1) for v in z)  # one point's MSE (phi.theta - y)^2 has Hessian 2 phi phi^T
    stated = re.search(r"one point's loss up to (\S+), a limit of (\S+)", prose(result.stderr))
    assert stated and float(stated[1]) == np.float64(float(f"{point:.3g}"))
    assert float(stated[2]) == float(f"{2 / point:.3g}") < 0.3
    assert "the Hessian grew" not in result.stderr  # this model's Hessian is the same everywhere


def test_lbfgs_at_its_default_lr_is_told_to_standardize_not_to_use_that_lr(tmp_path, capsys):
    result = run_main(capsys, "--x-range", "-1e3", "1e3", "--optimizer", "lbfgs", "-q", "--no-plot", cwd=tmp_path)
    assert result.returncode == 1 and "--standardize" in result.stderr and "--lr 1" not in result.stderr


def test_the_comparison_says_later_when_linear_is_slower(tmp_path, capsys):
    result = run_main(capsys, "--model", "both", "--optimizer", "momentum", "--standardize", "-q", "--no-plot",
                        "--metrics", "m.json", cwd=tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    floor = metrics["params"]["least_squares"]["loss"]
    near = 1.01 * floor + 1e-6 * float(np.mean(seeded_data(0)[1].double().numpy() ** 2))
    first = {m: next(e for e, v in metrics[m]["loss_history"] if v <= near) for m in ("params", "linear")}
    ratio = first["params"] / first["linear"]
    words = f"{ratio:.1f} times sooner" if ratio >= 1 else f"{1 / ratio:.1f} times later"
    assert f"linear got there {words}" in result.stdout


def test_a_final_loss_below_the_float64_floor_is_called_rounding(tmp_path, capsys):
    result = run_main(capsys, "--optimizer", "adam", "-q", "--no-plot", "--metrics", "m.json", cwd=tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    below = metrics["final_loss"] < metrics["least_squares"]["loss"]
    assert ("float32's rounding, not a better fit" in prose(result.stdout)) == below


def test_a_huge_loss_is_printed_in_significant_digits(tmp_path, capsys):
    result = run_main(capsys, "--optimizer", "lbfgs", "--noise", "1e18", "-q", "--no-plot", cwd=tmp_path)
    printed = re.search(r"final loss (\S+); least-squares loss (\S+),", result.stdout)
    assert all(len(v) <= 14 for v in printed.groups()), printed.groups()
    assert float(printed[1]) > 1e30


def test_a_noise_free_sweep_times_the_runs_that_reach_the_exact_fit(tmp_path, capsys):
    result = run_main(capsys, "--lr-sweep", 6, "--noise", 0, "--model", "linear", "--standardize", "--epochs", 2000,
                        "-q", "--no-plot", "--metrics", "s.json", cwd=tmp_path)
    sweep = json.loads((tmp_path / "s.json").read_text())["lr_sweep"]
    reached = [e for e, bad in zip(sweep["epochs_to_1pct"], sweep["diverged"]) if not bad]
    assert reached and reached[0] is not None  # the smallest lr gets to the exact fit within 2000 epochs
    lo, hi = sweep["edge_bracket"]
    assert f"{hi:.4g} did ({100 * (hi / lo - 1):.2g}% above it)" in prose(result.stdout)


def test_a_last_step_that_overflows_is_a_divergence_not_a_diagnosis(tmp_path, capsys):
    # every logged loss is finite (the loss is logged before each step); the step of the only epoch overflows
    result = run_main(capsys, "--model", "linear", "--optimizer", "adam", "--lr", "1e30", "--epochs", 1, "-q",
                        "--no-plot", "--metrics", "m.json", cwd=tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert metrics["diverged"] and metrics["final_loss"] is None  # strict JSON: inf is written as null
    assert "after 1 epoch the loss is inf/NaN" in result.stderr
