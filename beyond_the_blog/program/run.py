"""The command line's runs, start to end: one model, both, many replications, or an lr sweep; then
the printed analysis, the figure, the GIF, the metrics and the saved model.

It uses the lesson (quadratic_regression.py) as nanoGPT's train.py uses model.py: its data, its
models (through models.py), its loops (through fit.py) and its printing.
"""
import sys
from dataclasses import replace

import torch

import quadratic_regression as lesson

from ..many_runs.replicas import Replicas, replication_data, summarize_replications
from ..many_runs.sweep import sweep
from ..models import MODELS
from ..report.explain import explain, explain_divergence
from ..report.summary import print_summary, summary
from ..report.sweep_text import print_sweep, print_sweep_stage, sweep_interruption
from ..report.text import (
    print_comparison,
    print_explanation,
    print_fitted,
    print_full_batch_companion,
    print_interrupted,
    print_least_squares,
    print_model_heading,
    print_replications,
    print_stop,
)
from ..system.interruptions import RecordedSignals, guarded_stdout
from ..system.status import ExitStatus, error_line, refuse
from ..theory.curvature import largest_curvature
from ..theory.least_squares import least_squares
from ..training.fit import FitConfig, fit
from ..training.judge import judge_rise, judge_stop
from ..training.monitor import Progress, TrainLog, TrajectoryRecorder, chain, convergence_rule, frame_epochs
from .data import refused_data
from .explorer import run_explorer
from .outputs import write_replication_outputs, write_single_outputs, write_sweep_outputs


def run(options) -> int:
    """Train and report as `options` say; returns the exit status."""
    device = resolve_device(options.device)
    if device is None:
        return refuse(f"--device {options.device}: not available on this machine")
    threads = torch.get_num_threads()
    # one thread unless told otherwise: a step works on a few hundred numbers, too few to share out
    torch.set_num_threads(options.threads)
    try:
        with guarded_stdout() as stdout, RecordedSignals() as signals:
            if options.explore is not None:
                status = run_explorer(options, device, signals)
            elif options.lr_sweep is not None:
                status = run_lr_sweep(options, device, signals)
            elif options.runs > 1:
                status = run_replications(options, device, signals)
            else:
                status = run_single(options, device, signals)
    except KeyboardInterrupt:  # only where signals keep their usual meaning (not the main thread)
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    finally:
        torch.set_num_threads(threads)
    if signals.received and status not in (ExitStatus.INTERRUPTED, ExitStatus.BAD_ARGUMENTS):  # training had ended
        print_interrupted("a signal came after training had ended: the results above and the files written are whole")
    if stdout.exit_status == ExitStatus.IO_ERROR:
        error_line(f"could not write to standard output ({stdout.error.strerror}); the files were still written")
    return signals.exit_status or status or stdout.exit_status or ExitStatus.SUCCESS


def resolve_device(name):
    """The torch device, or None if this machine does not have it."""
    if name == "cuda" and not torch.cuda.is_available():
        return None
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return None
    return torch.device(name)


def fit_with_progress(options, model, name, data, label, record=None, seeds=None):
    """fit() with the command line's options, printing the epoch lines (and a bar on a terminal).
    data: (x, y, signals). record: "path" keeps the path of the parameters (the Fit's trajectory),
    "frames" also the prediction at the GIF's epochs. seeds: each run's minibatch order (replicas)."""
    x, y, signals = data
    epochs = options.epochs[name]
    record_interval, log_interval = options.intervals(epochs)
    progress = Progress(epochs, log_interval, options.quiet, label=label)
    recorder = TrajectoryRecorder(model) if record else None
    config = FitConfig(model_name=name, optimizer=options.optimizer, lr=options.lr[name], epochs=epochs,
                       standardize=options.standardize, loop=options.loop, batch_size=options.batch_size,
                       shuffle_seeds=tuple(seeds or [options.seed]), record_interval=record_interval,
                       on_record=chain(progress, recorder), tol=options.tol,
                       frame_epochs=tuple(frame_epochs(epochs)) if record == "frames" else (),
                       converged=convergence_rule(options.optimizer, epochs)
                       if options.stop_when_converged else None)
    try:
        result = fit(model, x, y, config, signals=signals)
    finally:
        progress.close()
    if recorder is not None:
        result.trajectory = recorder.trajectory(result)
    return result


