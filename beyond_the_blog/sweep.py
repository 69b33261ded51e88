"""--lr-sweep: many learning rates trained together on the same data from the same start, as one
vectorized computation (the replications' machinery with one lr per run), against the theory:
plain SGD on a bowl diverges above 2/λmax, heavy-ball momentum above 2(1 + β)/λmax.

A run "diverged" if its final loss is inf/NaN or above DIVERGED_FACTOR times its starting loss:
below the limit every error along an eigenvector shrinks, so the loss ends below its start; just
above it the steepest error grows by |1 - lr·λmax| > 1 per epoch and soon outweighs the start.
"""
import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

import quadratic_regression as lesson

from .fit import FitConfig
from .interruptions import signals_received
from .models import MODELS, Standardization, default_lr
from .monitor import Monitor
from .optimizers import OPTIMIZERS
from .replicas import Replicas, SummedRunLosses
from .theory import least_squares, params_hessian, stable_lr, within_one_percent

DIVERGED_FACTOR = 1.0  # a run diverged if its final loss is above this times its starting loss
# (1: below the limit every error along an eigenvector shrinks, so a stable run always ends below its start)
EDGE_PRECISION = 1.01  # the measured limit is pinned down to 1%
WINDOW = 5             # lrs 1% apart on each side of the predicted limit, trained with the first sweep
PILOT_FRACTION = 20    # a local prediction: a pilot of the main lrs at a twentieth of the epochs finds the bracket


