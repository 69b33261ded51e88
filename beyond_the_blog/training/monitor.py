"""The hook after each step of the lesson's loops: the monitor that records the loss, prints it, keeps
the path of the parameters, and stops training (inf/NaN, Ctrl-C, --tol, the stop rules).

The loop itself is `train` in quadratic_regression.py: forward, loss, zero_grad, backward, step,
then `after_step(epoch, epochs, loss, out)`, which returns True to stop.
"""
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from quadratic_regression import print_epoch

from ..models import Standardization, coefficients_of
from ..optimizers import OPTIMIZERS

EARLY_EPOCHS = {round(1.25**k) for k in range(40)}  # a few early losses too, for the log-scale plot


@dataclass
class TrainLog:
    """What the monitor saw: the loss at every recorded epoch, why training stopped, how long it took."""
    epochs_run: int = 0
    history: list = field(default_factory=list)  # (epoch, loss): a float, or a tensor of one loss per run
    frames: list = field(default_factory=list)   # (epoch, prediction at x) for --animate
    stop_reason: str = "epochs"  # epochs | tol | target | converged | stalled | diverged | interrupted
    diverged_at: int | None = None               # the first epoch with an inf/NaN loss (of any run)
    diverged_loss: float | None = None           # that loss: inf (float32 overflowed) or NaN; or the final loss
                                                 # of a run that ended above its start (diverged_at None)
    run_diverged_at: object = None               # replicated runs: (R,) first inf/NaN epoch per run, 0 for none
    seconds: float = 0.0

    @property
    def start_loss(self):
        """The loss before the first step, as logged at epoch 1 (None if epoch 1 was not recorded)."""
        return self.history[0][1] if self.history and self.history[0][0] == 1 else None


class Monitor:
    """Called by the training loop after every step as monitor(epoch, epochs, loss, out); True stops it.

    `config` is the fit's FitConfig; the Monitor reads its record_interval, on_record, tol,
    frame_epochs and converged. Every record_interval epochs, and at a few log-spaced epochs before,
    it keeps the loss and hands it to on_record (which prints it at the log interval). It stops on an
    inf/NaN loss, on Ctrl-C, SIGTERM or SIGHUP (`signals` fills up), when tol is met, when stop_when() says
    so or when converged(epoch, loss) does (a stop rule below, which looks at every epoch's loss). For replicated
    runs (a criterion with per_run) the recorded loss is a tensor, one entry per run; each run's first inf/NaN epoch
    is noted, and training stops once every run has diverged; the stop rule gets every run's loss at each multiple
    of its span, recorded or not.
    """

    def __init__(self, model, inputs, y, criterion, config, stop_when=None):
        self.model, self.inputs, self.y = model, inputs, y
        self.per_run = getattr(criterion, "per_run", None)
        self.record_interval, self.on_record, self.tol = config.record_interval, config.on_record, config.tol
        self.frame_epochs, self.stop_when = set(config.frame_epochs), stop_when
        self.log, self.signals, self.previous = TrainLog(), [], None
        self.converged, self.criterion = config.converged, criterion

    def stop(self, reason):
        self.log.stop_reason = reason
        return True

    def diverged(self, epoch, value):
        self.log.diverged_at, self.log.diverged_loss = epoch, value
        return self.stop("diverged")

    def __call__(self, epoch, epochs, loss, out):
        self.log.epochs_run = epoch
        value = loss.item()
        if not math.isfinite(value):
            if self.per_run is None:
                return self.diverged(epoch, value)
            if self.note_diverged_runs(epoch, out):
                return True
        records = epoch % self.record_interval == 0 or epoch in EARLY_EPOCHS
        if records or self.rule_compares(epoch):
            if self.per_run is not None:
                value = self.per_run(out.detach(), self.y).cpu()
            if records and self.record(epoch, value):
                return True
            if self.settled(epoch, value):
                return self.stop("converged")
        if epoch in self.frame_epochs:
            with torch.no_grad():
                self.log.frames.append((epoch, self.model(self.inputs).detach().cpu()))
        if self.converged is not None and self.per_run is None and self.converged(epoch, value, self.loss_now):
            return self.stop("converged")
        return bool(self.signals) and self.stop("interrupted")

    def note_diverged_runs(self, epoch, out):
        """Replicated runs: note the runs whose loss became inf/NaN at `epoch`; True once all have.
        Called every epoch once one run has diverged, so it keeps to a few tensor ops."""
        return self.note_run_losses(epoch, self.per_run(out.detach(), self.y).cpu())

    def note_run_losses(self, epoch, losses):
        """note_diverged_runs for the runs' losses (R,) at `epoch`, however they were computed."""
        bad = ~torch.isfinite(losses)
        if not bad.any():
            return False  # the loss summed over the runs overflowed, but no run's own loss did
        at = self.log.run_diverged_at
        if at is None:
            at = self.log.run_diverged_at = torch.zeros(losses.numel(), dtype=torch.long)
            self.log.diverged_at, self.log.diverged_loss = epoch, losses[~torch.isfinite(losses)][0].item()
        at.masked_fill_(bad & (at == 0), epoch)
        return bool(at.all()) and self.stop("diverged")

    def loss_at_end(self):
        """The loss after the last step, computed as each epoch's loss was (the same function, in the space trained
        in): what the judge holds against the start. For replicated runs, one per run."""
        with torch.no_grad():
            out = self.model(self.inputs)
            return self.per_run(out, self.y).cpu() if self.per_run is not None else self.criterion(out, self.y).item()

    def loss_now(self):
        """The loss of the parameters as they are now, after the epoch's step (a stop rule may ask)."""
        with torch.no_grad():
            return self.criterion(self.model(self.inputs), self.y).item()

    def record(self, epoch, value):
        self.log.history.append((epoch, value))
        if self.on_record is not None:
            self.on_record(epoch, value)
        if self.stop_when is not None and self.stop_when():
            return self.stop("target")
        if self.tol is not None and epoch % self.record_interval == 0:
            if self.previous is not None and relative_decrease(self.previous, value) < self.tol:
                return self.stop("tol")
            self.previous = value
        return False

    def rule_compares(self, epoch):
        """Replicated runs: whether the stop rule compares every run's loss at `epoch` (each multiple of its span,
        whatever the record interval), so each run's loss must be computed there."""
        return self.converged is not None and self.per_run is not None and epoch % self.converged.span == 0

    def settled(self, epoch, losses):
        """Replicated runs: the stop rule, handed every run's loss at its epochs (rule_compares)."""
        return self.rule_compares(epoch) and self.converged(epoch, losses)


