"""Speed of quadratic_regression.py, each figure a ratio against a baseline timed in the same run.

    python benchmarks/bench.py                 # the full benchmark, about half an hour on 2 cores
    python benchmarks/bench.py --quick         # a short version (the tests run it)
    python benchmarks/bench.py --only growth lr_sweep   # some sections only

Prints markdown tables and writes the numbers as JSON (--json, default benchmarks/results.json).

Before timing, and around every section, it measures how busy the machine is: the CPU time that other processes
used (from /proc/stat, less this process's and its children's own), in cores. A section during which others used
more than IDLE_LIMIT cores was timed on a busy machine: its table says so, the JSON's "busy" is true, and the
output's first line says so. --markdown, --figure and --json then refuse to write (exit status 3, before any
timing where the first check already finds the machine busy), unless --allow-busy: docs/speed.md is made only
from an idle run.

1. faithful path: time per epoch of the default run (plain SGD on `params`) against the blog's own
   loop (nn.Module, nn.MSELoss, torch.optim.SGD, zero_grad/backward/step, loss.item() every 100
   epochs), alternating on the same data, and whether every logged loss is identical; the same for
   --gradients manual (the lesson's train_by_hand).
2. time to fit: training seconds until the expanded coefficients are within 0.01 of least squares,
   for each optimizer, with and without --standardize, for both models; beside it, what the command
   line does by default (its epochs, or its stop rule), and --optimizer lbfgs's default on seeds 0-9.
3. replications: --runs 1000 against one run for each model, alternating rounds, beside the autograd replicas and
   the blog's own program; the growth: cost per run-epoch of R = 1 to 100000 runs (the last at fewer epochs), the
   set-up and the summaries beside the training, each against one run timed in the same rounds, and a figure;
   the whole process of --runs 10000 against one run's; --runs 100000 whose printed statistics are checked.
4. --animate: training time with its frames recorded against without.
5. start-up: `--help` and an argument error, as subprocesses, against `python -c pass`.
6. --lr-sweep: 64, 256 and 1024 learning rates (with the finer sweep that pins the limit down) against one run
   of the same epochs, for each model.
"""
import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from beyond_the_blog.system.environment import same_numbers_on_every_processor  # noqa: E402

same_numbers_on_every_processor()  # the numbers of the command line, whose loops are timed here
import torch  # noqa: E402

import quadratic_regression as qr  # noqa: E402
from beyond_the_blog import models  # noqa: E402
from beyond_the_blog.cli.options import parse_args  # noqa: E402
from beyond_the_blog.many_runs import replicas, sweep  # noqa: E402
from beyond_the_blog.program import run  # noqa: E402
from beyond_the_blog.theory.least_squares import least_squares  # noqa: E402
from beyond_the_blog.training import monitor  # noqa: E402
from beyond_the_blog.training.fit import FitConfig  # noqa: E402
from beyond_the_blog.training.fit import fit as fit_with  # noqa: E402
from reference.blog_program import SquareRegression, blog_training  # noqa: E402


def fit(model, x, y, **options):
    """The command line's fit: beyond_the_blog's fit around the lesson's own loop."""
    return fit_with(model, x, y, FitConfig(**options))


# ----------------------------------------------------------------------------- 0. how busy the machine is
IDLE_LIMIT = 0.1  # cores other processes may use while a table is timed, and it still counts as idle
BUSY = 3          # the exit status when --markdown, --figure or --json would write a busy machine's figures


def counters():
    """(wall seconds, CPU seconds all processes have used, CPU seconds this process and its waited-for children
    have used), or None for the second where /proc/stat cannot be read (no Linux)."""
    own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return time.monotonic(), None, own
    return time.monotonic(), (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own


def others_cores(start, end):
    """The cores that other processes kept busy, on average, between two counters(); None where unknown."""
    if start[1] is None or end[1] is None:
        return None
    return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / max(end[0] - start[0], 1e-9)


def machine_state(start, end):
    """How busy the machine was between two counters(): others' cores, the load average, and the verdict
    (a machine whose others' use cannot be read is not known idle, so it counts as busy)."""
    others = others_cores(start, end)
    return {"others_cores": others, "load_1min": os.getloadavg()[0], "seconds": end[0] - start[0],
            "busy": others is None or others > IDLE_LIMIT}


def state_before(seconds=2.0):
    """The machine's state over `seconds` in which this process sleeps: all the CPU time used is others'."""
    start = counters()
    time.sleep(seconds)
    return machine_state(start, counters())


def state_line(state):
    """One line for beside a table: idle or busy, with the measured figures."""
    if state["others_cores"] is None:
        return "_Machine state unknown (no /proc/stat): these figures are not known to be idle._"
    figures = (f"other processes used {state['others_cores']:.2f} of {os.cpu_count()} cores during these timings "
               f"(1-minute load average {state['load_1min']:.2f})")
    if state["busy"]:
        return f"**Measured on a busy machine**: {figures}, more than the {IDLE_LIMIT} an idle one allows."
    return f"_Measured idle: {figures}._"


# ----------------------------------------------------------------------------- 1. faithful path
def blog_loop(x, y, epochs):
    """The blog's program (reference/blog_program.py, verbatim); returns (seconds, the losses it logs)."""
    model = SquareRegression()
    start = time.perf_counter()
    _, logged = blog_training(model, x, y, epochs)
    return time.perf_counter() - start, logged


def script_loop(x, y, epochs):
    """The script's default training (fit with plain SGD); returns (seconds, logged losses)."""
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=epochs)
    return result.log.seconds, [v for e, v in result.log.history if e % 100 == 0]