class PerRunSGD:
    """Plain SGD, or heavy-ball momentum as torch.optim.SGD computes it, over stacked parameters
    (a leading run axis) with one learning rate per run: lrs is an (R,) tensor."""

    def __init__(self, params, lrs, momentum=0.0):
        self.params = list(params)
        self.lrs, self.momentum = lrs, momentum
        self.buffers = [None] * len(self.params)
        # -lr per run, shaped to broadcast over each stacked parameter, in its dtype: made once, not per step
        self.steps = [-lrs.reshape(-1, *[1] * (p.dim() - 1)).to(p.dtype) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            direction = p.grad
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = direction.clone()
                else:
                    self.buffers[i].mul_(self.momentum).add_(direction)
                direction = self.buffers[i]
            p.addcmul_(self.steps[i], direction)


class SweepLosses(SummedRunLosses):
    """Each run's MSE, summed, as one fused mse_loss over all the runs' errors divided by n: the same
    gradient for each run's parameters, with two autograd nodes where mean-then-sum takes four."""

    def forward(self, out, target):
        return nn.functional.mse_loss(out, target, reduction="sum") / out[0].numel()


class SweepMonitor(Monitor):
    """The sweep needs only which runs diverged by the end, not each one's first inf/NaN epoch: it looks at
    the runs' losses at the record epochs only (every run diverged: training stops there), not every epoch."""

    def note_diverged_runs(self, epoch, out):
        return epoch % self.record_interval == 0 and super().note_diverged_runs(epoch, out)


@dataclass
class SweepRun:
    """One vectorized run of a sweep: its learning rates and what became of each."""
    lrs: list
    final_loss: torch.Tensor   # (R,)
    start_loss: float
    diverged: torch.Tensor     # (R,) bool
    epochs_to_1pct: list       # first recorded epoch within 1% of the least-squares loss, or None
    epochs_run: int
    stop_reason: str
    seconds: float

    def subset(self, lrs):
        """The entries of this run for `lrs` (each one of its own lrs)."""
        index = [self.lrs.index(lr) for lr in lrs]
        return SweepRun(list(lrs), self.final_loss[index], self.start_loss, self.diverged[index],
                        [self.epochs_to_1pct[i] for i in index], self.epochs_run, self.stop_reason, self.seconds)


@dataclass(frozen=True)
class SweepSetup:
    """What every vectorized run of one sweep shares: the start, the data, the optimizer, the epochs."""
    model_name: str
    model: nn.Module          # the start: each lr trains a copy
    inputs: torch.Tensor      # x, or z with --standardize
    y: torch.Tensor
    optimizer: str            # sgd or momentum
    epochs: int
    least_loss: float         # the least-squares loss: "epochs to 1%" is measured against it
    scale: float              # the mean of y²: what "about 0" means for a loss (noise-free data)
    record_interval: int = 100
    signals: list | None = None  # a list that Ctrl-C/SIGTERM/SIGHUP fill (interruptions.RecordedSignals); None: its own


def train_sweep(setup, lrs, epochs=None, on_record=None):
    """Train len(lrs) copies of the start (same data) with one lr each, as one computation, for `epochs`
    (default: the setup's)."""
    inputs, epochs = setup.inputs, epochs or setup.epochs
    replicas = Replicas([copy.deepcopy(setup.model) for _ in lrs]).to(inputs.device)
    ys = setup.y.expand(len(lrs), *setup.y.shape).contiguous()
    criterion = SweepLosses()
    with torch.no_grad():
        start_loss = criterion.per_run(replicas(inputs), ys)[0].item()
    rates = torch.tensor(lrs, dtype=torch.float64, device=inputs.device)
    opt = PerRunSGD(replicas.parameters(), rates, OPTIMIZERS[setup.optimizer].beta)
    config = FitConfig(model_name=setup.model_name, optimizer=setup.optimizer, epochs=epochs,
                       record_interval=setup.record_interval, on_record=on_record)
    monitor = SweepMonitor(replicas, inputs, ys, criterion, config)
    began = time.perf_counter()
    with signals_received(setup.signals) as monitor.signals:
        lesson.train(replicas, inputs, ys, opt, epochs, monitor, criterion)
    seconds = time.perf_counter() - began
    with torch.no_grad():
        final = criterion.per_run(replicas(inputs), ys).double().cpu()
    diverged = ~torch.isfinite(final) | (final > DIVERGED_FACTOR * start_loss)
    near = within_one_percent(setup.least_loss, setup.scale)
    reached = [next((e for e, v in monitor.log.history if v[r] <= near), None)
               for r in range(len(lrs))]
    return SweepRun(list(lrs), final, start_loss, diverged, reached, monitor.log.epochs_run,
                    monitor.log.stop_reason, seconds)


def log_spaced(lo, hi, count):
    return torch.logspace(math.log10(lo), math.log10(hi), count, dtype=torch.float64).tolist()


def bracket(run):
    """(largest lr that did not diverge below the smallest diverged one, that diverged lr); None
    for an end that the sweep did not find."""
    diverged = [lr for lr, d in zip(run.lrs, run.diverged.tolist()) if d]
    first_diverged = min(diverged) if diverged else None
    stable = [lr for lr, d in zip(run.lrs, run.diverged.tolist())
              if not d and (first_diverged is None or lr < first_diverged)]
    return (max(stable) if stable else None), first_diverged


@dataclass
class Sweep:
    """What --lr-sweep measured, and the theory it is held against."""
    model_name: str
    optimizer: str
    standardize: bool
    epochs: int
    lrs: list
    final_loss: list
    diverged: list
    epochs_to_1pct: list
    predicted_edge: float
    edge_formula: str
    edge_is_local: bool          # linear: the prediction is from the Hessian at the start only
    measured_edge: float | None  # the largest lr that did not diverge, to 1%
    edge_bracket: tuple          # (stable, diverged) after the refinement; either may be None
    fastest_lr: float | None     # plain SGD's 2/(λmin + λmax), params only
    least_squares_loss: float
    refined: list                # the finer sweeps: SweepRun each
    seconds: float
    stop_reason: str
    vectorized_runs: int = 1     # computations trained: the first sweep (with its window), then finer ones
    pilot_epochs: int | None = None  # a local prediction: the epochs of the short pilot run first
    window_from_pilot: bool = False  # the window lies inside the pilot's bracket, not around the prediction



def predicted_edge(model_name, model, inputs, y, optimizer):
    """(limit, formula, local): 2/λmax (times 1 + β with momentum) of the loss Hessian at the start."""
    start = {name: p.detach() for name, p in model.named_parameters()}
    plain = stable_lr(model, start, inputs, y)
    local = not MODELS[model_name].constant_hessian
    beta = OPTIMIZERS[optimizer].beta
    if beta:
        return plain * (1 + beta), f"2(1+{beta:g})/lambda_max", local
    return plain, "2/lambda_max", local


def sweep(model_name, model, x, y, count, setup_options, on_record=None, max_refinements=4):
    """The whole --lr-sweep: `count` lrs from a tenth of the default lr to twice the predicted limit, and
    in the same computation a window of lrs 1% apart where the limit should be (edge_window); then, if it
    is not inside that window, finer sweeps inside the bracket until it is pinned down to 1%.
    setup_options: optimizer, epochs, standardize, record_interval, signals."""
    options = {"optimizer": "sgd", "epochs": 1000, "standardize": False, **setup_options}
    standardize = options.pop("standardize")
    inputs = (Standardization.of(x) if standardize else Standardization())(x)
    optimizer, epochs = options["optimizer"], options["epochs"]
    limit, formula, local = predicted_edge(model_name, model, inputs, y, optimizer)
    low = min(default_lr(optimizer, model_name, standardize), limit) / 10
    least = least_squares(x.cpu(), y.cpu())
    setup = SweepSetup(model_name, model, inputs, y, least_loss=least.loss[0].item(), scale=least.scale, **options)
    main = log_spaced(low, 2 * limit, count)
    window, pilot, from_pilot = edge_window(setup, main, limit, local)
    together = train_sweep(setup, sorted(set(main) | set(window)), on_record=on_record)
    first = together.subset(main)
    refined = [together.subset(window)] + refine(setup, together, max_refinements)
    lo, hi = bracket(together)
    for run in refined[1:]:
        stable, diverged = bracket(run)
        lo, hi = stable or lo, diverged or hi
    fastest = None
    if MODELS[model_name].constant_hessian:
        eigenvalues = torch.linalg.eigvalsh(params_hessian(inputs.cpu()))
        fastest = 2 / (eigenvalues[0] + eigenvalues[-1]).item()
    seconds = together.seconds + sum(r.seconds for r in refined[1:]) + (pilot.seconds if pilot else 0.0)
    return Sweep(model_name, optimizer, standardize, epochs, first.lrs, first.final_loss.tolist(),
                 first.diverged.tolist(), first.epochs_to_1pct, limit, formula, local,
                 lo if hi is not None else None, (lo, hi), fastest, setup.least_loss, refined,
                 seconds, together.stop_reason, len(refined), pilot.epochs_run if pilot else None, from_pilot)


def edge_window(setup, main, limit, local):
    """(lrs 1% apart to train beside `main`, the pilot run or None, whether the pilot placed them). Around an
    exact prediction; for a local one, inside the bracket that the main lrs give after a twentieth of the
    epochs (for the product it is already the full run's bracket; if not, refine() pins the limit down)."""
    around_prediction = [limit * EDGE_PRECISION**k for k in range(-WINDOW, WINDOW + 1)]
    if not local:
        return around_prediction, None, False
    pilot = train_sweep(setup, main, epochs=max(setup.epochs // PILOT_FRACTION, 1))
    lo, hi = bracket(pilot)
    if lo is None or hi is None:
        return around_prediction, pilot, False
    return steps_between(lo, hi), pilot, True


def steps_between(lo, hi):
    """The lrs strictly between lo and hi, 1% apart or closer; at most 63 of them, so for a bracket wider than
    1.01**64 (about 1.9) they are farther apart, and refine() narrows the bracket in further rounds."""
    intervals = math.ceil(math.log(hi / lo) / math.log(EDGE_PRECISION))
    return log_spaced(lo, hi, min(intervals, 64) + 1)[1:-1]


def refine(setup, run, max_refinements):
    """Finer sweeps inside the bracket of `run` until its ends are 1% apart: the SweepRuns."""
    lo, hi = bracket(run)
    refined = []
    while (lo is not None and hi is not None and hi / lo > EDGE_PRECISION and len(refined) < max_refinements
           and run.stop_reason != "interrupted"):
        run = train_sweep(setup, steps_between(lo, hi))
        refined.append(run)
        stable, diverged = bracket(run)
        lo, hi = stable or lo, diverged or hi
    return refined
