"""--lr-sweep: many learning rates trained together on the same data from the same start, as one
vectorized computation with one lr per run, against the theory: plain SGD on a bowl diverges above
2/λmax, heavy-ball momentum above 2(1 + β)/λmax. The lesson's models train in lockstep (lockstep.py):
each lr's run is the single run with that lr, bit for bit, so each verdict is the single run's.

Each run ends with one verdict. It "diverged" if its final loss is inf/NaN or above DIVERGED_FACTOR
times its starting loss: below the limit every error along an eigenvector shrinks, so the loss ends
below its start; just above it the steepest error grows by |1 - lr·λmax| > 1 per epoch and soon
outweighs the start. It "converged" if a, b and c are each within CONVERGED_ATOL of least squares.
Otherwise it is "not converged": too slow for the epochs, or still bouncing.
"""
import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

import quadratic_regression as lesson

from ..models import MODELS, Standardization, coefficients_of, default_lr
from ..optimizers import OPTIMIZERS
from ..steps.lockstep import matches_single_run
from ..steps.updates import PerRunSGD
from ..system.interruptions import signals_received
from ..theory.curvature import params_hessian, product_theta, stable_lr
from ..theory.least_squares import least_squares
from ..theory.valley import end_limits, limit_at, valley_point
from ..training.fit import FitConfig
from ..training.judge import distance_from_least_squares, verdicts, within_one_percent
from ..training.judge import diverged as judge_diverged
from ..training.monitor import EARLY_EPOCHS, Monitor
from .replicas import Replicas, SummedRunLosses

