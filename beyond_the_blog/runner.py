"""The command line's runs, start to end: one model, both, or many replications; then the
printed analysis, the figure, the GIF, the metrics and the saved model.

It drives the lesson's own pieces (its data, training loop and printing), which it is handed as
a Lesson: this package never imports the script.
"""
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .analysis import design_condition, largest_curvature, least_squares
from .command_line import PROG
from .explanations import explain, explain_divergence
from .fitting import fit
from .interruptions import RecordedSignals, guarded_stdout
from .lr_sweep import sweep
from .model_registry import make_model, settings_of
from .outputs import write_replication_outputs, write_single_outputs, write_sweep_outputs
from .replications import Replicas, replication_data, summarize_replications
from .report import print_comparison, print_fitted, print_least_squares, print_replications
from .stopping import convergence_rule
from .sweep_report import print_sweep
from .training import Progress, frame_epochs
from .trajectory import TrajectoryRecorder, chain

MAX_DESIGN_CONDITION = 1e7  # beyond it, float64 least squares and eigenvalues lose most of their digits


@dataclass(frozen=True)
class Lesson:
    """The pieces of quadratic_regression.py that a run uses."""
    make_data: Callable         # make_data(samples, noise, x_range) -> x, y
    train: Callable             # the blog's loop: train(model, x, y, optimizer, epochs, monitor, criterion)
    print_epoch: Callable       # print_epoch(epoch, epochs, loss): the blog's log line
    print_parameters: Callable  # print_parameters(model): the blog's closing lines
    train_by_hand: Callable | None = None         # train_by_hand(gradients, optimizer, epochs, monitor)
    train_in_minibatches: Callable | None = None  # (model, x, y, optimizer, epochs, minibatches, monitor, criterion)


def run(settings, lesson) -> int:
    """Train and report as `settings` say; returns the exit status."""
    device = resolve_device(settings.device)
    if device is None:
        return refuse(f"--device {settings.device}: not available on this machine")
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_to_use(settings))
    try:
        with guarded_stdout() as stdout, RecordedSignals() as signals:
            if settings.lr_sweep is not None:
                status = run_lr_sweep(settings, lesson, device, signals)
            elif settings.runs > 1:
                status = run_replications(settings, lesson, device, signals)
            else:
                status = run_single(settings, lesson, device, signals)
    except KeyboardInterrupt:  # only where signals keep their usual meaning (not the main thread)
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)
    if stdout.exit_status == 74:
        print(f"{PROG}: error: could not write to standard output ({stdout.error.strerror}); "
              "the files were still written", file=sys.stderr)
    return signals.exit_status or status or stdout.exit_status or 0


def refuse(message):
    print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
    return 2


def threads_to_use(settings):
    """One torch thread unless told otherwise: a step here works on a few hundred numbers (a thousand
    runs: a few hundred thousand), too few to share out, and a second thread waits on a busy core."""
    if settings.threads is not None:
        return settings.threads
    return int(os.environ.get("OMP_NUM_THREADS", "1") or 1)


def resolve_device(name):
    """The torch device, or None if this machine does not have it."""
    if name == "cuda" and not torch.cuda.is_available():
        return None
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return None
    return torch.device(name)


def data_problem(settings, x, y):
    """Why this data cannot be fitted in floating point, or None."""
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return "the data is not finite in float32"
    condition = design_condition(x)
    if condition > MAX_DESIGN_CONDITION:
        lo, hi = settings.x_range
        return (f"--x-range {lo:g} {hi:g}: on these {x.numel()} float32 points x^2, x and 1 are too nearly "
                f"dependent to fit a quadratic (condition number {condition:.2g} of [x^2, x, 1], at most "
                f"{MAX_DESIGN_CONDITION:.0e}): use a wider range, or one nearer 0")
    return None


def stage_options(settings, lesson, name, seeds):
    """The loop to run and what it needs: the blog's, by hand (--gradients manual) or in minibatches."""
    if settings.gradients == "manual":
        return {"train": lesson.train_by_hand, "manual_gradients": settings_of(name).manual_gradients}
    if settings.batch_size is not None:
        return {"train": lesson.train_in_minibatches, "batch_size": settings.batch_size, "shuffle_seeds": seeds}
    return {"train": lesson.train}


