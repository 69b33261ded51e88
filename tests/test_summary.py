"""The five plain lines after the blog's output: where they stand, and each claim against numpy in float64."""
import re

import numpy as np
import pytest
from conftest import metrics_of, seeded_data

BLOG_PARAMETER_LINE = re.compile(r"^(a|b|c|linear[12]\.(weight|bias)) tensor\(")


def plain_lines(out):
    """The lines between the blog's last parameter line and the next blank line."""
    lines = out.splitlines()
    last = max(i for i, line in enumerate(lines) if BLOG_PARAMETER_LINE.match(line))
    end = lines.index("", last)
    return lines[last + 1:end]


def least_squares(x, y):
    """numpy's own fit and its mean squared error, in float64."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    coefficients = np.polyfit(x, y, 2)
    return coefficients, float(np.mean((np.polyval(coefficients, x) - y) ** 2))


def condition_number(inputs):
    features = np.stack([inputs ** 2, inputs, np.ones_like(inputs)], axis=1)
    eigenvalues = np.linalg.eigvalsh(2 / len(inputs) * features.T @ features)
    return eigenvalues, eigenvalues[-1] / eigenvalues[0]


def check_claims(lines, metrics, x, y):
    """Every number the lines state, recomputed here."""
    assert 1 <= len(lines) <= 5 and all(len(line) <= 100 for line in lines), lines
    fitted = np.array([metrics["coefficients"][k] for k in "abc"])
    best, floor = least_squares(x, y)
    distance = np.abs(fitted - best).max()
    head = lines[0]
    if "within" in head:
        assert distance <= 0.01
        assert float(re.search(r"within ([\d.e+-]+) of", head)[1]) == pytest.approx(distance, rel=0.05, abs=1e-6)
    else:
        found = re.search(r"([abc]) is still ([\d.e+-]+) away", head)
        assert found and distance > 0.01 and "abc"[int(np.abs(fitted - best).argmax())] == found[1]
        assert float(found[2]) == pytest.approx(distance, rel=0.01)
    final = metrics["final_loss"]
    for line in lines:
        if m := re.search(r"is ([\d.]+)% above the lowest possible, ([\d.]*\d)", line):
            assert float(m[2]) == pytest.approx(floor, abs=1e-6)
            assert float(m[1]) == pytest.approx(100 * (final - floor) / floor, abs=1e-4)
        if m := re.search(r"is ([\d.e+]+) times the lowest possible", line):
            assert float(m[1]) == pytest.approx(final / floor, rel=0.01)
        if "to float32's precision" in line:
            assert abs(final - floor) / floor < 1e-6
        if m := re.search(r"removes only ([\d.e+-]+)% of the error along the slowest direction \(mostly (\w)\)", line):
            eigenvalues, _ = condition_number(np.asarray(x, dtype=np.float64).ravel())
            rates = np.abs(1 - metrics["lr"] * eigenvalues)
            assert float(m[1]) == pytest.approx(100 * (1 - rates.max()), rel=0.05)
            vectors = np.linalg.eigh(condition_number_matrix(x))[1]
            assert "abc"[int(np.abs(vectors[:, int(rates.argmax())]).argmax())] == m[2]
        if m := re.search(r"condition number from ([\d.e+]+) to ([\d.e+]*\d)", line):
            raw = np.asarray(x, dtype=np.float64).ravel()
            z = (raw - raw.mean()) / raw.std(ddof=1)
            assert float(m[1]) == pytest.approx(condition_number(raw)[1], rel=0.05)
            assert float(m[2]) == pytest.approx(condition_number(z)[1], rel=0.05)


def condition_number_matrix(x):
    inputs = np.asarray(x, dtype=np.float64).ravel()
    features = np.stack([inputs ** 2, inputs, np.ones_like(inputs)], axis=1)
    return 2 / len(inputs) * features.T @ features


@pytest.mark.parametrize("args", [
    ("--model", "params", "--epochs", 3000),                       # far from least squares: slow, then the fix
    ("--model", "linear", "--lr", 2e-4, "--epochs", 3000),         # converged within its epochs
    ("--model", "linear", "--lr", 1e-4, "--epochs", 2500),         # near, a fraction of a percent above
    ("--model", "params", "--optimizer", "lbfgs"),                 # a stop rule ended it, at float32's precision
    ("--model", "params", "--noise", 0.5, "--epochs", 3000, "--seed", 3),
])
def test_the_plain_lines_come_first_and_hold(tmp_path, capsys, args):
    status, out, metrics = metrics_of(tmp_path, capsys, *args, "-q")
    assert status == 0
    lines = plain_lines(out)
    assert lines[0].startswith("In short: ")
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    noise = float(args[args.index("--noise") + 1]) if "--noise" in args else 1.0
    x, y = seeded_data(seed, noise=noise)
    check_claims(lines, metrics, x.numpy(), y.numpy())
    if "stopped at epoch" in out:
        assert f"It ended at epoch {metrics['epochs_run']} of {metrics['epochs']}" in "\n".join(lines)


def test_a_diverged_run_says_so_first_and_points_at_the_error(tmp_path, capsys):
    status, out, metrics = metrics_of(tmp_path, capsys, "--model", "params", "--lr", 3e-4, "--epochs", 300, "-q")
    lines = plain_lines(out)
    assert status == 1 and metrics["diverged"]
    assert lines[0].startswith("In short: the run diverged") and "--lr-sweep" in lines[-1]


@pytest.mark.slow
@pytest.mark.xdist_group("default_both")  # the shared blog-length run of both models
def test_the_default_run_starts_with_five_plain_lines(default_both):
    """The blog's settings: five lines right after the blog's parameters, each against numpy and float32."""
    import json

    folder, result = default_both
    metrics = json.loads((folder / "m.json").read_text())["params"]
    out = result.stdout.split("== model linear ==")[0]
    lines = plain_lines(out)
    assert len(lines) == 5
    x, y = seeded_data()
    check_claims(lines, metrics, x.numpy(), y.numpy())
    frozen = re.search(r"Then float32 froze ([abc, and]+):", lines[3])
    assert frozen
    # frozen: one more float32 step of plain SGD leaves each named coefficient exactly where it is
    coefficients = np.array([metrics["coefficients"][k] for k in "abc"], dtype=np.float32)
    xs, ys = x.numpy().ravel().astype(np.float32), y.numpy().ravel().astype(np.float32)
    features = np.stack([xs ** 2, xs, np.ones_like(xs)], axis=1)
    gradient = 2 / len(xs) * features.T @ (features @ coefficients - ys)
    stepped = coefficients - np.float32(metrics["lr"]) * gradient.astype(np.float32)
    for name in re.findall(r"[abc]", frozen[1]):
        assert stepped["abc".index(name)] == coefficients["abc".index(name)]