def exit_status(log, diverged_runs=None):
    """INTERRUPTED for an interrupted run, DIVERGED for a diverged run (or any diverged replication: diverged_runs,
    (R,) bool)."""
    if log.stop_reason == "interrupted":  # cut short, whatever else happened: the signal decides the exit status
        return ExitStatus.INTERRUPTED
    if log.stop_reason == "diverged" or (diverged_runs is not None and bool(diverged_runs.any())):
        return ExitStatus.DIVERGED
    return ExitStatus.SUCCESS


def written(failed_writes):
    return ExitStatus.IO_ERROR if failed_writes else ExitStatus.SUCCESS


def run_single(options, device, signals):
    torch.manual_seed(options.seed)
    x, y = lesson.make_data(options.samples, options.noise, options.x_range)
    refused = refused_data(options, x, y)
    if refused:
        return refused
    after_data = torch.get_rng_state()
    least = least_squares(x, y)
    fits, diagnoses = [], {}
    for name in options.models:
        if len(options.models) > 1:
            print_model_heading(name)
        torch.set_rng_state(after_data)  # with --model both, each model starts as in its own run
        f = fit_with_progress(options, MODELS[name].build().to(device), name,
                              (x.to(device), y.to(device), signals.received), label=name,
                              record="frames" if options.animate is not None else "path")
        fits.append(f)
        judge_stop(f.log, f.coefficients, least)
        judge_rise(f.log, f.end_loss)
        lesson.print_parameters(f.model)
        if f.log.stop_reason == "diverged":
            print_summary(summary(f, least, None, x))
            print(divergence_message(f, x, y), file=sys.stderr)
            if name != options.models[-1]:
                print(f"{options.models[-1]} was not trained: {name} diverged", file=sys.stderr)
            break
        diagnoses[name] = report_fit(options, f, x, y, least)
        if f.log.stop_reason == "interrupted":
            break
    if len(fits) == 2:
        print_comparison(fits, least)
    full_batch = full_batch_fits(options, fits, (x, y, after_data), device, signals)
    failed_writes = write_single_outputs(options, fits, diagnoses, x, y, least, full_batch)
    if any(c.log.stop_reason == "interrupted" for c in full_batch):
        return ExitStatus.INTERRUPTED
    return exit_status(fits[-1].log) or written(failed_writes)


def full_batch_fits(options, fits, data, device, signals):
    """--batch-size with a figure: the same options on the full batch, from the same initial
    parameters, whose loss curve the figure draws beside the minibatch one. It costs one step per
    epoch, against the minibatch run's n/B, so at most half the run just made. data: (x, y, rng state)."""
    x, y, after_data = data
    finished = all(f.log.stop_reason in ("epochs", "converged", "stalled", "tol") for f in fits)
    if options.batch_size is None or options.batch_size >= options.samples or not options.plot or not finished:
        return []
    full_batch_options = replace(options, loop="blog", batch_size=None, quiet=True)
    companions = []
    for f in fits:
        torch.set_rng_state(after_data)
        companion = fit_with_progress(full_batch_options, MODELS[f.model_name].build().to(device), f.model_name,
                                      (x.to(device), y.to(device), signals.received),
                                      label=f"{f.model_name} full batch")
        print_full_batch_companion(f, companion, options.batch_size)
        companions.append(companion)
    return companions


def divergence_message(f, x, y):
    inputs = f.standardization(x)
    curvature = largest_curvature(f.model, f.initial, inputs, y)
    batches = None
    if f.batch_size is not None and f.batch_size < x.shape[0]:  # the points farthest out curve the most
        farthest = inputs.abs().flatten().argsort(descending=True)[:POINTS_CHECKED]
        batches = (f.batch_size, max(largest_curvature(f.model, f.initial, inputs[i:i + 1], y[i:i + 1])
                                     for i in farthest.tolist()))
    return explain_divergence(f.optimizer, f.lr, f.log, curvature, MODELS[f.model_name].constant_hessian,
                              batches=batches, standardized=f.standardize)