def fit_with_progress(settings, lesson, model, name, x, y, label, signals=None, frames_wanted=False, seeds=None,
                      record_path=False):
    """fit() with the command line's settings, printing the epoch lines (and a bar on a terminal);
    with record_path, the returned Fit carries the path of its parameters (its trajectory)."""
    epochs = settings.epochs[name]
    record_interval, log_interval = settings.intervals(epochs)
    progress = Progress(epochs, log_interval, settings.quiet, lesson.print_epoch, label=label)
    converged = convergence_rule(settings.optimizer, record_interval) if settings.stop_when_converged else None
    recorder = TrajectoryRecorder(model) if record_path else None
    try:
        result = fit(model, x, y, **stage_options(settings, lesson, name, seeds or [settings.seed]), model_name=name,
                     optimizer=settings.optimizer, lr=settings.lr[name], epochs=epochs,
                     standardize=settings.standardize, record_interval=record_interval,
                     on_record=chain(progress, recorder), tol=settings.tol, signals=signals,
                     frame_epochs=frame_epochs(epochs) if frames_wanted else (), converged=converged)
    finally:
        progress.close()
    if recorder is not None:
        result.trajectory = recorder.trajectory(result)
    return result


def exit_status(log):
    """1 for a diverged run (or any diverged replication), 130 for an interrupted one, else 0."""
    if log.run_diverged_at is not None and bool((log.run_diverged_at > 0).any()):
        return 1
    return {"diverged": 1, "interrupted": 130}.get(log.stop_reason, 0)


def run_single(settings, lesson, device, signals):
    torch.manual_seed(settings.seed)
    x, y = lesson.make_data(settings.samples, settings.noise, settings.x_range)
    problem = data_problem(settings, x, y)
    if problem:
        return refuse(problem)
    after_data = torch.get_rng_state()
    least = least_squares(x, y)
    fits, diagnoses = [], {}
    for name in settings.models:
        if len(settings.models) > 1:
            print(f"== model {name} ==")
        torch.set_rng_state(after_data)  # with --model both, each model starts as in its own run
        f = fit_with_progress(settings, lesson, make_model(name).to(device), name, x.to(device), y.to(device),
                              label=name, signals=signals.received, frames_wanted=settings.animate is not None,
                              record_path=True)
        fits.append(f)
        lesson.print_parameters(f.model)
        if f.log.stop_reason == "diverged":
            print(divergence_message(f, x, y), file=sys.stderr)
            break
        diagnoses[name] = report_fit(settings, f, x, y, least)
        if f.log.stop_reason == "interrupted":
            break
    if len(fits) == 2:
        print_comparison(fits, least)
    full_batch = full_batch_fits(settings, lesson, fits, x, y, after_data, device, signals)
    failed_writes = write_single_outputs(settings, fits, diagnoses, x, y, least, full_batch)
    return exit_status(fits[-1].log) or (74 if failed_writes else 0)


def full_batch_fits(settings, lesson, fits, x, y, after_data, device, signals):
    """--batch-size with a figure: the same settings on the full batch, from the same initial
    parameters, whose loss curve the figure draws beside the minibatch one. It costs one step per
    epoch, against the minibatch run's n/B, so at most half the run just made."""
    finished = all(f.log.stop_reason in ("epochs", "converged", "tol") for f in fits)
    if settings.batch_size is None or settings.batch_size >= settings.samples or not settings.plot or not finished:
        return []
    full_batch_settings = replace(settings, batch_size=None, quiet=True)
    companions = []
    for f in fits:
        torch.set_rng_state(after_data)
        companion = fit_with_progress(full_batch_settings, lesson, make_model(f.model_name).to(device),
                                      f.model_name, x.to(device), y.to(device), label=f"{f.model_name} full batch",
                                      signals=signals.received)
        print(f"{f.model_name}: final loss {f.final_loss:.6f} with batches of {settings.batch_size}; the same "
              f"settings on the full batch (drawn dashed in the figure): {companion.final_loss:.6f}")
        companions.append(companion)
    return companions


def divergence_message(f, x, y):
    inputs = (x - f.mean) / f.std
    curvature = largest_curvature(f.model, f.initial, inputs, y)
    return explain_divergence(f.optimizer, f.lr, f.log, curvature, settings_of(f.model_name).constant_hessian)


