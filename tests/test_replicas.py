"""--runs R: many runs trained as one vectorized computation, each equal to its single run, with autograd and
with every run's gradients by hand (batched_gradients.py); the model's own forward on the stacked parameters
(vmap's bits, without vmap); which runs succeeded, which diverged and when, and the statistics that can and
cannot be computed."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import fit, run_main, run_script, seeded_start

import quadratic_regression as qr
from beyond_the_blog.many_runs.replicas import (
    Replicas,
    Starts,
    replication_data,
    spread_range,
    summarize_replications,
)
from beyond_the_blog.models import MODELS
from beyond_the_blog.optimizers import training_loop
from beyond_the_blog.steps.batched_gradients import BatchedLinearGradients
from beyond_the_blog.training import batched_runs

REPLICATION_CASES = [("params", "sgd", False, 3000), ("linear", "sgd", False, 3000),
                     ("linear", "adam", False, 1000), ("params", "momentum", True, 300), ("linear", "sgd", True, 500)]


# The replicas' sums over the 100 points run in another order than a single run's (BLAS's for autograd; the
# gradients by hand regroup them into sums of the data, in float64), so each epoch's gradient differs from the
# single run's by float32 rounding, a few times 6e-8 relative. In a run that converges these differences die out
# instead of growing (each step contracts the error); what is left at the end is a few ulps of each parameter.
# rel/rtol 1e-5, about 170 ulps, allows for that and is still a thousand times below the 1e-2 by which different
# seeds' fits differ.
ROUNDING = 1e-5


@pytest.mark.parametrize("loop", ["blog", "batched"])  # autograd through the stacked runs; the gradients by hand
@pytest.mark.parametrize("model_name,optimizer,standardize,epochs", REPLICATION_CASES)
def test_replication_equals_its_single_run(model_name, optimizer, standardize, epochs, loop):
    seed, runs = 5, 4
    x, ys, models = replication_data(model_name, range(seed, seed + runs))
    replicas = Replicas(models)
    assert all(p.shape[0] == runs for p in replicas.parameters())  # one tensor per parameter, a leading run axis
    together = fit(replicas, x, ys, model_name=model_name, optimizer=optimizer, standardize=standardize, epochs=epochs,
                   loop=loop)
    assert together.gradients == ("manual" if loop == "batched" else "autograd")
    for r in range(runs):
        torch.manual_seed(seed + r)
        x1, y1 = qr.make_data()
        alone = fit(MODELS[model_name].build(), x1, y1, model_name=model_name, optimizer=optimizer,
                    standardize=standardize, epochs=epochs)
        assert together.final_loss[r].item() == pytest.approx(alone.final_loss, rel=ROUNDING)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(together.parameters[name][r], value, rtol=ROUNDING, atol=ROUNDING)


def autograd_and_by_hand(model_name, seeds, signals=None, **config):
    """The same replicas trained twice, with autograd and with the gradients by hand; signals: a factory."""
    fits = []
    for loop in ("blog", "batched"):
        x, ys, models = replication_data(model_name, seeds)
        fits.append(fit(Replicas(models), x, ys, model_name=model_name, loop=loop,
                        signals=signals() if signals else None, **config))
    return fits


@pytest.mark.parametrize("model_name,optimizer", [("params", "sgd"), ("params", "adam"), ("linear", "momentum")])
def test_the_gradients_by_hand_train_as_the_autograd_replicas(model_name, optimizer):
    """Every run's coefficients and loss, every recorded loss at the same epochs, the same stop: to float32
    rounding (ROUNDING). The coefficients, not the product's four parameters: along its valley of equal loss
    (s w1, s b1, w2/s, b2/s) nothing pulls rounding differences back, and the layers' scales drift apart by more."""
    by_autograd, by_hand = autograd_and_by_hand(model_name, range(6), optimizer=optimizer, epochs=1500)
    torch.testing.assert_close(by_hand.coefficients, by_autograd.coefficients, rtol=ROUNDING, atol=ROUNDING)
    torch.testing.assert_close(by_hand.final_loss, by_autograd.final_loss, rtol=ROUNDING, atol=0)
    assert [e for e, _ in by_hand.log.history] == [e for e, _ in by_autograd.log.history]
    # on the way, momentum swings the product through its valley, where rounding differences grow for a while
    # (to 3e-5 of the loss about epoch 400) before the fit contracts them again; params' bowl contracts throughout
    on_the_way = ROUNDING if model_name == "params" else 1e-4
    for (_, got), (_, expected) in zip(by_hand.log.history, by_autograd.log.history):
        torch.testing.assert_close(got, expected, rtol=on_the_way, atol=0)
    assert (by_hand.log.stop_reason, by_hand.log.epochs_run) == (by_autograd.log.stop_reason, 1500)