POINTS_CHECKED = 10  # one point's loss curves most at the largest |input|: its Hessian is checked at the ten


def report_fit(options, f, x, y, least):
    """Everything printed after a finished (or interrupted) fit: the plain summary first, then the details it
    rests on; returns the model's diagnosis."""
    diagnose = MODELS[f.model_name].diagnose
    diagnosis = diagnose(f, x, y) if diagnose is not None else None
    print_summary(summary(f, least, diagnosis, x))
    print_fitted(f)
    print_stop(f, options.tol, options.intervals(f.epochs)[0], least)
    print_least_squares(f, least)
    print_explanation(explain(diagnosis, f, least))
    return diagnosis


def run_replications(options, device, signals):
    seeds = list(range(options.seed, options.seed + options.runs))
    x, ys, starts = replication_data(options.model, seeds, options.samples, options.noise, options.x_range)
    refused = refused_data(options, x, ys)
    if refused:
        return refused
    result = fit_with_progress(options, Replicas(starts).to(device), options.model,
                               (x.to(device), ys.to(device), signals.received), label=f"{options.runs} runs",
                               seeds=seeds)
    summary = summarize_replications(result, x, ys, seeds)
    judge_stop(result.log, result.coefficients, summary.least)
    print_replications(result, summary)
    if result.log.stop_reason == "interrupted":
        print_interrupted(f"interrupted after {result.log.epochs_run} epochs: "
                          "the summary above is where training stopped")
    if summary.diverged.any():
        print(replica_divergence_message(result, summary, x, ys, starts), file=sys.stderr)
    failed_writes = write_replication_outputs(options, result, x, ys, summary)
    return exit_status(result.log, summary.diverged) or written(failed_writes)


def replica_divergence_message(result, summary, x, ys, models):
    """Which runs diverged, how the first did, and the stable lr of their optimizer at their start
    (the strictest of the first five)."""
    bad = [r for r, gone in enumerate(summary.diverged.tolist()) if gone]
    inputs = result.standardization(x)
    curvatures = [largest_curvature(models[r], {k: v[r] for k, v in result.initial.items()}, inputs, ys[r])
                  for r in bad[:5]]
    seeds = ", ".join(str(summary.seeds[r]) for r in bad[:20]) + (" ..." if len(bad) > 20 else "")
    return explain_divergence(result.optimizer, result.lr, first_divergence(result, bad), max(curvatures),
                              MODELS[result.model_name].constant_hessian,
                              what=f"{len(bad)} of {len(summary.seeds)} runs diverged (seeds {seeds}); the first",
                              standardized=result.standardize)


def first_divergence(result, bad):
    """The log that explain_divergence reads for the first diverged run: the earliest inf/NaN loss of any run if
    one overflowed, else the first diverged run's own end above its start, as its single run's log tells it."""
    log = result.log
    if log.diverged_at is not None:
        return log
    first = bad[0]
    return TrainLog(epochs_run=log.epochs_run, history=[(1, log.start_loss[first].item())],
                    diverged_loss=result.end_loss[first].item())


def run_lr_sweep(options, device, signals):
    """--lr-sweep N: N learning rates from the same start on the same data, one vectorized run."""
    name = options.model
    torch.manual_seed(options.seed)
    x, y = lesson.make_data(options.samples, options.noise, options.x_range)
    refused = refused_data(options, x, y)
    if refused:
        return refused
    model = MODELS[name].build().to(device)
    epochs = options.epochs[name]
    record_interval, log_interval = options.intervals(epochs)
    progress = Progress(epochs, log_interval, options.quiet, label=f"{options.lr_sweep} lrs")
    try:
        result = sweep(name, model, x.to(device), y.to(device), options.lr_sweep,
                       {"optimizer": options.optimizer, "epochs": epochs, "standardize": options.standardize,
                        "record_interval": record_interval, "signals": signals.received,
                        "on_stage": None if options.quiet else print_sweep_stage}, on_record=progress)
    finally:
        progress.close()
    print_sweep(result)
    if result.stop_reason == "interrupted":
        print_interrupted(sweep_interruption(result))
    failed_writes = write_sweep_outputs(options, result)
    return ExitStatus.INTERRUPTED if result.stop_reason == "interrupted" else written(failed_writes)
