"""What the explanations say, held to their assumptions: the slowest direction and its pace at any lr, a count
for a factor within 1e-16 of 1, float32 named as a cause only where exact arithmetic ends closer, counts with
their noun in the right number, and prose wrapped at 100 columns without splitting a formula."""
import re

import numpy as np
import pytest
import torch
from conftest import design, metrics_of, prose, run_main, seeded_data

import quadratic_regression as qr
from beyond_the_blog.models import MODELS
from beyond_the_blog.report.words import approx, count, subject, times, wrapped


def inputs_of(metrics, x):
    """x, or z = (x - mean)/std in float32 as the run computed it."""
    if "standardization" not in metrics:
        return x.numpy().ravel()
    scale = metrics["standardization"]
    return ((x - scale["mean"]) / scale["std"]).numpy().ravel()


def epochs_by_loop(rate):
    """Epochs for an error multiplied by `rate` each epoch to fall 1000-fold, counted one epoch at a time."""
    error, epochs = 1.0, 0
    while error > 1e-3:
        error, epochs = error * rate, epochs + 1
    return epochs


@pytest.mark.parametrize("args", [("--standardize", "--lr", "0.4"), ("--standardize", "--lr", "0.2"), ()])
def test_the_slowest_direction_is_the_largest_factor_and_its_count_a_loops(args, tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--model", "params", "--epochs", 1, "-q", *args)
    x, _ = seeded_data()
    features = design(inputs_of(metrics, x))
    eigenvalues, eigenvectors = np.linalg.eigh(2 / len(features) * features.T @ features)
    factors = np.abs(1 - metrics["lr"] * eigenvalues)
    slowest = int(np.argmax(factors))
    said = prose(out)
    name = "abc"[int(np.argmax(np.abs(eigenvectors[:, slowest])))]
    assert f"(mostly {name}:" in said
    printed = re.search(r"lr\*lambda_(min|max)\|? = ([\d.]+) per epoch: a 1000-fold error reduction takes (\S+) epochs",
                        said)
    assert printed[1] == ("min" if slowest == 0 else "max")
    assert float(printed[2]) == pytest.approx(factors[slowest], abs=1e-6)
    loop = epochs_by_loop(factors[slowest])  # the real count lies in (loop - 1, loop], printed to 3 digits
    assert abs(float(printed[3]) - loop) <= 1 + 5e-3 * loop
    assert (slowest == len(eigenvalues) - 1) == ("the steepest one" in said)


def test_a_factor_within_1e_16_of_one_still_gives_a_finite_count(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--model", "params", "--x-range", "-1e-3", "1e-3",
                                      "--epochs", 1, "-q")
    x, _ = seeded_data(x_range=(-1e-3, 1e-3))
    features = design(x)
    step = metrics["lr"] * np.linalg.eigvalsh(2 / len(features) * features.T @ features)[0]
    assert 1 - step == 1  # float64 rounds the factor to 1: only a log1p sees it
    said = prose(out)
    printed = re.search(r"1 - lr\*lambda_min = 1 - (\S+) per epoch: .* takes about (\S+) epochs", said)
    assert float(printed[1]) == pytest.approx(step, rel=0.05)
    # ln(1000) / -ln(1 - step), with -ln(1 - step) = step (1 + step/2 + ...) summed in float64 by hand
    assert float(printed[2]) == pytest.approx(np.log(1000) / step, rel=0.05)
    assert "inf" not in said


def plain_sgd(features, y, start, lr, epochs, dtype):
    """Plain full-batch gradient descent on the MSE of F theta, every number in `dtype`."""
    features, y, theta, lr = features.astype(dtype), y.astype(dtype), start.astype(dtype), dtype(lr)
    two_over_n = dtype(2 / len(y))
    for _ in range(epochs):
        theta = theta - lr * (two_over_n * (features.T @ (features @ theta - y)))
    return theta


@pytest.mark.parametrize("args", [("--x-range", "100", "114", "--standardize"), ("--lr", "1e-12"),
                                  ("--x-range", "-1e-3", "1e-3")])
def test_float32_is_named_the_cause_only_where_float64_ends_measurably_closer(args, tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--model", "params", "--epochs", 2000, "-q", *args)
    options = {"x_range": (float(args[1]), float(args[2]))} if args[0] == "--x-range" else {}
    torch.manual_seed(0)
    x, y = qr.make_data(**options)
    model = MODELS["params"].build()  # the start, drawn after the data as a run draws it
    start = np.array([getattr(model, k).item() for k in "abc"])
    features32 = design(inputs_of(metrics, x)).astype(np.float32)
    targets = y.numpy().ravel()
    optimum = np.linalg.lstsq(features32.astype(np.float64), targets.astype(np.float64), rcond=None)[0]
    ends = {t: plain_sgd(features32, targets, start, metrics["lr"], 2000, t) for t in (np.float32, np.float64)}
    left = {t: np.abs(end.astype(np.float64) - optimum).max() for t, end in ends.items()}
    closer = left[np.float64] < 0.99 * left[np.float32]
    said = prose(out)
    assert ("float32 stopped it there" in said) == closer, left
    assert ("not float32, kept it there" in said) == (not closer and "round away in float32" in said)


def test_words_agree_with_their_counts():
    assert [count(1, "epoch"), count(2, "epoch"), count(0, "run"), count("about 1.9e18", "epoch")] == \
        ["1 epoch", "2 epochs", "0 runs", "about 1.9e18 epochs"]
    assert subject(["b"], "no longer moves", "no longer move") == "b no longer moves"
    assert subject(["a", "b"], "no longer moves", "no longer move") == "a, b no longer move"
    assert [approx(23.31), approx(148.07), approx(518123.0), approx(1.87e18)] == ["23.3", "148", "518000",
                                                                                  "about 1.9e18"]
    assert [times(1442.3), times(1.0236e13), times(1.5)] == ["1442 times", "about 1e13 times", "1.5 times"]


def test_a_huge_standardizing_ratio_reads_as_a_power_of_ten(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--model", "params", "--x-range", "100", "114",
                                      "--standardize", "--epochs", 1, "-q")
    printed = re.search(r"on raw x it would be (\S+): standardizing made it about (\d+(?:\.\d)?)e(\d+) times smaller",
                        prose(out))
    x, _ = seeded_data(x_range=(100.0, 114.0))
    raw = np.linalg.cond(design(x)) ** 2  # the Hessian (2/n) F^T F squares the design's condition number
    ratio = raw / metrics["diagnosis"]["condition_number"]
    assert float(printed[2]) * 10 ** int(printed[3]) == pytest.approx(ratio, rel=0.1)


def test_wrapping_keeps_a_formula_whole_and_a_number_with_its_unit():
    line = "  " + "word " * 17 + "(1 - lr*lambda)^k and then 60 s more, update / half-gap = 0.5"
    for width_shift in range(12):  # the formula and the unit land at every place of the line in turn
        text = wrapped("w" * width_shift + line)
        assert "(1 - lr*lambda)^k" in text and "60 s" in text and "update / half-gap = 0.5" in text, text
        assert all(len(row) <= 100 for row in text.splitlines())


COMMANDS = [(*model, "--optimizer", optimizer, *scale)
            for model in (("--model", "params"), ("--model", "linear")) for optimizer in ("sgd", "momentum", "adam",
                                                                                        "lbfgs")
            for scale in ((), ("--standardize",))] + [
    ("--model", "both"), ("--runs", "3"), ("--runs", "2", "--model", "linear"), ("--lr-sweep", "5"),
    ("--lr-sweep", "5", "--model", "linear", "--standardize"), ("--model", "params", "--epochs", "1")]
TABLE_ROW = re.compile(r"\S {2,}\S.* {2,}\S")  # aligned columns: two gaps of two spaces or more inside the line
SPLIT = re.compile(r"(\s[=+\-/*^]$)|(^\s*[=+\-/*^]\s)")


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_printed_prose_fits_100_columns_and_splits_no_formula(args, tmp_path, capsys):
    epochs = () if "--epochs" in args else ("--epochs", "30")
    result = run_main(capsys, *args, *epochs, "--no-plot", "-q", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    for line in result.stdout.splitlines():
        assert len(line) <= 100 or TABLE_ROW.search(line.strip()), line
        assert not SPLIT.search(line), line
        assert not re.search(r"(?<![\d.])1 (epochs|frames|runs|lrs|rows|points|times)\b", line), line