@pytest.mark.parametrize("model_name,lr,epochs", [("params", 3e-4, 400), ("linear", 9.5e-4, 300)])
def test_a_run_that_diverges_among_the_replicas_is_found_at_its_epoch(model_name, lr, epochs):
    """Each diverged run's first inf/NaN epoch, as its single run and the autograd replicas find it, though the
    runs' losses are computed only at the check epochs. params at 3e-4 (above 2/lambda_max = 2.7e-4): every run
    overflows between epochs 200 and 221, between checks, and training ends where the last one does. linear at
    9.5e-4: about half the runs overflow within 8 epochs, the others settle. (Overflow epochs are robust to
    rounding: the error grows by |1 - lr lambda| per epoch, too fast for a 1e-7 difference to move an epoch.)"""
    seeds = range(12)
    by_autograd, by_hand = autograd_and_by_hand(model_name, seeds, lr=lr, epochs=epochs)
    assert by_hand.log.run_diverged_at.tolist() == by_autograd.log.run_diverged_at.tolist()
    assert (by_hand.log.diverged_at, by_hand.log.stop_reason, by_hand.log.epochs_run) == (
        by_autograd.log.diverged_at, by_autograd.log.stop_reason, by_autograd.log.epochs_run)
    diverged = [r for r, k in enumerate(by_hand.log.run_diverged_at.tolist()) if k]
    assert diverged and (len(diverged) == len(seeds)) == (model_name == "params")
    if model_name == "params":
        assert by_hand.log.stop_reason == "diverged" and by_hand.log.epochs_run < epochs
        assert any(not batched_runs.BatchedMonitor.records(by_hand_monitor(), k)
                   for k in by_hand.log.run_diverged_at.tolist())  # some overflowed between the records
    for r in diverged[:3]:
        torch.manual_seed(seeds[r])
        x, y = qr.make_data()
        alone = fit(MODELS[model_name].build(), x, y, model_name=model_name, lr=lr, epochs=epochs)
        assert alone.log.stop_reason == "diverged" and alone.log.diverged_at == by_hand.log.run_diverged_at[r]


def by_hand_monitor(record_interval=100):
    """A BatchedMonitor's record epochs, as fit() configures it without a stop rule (only its records() and checks()
    are used)."""
    monitor = batched_runs.BatchedMonitor.__new__(batched_runs.BatchedMonitor)
    monitor.record_interval, monitor.last_epoch, monitor.converged = record_interval, None, None
    return monitor


