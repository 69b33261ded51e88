"""The command line's runs, start to end: one model, both, or many replications; then the
printed analysis, the figure, the GIF, the metrics and the saved model.

It drives the lesson's own pieces (its data, training loop and printing), which it is handed as
a Lesson: this package never imports the script.
"""
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .analysis import least_squares, stable_lr
from .command_line import PROG
from .explanations import explain
from .fitting import fit
from .lr_sweep import sweep
from .model_registry import make_model, settings_of
from .plots import can_show, plot_fits, plot_replications, write_animation
from .replications import Replicas, replication_data, summarize_replications
from .report import (
    fit_metrics,
    print_comparison,
    print_fitted,
    print_least_squares,
    print_replications,
    replication_metrics,
    write_json,
)
from .sweep_report import print_sweep, sweep_metrics
from .training import Progress, frame_epochs
from .trajectory import TrajectoryRecorder, chain
from .why_figures import plot_landscape, plot_sweep


@dataclass(frozen=True)
class Lesson:
    """The pieces of quadratic_regression.py that a run uses."""
    make_data: Callable         # make_data(samples, noise, x_range) -> x, y
    train: Callable             # the blog's loop: train(model, x, y, optimizer, epochs, monitor, criterion)
    print_epoch: Callable       # print_epoch(epoch, epochs, loss): the blog's log line
    print_parameters: Callable  # print_parameters(model): the blog's closing lines


def run(settings, lesson) -> int:
    """Train and report as `settings` say; returns the exit status."""
    device = resolve_device(settings.device)
    if device is None:
        print(f"{PROG}: error: --device {settings.device}: not available on this machine (see --help)",
              file=sys.stderr)
        return 2
    try:
        if settings.lr_sweep is not None:
            return run_lr_sweep(settings, lesson, device)
        if settings.runs > 1:
            return run_replications(settings, lesson, device)
        return run_single(settings, lesson, device)
    except KeyboardInterrupt:  # outside training (training itself stops cleanly on Ctrl-C)
        print("interrupted", file=sys.stderr)
        return 130


def resolve_device(name):
    """The torch device, or None if this machine does not have it."""
    if name == "cuda" and not torch.cuda.is_available():
        return None
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return None
    return torch.device(name)


def fit_with_progress(settings, lesson, model, name, x, y, label, frames_wanted=False, record_path=False):
    """fit() with the command line's settings, printing the epoch lines (and a bar on a terminal);
    with record_path, the returned Fit carries the path of its parameters (its trajectory)."""
    epochs = settings.epochs[name]
    record_interval, log_interval = settings.intervals(epochs)
    progress = Progress(epochs, log_interval, settings.quiet, lesson.print_epoch, label=label)
    recorder = TrajectoryRecorder(model) if record_path else None
    try:
        result = fit(model, x, y, train=lesson.train, model_name=name, optimizer=settings.optimizer,
                     lr=settings.lr[name], epochs=epochs, standardize=settings.standardize,
                     record_interval=record_interval, on_record=chain(progress, recorder), tol=settings.tol,
                     frame_epochs=frame_epochs(epochs) if frames_wanted else ())
    finally:
        progress.close()
    if recorder is not None:
        result.trajectory = recorder.trajectory(result)
    return result


def exit_status(log):
    """1 for a diverged run, 130 for an interrupted one (the shell's code for Ctrl-C), else 0."""
    return {"diverged": 1, "interrupted": 130}.get(log.stop_reason, 0)


def run_single(settings, lesson, device):
    torch.manual_seed(settings.seed)
    x, y = lesson.make_data(settings.samples, settings.noise, settings.x_range)
    after_data = torch.get_rng_state()
    least = least_squares(x, y)
    fits, diagnoses = [], {}
    for name in settings.models:
        if len(settings.models) > 1:
            print(f"== model {name} ==")
        torch.set_rng_state(after_data)  # with --model both, each model starts as in its own run
        f = fit_with_progress(settings, lesson, make_model(name).to(device), name, x.to(device), y.to(device),
                              label=name, frames_wanted=settings.animate is not None, record_path=True)
        fits.append(f)
        lesson.print_parameters(f.model)
        if f.log.stop_reason == "diverged":
            print_divergence(f, x, y)
            break
        diagnoses[name] = report_fit(settings, f, x, y, least)
        if f.log.stop_reason == "interrupted":
            break
    if len(fits) == 2:
        print_comparison(fits, least)
    write_single_outputs(settings, fits, diagnoses, x, y, least)
    return exit_status(fits[-1].log)


def print_divergence(f, x, y):
    inputs = (x - f.mean) / f.std
    where = "" if settings_of(f.model_name).constant_hessian else ", at the start"
    print(f"error: training diverged at epoch {f.log.diverged_at} (the loss became inf/NaN) with lr {f.lr:g}; "
          f"for this data plain SGD is stable below lr {stable_lr(f.model, f.initial, inputs, y):.3g} "
          f"(2/lambda_max of the loss Hessian{where})", file=sys.stderr)