def manual_loop(x, y, epochs):
    """--gradients manual: the lesson's train_by_hand with the model's registered gradients."""
    model = qr.ParamQuadratic()
    result = fit(model, x, y, model_name="params", epochs=epochs, loop="manual")
    return result.log.seconds, [v for e, v in result.log.history if e % 100 == 0]


def bench_faithful(epochs, rounds):
    torch.manual_seed(0)
    x, y = qr.make_data()
    after_data = torch.get_rng_state()  # all loops draw the same initial parameters from here
    loops = (blog_loop, script_loop, manual_loop)
    times = {loop: [] for loop in loops}
    logged = {}
    for loop in loops:  # warm up: the first optimizer step imports and caches a lot
        loop(x, y, 200)
    for _ in range(rounds):  # alternate, so that drift in the machine's speed hits all alike
        for loop in loops:
            torch.set_rng_state(after_data)
            seconds, logged[loop] = loop(x, y, epochs)
            times[loop].append(seconds / epochs)
    blog, script, manual = (statistics.median(times[loop]) for loop in loops)
    return {"epochs": epochs, "rounds": rounds, "blog_us_per_epoch": blog * 1e6, "script_us_per_epoch": script * 1e6,
            "ratio": script / blog, "identical_losses": logged[blog_loop] == logged[script_loop],
            "manual_us_per_epoch": manual * 1e6, "manual_ratio": manual / blog,
            "manual_identical_losses": logged[blog_loop] == logged[manual_loop]}


# ----------------------------------------------------------------------------- 2. time to fit
def bench_time_to_fit(max_epochs):
    torch.manual_seed(0)
    x, y = qr.make_data()
    after_data = torch.get_rng_state()
    target = least_squares(x, y).coefficients[0]
    rows = []
    for model_name in models.BLOG_MODELS:
        for optimizer in models.OPTIMIZER_NAMES:
            for standardize in (False, True):
                epochs = models.default_epochs(optimizer, model_name, standardize)
                capped = max_epochs is not None and epochs > max_epochs
                epochs = min(epochs, max_epochs) if capped else epochs
                torch.set_rng_state(after_data)
                model = models.MODELS[model_name].build()
                result = fit(model, x, y, model_name=model_name, optimizer=optimizer, standardize=standardize,
                             epochs=epochs,
                                record_interval=1 if epochs <= 5000 else 10, target=target)
                rows.append({"model": model_name, "optimizer": optimizer, "standardize": standardize,
                             "lr": result.lr, "epochs_cap": epochs, "capped_for_quick": capped,
                             "reached": result.log.stop_reason == "target", "epochs_run": result.log.epochs_run,
                             "seconds": result.log.seconds,
                             "max_coefficient_error": (result.coefficients[0] - target).abs().max().item(),
                             "cli_default": cli_default(model_name, optimizer, standardize, 0,
                                                        epochs if capped else None)})
    return rows


def cli_default(model_name, optimizer, standardize, seed, epochs=None):
    """What `quadratic_regression.py --model M --optimizer O [--standardize] --seed S` trains, with its
    own settings and stop rule (epochs: an explicit --epochs, for --quick's cap): epochs run,
    training seconds, and whether the coefficients end within 0.01 of least squares."""
    args = ["--model", model_name, "--optimizer", optimizer, "--seed", str(seed), "--quiet", "--no-plot"]
    args += (["--standardize"] if standardize else []) + (["--epochs", str(epochs)] if epochs else [])
    settings = parse_args(args)
    torch.manual_seed(seed)
    x, y = qr.make_data()
    target = least_squares(x, y).coefficients[0]
    result = run.fit_with_progress(settings, models.MODELS[model_name].build(), model_name, (x, y, None), label=None)
    error = (result.coefficients[0] - target).abs().max().item()
    return {"epochs_run": result.log.epochs_run, "stop_reason": result.log.stop_reason,
            "seconds": result.log.seconds, "reached": error <= 0.01, "max_coefficient_error": error}


