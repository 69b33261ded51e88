"""One judge for every run: each replica of --runs gets its single run's verdict (diverged when its loss became
inf/NaN or it ended above its start, at the same epoch), diverged replicas are named, left out of the means and
make the exit status 1; and the stop rule stops a run at the same epoch whatever its --log-interval, calling it
stalled only where the loss no longer falls."""
import json

import numpy as np
import pytest
from conftest import metrics_of, polyfit, prose, run_main, seeded_start

from beyond_the_blog.training.monitor import CONVERGED_RTOL, stall_span

# (model, optimizer, lr, epochs, runs, more options, how many replicas diverge: "some", "all" or "none")
REPLICA_CASES = [
    ("params", "sgd", "2.73e-4", 300, 8, (), "some"),  # just above 2/lambda_max = 2.7297e-4: some end above the start
    ("params", "sgd", "2.73e-4", 300, 8, ("--gradients", "autograd"), "some"),
    ("linear", "momentum", "2e-4", 300, 8, (), "some"),  # some overflow to inf/NaN, the others converge
    ("linear", "momentum", "2e-4", 300, 8, ("--gradients", "autograd"), "some"),
    ("params", "adam", "100", 30, 8, (), "some"),  # Adam's steps of about 100 throw some runs above their start
    ("params", "sgd", "2.8e-4", 300, 4, (), "all"),  # the example: every run ends near 1e16
    ("params", "sgd", "1e-30", 37, 3, ("--standardize",), "none"),  # nothing moves: the end is the start
]


def replicas_and_singles(tmp_path, capsys, case):
    """--runs R in this process (status, stdout, stderr, metrics), and the R single runs with --seed r."""
    model, optimizer, lr, epochs, runs, more, _ = case
    common = ["--model", model, "--optimizer", optimizer, "--lr", lr, "--epochs", epochs, "-q", *more]
    together = run_main(capsys, *common, "--runs", runs, "--no-plot", "--metrics", "runs.json", cwd=tmp_path)
    metrics = json.loads((tmp_path / "runs.json").read_text())
    singles = [metrics_of(tmp_path, capsys, *common, "--seed", seed) for seed in range(runs)]
    return together, metrics, singles


def gradient_descent_rises(seed, lr, epochs):
    """Whether plain gradient descent on the params model, in float64 numpy, ends above its start: the loss after
    `epochs` steps from the seed's start against the loss before the first."""
    x, y, model = seeded_start("params", seed)
    features = np.stack([x.double().numpy().ravel() ** 2, x.double().numpy().ravel(), np.ones(x.numel())], axis=1)
    target = y.double().numpy().ravel()
    theta = np.array([p.item() for p in model.parameters()])
    start = np.mean((features @ theta - target) ** 2)
    for _ in range(epochs):
        theta = theta - lr * 2 / len(target) * features.T @ (features @ theta - target)
    return np.mean((features @ theta - target) ** 2) > start


def case_id(case):
    return " ".join(map(str, case[:4] + case[5])) or None


@pytest.mark.parametrize("case", REPLICA_CASES, ids=case_id)
def test_each_replica_gets_its_single_runs_verdict(tmp_path, capsys, case):
    model, optimizer, lr, epochs, runs, more, expected = case
    together, metrics, singles = replicas_and_singles(tmp_path, capsys, case)
    rep = metrics["replications"]
    alone = [m for _, _, m in singles]
    diverged = [m["diverged"] for m in alone]
    assert {"some": 0 < sum(diverged) < runs, "all": all(diverged), "none": not any(diverged)}[expected]
    for r, single in enumerate(alone):
        assert rep["verdicts"][r] == single["verdict"], r
        assert rep["diverged_per_run"][r] == single["diverged"], r
        assert rep["diverged_at_epoch_per_run"][r] == single["diverged_at_epoch"], r
    if (model, optimizer, more) == ("params", "sgd", ()):  # the rise, from exact arithmetic
        assert diverged == [gradient_descent_rises(seed, float(lr), epochs) for seed in range(runs)]
    if model == "linear":  # the replicas that overflowed name the epoch
        assert any(k is not None for k in rep["diverged_at_epoch_per_run"])
    assert together.returncode == (1 if any(diverged) else 0) == max(status for status, _, _ in singles)
    assert metrics["diverged"] == any(diverged)
    assert metrics["stop_reason"] == ("diverged" if all(diverged) else "epochs")
    assert rep["diverged_seeds"] == [seed for seed in range(runs) if diverged[seed]]


