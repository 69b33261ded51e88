"""The command line's runs, start to end: one model, both, or many replications; then the
printed analysis, the figure, the GIF, the metrics and the saved model.

It drives the lesson's own pieces (its data, training loop and printing), which it is handed as
a Lesson: this package never imports the script.
"""
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .analysis import least_squares, stable_lr
from .command_line import PROG
from .explanations import explain
from .fitting import fit
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
from .stopping import convergence_rule
from .training import Progress, frame_epochs


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
        print(f"{PROG}: error: --device {settings.device}: not available on this machine (see --help)",
              file=sys.stderr)
        return 2
    try:
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


def stage_options(settings, lesson, name, seeds):
    """The loop to run and what it needs: the blog's, by hand (--gradients manual) or in minibatches."""
    if settings.gradients == "manual":
        return {"train": lesson.train_by_hand, "manual_gradients": settings_of(name).manual_gradients}
    if settings.batch_size is not None:
        return {"train": lesson.train_in_minibatches, "batch_size": settings.batch_size, "shuffle_seeds": seeds}
    return {"train": lesson.train}


def fit_with_progress(settings, lesson, model, name, x, y, label, frames_wanted=False, seeds=None):
    """fit() with the command line's settings, printing the epoch lines (and a bar on a terminal)."""
    epochs = settings.epochs[name]
    record_interval, log_interval = settings.intervals(epochs)
    progress = Progress(epochs, log_interval, settings.quiet, lesson.print_epoch, label=label)
    converged = convergence_rule(settings.optimizer, record_interval) if settings.stop_when_converged else None
    try:
        return fit(model, x, y, **stage_options(settings, lesson, name, seeds or [settings.seed]), model_name=name,
                   optimizer=settings.optimizer, lr=settings.lr[name], epochs=epochs,
                   standardize=settings.standardize, record_interval=record_interval, on_record=progress,
                   tol=settings.tol, frame_epochs=frame_epochs(epochs) if frames_wanted else (), converged=converged)
    finally:
        progress.close()


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
                              label=name, frames_wanted=settings.animate is not None)
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
    full_batch = full_batch_fits(settings, lesson, fits, x, y, after_data, device)
    write_single_outputs(settings, fits, diagnoses, x, y, least, full_batch)
    return exit_status(fits[-1].log)


def full_batch_fits(settings, lesson, fits, x, y, after_data, device):
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
                                      f.model_name, x.to(device), y.to(device), label=f"{f.model_name} full batch")
        print(f"{f.model_name}: final loss {f.final_loss:.6f} with batches of {settings.batch_size}; the same "
              f"settings on the full batch (drawn dashed in the figure): {companion.final_loss:.6f}")
        companions.append(companion)
    return companions


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


def write_single_outputs(settings, fits, diagnoses, x, y, least, full_batch=()):
    show = not settings.no_show and can_show()
    if settings.plot:
        plot_fits(fits, x, y, least, settings.plot, show, full_batch)
        print(f"figure written to {settings.plot}")
    if settings.animate and fits[0].log.frames:
        frames = write_animation(settings.animate, x, y, fits[0])
        print(f"animation written to {settings.animate} ({frames} frames)")
    if settings.metrics:
        records = {f.model_name: fit_metrics(f, least, diagnoses.get(f.model_name), settings.seed) for f in fits}
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
                               ys.to(device), label=f"{settings.runs} runs", seeds=seeds)
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
