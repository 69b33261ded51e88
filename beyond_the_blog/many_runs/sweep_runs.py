"""One vectorized computation of --lr-sweep: many learning rates trained together on the same data from the same
start, one lr per run, and what became of each (SweepRun). sweep.py decides which lrs to train, and in what order.
The lesson's models train in lockstep (lockstep.py): each lr's run is the single run with that lr, bit for bit.
"""
import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

import quadratic_regression as lesson

from ..models import MODELS, Standardization
from ..optimizers import OPTIMIZERS
from ..steps.lockstep import matches_single_run
from ..steps.updates import PerRunSGD
from ..system.interruptions import signals_received
from ..training.fit import FitConfig
from ..training.judge import diverged as judge_diverged
from ..training.judge import within_one_percent
from ..training.monitor import EARLY_EPOCHS, Monitor
from .replicas import Replicas, SummedRunLosses


class SweepLosses(SummedRunLosses):
    """Each run's MSE, summed, as one fused mse_loss over all the runs' errors divided by n: the same
    gradient for each run's parameters, with two autograd nodes where mean-then-sum takes four."""

    def forward(self, out, target):
        return nn.functional.mse_loss(out, target, reduction="sum") / out[0].numel()


class SweepMonitor(Monitor):
    """The sweep needs only which runs diverged by the end, not each one's first inf/NaN epoch: it looks at
    the runs' losses at the record epochs only (every run diverged: training stops there), not every epoch.
    In lockstep the loop hands it each run's loss (out is None); through autograd, their sum and `out`."""

    def __call__(self, epoch, epochs, loss, out):
        if out is not None:
            return super().__call__(epoch, epochs, loss, out)
        self.log.epochs_run = epoch
        if epoch % self.record_interval == 0 or epoch in EARLY_EPOCHS:
            if not bool(torch.isfinite(loss).any()):
                return self.diverged(epoch, loss[0].item())
            if self.record(epoch, loss.cpu()):
                return True
        return bool(self.signals) and self.stop("interrupted")

    def note_diverged_runs(self, epoch, out):
        return epoch % self.record_interval == 0 and super().note_diverged_runs(epoch, out)


@dataclass(kw_only=True)
class SweepRun:
    """One vectorized run of a sweep: its learning rates and what became of each."""
    lrs: list
    final_loss: torch.Tensor   # (R,)
    start_loss: float
    diverged: torch.Tensor     # (R,) bool
    epochs_to_1pct: list       # first recorded epoch within 1% of the least-squares loss, or None
    epochs_run: int            # epochs this computation ran (the first run's, for merged runs)
    epochs_each: list          # each run's epochs: a merged SweepRun holds runs of several computations
    stop_reason: str
    seconds: float
    final_params: dict         # name -> (R, ...) each run's parameters at the end, in the space trained in
    exact: bool                # each run is the single run with its lr, bit for bit (lockstep.py)

    def subset(self, lrs):
        """The entries of this run for `lrs` (each one of its own lrs)."""
        index = [self.lrs.index(lr) for lr in lrs]
        return SweepRun(lrs=list(lrs), final_loss=self.final_loss[index], start_loss=self.start_loss,
                        diverged=self.diverged[index], epochs_to_1pct=[self.epochs_to_1pct[i] for i in index],
                        epochs_run=self.epochs_run, epochs_each=[self.epochs_each[i] for i in index],
                        stop_reason=self.stop_reason, seconds=self.seconds,
                        final_params={k: v[index] for k, v in self.final_params.items()}, exact=self.exact)


def merged(runs):
    """One SweepRun of every lr that `runs` trained, in increasing lr (the first run's entry for a repeat)."""
    seen = {}
    for run in runs:
        for i, lr in enumerate(run.lrs):
            seen.setdefault(lr, (run, i))
    lrs = sorted(seen)
    pick = [seen[lr] for lr in lrs]
    names = runs[0].final_params
    return SweepRun(lrs=lrs, final_loss=torch.stack([r.final_loss[i] for r, i in pick]), start_loss=runs[0].start_loss,
                    diverged=torch.stack([r.diverged[i] for r, i in pick]),
                    epochs_to_1pct=[r.epochs_to_1pct[i] for r, i in pick], epochs_run=runs[0].epochs_run,
                    epochs_each=[r.epochs_each[i] for r, i in pick],
                    stop_reason=runs[0].stop_reason, seconds=sum(r.seconds for r in runs),
                    final_params={k: torch.stack([r.final_params[k][i] for r, i in pick]) for k in names},
                    exact=all(r.exact for r in runs))


@dataclass(frozen=True, kw_only=True)
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
    on_stage: object = None  # on_stage(stage, lrs, epochs) before the pilot and each finer sweep: where a signal lands
    standardization: Standardization = Standardization()  # inputs = standardization(x)


def train_sweep(setup, lrs, epochs=None, on_record=None):
    """Train len(lrs) copies of the start (same data) with one lr each, as one computation, for `epochs`
    (default: the setup's): in lockstep for the lesson's models, through autograd for any other."""
    inputs, epochs = setup.inputs, epochs or setup.epochs
    replicas = Replicas([copy.deepcopy(setup.model) for _ in lrs]).to(inputs.device)
    ys = setup.y.expand(len(lrs), *setup.y.shape).contiguous()
    criterion = SweepLosses()
    lockstep = MODELS[setup.model_name].lockstep if setup.model_name in MODELS else None
    gradients = lockstep(replicas, inputs, setup.y) if lockstep else None

    def losses_now():
        """Each run's loss at its parameters now: in lockstep, as the single run computes it."""
        with torch.no_grad():
            return gradients.losses() if gradients is not None else criterion.per_run(replicas(inputs), ys)

    start_loss = losses_now()[0].item()  # the loss before the first step, as the single run logs it at epoch 1
    rates = torch.tensor(lrs, dtype=torch.float64, device=inputs.device)
    opt = PerRunSGD(replicas.parameters(), rates, OPTIMIZERS[setup.optimizer].beta)
    config = FitConfig(model_name=setup.model_name, optimizer=setup.optimizer, epochs=epochs,
                       record_interval=setup.record_interval, on_record=on_record)
    monitor = SweepMonitor(replicas, inputs, ys, criterion, config)
    exact = gradients is not None and matches_single_run(gradients, MODELS[setup.model_name].manual_gradients,
                                                         setup.model, inputs, setup.y)
    began = time.perf_counter()
    with signals_received(setup.signals) as monitor.signals:
        if gradients is not None:
            lesson.train_by_hand(gradients, opt, epochs, monitor)
        else:
            lesson.train(replicas, inputs, ys, opt, epochs, monitor, criterion)
    seconds = time.perf_counter() - began
    final = losses_now().double().cpu()
    diverged = judge_diverged(final, start_loss)
    near = within_one_percent(setup.least_loss, setup.scale)
    reached = [next((e for e, v in monitor.log.history if v[r] <= near), None)
               for r in range(len(lrs))]
    params = {name: p.detach().cpu().clone() for name, p in replicas.named_parameters()}
    return SweepRun(lrs=list(lrs), final_loss=final, start_loss=start_loss, diverged=diverged, epochs_to_1pct=reached,
                    epochs_run=monitor.log.epochs_run, epochs_each=[monitor.log.epochs_run] * len(lrs),
                    stop_reason=monitor.log.stop_reason, seconds=seconds, final_params=params, exact=exact)


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