def report_fit(settings, f, x, y, least):
    """Everything printed after a finished (or interrupted) fit; returns the model's diagnosis."""
    print_fitted(f)
    if f.log.stop_reason == "interrupted":
        print(f"interrupted after {f.log.epochs_run} epochs: the parameters above are where training stopped",
              file=sys.stderr)
    if f.log.stop_reason == "converged" and f.log.epochs_run < f.epochs:
        print(f"stopped at epoch {f.log.epochs_run} of {f.epochs}: converged (the loss no longer changed, "
              "see --help)")
    if f.log.stop_reason == "tol":
        print(f"stopped early at epoch {f.log.epochs_run}: the loss fell by less than --tol {settings.tol:g} "
              f"(relative) over the last {settings.intervals(f.epochs)[0]} epochs")
    print_least_squares(f, least)
    diagnose = settings_of(f.model_name).diagnose
    diagnosis = diagnose(f, x, y) if diagnose is not None else None
    lines = explain(diagnosis, f, least)
    if lines:
        print()
        print("\n".join(lines))
    return diagnosis


def run_replications(settings, lesson, device, signals):
    seeds = list(range(settings.seed, settings.seed + settings.runs))
    x, ys, models = replication_data(settings.model, seeds, lesson.make_data, settings.samples, settings.noise,
                                     settings.x_range)
    problem = data_problem(settings, x, ys)
    if problem:
        return refuse(problem)
    result = fit_with_progress(settings, lesson, Replicas(models).to(device), settings.model, x.to(device),
                               ys.to(device), label=f"{settings.runs} runs", signals=signals.received, seeds=seeds)
    summary = summarize_replications(result, x, ys, seeds)
    print_replications(result, summary)
    if result.log.stop_reason == "interrupted":
        print(f"interrupted after {result.log.epochs_run} epochs: the summary above is where training stopped",
              file=sys.stderr)
    if result.log.run_diverged_at is not None:
        print(replica_divergence_message(result, summary, x, ys, models), file=sys.stderr)
    failed_writes = write_replication_outputs(settings, result, x, ys, summary)
    return exit_status(result.log) or (74 if failed_writes else 0)


def replica_divergence_message(result, summary, x, ys, models):
    """Which runs diverged, when the first did, and the stable lr of their optimizer at their start
    (the strictest of the first five)."""
    diverged_at = result.log.run_diverged_at
    bad = [r for r in range(len(summary.seeds)) if diverged_at[r] > 0]
    inputs = (x - result.mean) / result.std
    curvatures = [largest_curvature(models[r], {k: v[r] for k, v in result.initial.items()}, inputs, ys[r])
                  for r in bad[:5]]
    seeds = ", ".join(str(summary.seeds[r]) for r in bad[:20]) + (" ..." if len(bad) > 20 else "")
    return explain_divergence(result.optimizer, result.lr, result.log, max(curvatures),
                              settings_of(result.model_name).constant_hessian,
                              what=f"{len(bad)} of {len(summary.seeds)} runs diverged (seeds {seeds}); the first")


def run_lr_sweep(settings, lesson, device, signals):
    """--lr-sweep N: N learning rates from the same start on the same data, one vectorized run."""
    name = settings.model
    torch.manual_seed(settings.seed)
    x, y = lesson.make_data(settings.samples, settings.noise, settings.x_range)
    problem = data_problem(settings, x, y)
    if problem:
        return refuse(problem)
    model = make_model(name).to(device)
    epochs = settings.epochs[name]
    record_interval, log_interval = settings.intervals(epochs)
    progress = Progress(epochs, log_interval, settings.quiet, lesson.print_epoch, label=f"{settings.lr_sweep} lrs")
    try:
        result = sweep(lesson.train, name, model, x.to(device), y.to(device), settings.lr_sweep,
                       optimizer=settings.optimizer, epochs=epochs, standardize=settings.standardize,
                       record_interval=record_interval, on_record=progress, signals=signals.received)
    finally:
        progress.close()
    print_sweep(result)
    if result.stop_reason == "interrupted":
        print("interrupted: the sweep above is where training stopped", file=sys.stderr)
    failed_writes = write_sweep_outputs(settings, result)
    return 130 if result.stop_reason == "interrupted" else (74 if failed_writes else 0)