@pytest.mark.parametrize("case", REPLICA_CASES[::2], ids=case_id)
def test_diverged_replicas_are_named_and_left_out_of_the_means(tmp_path, capsys, case):
    runs = case[4]
    together, metrics, singles = replicas_and_singles(tmp_path, capsys, case)
    rep = metrics["replications"]
    gone = [seed for seed, (_, _, single) in enumerate(singles) if single["diverged"]]
    kept = np.array([c for seed, c in enumerate(rep["coefficients"]) if seed not in gone])
    mean = [rep["coefficients_mean"][k] for k in "abc"]
    std = [rep["coefficients_std"][k] for k in "abc"]
    if len(kept):
        np.testing.assert_allclose(mean, kept.mean(axis=0), rtol=1e-9)
    else:
        assert mean == [None] * 3 and "n/a: the spread needs at least 2 runs that did not diverge (0 here)" in \
            together.stdout
    if len(kept) > 1:
        np.testing.assert_allclose(std, kept.std(axis=0, ddof=1), rtol=1e-9)
    out = prose(together.stdout)
    if gone:
        named = ", ".join(map(str, gone))
        assert (f"{len(gone)} of them diverged (their loss became inf/NaN or ended above its start), seeds {named}: "
                "they are left out of the means and spreads below") in out
        assert f"{len(gone)} of {runs} runs diverged (seeds {named})" in together.stderr
    else:
        assert "diverged" not in out and together.stderr == ""


def heavy_ball(seed, lr, epochs, beta=0.9):
    """torch.optim.SGD(momentum=beta) on the params model, written in numpy float32 from the seed's start: every
    epoch's loss (before its step) and a, b, c (before its step), epochs 1 to `epochs`."""
    x, y, model = seeded_start("params", seed)
    x, y = x.numpy().ravel(), y.numpy().ravel()
    features = np.stack([x * x, x, np.ones_like(x)], axis=1)
    theta = np.array([p.item() for p in model.parameters()], dtype=np.float32)
    two_n, lr, beta = np.float32(2 / len(x)), np.float32(lr), np.float32(beta)
    velocity, losses, path = None, [], []
    for _ in range(epochs):
        residual = features @ theta - y
        losses.append(np.mean(residual * residual, dtype=np.float32))
        path.append(theta)
        gradient = two_n * (features.T @ residual)
        velocity = gradient if velocity is None else beta * velocity + gradient
        theta = theta - lr * velocity
    return np.array(losses, dtype=np.float64), np.array(path, dtype=np.float64)


@pytest.mark.parametrize("lr", [None, "1e-13"])  # the default; and one whose steps round away in float32 at once
def test_a_stall_is_a_stall_whatever_the_log_interval(tmp_path, capsys, lr):
    """momentum on params stops at the same epoch with the same verdict at --log-interval 1, 2 and 100. Where it says
    stalled, a float32 loop written here, continued 3000 epochs past the stop, shows the loss no longer falls: by at
    most the rule's 1e-7 (relative) over each span of epochs, and over the 3000 epochs. Where it says converged,
    that loop's a, b, c at the stop are within 0.01 of numpy.polyfit. (With the span one log interval, --log-interval
    1 stopped the default run at epoch 2683 as stalled while the loss still fell: 1.0194292, then 1.0192602 at 4000.)"""
    runs = [metrics_of(tmp_path, capsys, "--optimizer", "momentum", *(["--lr", lr] if lr else []), "--log-interval",
                       interval, "-q")[2] for interval in (1, 2, 100)]
    ends = {(m["stop_reason"], m["epochs_run"], m["verdict"], m["final_loss"]) for m in runs}
    assert len(ends) == 1, ends
    (reason, stop, verdict, _), = ends
    assert reason == ("converged" if lr is None else "stalled") and stop < runs[0]["epochs"]
    more, span = 3000, stall_span(runs[0]["epochs"])
    losses, path = heavy_ball(0, runs[0]["lr"], stop + more)
    if reason == "stalled":
        after = losses[stop - 1:]  # epochs stop to stop + 3000
        per_span = np.abs(np.diff(after[::span])) / after[::span][:-1]
        assert per_span.max() <= CONVERGED_RTOL and (after[0] - after.min()) / after[0] <= CONVERGED_RTOL
        assert verdict == "not converged"
    else:
        assert np.abs(path[stop - 1] - polyfit(*seeded_start("params")[:2])).max() <= 0.01 and verdict == "converged"


def test_replicas_stop_at_the_same_epoch_whatever_the_log_interval(tmp_path, capsys):
    """The rule gets every run's loss at each multiple of its span, recorded or not: at --log-interval 7 the records
    miss most of them."""
    ends = set()
    for interval in (1, 7, 100):
        _, _, metrics = metrics_of(tmp_path, capsys, "--model", "linear", "--optimizer", "momentum", "--runs", 3,
                                   "--log-interval", interval, "-q")
        ends.add((metrics["stop_reason"], metrics["epochs_run"]))
    (reason, stop), = ends
    assert reason == "converged" and stop % stall_span(5000) == 0 and stop < 5000


def test_both_models_stop_at_the_same_epochs_whatever_the_log_interval(tmp_path, capsys):
    """--model both: each model's stop rule has its own span, from its own epochs, never from --log-interval."""
    ends = []
    for interval in (1, 100):
        _, _, metrics = metrics_of(tmp_path, capsys, "--model", "both", "--optimizer", "momentum", "--log-interval",
                                   interval, "-q")
        ends.append({name: (m["stop_reason"], m["epochs_run"], m["verdict"]) for name, m in metrics.items()})
    assert ends[0] == ends[1] and set(ends[0]) == {"params", "linear"}
    assert all(stop % stall_span(5000) == 0 for _, stop, _ in ends[0].values())