class SignalAt(list):
    """Empty until the monitor has looked at it `epoch` times (once an epoch): a Ctrl-C during that epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.looks, self.epoch = 0, epoch

    def __bool__(self):
        self.looks += 1
        return self.looks >= self.epoch


def test_a_ctrl_c_between_checks_still_finds_the_runs_that_diverged_before_it():
    """params at 3e-4: a Ctrl-C at epoch 209, after the check at 200, with runs overflowed at 206 and 208. The
    monitor trains the epochs since the check again to find them; both ways end interrupted at 209."""
    by_autograd, by_hand = autograd_and_by_hand("params", range(20), signals=lambda: SignalAt(209), lr=3e-4,
                                                epochs=400)
    monitor = by_hand_monitor()
    assert not any(monitor.checks(k) for k in range(201, 210))  # no check between 200 and the Ctrl-C
    assert by_hand.log.run_diverged_at.tolist() == by_autograd.log.run_diverged_at.tolist()
    assert 0 < int((by_hand.log.run_diverged_at > 0).sum()) < 20
    assert (by_hand.log.stop_reason, by_hand.log.epochs_run) == ("interrupted", 209) == (
        by_autograd.log.stop_reason, by_autograd.log.epochs_run)
    # a growing run's rounding differences grow with it: about one float32 rounding (6e-8) of relative error an
    # epoch, so 209 epochs allow 209 * 6e-8 = 1.3e-5 and more; 1e-4 still tells a wrong gradient from rounding
    torch.testing.assert_close(by_hand.parameters["a"], by_autograd.parameters["a"], rtol=1e-4, atol=ROUNDING,
                               equal_nan=True)


def test_the_losses_are_computed_at_the_check_epochs_only(monkeypatch):
    computed = []
    original = BatchedLinearGradients.run_losses
    monkeypatch.setattr(BatchedLinearGradients, "run_losses", lambda self: computed.append(1) or original(self))
    x, ys, models = replication_data("linear", range(3))
    result = fit(Replicas(models), x, ys, model_name="linear", epochs=2000, loop="batched")
    monitor = by_hand_monitor()
    monitor.last_epoch = 2000
    checks = [k for k in range(1, 2001) if monitor.checks(k)]
    # the early log-spaced records, then one every 100 epochs, and once after the last step (the judge's end loss)
    assert len(computed) == len(checks) + 1 < 2000 / 25
    assert [e for e, _ in result.log.history] == [k for k in checks if monitor.records(k)]


@pytest.mark.parametrize("args,loop", [
    (("params", "sgd", 3, None, None), "batched"),        # --runs: by hand where they apply
    (("linear", "adam", 3, None, "manual"), "batched"),
    (("params", "momentum", 3, None, "autograd"), "blog"),  # --gradients autograd forces autograd
    (("params", "sgd", 3, 10, None), "minibatches"),       # --batch-size: autograd on each batch
    (("params", "sgd", 1, None, None), "blog"),            # a single run: the blog's loop
    (("linear", "sgd", 1, None, "manual"), "manual"),
])
def test_which_loop_trains(args, loop):
    assert training_loop(*args) == loop


@pytest.mark.parametrize("model_name", ["params", "linear"])
@pytest.mark.parametrize("per_run_inputs", [False, True])
def test_replicas_run_the_models_own_forward_with_vmaps_bits(model_name, per_run_inputs):
    """No vmap for the blog's two models (the speed of --runs and the sweep rests on it), the same predictions,
    for one input shared by all runs and for each run's own (minibatches)."""
    x, _, _ = seeded_start(model_name)
    models = [MODELS[model_name].build() for _ in range(4)]
    inputs = torch.stack([x[torch.randperm(len(x))[:10]] for _ in models]) if per_run_inputs else x
    replicas = Replicas(models)
    replicas(inputs)  # the first call decides
    assert replicas.direct is True
    assert torch.equal(replicas(inputs), replicas.mapped_forward(inputs))


def test_success_count_sees_a_stuck_run():
    """All four parameters at 0 is a stationary point of the product model: that run must fail."""
    seeds = list(range(20, 26))
    x, ys, starts = replication_data("linear", seeds)
    for start in starts.parameters.values():
        start[2] = 0
    result = fit(Replicas(starts), x, ys, model_name="linear", standardize=True)
    summary = summarize_replications(result, x, ys, seeds)
    assert summary.succeeded.tolist() == [True, True, False, True, True, True]
    assert summary.failed_seeds == [22]
    assert result.coefficients[2].abs().max().item() == 0.0  # it never moved