def report_fit(settings, f, x, y, least):
    """Everything printed after a finished (or interrupted) fit; returns the model's diagnosis."""
    print_fitted(f)
    if f.log.stop_reason == "interrupted":
        print(f"interrupted after {f.log.epochs_run} epochs: the parameters above are where training stopped",
              file=sys.stderr)
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


def write_single_outputs(settings, fits, diagnoses, x, y, least):
    show = not settings.no_show and can_show()
    if settings.plot:
        plot_fits(fits, x, y, least, settings.plot, show)
        print(f"figure written to {settings.plot}")
    if settings.animate and fits[0].log.frames:
        frames = write_animation(settings.animate, x, y, fits[0])
        print(f"animation written to {settings.animate} ({frames} frames)")
    if settings.landscape:
        write_landscape(settings.landscape, fits, x, y)
    if settings.metrics:
        records = {f.model_name: fit_metrics(f, least, diagnoses.get(f.model_name), settings.seed) for f in fits}
        for f in fits:
            records[f.model_name]["trajectory"] = f.trajectory.metrics()
        write_json(settings.metrics, records if settings.model == "both" else records[settings.model])
        print(f"metrics written to {settings.metrics}")
    if settings.save_model:
        states = {f.model_name: f.model.state_dict() for f in fits}
        torch.save(states if settings.model == "both" else states[settings.model], settings.save_model)
        print(f"model saved to {settings.save_model}")
    if show and settings.plot:
        import matplotlib.pyplot as plt
        plt.show()


def run_replications(settings, lesson, device):
    seeds = list(range(settings.seed, settings.seed + settings.runs))
    x, ys, models = replication_data(settings.model, seeds, lesson.make_data, settings.samples, settings.noise,
                                     settings.x_range)
    result = fit_with_progress(settings, lesson, Replicas(models).to(device), settings.model, x.to(device),
                               ys.to(device), label=f"{settings.runs} runs")
    summary = summarize_replications(result, x, ys, seeds)
    print_replications(result, summary)
    if result.log.stop_reason == "interrupted":
        print(f"interrupted after {result.log.epochs_run} epochs: the summary above is where training stopped",
              file=sys.stderr)
    if result.log.stop_reason == "diverged":
        print(f"error: every run diverged by epoch {result.log.diverged_at} with lr {result.lr:g}", file=sys.stderr)
    show = not settings.no_show and can_show()
    if settings.plot:
        plot_replications(result, x, ys, summary, settings.plot, show)
        print(f"figure written to {settings.plot}")
    if settings.metrics:
        write_json(settings.metrics, replication_metrics(result, summary, settings.seed))
        print(f"metrics written to {settings.metrics}")
    if settings.save_model:
        torch.save({k: v.cpu() for k, v in result.parameters.items()}, settings.save_model)
        print(f"model saved to {settings.save_model}")
    if show and settings.plot:
        import matplotlib.pyplot as plt
        plt.show()
    return exit_status(result.log)


def write_landscape(path, fits, x, y):
    """--landscape: the bowl with the paths of the fits that did not diverge."""
    drawn = [f for f in fits if f.log.stop_reason != "diverged"]
    if not drawn:
        print(f"no landscape written: the run diverged, its path leaves the bowl ({path})", file=sys.stderr)
        return
    plot_landscape(drawn, x.cpu(), y.cpu(), path)
    print(f"landscape written to {path}")


def run_lr_sweep(settings, lesson, device):
    """--lr-sweep N: N learning rates from the same start on the same data, one vectorized run."""
    name = settings.model
    torch.manual_seed(settings.seed)
    x, y = lesson.make_data(settings.samples, settings.noise, settings.x_range)
    model = make_model(name).to(device)
    epochs = settings.epochs[name]
    record_interval, log_interval = settings.intervals(epochs)
    progress = Progress(epochs, log_interval, settings.quiet, lesson.print_epoch, label=f"{settings.lr_sweep} lrs")
    try:
        result = sweep(lesson.train, name, model, x.to(device), y.to(device), settings.lr_sweep,
                       optimizer=settings.optimizer, epochs=epochs, standardize=settings.standardize,
                       record_interval=record_interval, on_record=progress)
    finally:
        progress.close()
    print_sweep(result)
    if result.stop_reason == "interrupted":
        print("interrupted: the sweep above is where training stopped", file=sys.stderr)
    if settings.plot:
        plot_sweep(result, settings.plot)
        print(f"figure written to {settings.plot}")
    if settings.metrics:
        write_json(settings.metrics, sweep_metrics(result, settings.seed))
        print(f"metrics written to {settings.metrics}")
    return 130 if result.stop_reason == "interrupted" else 0