def relative_decrease(before, after):
    """(before - after) / before; for a tensor of runs, the largest, so all runs must have settled."""
    if isinstance(after, torch.Tensor):
        finite = torch.isfinite(after) & torch.isfinite(before)
        if not finite.any():
            return 0.0
        return ((before - after) / before)[finite].max().item()
    return (before - after) / before if before > 0 else 0.0


def frame_epochs(epochs, frames=90):
    """`frames` distinct epochs from 1 to `epochs`, spaced logarithmically (all of them if fewer)."""
    chosen = []
    for i in range(min(frames, epochs)):
        target = round(epochs ** (i / (min(frames, epochs) - 1))) if min(frames, epochs) > 1 else 1
        chosen.append(max(target, chosen[-1] + 1 if chosen else 1))
    return chosen


class Progress:
    """Prints the epoch lines with the lesson's print_epoch; on a terminal also a tqdm bar (rate,
    ETA) that the lines are written around, so neither garbles the other."""

    def __init__(self, epochs, log_interval, quiet, label=None):
        self.epochs, self.log_interval, self.quiet = epochs, log_interval, quiet
        self.bar = None
        self.done = 0
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=epochs, unit="epoch", desc=label, dynamic_ncols=True, leave=False)

    def __call__(self, epoch, loss):
        if self.bar is not None:
            self.bar.update(epoch - self.done)
            self.done = epoch
        if self.quiet or not self.log_interval or epoch % self.log_interval:
            return
        with self.bar.external_write_mode(file=sys.stdout) if self.bar is not None else nullcontext():
            if isinstance(loss, torch.Tensor):
                print(f"Epoch[{epoch}/{self.epochs}], loss:{loss.nanmedian().item():.6f} "
                      f"(median of {loss.numel()} runs)")
            else:
                print_epoch(epoch, self.epochs, loss)
            sys.stdout.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- stop rules
# The blog's optimizer, plain SGD, never stops early: on raw x its loss still falls, slowly, after
# 500000 epochs, and reproducing it loss for loss is the point (with --standardize, --tol stops it).
# momentum, Adam and L-BFGS have default epoch counts that are upper bounds, chosen to be safe for
# every seed; most runs are done long before. run.py applies these rules only at the default
# epochs, never to an explicit --epochs, and only to models with Model(stop_when_converged=True).
CONVERGED_RTOL = 1e-7   # the loss changed by at most this (relative) over one span of epochs (stall_span)


