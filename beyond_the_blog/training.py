"""What hooks into the lesson's training loop from outside: optimizers, the monitor that logs,
records and stops it, Ctrl-C, and the progress bar.

The loop itself is `train` in quadratic_regression.py: forward, loss, zero_grad, backward, step,
then `monitor(epoch, loss, out)`, which returns True to stop.
"""
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

EARLY_EPOCHS = {round(1.25**k) for k in range(40)}  # a few early losses too, for the log-scale plot


class PlainSGD:
    """θ ← θ − lr·∇θ: the update of torch.optim.SGD (no momentum), written out.

    torch.optim.SGD computes exactly these numbers (tests/test_fidelity.py checks it bit for
    bit), but each of its step() and zero_grad() calls also runs hooks and profiler bookkeeping
    that cost more than the arithmetic on three numbers: written out, the blog's 500000 epochs
    take about half the time.
    """

    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p.add_(p.grad, alpha=-self.lr)


class LBFGSEpoch:
    """One L-BFGS step (up to 20 iterations with a line search) per epoch, behind the blog's
    zero_grad/backward/step. Its line search evaluates the loss itself, so step() hands it a
    closure; the closure's first loss is the one the loop just computed, bit for bit. With
    `gradients` (the model's gradients by hand, beyond_the_blog/manual_gradients.py) the closure
    is gradients() instead of autograd: the same bits, about four times cheaper per evaluation.
    With `rebalance` (the model's own symmetry, e.g. rescaling.balance_layers bound to the model),
    each epoch first moves along the model's valley of equal loss; if it moved, L-BFGS starts afresh."""

    def __init__(self, params, lr, loss_of_model, gradients=None, rebalance=None):
        self.params, self.lr = list(params), lr
        self.lbfgs = self.fresh_lbfgs()
        self.loss_of_model, self.gradients, self.rebalance = loss_of_model, gradients, rebalance

    def fresh_lbfgs(self):
        # history_size 10 (scipy's default), not torch's 100: with 3 or 4 parameters older curvature pairs add
        # nothing, and each costs two Python-level tensor ops per iteration, most of an epoch's time
        return torch.optim.LBFGS(self.params, lr=self.lr, max_iter=20, history_size=10, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-9, tolerance_change=1e-12)

    def zero_grad(self):
        self.lbfgs.zero_grad()

    def step(self):
        if self.rebalance is not None and self.rebalance():
            self.lbfgs = self.fresh_lbfgs()  # its curvature memory was measured in the old scaling
        if self.gradients is not None:
            return self.lbfgs.step(self.gradients)

        def closure():
            self.lbfgs.zero_grad()
            loss = self.loss_of_model()
            loss.backward()
            return loss
        return self.lbfgs.step(closure)


def make_optimizer(name, params, lr, loss_of_model=None, gradients=None, rebalance=None):
    """loss_of_model() recomputes the loss: L-BFGS needs it for its line search; gradients(), if
    given, does it and sets every p.grad by hand, and L-BFGS uses it instead; rebalance(), if given,
    moves L-BFGS along the model's valley of equal loss before each epoch (see LBFGSEpoch)."""
    if name == "sgd":
        return PlainSGD(params, lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "lbfgs":
        return LBFGSEpoch(params, lr, loss_of_model, gradients, rebalance)
    raise ValueError(f"unknown optimizer {name!r}")


@dataclass
class TrainLog:
    """What the monitor saw: the loss at every recorded epoch, why training stopped, how long it took."""
    epochs_run: int = 0
    history: list = field(default_factory=list)  # (epoch, loss): a float, or a tensor of one loss per run
    frames: list = field(default_factory=list)   # (epoch, prediction at x) for --animate
    stop_reason: str = "epochs"                  # epochs | tol | target | converged | diverged | interrupted
    diverged_at: int | None = None               # the first epoch with an inf/NaN loss (of any run)
    diverged_loss: float | None = None           # that loss: inf (float32 overflowed) or NaN
    run_diverged_at: object = None               # replicated runs: (R,) first inf/NaN epoch per run, 0 for none
    seconds: float = 0.0


class Monitor:
    """Called by the training loop after every step as monitor(epoch, loss, out); returns True to stop.

    Every `record_interval` epochs, and at a few log-spaced epochs before, it keeps the loss and
    hands it to on_record (which prints it at the log interval). It stops on an inf/NaN loss, on
    Ctrl-C or SIGTERM (`signals` fills up), when `tol` is met, when stop_when() says so or when
    converged(epoch, loss) does (beyond_the_blog/stopping.py). For replicated runs (a criterion
    with per_run) the recorded loss is a tensor, one entry per run; each run's first inf/NaN epoch
    is noted, and training stops once every run has diverged.
    """

    def __init__(self, model, inputs, y, criterion, record_interval=100, on_record=None, tol=None,
                 frame_epochs=(), stop_when=None, converged=None):
        self.model, self.inputs, self.y = model, inputs, y
        self.per_run = getattr(criterion, "per_run", None)
        self.record_interval, self.on_record, self.tol = record_interval, on_record, tol
        self.frame_epochs, self.stop_when = set(frame_epochs), stop_when
        self.log, self.signals, self.previous = TrainLog(), [], None
        self.converged, self.criterion = converged, criterion

    def stop(self, reason):
        self.log.stop_reason = reason
        return True

    def diverged(self, epoch, value):
        self.log.diverged_at, self.log.diverged_loss = epoch, value
        return self.stop("diverged")

    def __call__(self, epoch, loss, out):
        self.log.epochs_run = epoch
        value = loss.item()
        if not math.isfinite(value):
            if self.per_run is None:
                return self.diverged(epoch, value)
            if self.note_diverged_runs(epoch, out):
                return True
        if epoch % self.record_interval == 0 or epoch in EARLY_EPOCHS:
            if self.per_run is not None:
                value = self.per_run(out.detach(), self.y).cpu()
            if self.record(epoch, value):
                return True
        if epoch in self.frame_epochs:
            with torch.no_grad():
                self.log.frames.append((epoch, self.model(self.inputs).detach().cpu()))
        if self.converged is not None and self.per_run is None and self.converged(epoch, value, self.loss_now):
            return self.stop("converged")
        return bool(self.signals) and self.stop("interrupted")

    def note_diverged_runs(self, epoch, out):
        """Replicated runs: note the runs whose loss became inf/NaN at `epoch`; True once all have.
        Called every epoch once one run has diverged, so it keeps to a few tensor ops."""
        losses = self.per_run(out.detach(), self.y).cpu()
        at = self.log.run_diverged_at
        if at is None:
            at = self.log.run_diverged_at = torch.zeros(losses.numel(), dtype=torch.long)
            self.log.diverged_at, self.log.diverged_loss = epoch, losses[~torch.isfinite(losses)][0].item()
        at.masked_fill_(~torch.isfinite(losses) & (at == 0), epoch)
        return bool(at.all()) and self.stop("diverged")

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
        if self.converged is not None and self.per_run is not None and self.converged(epoch, value):
            return self.stop("converged")  # replicated runs: checked at the record epochs, where the losses are
        return False


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

    def __init__(self, epochs, log_interval, quiet, print_epoch, label=None):
        self.epochs, self.log_interval, self.quiet = epochs, log_interval, quiet
        self.print_epoch = print_epoch
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
                self.print_epoch(epoch, self.epochs, loss)
            sys.stdout.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()