def bench_lbfgs_default(seeds, repeats=3):
    """--optimizer lbfgs as the command line runs it by default, seeds 0-9: each seed's training time is the
    median of `repeats` runs (a busy machine's noise is about ±30%), and the table gives the slowest seed."""
    cli_default("linear", "lbfgs", False, 0)  # the first fit in a process pays torch's one-time set-up
    rows = []
    for model_name in models.BLOG_MODELS:
        for standardize in (False, True):
            runs = [[cli_default(model_name, "lbfgs", standardize, seed) for _ in range(repeats)] for seed in seeds]
            seconds = [statistics.median(r["seconds"] for r in per_seed) for per_seed in runs]
            runs = [per_seed[0] for per_seed in runs]  # the repeats train the same numbers
            rows.append({"model": model_name, "standardize": standardize, "seeds": list(seeds), "repeats": repeats,
                         "max_seconds": max(seconds), "median_seconds": statistics.median(seconds),
                         "max_epochs_run": max(r["epochs_run"] for r in runs),
                         "all_reached": all(r["reached"] for r in runs),
                         "all_converged": all(r["stop_reason"] == "converged" for r in runs)})
    return rows


# ----------------------------------------------------------------------------- 3. replications
def timed_replicas(model_name, runs, epochs, loop):
    """`runs` replications (seeds 0..runs-1) as --runs makes them, with the loop it takes (batched: the gradients by
    hand; blog: autograd through the stacked runs): the seconds of the set-up (data and starts), the training and
    the summary, and how many succeeded."""
    start = time.perf_counter()
    x, ys, starts = replicas.replication_data(model_name, range(runs))
    setup = time.perf_counter() - start
    result = fit(replicas.Replicas(starts), x, ys, model_name=model_name, epochs=epochs, loop=loop)
    start = time.perf_counter()
    summary = replicas.summarize_replications(result, x, ys, list(range(runs)))
    return {"setup": setup, "training": result.log.seconds, "summary": time.perf_counter() - start,
            "succeeded": int(summary.succeeded.sum())}


def one_run_seconds(model_name, epochs):
    """Training seconds of one run as the command line trains it (the lesson's loop, seed 0): the baseline."""
    torch.manual_seed(0)
    x, y = qr.make_data()
    return fit(models.MODELS[model_name].build(), x, y, model_name=model_name, epochs=epochs).log.seconds


GROWTH_RUNS = (1, 10, 100, 1000, 10000, 100000)


def bench_growth(counts, epochs, last_epochs, rounds):
    """For each model, --runs R for each R (the gradients by hand) against one run, alternating `rounds` times: the
    training's cost per run-epoch, the set-up and the summary beside it. The largest R trains `last_epochs` epochs,
    and one run is timed at both epoch counts. Every figure is a median over the rounds."""
    rows = []
    for model_name in models.BLOG_MODELS:
        one_run_seconds(model_name, 200)  # warm up: the first fit imports and caches a lot
        timed_replicas(model_name, 100, 200, "batched")
        plan = [(runs, last_epochs if runs == counts[-1] else epochs) for runs in counts]
        singles = {e: [] for e in {epochs, last_epochs}}
        timed = {runs: [] for runs in counts}
        for _ in range(rounds):
            for e in singles:
                singles[e].append(one_run_seconds(model_name, e))
            for runs, e in plan:
                timed[runs].append(timed_replicas(model_name, runs, e, "batched"))
        rows += [growth_row(model_name, runs, e, timed[runs], statistics.median(singles[e])) for runs, e in plan]
    for row in rows:  # the done-when of the growth: every R against R = 1000's cost per run-epoch
        base = next((r for r in rows if r["model"] == row["model"] and r["runs"] == 1000), None)
        row["per_run_epoch_to_1000"] = base and row["us_per_run_epoch"] / base["us_per_run_epoch"]
    return {"rounds": rounds, "rows": rows}


def growth_row(model_name, runs, epochs, timings, single):
    """One row of the growth table from the rounds' timings of R runs and the median of one run's."""
    setup, training, summary = (statistics.median(t[key] for t in timings) for key in ("setup", "training", "summary"))
    return {"model": model_name, "runs": runs, "epochs": epochs, "setup_seconds": setup, "seconds": training,
            "summary_seconds": summary, "single_run_seconds": single, "ratio_to_one_run": training / single,
            "us_per_run_epoch": training / (runs * epochs) * 1e6, "overhead": (setup + summary) / training,
            "succeeded": timings[-1]["succeeded"]}