def stall_span(epochs):
    """The epochs over which the stop rule compares the loss: 100, or a tenth of a shorter run; never the log
    interval, so that a run stops at the same epoch however often it prints. (Over one epoch a loss near 1 that
    still falls 1e-7 a step would look settled: that is one float32 spacing.)"""
    return 100 if epochs >= 1000 else max(1, epochs // 10)


class Converged:
    """converged(epoch, loss, loss_now) -> True once the loss has changed by at most rtol (relative)
    since the last check, `span` epochs ago. For replicated runs (a tensor of losses) every run
    must have. (loss_now() is the loss after the step; this rule does not need it.)"""

    def __init__(self, rtol, span):
        self.rtol, self.span, self.previous = rtol, span, None

    def __call__(self, epoch, loss, loss_now=None):
        if epoch % self.span:
            return False
        previous, self.previous = self.previous, loss
        return previous is not None and relative_change(previous, loss) <= self.rtol


def relative_change(before, after):
    """|before - after| / before; for a tensor of runs the largest, NaN (a diverged run) counting as unsettled."""
    if isinstance(after, torch.Tensor):
        change = ((before - after).abs() / before).nan_to_num(nan=float("inf"))
        return change.max().item()
    return abs(before - after) / before if before > 0 else 0.0


class StepChangedNothing:
    """L-BFGS's rule: converged(epoch, loss, loss_now) -> True once an epoch's step (up to 20
    iterations with a line search) has left the loss exactly as it found it: in float32 there is
    nothing left to gain. loss is the loss the epoch started from, loss_now() the one it ends with."""
    span = 1  # it looks at every epoch

    def __call__(self, epoch, loss, loss_now):
        return loss_now() == loss


def convergence_rule(optimizer, epochs):
    """The stop rule for an optimizer run at its default `epochs` (the help's "stopping" paragraph)."""
    if OPTIMIZERS[optimizer].line_search:
        return StepChangedNothing()
    return Converged(CONVERGED_RTOL, stall_span(epochs))


# ----------------------------------------------------------------------------- the path
def chain(*callbacks):
    """One on_record callback that calls each of `callbacks` in turn (None entries skipped)."""
    present = [c for c in callbacks if c is not None]

    def call_all(epoch, value):
        for callback in present:
            callback(epoch, value)
    return call_all


class TrajectoryRecorder:
    """Called as on_record(epoch, loss): keeps a float64 copy of every parameter, a few floats per
    recorded epoch. Epoch 0, the start, is kept when it is created, so create it before training."""

    def __init__(self, model):
        self.model = model
        self.epochs, self.values = [0], [self.snapshot()]

    def snapshot(self):
        return {name: p.detach().cpu().double().clone() for name, p in self.model.named_parameters()}

    def __call__(self, epoch, value):
        self.epochs.append(epoch)
        self.values.append(self.snapshot())

    def trajectory(self, fit):
        """The recorded path of a finished `fit`, ending at the parameters it returned."""
        epochs, values = list(self.epochs), list(self.values)
        if epochs[-1] != fit.log.epochs_run:  # the end, if not recorded (stopped early, or between records)
            epochs.append(fit.log.epochs_run)
            values.append({k: v.cpu().double() for k, v in fit.trained.items()})
        else:  # the recorded end is the returned end, in the space trained in
            values[-1] = {k: v.cpu().double() for k, v in fit.trained.items()}
        stacked = {name: torch.stack([v[name] for v in values]) for name in values[0]}
        return Trajectory(epochs=epochs, parameters=stacked, model_name=fit.model_name,
                          standardization=fit.standardization)


@dataclass(kw_only=True)
class Trajectory:
    """The parameters (name -> (T, ...) float64, in the space trained in) at `epochs` (T of them)."""
    epochs: list
    parameters: dict
    model_name: str
    standardization: Standardization

    def coefficients_trained(self):
        """(T, 3) a, b, c in the space trained in (z with --standardize)."""
        return coefficients_of(self.model_name, self.parameters)

    def coefficients_in_x(self):
        """(T, 3) a, b, c in x's units: what the metrics keep."""
        return coefficients_of(self.model_name, self.standardization.to_x_units(self.model_name, self.parameters))
