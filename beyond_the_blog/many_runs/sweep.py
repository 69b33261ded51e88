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
import math
from dataclasses import dataclass, field

import torch

from ..models import MODELS, Standardization, coefficients_of, default_lr
from ..optimizers import OPTIMIZERS
from ..system.interruptions import signal_name, signals_received
from ..theory.curvature import params_hessian, product_theta, stable_lr
from ..theory.least_squares import least_squares
from ..theory.valley import end_limits, limit_at, valley_point
from ..training.judge import distance_from_least_squares, verdicts
from .sweep_runs import SweepRun, SweepSetup, bracket, log_spaced, merged, train_sweep

LIMIT_PRECISION = 1.01  # the measured limit is pinned down to 1%
WINDOW = 5             # lrs 1% apart on each side of the predicted limit, trained with the first sweep
PILOT_FRACTION = 20    # a local prediction: a pilot of the main lrs at a twentieth of the epochs finds the bracket


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
    epochs_run: int | None = None  # the epochs the main lrs ran (fewer than `epochs` if a signal cut them)
    signal: str | None = None      # the signal that stopped training (SIGINT, SIGTERM, SIGHUP), None if none did
    stage: str | None = None       # where it came: the pilot, the first grid, or finer sweep k
    cut: SweepRun | None = None    # a finer sweep it cut short: its lrs, as far as they got, left out of rows
    cut_verdicts: list = field(default_factory=list)

    @property
    def rows_partial(self):
        """The rows themselves were cut short (a signal in the pilot or the first grid): each verdict is provisional."""
        return self.stop_reason == "interrupted" and self.cut is None

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
    is not inside that window, finer sweeps inside the bracket until it is pinned down to 1%. A signal stops
    the computation in training at once: what finished is kept, and the sweep says where the signal came.
    setup_options: optimizer, epochs, standardize, record_interval, signals, on_stage."""
    options = {"optimizer": "sgd", "epochs": 1000, "standardize": False, **setup_options}
    standardize = options.pop("standardize")
    standardization = Standardization.of(x) if standardize else Standardization()
    inputs = standardization(x)
    optimizer, epochs = options["optimizer"], options["epochs"]
    limit, formula, local = predicted_limit(model_name, model, inputs, y, optimizer)
    low = min(default_lr(optimizer, model_name, standardize), limit) / 10
    least = least_squares(x.cpu(), y.cpu())
    with signals_received(options.pop("signals", None)) as received:
        setup = SweepSetup(model_name=model_name, model=model, inputs=inputs, y=y, least_loss=least.loss[0].item(),
                           scale=least.scale, standardization=standardization, signals=received, **options)
        trained = train_stages(setup, log_spaced(low, 2 * limit, count), (limit, local), on_record, max_refinements)
    rows, first = trained.rows, trained.first
    verdicts = judge(setup, rows, least)
    lo, hi = bracket(rows)
    fastest = None
    if MODELS[model_name].constant_hessian:
        eigenvalues = torch.linalg.eigvalsh(params_hessian(inputs.cpu()))
        fastest = 2 / (eigenvalues[0] + eigenvalues[-1]).item()
    limits, balances, start_balance, balanced = end_points(setup, rows, verdicts) if local else ([], [], None, None)
    stopped = trained.stage is not None
    return Sweep(model_name=model_name, optimizer=optimizer, standardize=standardize, epochs=epochs,
                 lrs=first.lrs, final_loss=first.final_loss.tolist(), diverged=first.diverged.tolist(),
                 epochs_to_1pct=first.epochs_to_1pct, verdicts=[verdicts[rows.lrs.index(lr)] for lr in first.lrs],
                 predicted_limit=limit, limit_formula=formula, limit_is_local=local,
                 measured_limit=lo if hi is not None else None, limit_bracket=(lo, hi), fastest_lr=fastest,
                 least_squares_loss=setup.least_loss, refined=trained.refined, seconds=trained.seconds,
                 stop_reason="interrupted" if stopped else first.stop_reason,
                 vectorized_runs=len(trained.refined) + (trained.cut is not None),
                 pilot_epochs=trained.pilot.epochs_run if trained.pilot else None,
                 window_from_pilot=trained.from_pilot, rows=rows, row_verdicts=verdicts, end_limits=limits,
                 end_balances=balances, start_balance=start_balance, balanced_limit=balanced,
                 epochs_run=first.epochs_run, signal=signal_name(received[0]) if stopped else None,
                 stage=trained.stage, cut=trained.cut, cut_verdicts=judge(setup, trained.cut, least) if trained.cut
                 else [])


@dataclass(kw_only=True)
class Trained:
    """The computations of one sweep, as far as they went: what sweep() judges."""
    first: SweepRun                 # the main lrs
    rows: SweepRun                  # every lr the measurement uses, ascending
    refined: list                   # the window's rows, then each finished finer sweep
    seconds: float
    pilot: SweepRun | None = None
    from_pilot: bool = False
    stage: str | None = None        # where a signal stopped training: the pilot, the first grid, finer sweep k
    cut: SweepRun | None = None     # the finer sweep it cut short, left out of rows


def train_stages(setup, main, prediction, on_record=None, max_refinements=4):
    """The pilot (a local prediction), the main lrs with the window, then finer sweeps. A signal ends the stage in
    training after its current epoch, and no later stage starts: a cut pilot or first grid is the rows, as far
    as it got; a cut finer sweep is left out of them, so the rows are those of finished computations."""
    limit, local = prediction
    window, pilot, from_pilot = limit_window(setup, main, limit, local)
    if pilot is not None and pilot.stop_reason == "interrupted":
        return Trained(first=pilot, rows=pilot, refined=[], seconds=pilot.seconds, pilot=pilot, from_pilot=from_pilot,
                       stage="the pilot")
    together = train_sweep(setup, sorted(set(main) | set(window)), on_record=on_record)
    seconds = together.seconds + (pilot.seconds if pilot else 0.0)
    if together.stop_reason == "interrupted":
        return Trained(first=together.subset(main), rows=together, refined=[together.subset(window)], seconds=seconds,
                       pilot=pilot, from_pilot=from_pilot, stage="the first grid")
    finer = refine(setup, together, max_refinements)
    cut = finer.pop() if finer and finer[-1].stop_reason == "interrupted" else None
    return Trained(first=together.subset(main), rows=merged([together] + finer),
                   refined=[together.subset(window)] + finer,
                   seconds=seconds + sum(r.seconds for r in finer) + (cut.seconds if cut else 0.0),
                   pilot=pilot, from_pilot=from_pilot, stage=f"finer sweep {len(finer) + 1}" if cut else None, cut=cut)


def limit_window(setup, main, limit, local):
    """(lrs 1% apart to train beside `main`, the pilot run or None, whether the pilot placed them). Around an
    exact prediction; for a local one, inside the bracket that the main lrs give after a twentieth of the
    epochs (for the product it is already the full run's bracket; if not, refine() pins the limit down)."""
    around_prediction = [limit * LIMIT_PRECISION**k for k in range(-WINDOW, WINDOW + 1)]
    if not local:
        return around_prediction, None, False
    pilot_epochs = max(setup.epochs // PILOT_FRACTION, 1)
    if setup.on_stage is not None:
        setup.on_stage("the pilot", main, pilot_epochs)
    pilot = train_sweep(setup, main, epochs=pilot_epochs)
    lo, hi = bracket(pilot)
    if lo is None or hi is None or pilot.stop_reason == "interrupted":
        return around_prediction, pilot, False
    return steps_between(lo, hi), pilot, True


def steps_between(lo, hi):
    """The lrs strictly between lo and hi, 1% apart or closer; at most 63 of them, so for a bracket wider than
    1.01**64 (about 1.9) they are farther apart, and refine() narrows the bracket in further rounds."""
    intervals = math.ceil(math.log(hi / lo) / math.log(LIMIT_PRECISION))
    return log_spaced(lo, hi, min(intervals, 64) + 1)[1:-1]


def refine(setup, run, max_refinements):
    """Finer sweeps inside the bracket of `run` until its ends are 1% apart: the SweepRuns. The last one is
    interrupted if a signal cut it short; none starts after that."""
    lo, hi = bracket(run)
    refined = []
    while (lo is not None and hi is not None and hi / lo > LIMIT_PRECISION and len(refined) < max_refinements
           and run.stop_reason != "interrupted"):
        lrs = steps_between(lo, hi)
        if setup.on_stage is not None:
            setup.on_stage(f"finer sweep {len(refined) + 1}", lrs, setup.epochs)
        run = train_sweep(setup, lrs)
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