LIMIT_PRECISION = 1.01  # the measured limit is pinned down to 1%
WINDOW = 5             # lrs 1% apart on each side of the predicted limit, trained with the first sweep
PILOT_FRACTION = 20    # a local prediction: a pilot of the main lrs at a twentieth of the epochs finds the bracket


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
    epochs_run: int
    stop_reason: str
    seconds: float
    final_params: dict         # name -> (R, ...) each run's parameters at the end, in the space trained in
    exact: bool                # each run is the single run with its lr, bit for bit (lockstep.py)

    def subset(self, lrs):
        """The entries of this run for `lrs` (each one of its own lrs)."""
        index = [self.lrs.index(lr) for lr in lrs]
        return SweepRun(lrs=list(lrs), final_loss=self.final_loss[index], start_loss=self.start_loss,
                        diverged=self.diverged[index], epochs_to_1pct=[self.epochs_to_1pct[i] for i in index],
                        epochs_run=self.epochs_run, stop_reason=self.stop_reason, seconds=self.seconds,
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
                    epochs_run=monitor.log.epochs_run,
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


@dataclass(kw_only=True)
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
    predicted_limit: float
    limit_formula: str
    limit_is_local: bool          # linear: the prediction is from the Hessian at the start only
    measured_limit: float | None  # the largest lr up to which no lr diverged
    limit_bracket: tuple          # (that lr, the smallest lr that diverged); either may be None
    fastest_lr: float | None     # plain SGD's 2/(λmin + λmax), params only
    least_squares_loss: float
    refined: list                # the finer sweeps: SweepRun each
    seconds: float
    stop_reason: str
    vectorized_runs: int = 1     # computations trained: the first sweep (with its window), then finer ones
    pilot_epochs: int | None = None  # a local prediction: the epochs of the short pilot run first
    window_from_pilot: bool = False  # the window lies inside the pilot's bracket, not around the prediction
    verdicts: list = field(default_factory=list)  # of `lrs`: converged | not converged | diverged
    rows: SweepRun | None = None  # every lr trained (the main ones, the window, the finer sweeps), ascending
    row_verdicts: list = field(default_factory=list)
    end_limits: list = field(default_factory=list)  # local: the limit at each row's end point (NaN: diverged)
    end_balances: list = field(default_factory=list)  # a model with a valley: each row's balance at its end
    start_balance: float | None = None
    balanced_limit: float | None = None  # the limit at the least-squares fit with the start's balance

    @property
    def exact(self):
        """Each run is the single run with its lr, bit for bit."""
        return self.rows is not None and self.rows.exact

    @property
    def survived_above(self):
        """The lrs above the smallest that diverged which did not diverge: the edge is not sharp there."""
        hi = self.limit_bracket[1]
        return [lr for lr, v in zip(self.rows.lrs, self.row_verdicts) if hi is not None and lr > hi
                and v != "diverged"]

    @property
    def converged_above_balanced(self):
        """The rows that converged with an lr above the limit at the balanced fit: their indices in rows."""
        if self.balanced_limit is None:
            return []
        return [r for r, (lr, v) in enumerate(zip(self.rows.lrs, self.row_verdicts))
                if v == "converged" and lr > self.balanced_limit]


def judge(setup, run, least):
    """Each run's verdict by the judge (training/judge.py), its a, b and c compared with least squares in x's units."""
    params = setup.standardization.to_x_units(setup.model_name, {k: v.double() for k, v in run.final_params.items()})
    return verdicts(run.diverged, distance_from_least_squares(coefficients_of(setup.model_name, params), least))


def predicted_limit(model_name, model, inputs, y, optimizer):
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
    in the same computation a window of lrs 1% apart where the limit should be (limit_window); then, if it
    is not inside that window, finer sweeps inside the bracket until it is pinned down to 1%.
    setup_options: optimizer, epochs, standardize, record_interval, signals."""
    options = {"optimizer": "sgd", "epochs": 1000, "standardize": False, **setup_options}
    standardize = options.pop("standardize")
    standardization = Standardization.of(x) if standardize else Standardization()
    inputs = standardization(x)
    optimizer, epochs = options["optimizer"], options["epochs"]
    limit, formula, local = predicted_limit(model_name, model, inputs, y, optimizer)
    low = min(default_lr(optimizer, model_name, standardize), limit) / 10
    least = least_squares(x.cpu(), y.cpu())
    setup = SweepSetup(model_name=model_name, model=model, inputs=inputs, y=y, least_loss=least.loss[0].item(),
                       scale=least.scale,
                       standardization=standardization, **options)
    main = log_spaced(low, 2 * limit, count)
    window, pilot, from_pilot = limit_window(setup, main, limit, local)
    together = train_sweep(setup, sorted(set(main) | set(window)), on_record=on_record)
    first = together.subset(main)
    refined = [together.subset(window)] + refine(setup, together, max_refinements)
    rows = merged([together] + refined[1:])
    verdicts = judge(setup, rows, least)
    lo, hi = bracket(rows)
    fastest = None
    if MODELS[model_name].constant_hessian:
        eigenvalues = torch.linalg.eigvalsh(params_hessian(inputs.cpu()))
        fastest = 2 / (eigenvalues[0] + eigenvalues[-1]).item()
    limits, balances, start_balance, balanced = end_points(setup, rows, verdicts) if local else ([], [], None, None)
    seconds = together.seconds + sum(r.seconds for r in refined[1:]) + (pilot.seconds if pilot else 0.0)
    return Sweep(model_name=model_name, optimizer=optimizer, standardize=standardize, epochs=epochs,
                 lrs=first.lrs, final_loss=first.final_loss.tolist(), diverged=first.diverged.tolist(),
                 epochs_to_1pct=first.epochs_to_1pct, verdicts=[verdicts[rows.lrs.index(lr)] for lr in first.lrs],
                 predicted_limit=limit, limit_formula=formula, limit_is_local=local,
                 measured_limit=lo if hi is not None else None, limit_bracket=(lo, hi), fastest_lr=fastest,
                 least_squares_loss=setup.least_loss, refined=refined, seconds=seconds,
                 stop_reason=together.stop_reason,
                 vectorized_runs=len(refined), pilot_epochs=pilot.epochs_run if pilot else None,
                 window_from_pilot=from_pilot, rows=rows, row_verdicts=verdicts, end_limits=limits,
                 end_balances=balances, start_balance=start_balance, balanced_limit=balanced)


def limit_window(setup, main, limit, local):
    """(lrs 1% apart to train beside `main`, the pilot run or None, whether the pilot placed them). Around an
    exact prediction; for a local one, inside the bracket that the main lrs give after a twentieth of the
    epochs (for the product it is already the full run's bracket; if not, refine() pins the limit down)."""
    around_prediction = [limit * LIMIT_PRECISION**k for k in range(-WINDOW, WINDOW + 1)]
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
    intervals = math.ceil(math.log(hi / lo) / math.log(LIMIT_PRECISION))
    return log_spaced(lo, hi, min(intervals, 64) + 1)[1:-1]


def refine(setup, run, max_refinements):
    """Finer sweeps inside the bracket of `run` until its ends are 1% apart: the SweepRuns."""
    lo, hi = bracket(run)
    refined = []
    while (lo is not None and hi is not None and hi / lo > LIMIT_PRECISION and len(refined) < max_refinements
           and run.stop_reason != "interrupted"):
        run = train_sweep(setup, steps_between(lo, hi))
        refined.append(run)
        stable, diverged = bracket(run)
        lo, hi = stable or lo, diverged or hi
    return refined


def end_points(setup, rows, verdicts):
    """(limits, balances, start balance, balanced limit) for a model whose curvature moves: the limit at
    each run's end point (NaN for a diverged one) and, for a model with a valley, the balance at each end and
    the limit at the least-squares fit with the start's balance (nearest the slowest converged run's end)."""
    factor = 1 + OPTIMIZERS[setup.optimizer].beta
    kept = [r for r, v in enumerate(verdicts) if v != "diverged"]
    limits = end_limits(setup.model, rows.final_params, setup.inputs, setup.y, kept, factor).tolist()
    balance_of = MODELS[setup.model_name].balance
    if balance_of is None:
        return limits, [], None, None
    ends = [{k: v[r] for k, v in rows.final_params.items()} for r in range(len(rows.lrs))]
    balances = [balance_of(p) if v != "diverged" else math.nan for p, v in zip(ends, verdicts)]
    start = balance_of({k: v.detach().cpu() for k, v in setup.model.named_parameters()})
    converged = [r for r, v in enumerate(verdicts) if v == "converged"]
    point = None
    if converged:
        least = least_squares(setup.inputs.cpu(), setup.y.cpu()).coefficients[0]
        point = valley_point(least, start, product_theta(ends[converged[0]]))
    edge = limit_at(point, setup.inputs.cpu(), setup.y.cpu(), factor) if point is not None else None
    return limits, balances, start, edge