def markdown_growth(growth):
    rows = growth["rows"]
    lines = [f"### The growth: `--runs R` trained with the gradients by hand (medians of {growth['rounds']} "
             "alternating rounds)", "",
             "| model | runs | epochs | training (s) | µs per run-epoch | × R = 1000's | one run (s) | × one run | "
             "set-up (s) | summary (s) | (set-up + summary) / training | succeeded |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        to_1000 = f"{r['per_run_epoch_to_1000']:.2f}" if r["per_run_epoch_to_1000"] is not None else ""
        lines.append(f"| {r['model']} | {r['runs']} | {r['epochs']} | {r['seconds']:.3f} | "
                     f"{r['us_per_run_epoch']:.4f} | {to_1000} | {r['single_run_seconds']:.3f} | "
                     f"{r['ratio_to_one_run']:.2f} | {r['setup_seconds']:.3f} | {r['summary_seconds']:.3f} | "
                     f"{r['overhead']:.3f} | {r['succeeded']}/{r['runs']} |")
    last = rows[-1]
    lines += ["", f"The largest R trains {last['epochs']} epochs, the others {rows[0]['epochs']}; "
              "one run is timed at both, in the same rounds."]
    return lines


def growth_figure(growth, path):
    """Cost per run-epoch against R, both models, log-log: flat where the runs cost what their number says."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for model_name in models.BLOG_MODELS:
        rows = [r for r in growth["rows"] if r["model"] == model_name]
        ax.loglog([r["runs"] for r in rows], [r["us_per_run_epoch"] for r in rows], "o-",
                  color=models.MODELS[model_name].color, label=f"--model {model_name}")
        single = rows[0]["single_run_seconds"] / rows[0]["epochs"] * 1e6
        ax.axhline(single, color=models.MODELS[model_name].color, linestyle=":", linewidth=1,
                   label=f"one run alone ({model_name})")
    last, first = growth["rows"][-1], growth["rows"][0]
    ax.set(xlabel="runs R", ylabel="µs of training per run and epoch",
           title=f"--runs R: the cost of one run's epoch as R grows\n({first['epochs']} epochs, "
                 f"{last['epochs']} at R = {last['runs']}; a median of {growth['rounds']} rounds)")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_whole_process(runs, epochs, rounds):
    """`--model linear --runs R` against `--model linear`, each a whole process as a user runs it (start-up, torch's
    import, set-up, training, summaries, the figure written): wall seconds, alternating `rounds` times."""
    import tempfile
    command = [sys.executable, str(ROOT / "quadratic_regression.py"), "--model", "linear", "--no-show", "-q"]
    command += ["--epochs", str(epochs)] if epochs else []
    times = {1: [], runs: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for r in times:
                start = time.perf_counter()
                subprocess.run(command + (["--runs", str(r)] if r > 1 else []), cwd=folder, check=True,
                               capture_output=True, env=dict(os.environ, MPLBACKEND="Agg"))
                times[r].append(time.perf_counter() - start)
    single, many = statistics.median(times[1]), statistics.median(times[runs])
    return {"runs": runs, "epochs": epochs or models.MODELS["linear"].defaults["sgd", False][1], "rounds": rounds,
            "single_run_seconds": single, "seconds": many, "ratio_to_one_run": many / single}


def markdown_whole_process(w):
    return [f"### The whole process: `--model linear --runs {w['runs']}` against `--model linear` "
            f"({w['epochs']} epochs, figure written, medians of {w['rounds']} alternating rounds)", "",
            "| command | wall seconds | × one run |", "|---|---:|---:|",
            f"| `--model linear` | {w['single_run_seconds']:.2f} | 1.00 |",
            f"| `--model linear --runs {w['runs']}` | {w['seconds']:.2f} | {w['ratio_to_one_run']:.2f} |"]


def bench_checked_runs(runs, epochs, sample=4):
    """`--model linear --runs R --epochs E --metrics` as a subprocess: that it passes the memory check and runs, its
    wall time and peak memory, and its printed statistics checked. The printed mean and standard deviation of a, b
    and c against numpy float64 over the runs' coefficients in the metrics; those of a sample of runs against their
    single runs, trained here (to float32 rounding, as tests/test_replicas.py allows)."""
    import json as json_module
    import tempfile

    import numpy as np
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, str(ROOT / "quadratic_regression.py"), "--model", "linear", "--runs", str(runs),
                   "--epochs", str(epochs), "-q", "--no-plot", "--metrics", "m.json"]
        start = time.perf_counter()
        returncode, stdout, stderr, peak = run_measured(command, folder)
        seconds = time.perf_counter() - start
        if returncode != 0:
            return {"runs": runs, "epochs": epochs, "returncode": returncode, "stderr": stderr[-500:]}
        rep = json_module.loads((Path(folder) / "m.json").read_text())["replications"]
    kept = np.array([c for c, s in zip(rep["coefficients"], rep["seeds"]) if s not in set(rep["diverged_seeds"])])
    printed = {name: [float(v) for v in re.search(rf"^  {name}\s+\S+\s+(\S+)\s+(\S+)", stdout, re.M).groups()]
               for name in "abc"}
    mean_ok = all(abs(printed[n][0] - kept[:, i].mean()) <= 6e-5 for i, n in enumerate("abc"))
    std_ok = all(abs(printed[n][1] - kept[:, i].std(ddof=1)) <= 6e-5 for i, n in enumerate("abc"))
    seeds = [int(s) for s in np.linspace(0, runs - 1, sample)]
    singles_ok = all(np.allclose(rep["coefficients"][s], single_coefficients("linear", s, epochs), rtol=1e-5,
                                 atol=1e-5) for s in seeds)
    return {"runs": runs, "epochs": epochs, "returncode": 0, "seconds": seconds, "peak_bytes": peak,
            "printed_mean_matches_numpy": mean_ok, "printed_std_matches_numpy": std_ok, "sample_seeds": seeds,
            "sample_matches_single_runs": singles_ok}


# Runs a command and prints its peak memory (KiB) last on stderr. A child's ru_maxrss starts from the memory of the
# process it was forked from (Linux keeps the high-water mark across exec), so the command is started from this
# small interpreter, not from the benchmark's, which holds torch.
PEAK_WRAPPER = ("import resource, subprocess, sys; status = subprocess.call(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(status)")


def run_measured(command, folder):
    """Run `command` in `folder`: its exit status, standard output and error, and its own peak memory in bytes."""
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *command], cwd=folder, capture_output=True, text=True)
    *stderr, peak = done.stderr.splitlines()
    return done.returncode, done.stdout, "\n".join(stderr), int(peak) * 1024


def single_coefficients(model_name, seed, epochs):
    """(a, b, c) of the single run `--seed SEED` at these epochs, trained in this process."""
    torch.manual_seed(seed)
    x, y = qr.make_data()
    result = fit(models.MODELS[model_name].build(), x, y, model_name=model_name, epochs=epochs)
    return result.coefficients[0].tolist()


def markdown_checked_runs(c):
    if c["returncode"] != 0:
        return [f"### `--runs {c['runs']} --epochs {c['epochs']}` failed with exit status {c['returncode']}", "",
                c["stderr"]]
    return [f"### `--model linear --runs {c['runs']} --epochs {c['epochs']}`, its statistics checked", "",
            f"It ran in {c['seconds']:.1f} s, whole process, with a peak of {c['peak_bytes'] / 2**30:.2f} GiB.",
            f"Its printed means match numpy's over its runs: {c['printed_mean_matches_numpy']}; "
            f"its standard deviations: {c['printed_std_matches_numpy']}.",
            f"Seeds {', '.join(map(str, c['sample_seeds']))} trained alone match their runs: "
            f"{c['sample_matches_single_runs']}."]


def bench_runs_target(runs, epochs, rounds):
    """--runs R with the gradients by hand against one run of the same epochs, alternating `rounds` times, for
    each model: the ratio of the medians (the target: at most 1.5 for R = 1000). Beside it, once each, the autograd
    replicas and the blog's own program (torch.optim.SGD) for one run."""
    from reference.blog_program import LinearSquareRegression
    rows = []
    for model_name in models.BLOG_MODELS:
        blog_model = SquareRegression() if model_name == "params" else LinearSquareRegression()
        torch.manual_seed(0)
        x, y = qr.make_data()
        blog_training(blog_model, x, y, 200)  # warm up: the first optimizer steps import and cache a lot
        one_run_seconds(model_name, 200)
        timed_replicas(model_name, runs, 200, "batched")
        timed_replicas(model_name, runs, 200, "blog")
        singles, batched = [], []
        for _ in range(rounds):
            singles.append(one_run_seconds(model_name, epochs))
            batched.append(timed_replicas(model_name, runs, epochs, "batched")["training"])
        single, seconds = statistics.median(singles), statistics.median(batched)
        autograd = timed_replicas(model_name, runs, epochs, "blog")["training"]
        blog_model = SquareRegression() if model_name == "params" else LinearSquareRegression()
        start = time.perf_counter()
        blog_training(blog_model, x, y, epochs)
        blog = time.perf_counter() - start
        rows.append({"model": model_name, "runs": runs, "epochs": epochs, "rounds": rounds,
                     "single_run_seconds": single, "seconds": seconds, "ratio_to_one_run": seconds / single,
                     "autograd_seconds": autograd, "autograd_ratio_to_one_run": autograd / single,
                     "blog_program_seconds": blog, "ratio_to_blog_program": seconds / blog})
    return rows


def markdown_runs_target(rows):
    lines = [f"### `--runs {rows[0]['runs']}` against one run ({rows[0]['epochs']} epochs, training seconds, "
             f"medians of {rows[0]['rounds']} alternating rounds)", "",
             "| model | one run (s) | runs, by hand (s) | × one run | runs, autograd (s) | × one run | "
             "blog's program, one run (s) | by hand × blog's |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['single_run_seconds']:.2f} | {r['seconds']:.2f} | "
                     f"{r['ratio_to_one_run']:.2f} | {r['autograd_seconds']:.2f} | "
                     f"{r['autograd_ratio_to_one_run']:.2f} | "
                     f"{r['blog_program_seconds']:.2f} | {r['ratio_to_blog_program']:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- 4. --animate's frames
def bench_frames(epochs, rounds):
    """Training time with the 90 animation frames recorded against without (the same run)."""
    torch.manual_seed(0)
    x, y = qr.make_data()
    after_data = torch.get_rng_state()
    times = {False: [], True: []}
    for _ in range(rounds):
        for record in (False, True):
            torch.set_rng_state(after_data)
            frames = tuple(monitor.frame_epochs(epochs)) if record else ()
            result = fit(qr.LinearProduct(), x, y, model_name="linear", epochs=epochs, frame_epochs=frames)
            times[record].append(result.log.seconds)
    plain, recorded = statistics.median(times[False]), statistics.median(times[True])
    return {"epochs": epochs, "rounds": rounds, "seconds_without": plain, "seconds_with": recorded,
            "ratio": recorded / plain}


# ----------------------------------------------------------------------------- 5. start-up
def bench_startup(repeats):
    def timed(args):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    script = str(ROOT / "quadratic_regression.py")
    return {"python_startup": timed(["-c", "pass"]), "help": timed([script, "--help"]),
            "argument_error": timed([script, "--epochs", "0"]), "import_torch": timed(["-c", "import torch"])}


# ----------------------------------------------------------------------------- 6. a busy machine
def bench_busy_machine(runs, epochs, threads=(1, 2)):
    """`--runs R --epochs E` as a subprocess, on an idle machine and while another process spins on
    one core, with the default threads (one) and with --threads 2."""
    command = [sys.executable, str(ROOT / "quadratic_regression.py"), "--model", "linear", "--runs", str(runs),
               "--epochs", str(epochs), "--no-plot", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}

    def timed(extra):
        start = time.perf_counter()
        subprocess.run(command + extra, env=env, capture_output=True, check=True)
        return time.perf_counter() - start

    rows = []
    for label, extra in [("default (1 thread)", []), ("--threads 2", ["--threads", "2"])][:len(threads)]:
        idle = timed(extra)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy = timed(extra)
        finally:
            spinner.kill()
            spinner.wait()  # reaped: its CPU time counts as this benchmark's children's, not as another user's
        rows.append({"threads": label, "idle_seconds": idle, "busy_seconds": busy, "ratio": busy / idle})
    return {"runs": runs, "epochs": epochs, "rows": rows}
# ----------------------------------------------------------------------------- 7. --lr-sweep
def bench_lr_sweep(counts, epochs, rounds=3):
    """The whole --lr-sweep N (first sweep and finer ones) for each N against one plain-SGD run of the same epochs,
    alternating `rounds` times on the same data; the ratio is of the medians."""
    rows = []
    for model_name in models.BLOG_MODELS:
        torch.manual_seed(0)
        x, y = qr.make_data()
        after_data = torch.get_rng_state()
        singles, sweeps, results = [], {count: [] for count in counts}, {}
        for _ in range(rounds):
            torch.set_rng_state(after_data)
            singles.append(fit(models.MODELS[model_name].build(), x, y, model_name=model_name,
                               epochs=epochs).log.seconds)
            for count in counts:
                torch.set_rng_state(after_data)
                start = time.perf_counter()
                results[count] = sweep.sweep(model_name, models.MODELS[model_name].build(), x, y, count,
                                             {"epochs": epochs})
                sweeps[count].append(time.perf_counter() - start)
        single = statistics.median(singles)
        for count in counts:
            seconds, result = statistics.median(sweeps[count]), results[count]
            rows.append({"model": model_name, "lrs": count, "epochs": epochs, "rounds": rounds,
                         "single_run_seconds": single, "sweep_seconds": seconds,
                         "vectorized_runs": result.vectorized_runs, "ratio_to_one_run": seconds / single,
                         "predicted_edge": result.predicted_limit, "measured_edge": result.measured_limit})
    return rows


def markdown_lr_sweep(rows):
    lines = ["### `--lr-sweep` against one run of the same epochs (medians of alternating rounds)", "",
             "| model | lrs | epochs | one run (s) | sweep (s) | vectorized runs | × one run | predicted limit | "
             "measured limit |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        measured = f"{r['measured_edge']:.4g}" if r["measured_edge"] is not None else "none"
        lines.append(f"| {r['model']} | {r['lrs']} | {r['epochs']} | {r['single_run_seconds']:.2f} | "
                     f"{r['sweep_seconds']:.2f} | {r['vectorized_runs']} | {r['ratio_to_one_run']:.2f} | "
                     f"{r['predicted_edge']:.4g} | {measured} |")
    return "\n".join(lines)


def markdown_time_to_fit(rows_of_all):
    lines = []
    lines += ["### Time to fit (coefficients within 0.01 of least squares)", "",
              "| model | optimizer | standardize | lr | epochs | seconds | reached | CLI default: epochs, seconds, "
              "reached |", "|---|---|---|---:|---:|---:|---|---|"]
    for r in rows_of_all:
        capped = ", capped" if r["capped_for_quick"] else ""
        reached = "yes" if r["reached"] else f"no (still {r['max_coefficient_error']:.3f} off{capped})"
        cli = r["cli_default"]
        cli_text = (f"{cli['epochs_run']} ({cli['stop_reason']}), {cli['seconds']:.4f} s, "
                    f"{'yes' if cli['reached'] else 'no'}")
        lines.append(f"| {r['model']} | {r['optimizer']} | {'yes' if r['standardize'] else 'no'} | {r['lr']:g} | "
                     f"{r['epochs_run']} | {r['seconds']:.4f} | {reached} | {cli_text} |")
    for model_name in models.BLOG_MODELS:
        rows = [r for r in rows_of_all if r["model"] == model_name]
        blog = next(r for r in rows if r["optimizer"] == "sgd" and not r["standardize"])
        best = min((r for r in rows if r["reached"]), key=lambda r: r["seconds"], default=None)
        if best:
            lines.append(f"\n{model_name}: best {best['optimizer']}{' --standardize' if best['standardize'] else ''} "
                         f"in {best['seconds']:.4f} s, against {blog['seconds']:.2f} s for the blog's settings "
                         f"({blog['seconds'] / best['seconds']:.0f}× faster"
                         f"{'' if blog['reached'] else ', and the blog never gets within 0.01'}).")
    return lines


def markdown_faithful(f):
    return ["### Faithful path (default `--model params`, plain SGD)", "",
            "| loop | µs per epoch | ratio |", "|---|---:|---:|",
            f"| blog's loop (torch.optim.SGD) | {f['blog_us_per_epoch']:.1f} | 1.00 |",
            f"| quadratic_regression.py | {f['script_us_per_epoch']:.1f} | {f['ratio']:.2f} |",
            f"| quadratic_regression.py --gradients manual | {f['manual_us_per_epoch']:.1f} | "
            f"{f['manual_ratio']:.2f} |", "",
            f"{f['epochs']} epochs × {f['rounds']} alternating rounds; "
            f"every logged loss identical: {f['identical_losses']} (autograd), "
            f"{f['manual_identical_losses']} (manual).", ""]


def markdown_lbfgs_default(rows):
    lines = ["### `--optimizer lbfgs` as the command line runs it (default epochs and stop rule), "
             f"seeds 0-9 (each seed's median of {rows[0]['repeats']} runs)", "",
             "| model | standardize | max seconds | median seconds | max epochs | "
             "all within 0.01 | all converged |", "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {'yes' if r['standardize'] else 'no'} | {r['max_seconds']:.4f} | "
                     f"{r['median_seconds']:.4f} | {r['max_epochs_run']} | {r['all_reached']} | "
                     f"{r['all_converged']} |")
    return lines


def markdown_frames(a):
    return [f"### Recording `--animate` frames (`--model linear`, {a['epochs']} epochs)", "",
            f"{a['seconds_with']:.2f} s with the frames against {a['seconds_without']:.2f} s without: "
            f"{a['ratio']:.3f}×."]


def markdown_startup(s):
    return ["### Start-up (median wall time of a subprocess)", "", "| command | seconds |", "|---|---:|",
            f"| python -c pass | {s['python_startup']:.3f} |",
            f"| quadratic_regression.py --help | {s['help']:.3f} |",
            f"| quadratic_regression.py --epochs 0 (error) | {s['argument_error']:.3f} |",
            f"| python -c 'import torch' (what --help avoids) | {s['import_torch']:.3f} |"]


def markdown_busy_machine(b):
    lines = [f"### A busy machine (`--model linear --runs {b['runs']} --epochs {b['epochs']}`, one other "
             "process spinning on one core)", "",
             "| torch threads | idle s | busy s | busy / idle |", "|---|---:|---:|---:|"]
    for r in b["rows"]:
        lines.append(f"| {r['threads']} | {r['idle_seconds']:.2f} | {r['busy_seconds']:.2f} | {r['ratio']:.2f} |")
    return lines


def one_thread(measure):
    """measure() with one torch thread, as the command line trains by default (--threads)."""
    def measured(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return measure(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return measured


# each section: (name in the report, measure(quick), its markdown lines), in the order of the tables
SECTIONS = [
    ("faithful", lambda quick: bench_faithful(epochs=300 if quick else 50_000, rounds=1 if quick else 3),
     markdown_faithful),
    ("time_to_fit", lambda quick: bench_time_to_fit(max_epochs=100 if quick else None), markdown_time_to_fit),
    ("lbfgs_default", lambda quick: bench_lbfgs_default(range(2 if quick else 10), repeats=1 if quick else 3),
     markdown_lbfgs_default),
    ("runs_target", lambda quick: one_thread(bench_runs_target)(100 if quick else 1000, 100 if quick else 20_000,
                                                                rounds=1 if quick else 3),
     lambda rows: [markdown_runs_target(rows)]),
    ("growth", lambda quick: one_thread(bench_growth)(GROWTH_RUNS[:3] if quick else GROWTH_RUNS,
                                                      epochs=50 if quick else 20_000,
                                                      last_epochs=20 if quick else 2_000, rounds=1 if quick else 3),
     markdown_growth),
    ("whole_process", lambda quick: bench_whole_process(runs=100 if quick else 10_000, epochs=20 if quick else None,
                                                        rounds=1 if quick else 3), markdown_whole_process),
    ("checked_runs", lambda quick: one_thread(bench_checked_runs)(runs=300 if quick else 100_000,
                                                                  epochs=20 if quick else 2_000),
     markdown_checked_runs),
    ("frames", lambda quick: bench_frames(epochs=300 if quick else 20_000, rounds=1 if quick else 3),
     markdown_frames),
    ("lr_sweep", lambda quick: one_thread(bench_lr_sweep)([4, 8] if quick else [64, 256, 1024],
                                                          epochs=100 if quick else 20_000, rounds=1 if quick else 3),
     lambda rows: [markdown_lr_sweep(rows)]),
    ("startup", lambda quick: bench_startup(repeats=1 if quick else 5), markdown_startup),
    ("busy_machine", lambda quick: bench_busy_machine(runs=20 if quick else 1000, epochs=20 if quick else 5000,
                                                      threads=(1,) if quick else (1, 2)),
     markdown_busy_machine),
]


def markdown(report):
    """The tables of the sections the report holds, in SECTIONS' order, each with the machine's state beside it."""
    states = report["machine_state"]["sections"]
    blocks = ["\n".join([*lines(report[name]), "", state_line(states[name])])
              for name, _, lines in SECTIONS if name in report]
    return "\n\n".join(block.strip("\n") for block in blocks)


def heading(report):
    """The first lines: the machine, and whether it was idle through every table."""
    machine, state = report["machine"], report["machine_state"]
    lines = [f"Measured on {machine['cpus']} cores ({machine['processor']}), torch {machine['torch']}, "
             f"Python {machine['python']}, on the CPU."]
    if state["busy"]:
        lines.insert(0, "BUSY MACHINE: other processes used more than "
                        f"{IDLE_LIMIT} cores before or during some tables; these are not idle figures.")
    else:
        lines.append(f"The machine was idle before and during every table: other processes used at most "
                     f"{max(s['others_cores'] for s in [state['before'], *state['sections'].values()]):.2f} cores.")
    return "\n".join(lines)


def measured(names, quick):
    """Each section's figures, and the machine's state while it was timed."""
    report, states = {}, {}
    for name, measure, _ in SECTIONS:
        if names is None or name in names:
            start = counters()
            report[name] = measure(quick)
            states[name] = machine_state(start, counters())
    return report, states


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short version: fewer epochs and runs")
    parser.add_argument("--only", nargs="+", choices=[name for name, _, _ in SECTIONS], metavar="SECTION",
                        help="measure these sections only: " + ", ".join(name for name, _, _ in SECTIONS))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"), help="where to write the numbers")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as markdown (for docs/speed.md)")
    parser.add_argument("--figure", metavar="PATH", help="also draw the growth's cost per run-epoch (a .png)")
    parser.add_argument("--allow-busy", action="store_true", help="write the files even from a busy machine")
    args = parser.parse_args(argv)
    before = state_before(0.5 if args.quick else 2.0)
    if before["busy"] and not args.allow_busy:
        print(f"bench.py: the machine is busy ({state_line(before)}); nothing timed, nothing written "
              "(--allow-busy times it anyway)", file=sys.stderr)
        return BUSY
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "device": "cpu",
                          "torch": torch.__version__, "processor": platform.processor() or platform.machine()},
              "quick": args.quick}
    sections, states = measured(args.only, args.quick)
    busy = before["busy"] or any(state["busy"] for state in states.values())
    report.update({"machine_state": {"idle_limit_cores": IDLE_LIMIT, "before": before, "sections": states,
                                     "busy": busy}, "busy": busy}, **sections)
    print(heading(report) + "\n")
    print(markdown(report))
    if busy and not args.allow_busy:
        print("bench.py: the machine became busy while timing; the tables above are not idle figures, nothing "
              "written (--allow-busy writes them anyway)", file=sys.stderr)
        return BUSY
    write_outputs(args, report)
    return 0


def write_outputs(args, report):
    """The JSON, and where asked the markdown and the growth's figure."""
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    figure = args.figure if "growth" in report else None
    if figure:
        growth_figure(report["growth"], figure)
    if args.markdown:
        link = os.path.relpath(figure, Path(args.markdown).parent) if figure else None
        with open(args.markdown, "w") as f:
            f.write(heading(report) + "\n\n" + markdown(report) + "\n"
                    + (f"\n![the growth: µs per run-epoch against R]({link})\n" if link else ""))


if __name__ == "__main__":
    sys.exit(main())
