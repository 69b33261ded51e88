"""Speed of quadratic_regression.py, each figure a ratio against a baseline timed in the same run.

    python benchmarks/bench.py                 # the full benchmark, several minutes
    python benchmarks/bench.py --quick         # a short version (the tests run it)
    python benchmarks/bench.py --only runs_target replications   # some sections only

Prints markdown tables and writes the numbers as JSON (--json, default benchmarks/results.json).

1. faithful path: time per epoch of the default run (plain SGD on `params`) against the blog's own
   loop (nn.Module, nn.MSELoss, torch.optim.SGD, zero_grad/backward/step, loss.item() every 100
   epochs), alternating on the same data, and whether every logged loss is identical; the same for
   --gradients manual (the lesson's train_by_hand).
2. time to fit: training seconds until the expanded coefficients are within 0.01 of least squares,
   for each optimizer, with and without --standardize, for both models; beside it, what the command
   line does by default (its epochs, or its stop rule), and --optimizer lbfgs's default on seeds 0-9.
3. replications: training time of R runs trained together (--runs R: the gradients by hand over the runs, and
   autograd through them) against one run, at 20000 epochs, one torch thread as the command line; and --runs 1000
   against one run for each model, alternating rounds, beside the blog's own program.
4. --animate: training time with its frames recorded against without.
5. start-up: `--help` and an argument error, as subprocesses, against `python -c pass`.
6. --lr-sweep: N learning rates (with the finer sweep that pins the limit down) against one run of
   the same epochs, for each model.
"""
import argparse
import json
import os
import platform
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
AUTOGRAD_UP_TO = 1000  # autograd through the stacked runs is timed up to this many runs (10000 take minutes)


def timed_replicas(model_name, runs, epochs, loop):
    """Training seconds of `runs` replications (seeds 0..runs-1) with the loop --runs takes (batched: the gradients
    by hand; blog: autograd through the stacked runs), and how many succeeded."""
    x, ys, initial = replicas.replication_data(model_name, range(runs))
    result = fit(replicas.Replicas(initial), x, ys, model_name=model_name, epochs=epochs, loop=loop)
    summary = replicas.summarize_replications(result, x, ys, list(range(runs)))
    return result.log.seconds, int(summary.succeeded.sum())


def one_run_seconds(model_name, epochs):
    """Training seconds of one run as the command line trains it (the lesson's loop, seed 0): the baseline."""
    torch.manual_seed(0)
    x, y = qr.make_data()
    return fit(models.MODELS[model_name].build(), x, y, model_name=model_name, epochs=epochs).log.seconds


def bench_replications(counts, epochs, model_name="linear"):
    """--runs R for each R, with the gradients by hand (what --runs does) and with autograd, against one run;
    every figure is training seconds."""
    single = one_run_seconds(model_name, epochs)
    rows = []
    for runs in counts:
        seconds, succeeded = timed_replicas(model_name, runs, epochs, "batched")
        autograd = timed_replicas(model_name, runs, epochs, "blog")[0] if runs <= AUTOGRAD_UP_TO else None
        rows.append({"runs": runs, "seconds": seconds, "ratio_to_one_run": seconds / single,
                     "autograd_seconds": autograd, "autograd_ratio_to_one_run": autograd and autograd / single,
                     "succeeded": succeeded})
    return {"model": model_name, "epochs": epochs, "single_run_seconds": single, "rows": rows}


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
            batched.append(timed_replicas(model_name, runs, epochs, "batched")[0])
        single, seconds = statistics.median(singles), statistics.median(batched)
        autograd = timed_replicas(model_name, runs, epochs, "blog")[0]
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