def test_runs_on_the_command_line(tmp_path, capsys):
    result = run_main(capsys, "--model", "params", "--runs", "8", "--seed", "3", "--standardize", "--metrics", "m.json",
                        "--plot", "runs.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 runs (seeds 3-10)" in result.stdout and "8 of 8 succeeded" in result.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["gradients"] == "manual" and "with the gradients by hand over all runs" in result.stdout
    rep = metrics["replications"]
    assert rep["seeds"] == list(range(3, 11)) and rep["succeeded"] == [True] * 8 and rep["success_rate"] == 1.0
    for key in ("final_loss", "coefficients_mean", "coefficients_std"):
        assert key in rep
    coefficients = np.array(rep["coefficients"])
    np.testing.assert_allclose([rep["coefficients_mean"][k] for k in "abc"], coefficients.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose([rep["coefficients_std"][k] for k in "abc"], coefficients.std(axis=0, ddof=1), rtol=1e-9)
    mean_line = re.search(r"^\s+c\s+32\s+([-\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", result.stdout, re.M)
    assert float(mean_line[1]) == pytest.approx(rep["coefficients_mean"]["c"], abs=1e-4)
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "runs.png").shape[1] >= 1000


def test_replications_name_the_runs_that_diverged(tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--runs", "10", "--lr", "1.1e-3", "--epochs", "2000", "-q",
                        "--metrics", "m.json", "--plot", "r.png", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rep = json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)["replications"]
    diverged = rep["diverged_seeds"]
    assert 0 < len(diverged) < 10
    assert f"{len(diverged)} of them diverged" in result.stdout
    assert f"{len(diverged)} of 10 runs diverged (seeds {', '.join(map(str, diverged))})" in result.stderr
    kept = np.array([c for seed, c in zip(rep["seeds"], rep["coefficients"]) if seed not in diverged])
    np.testing.assert_allclose([rep["coefficients_mean"][k] for k in "abc"], kept.mean(axis=0), rtol=1e-9)
    assert not re.search(r"(?<!/)\bnan\b", result.stdout.lower())  # no NaN printed as a number
    assert all(rep["diverged_at_epoch_per_run"][s] > 0 for s in diverged)


def test_too_few_runs_for_a_statistic_say_why(tmp_path, capsys):
    result = run_main(capsys, "--samples", "3", "--runs", "3", "--epochs", "100", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\bnan\b", result.stdout.lower())
    assert "n/a: a standard error needs more than 3 points" in result.stdout


def test_the_spread_range_is_the_sampling_range_of_a_standard_deviation():
    rng = np.random.default_rng(0)
    for runs in (2, 3, 5, 9, 20, 200):
        drawn = rng.standard_normal((200_000, runs)).std(axis=1, ddof=1)  # standard deviations of runs draws
        assert spread_range(runs)[1] == pytest.approx(np.quantile(drawn, 0.975), rel=0.02), runs


@pytest.mark.parametrize("runs", [3, 40])
def test_the_runs_verdict_follows_from_the_runs_and_their_number(tmp_path, runs, capsys):
    result = run_main(capsys, "--runs", runs, "--optimizer", "momentum", "--standardize", "-q", "--no-plot",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fits, stderrs = [], []
    for seed in range(runs):  # each run's own least-squares fit and standard errors, numpy float64
        torch.manual_seed(seed)
        x, y = (t.double().numpy().ravel() for t in qr.make_data())
        design = np.stack([x**2, x, np.ones_like(x)], axis=1)
        best, residual = np.linalg.lstsq(design, y, rcond=None)[:2]
        fits.append(best)
        stderrs.append(np.sqrt(residual[0] / (len(x) - 3) * np.linalg.inv(design.T @ design).diagonal()))
    ratio = (np.std(fits, axis=0, ddof=1) / np.mean(stderrs, axis=0)).max()
    drawn = np.random.default_rng(1).standard_normal((100_000, runs)).std(axis=1, ddof=1)
    hi = np.quantile(drawn, 0.975)
    out = " ".join(result.stdout.split())
    if ratio > hi * 1.02:
        assert "the training adds to it" in out
    elif hi > 1.5 * 1.02:
        assert "too few runs to tell" in out
    elif hi < 1.5 / 1.02 and ratio < hi / 1.02:
        assert "it is the noise in the data" in out
    assert ("too few runs to tell" in out) == (runs == 3)


def test_saved_replications_load_into_the_model_class_run_by_run(tmp_path, capsys):
    result = run_main(capsys, "--runs", 3, "--seed", 4, "--model", "linear", "--epochs", 300, "-q", "--no-plot",
                      "--save-model", "runs.pt", "--metrics", "m.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = torch.load(tmp_path / "runs.pt")
    for r, seed in enumerate(range(4, 7)):
        model = MODELS["linear"].build()
        model.load_state_dict(saved[r])  # strict: every name and shape of the class
        alone = run_main(capsys, "--seed", seed, "--model", "linear", "--epochs", 300, "-q", "--no-plot",
                         "--save-model", f"alone{r}.pt", cwd=tmp_path)
        assert alone.returncode == 0
        for name, tensor in torch.load(tmp_path / f"alone{r}.pt").items():
            torch.testing.assert_close(model.state_dict()[name], tensor)  # to float32 rounding, as the runs are


SEED_SAMPLE = [0, 1, 7, -1, -2**63, -2**63 + 1, 2**31 - 1, 2**32, 2**63, 2**64 - 2]  # the CLI's whole range


@pytest.mark.parametrize("model_name", ["params", "linear"])
def test_each_runs_data_and_start_are_its_single_runs_bit_for_bit(model_name):
    """Every field the set-up draws, for runs at seeds across the CLI's range: the single run's torch.manual_seed,
    make_data and model constructor, compared with torch.equal. Runs with seeds next to each other come from
    one call, as --runs draws them; the global generator is where it was before the set-up."""
    before = torch.get_rng_state()
    x, ys, starts = replication_data(model_name, SEED_SAMPLE + [2**64 - 1])
    assert torch.equal(torch.get_rng_state(), before)
    assert isinstance(starts, Starts) and len(starts) == len(SEED_SAMPLE) + 1
    for r, seed in enumerate(SEED_SAMPLE + [2**64 - 1]):
        torch.manual_seed(seed)
        x1, y1 = qr.make_data()
        alone = MODELS[model_name].build()
        assert torch.equal(x, x1) and torch.equal(ys[r], y1), seed
        names = [name for name, _ in alone.named_parameters()]
        assert list(starts.parameters) == names
        for name, value in alone.named_parameters():
            assert torch.equal(starts.parameters[name][r], value.detach()), (seed, name)
            assert torch.equal(starts[r].get_parameter(name), value.detach()), (seed, name)


def test_the_set_up_of_a_model_it_has_no_recipe_for_builds_each_run():
    """A model outside DIRECT_DRAWS (a subclass of the lesson's params model, whose constructor draws its own way)
    is built run by run, each as its single run builds it."""

    class Shifted(qr.ParamQuadratic):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Parameter(torch.rand(1, 1) + 30)

    entry = MODELS["params"]
    from dataclasses import replace
    MODELS["shifted"] = replace(entry, build=Shifted)
    try:
        x, ys, starts = replication_data("shifted", [3, -4])
    finally:
        del MODELS["shifted"]
    for r, seed in enumerate([3, -4]):
        torch.manual_seed(seed)
        _, y1 = qr.make_data()
        alone = Shifted()
        assert torch.equal(ys[r], y1)
        assert all(torch.equal(starts.parameters[n][r], v.detach()) for n, v in alone.named_parameters())


def test_the_memory_model_of_the_runs_by_hand_bounds_a_measured_peak_without_doubling_it(tmp_path):
    """--runs 10000 with the gradients by hand, as a user runs it: what its peak memory adds to one run's peak (the
    kernel's account, started from a small interpreter: a child's peak begins at its parent's size) is below what the
    memory check adds for those runs (memory_needed, by hand), and the check adds less than twice it: with autograd's
    300 bytes a point it assumed several times the peak and refused runs that fit. The increments are compared
    because torch's own size differs between machines. A fixed mmap threshold makes glibc give freed blocks back:
    its moving threshold kept 130 MB of freed memory in 2 of 8 runs, which TORCH_BYTES's margin covers."""
    import subprocess
    import sys

    from conftest import SCRIPT, clean_env

    from beyond_the_blog.system.environment import memory_needed
    runs, epochs = 10000, 100
    peak_of_child = ("import resource, subprocess, sys; assert subprocess.call(sys.argv[1:]) == 0; "
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

    def peak(runs):
        done = subprocess.run([sys.executable, "-c", peak_of_child, sys.executable, str(SCRIPT), "--model", "linear",
                               "--runs", str(runs), "--epochs", str(epochs), "-q", "--no-plot"], cwd=tmp_path,
                              env=clean_env(MALLOC_MMAP_THRESHOLD_="131072"), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1]) * 1024  # KiB on Linux

    added = peak(runs) - peak(1)
    needed = (memory_needed(epochs, runs, 100, None, by_hand=True).total
              - memory_needed(epochs, 1, 100, None, by_hand=True).total)
    assert added <= needed < 2 * added, (added, needed)


def test_a_sum_of_the_runs_losses_that_overflows_is_no_runs_divergence(tmp_path):
    """Autograd trains the replicas on the sum of their losses: 200 runs near inf overflow that sum epochs before any
    run's own loss does. No run is noted diverged then (it once raised an IndexError): the runs diverge where the
    gradients by hand find them."""
    args = ("--standardize", "--lr", "0.42", "--epochs", "5000", "--runs", "200", "--no-plot", "-q")
    by_autograd = run_script(*args, "--gradients", "autograd", cwd=tmp_path)
    by_hand = run_script(*args, cwd=tmp_path)
    assert "Traceback" not in by_autograd.stderr and by_autograd.returncode == by_hand.returncode == 1
    assert re.search(r"first diverged at epoch \d+", by_autograd.stderr).group() == re.search(
        r"first diverged at epoch \d+", by_hand.stderr).group()