def markdown_replications(rep):
    lines = [f"### Replications (`--model {rep['model']}`, {rep['epochs']} epochs, training seconds; "
             f"one run alone: {rep['single_run_seconds']:.2f} s)", "",
             "| runs | by hand (s) | × one run | autograd (s) | × one run | succeeded |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rep["rows"]:
        autograd = (f"{r['autograd_seconds']:.2f} | {r['autograd_ratio_to_one_run']:.2f}"
                    if r["autograd_seconds"] is not None else "not timed | ")
        lines.append(f"| {r['runs']} | {r['seconds']:.2f} | {r['ratio_to_one_run']:.2f} | {autograd} | "
                     f"{r['succeeded']}/{r['runs']} |")
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
def bench_busy_machine(runs, epochs):
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
    for label, extra in (("default (1 thread)", []), ("--threads 2", ["--threads", "2"])):
        idle = timed(extra)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy = timed(extra)
        finally:
            spinner.kill()
        rows.append({"threads": label, "idle_seconds": idle, "busy_seconds": busy, "ratio": busy / idle})
    return {"runs": runs, "epochs": epochs, "rows": rows}
# ----------------------------------------------------------------------------- 7. --lr-sweep
def bench_lr_sweep(count, epochs, rounds=3):
    """The whole --lr-sweep (first sweep and finer ones) against one plain-SGD run of the same epochs,
    alternating `rounds` times on the same data; the ratio is of the medians."""
    rows = []
    for model_name in models.BLOG_MODELS:
        torch.manual_seed(0)
        x, y = qr.make_data()
        after_data = torch.get_rng_state()
        singles, sweeps = [], []
        for _ in range(rounds):
            torch.set_rng_state(after_data)
            singles.append(fit(models.MODELS[model_name].build(), x, y, model_name=model_name,
                               epochs=epochs).log.seconds)
            torch.set_rng_state(after_data)
            start = time.perf_counter()
            result = sweep.sweep(model_name, models.MODELS[model_name].build(), x, y, count, {"epochs": epochs})
            sweeps.append(time.perf_counter() - start)
        single, seconds = statistics.median(singles), statistics.median(sweeps)
        rows.append({"model": model_name, "lrs": count, "epochs": epochs, "rounds": rounds,
                     "single_run_seconds": single, "sweep_seconds": seconds, "vectorized_runs": result.vectorized_runs,
                     "ratio_to_one_run": seconds / single, "predicted_edge": result.predicted_limit,
                     "measured_edge": result.measured_limit})
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
    ("faithful", lambda quick: bench_faithful(epochs=2_000 if quick else 50_000, rounds=2 if quick else 3),
     markdown_faithful),
    ("time_to_fit", lambda quick: bench_time_to_fit(max_epochs=1_000 if quick else None), markdown_time_to_fit),
    ("lbfgs_default", lambda quick: bench_lbfgs_default(range(3 if quick else 10), repeats=1 if quick else 3),
     markdown_lbfgs_default),
    ("runs_target", lambda quick: one_thread(bench_runs_target)(100 if quick else 1000, 500 if quick else 20_000,
                                                                rounds=1 if quick else 3),
     lambda rows: [markdown_runs_target(rows)]),
    ("replications", lambda quick: one_thread(bench_replications)([1, 10, 100] if quick else [1, 10, 100, 1000, 10000],
                                                                  epochs=500 if quick else 20_000),
     lambda rep: [markdown_replications(rep)]),
    ("frames", lambda quick: bench_frames(epochs=2_000 if quick else 20_000, rounds=2 if quick else 3),
     markdown_frames),
    ("lr_sweep", lambda quick: bench_lr_sweep(16 if quick else 64, epochs=300 if quick else 20_000,
                                              rounds=1 if quick else 3), lambda rows: [markdown_lr_sweep(rows)]),
    ("startup", lambda quick: bench_startup(repeats=2 if quick else 5), markdown_startup),
    ("busy_machine", lambda quick: bench_busy_machine(runs=20 if quick else 1000, epochs=100 if quick else 5000),
     markdown_busy_machine),
]


def markdown(report):
    """The tables of the sections the report holds, in SECTIONS' order."""
    blocks = ["\n".join(lines(report[name])) for name, _, lines in SECTIONS if name in report]
    return "\n\n".join(block.strip("\n") for block in blocks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short version: fewer epochs and runs")
    parser.add_argument("--only", nargs="+", choices=[name for name, _, _ in SECTIONS], metavar="SECTION",
                        help="measure these sections only: " + ", ".join(name for name, _, _ in SECTIONS))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"), help="where to write the numbers")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as markdown (for docs/speed.md)")
    args = parser.parse_args(argv)
    quick = args.quick
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(),
                          "torch": torch.__version__, "processor": platform.processor() or platform.machine()},
              "quick": quick}
    for name, measure, _ in SECTIONS:
        if args.only is None or name in args.only:
            report[name] = measure(quick)
    machine = report["machine"]
    print(f"machine: {machine['cpus']} cores, torch {machine['torch']} ({machine['torch_threads']} threads), "
          f"Python {report['machine']['python']}\n")
    print(markdown(report))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Measured on {machine['cpus']} cores, torch {machine['torch']}, Python {machine['python']}.\n\n"
                    + markdown(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
