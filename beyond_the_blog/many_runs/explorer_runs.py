"""The runs behind --explore: for each setting (model, inputs, optimizer) 24 log-spaced learning rates and the
default one (25, unless the default is among the 24) trained from the same start on the same data as one
vectorized computation, recorded at about 60 log-spaced epochs.

A setting is the --lr-sweep's machinery (replicas.Replicas: one model with a run axis; sweep.PerRunSGD: one lr
per run) trained by the lesson's own train_by_hand with every gradient written out by hand for all runs at once
(batched_gradients.py): the blog's 500000 epochs of 25 runs then take seconds (docs/explorer.md times them).

What is recorded at an epoch k is the state after k epochs: the loss (float32, as trained) and a, b, c. Epoch 0
is the start. A run diverged at epoch K, as a single run with its lr reports it (judge.logged_divergence_epoch): K
is the epoch whose loss, computed before its step, is first inf or NaN (float32 overflowed; a NaN never turns
back into a number). The records bracket it; that bracket is then trained again, epoch by epoch, from the state
saved at its start: the same computation, so the same numbers, looked at each epoch.

The product's curvature moves as it trains, so its limit is predicted where its runs settle: at the least-squares
fit with the start's balance (theory/valley.py), the limit that docs/lr-limits.md measures; the start's is kept.
"""
import copy
import time
from dataclasses import dataclass

import torch

import quadratic_regression as lesson

from ..models import MODELS, Standardization, coefficients_of, default_epochs, default_lr
from ..optimizers import OPTIMIZERS
from ..steps.updates import PerRunSGD
from ..theory.bowl import bowl
from ..theory.curvature import largest_curvature, product_theta
from ..theory.least_squares import least_squares
from ..theory.valley import limit_at, valley_point
from ..training.judge import ended_above_start, logged_divergence_epoch, within_one_percent
from ..training.monitor import frame_epochs
from .replicas import Replicas, SummedRunLosses
from .sweep import predicted_limit
from .sweep_runs import log_spaced

LEARNING_RATES = 24     # log-spaced from a tenth of the default lr to twice the predicted limit (and the default)
RECORDED_EPOCHS = 60    # epoch 0 and 59 log-spaced epochs up to the last


@dataclass(frozen=True)
class Combination:
    """One combination the page offers: a model, its inputs (x, or z with --standardize), an optimizer."""
    model_name: str
    standardize: bool
    optimizer: str

    @property
    def inputs(self):
        return "z" if self.standardize else "x"

    @property
    def label(self):
        return f"{self.model_name} on {self.inputs}, {OPTIMIZERS[self.optimizer].title}"


@dataclass(kw_only=True)
class ExploredRuns:
    """The runs of one setting and what the theory says about them (parameters in the space trained in)."""
    setting: Combination
    epochs: int
    lrs: list
    default_lr: float
    recorded_epochs: list          # T epochs, 0 first, `epochs` last
    loss: torch.Tensor             # (R, T) float32: each run's MSE after that many epochs
    coefficients: torch.Tensor     # (R, T, 3) float64 a, b, c in x's units
    trained_coefficients: torch.Tensor  # (R, T, 3) the same in the space trained in: what the bowl is drawn in
    diverged_at: list              # per run: the epoch a single run says it diverged (inf/NaN), or None
    start_loss: float
    limit: float                   # the predicted limit: 2/λmax, 2(1 + β)/λmax with momentum, at limit_where
    limit_where: str               # "exact" (a constant Hessian), "the balanced fit", or "the start"
    start_limit: float | None      # the product: the same limit at the start (None for a constant Hessian)
    limit_formula: str
    limit_is_local: bool           # the product: the Hessian changes, so the limit depends on where it is taken
    end_point_limits: list | None  # the product: the same limit at each run's end point (None: it diverged)
    bowl: object                   # theory.Bowl of the space trained in
    seconds: float

    @property
    def ended_above_start(self):
        """Per run: it never overflowed, but its last loss is above its start (monitor.ended_above_start)."""
        return [k is None and ended_above_start(v, self.start_loss) for v, k in zip(self.loss[:, -1].tolist(),
                                                                                     self.diverged_at)]

    @property
    def diverged(self):
        """Per run: diverged by the single run's rule, inf/NaN or ended above its start."""
        return [k is not None or rose for k, rose in zip(self.diverged_at, self.ended_above_start)]


def explorer_lrs(default, limit, count=LEARNING_RATES):
    """`count` lrs log-spaced from a tenth of min(default, limit) to twice the limit (as --lr-sweep), and the
    default lr itself (for sgd on x the blog's 2e-5), so that one position of the slider is the single run."""
    return sorted(set(log_spaced(min(default, limit) / 10, 2 * limit, count)) | {default})


def recorded_epochs(epochs, count=RECORDED_EPOCHS):
    return [0, *frame_epochs(epochs, count - 1)]


class Recorder:
    """The loop's after_step hook: at each recorded epoch it keeps every run's loss and parameters, and the
    optimizer's momentum buffers, so that any stretch between two records can be trained again."""

    def __init__(self, replicas, inputs, ys, optimizer, epochs, signals=None, on_record=None):
        self.replicas, self.inputs, self.ys, self.optimizer = replicas, inputs, ys, optimizer
        self.epochs, self.signals, self.on_record = epochs, signals or [], on_record
        self.wanted = set(self.epochs)
        self.losses, self.states = [], []
        self.record(0)

    def loss_now(self):
        with torch.no_grad():
            return SummedRunLosses.per_run(self.replicas(self.inputs), self.ys).cpu()

    def record(self, epoch):
        self.losses.append(self.loss_now())
        params = [p.detach().clone() for p in self.replicas.parameters()]
        self.states.append((params, [None if b is None else b.clone() for b in self.optimizer.buffers]))
        if self.on_record is not None:
            self.on_record(epoch, self.losses[-1])

    def __call__(self, epoch, epochs, loss, out):
        if epoch in self.wanted:
            self.record(epoch)
        return bool(self.signals)  # Ctrl-C or SIGTERM: stop after this epoch

    def restore(self, index):
        """Put the parameters and momentum buffers back as they were at the index-th record."""
        params, buffers = self.states[index]
        with torch.no_grad():
            for p, saved in zip(self.replicas.parameters(), params):
                p.copy_(saved)
        self.optimizer.buffers = [None if b is None else b.clone() for b in buffers]


def divergence_epochs(recorder, gradients, losses):
    """Per run, the epoch a single run reports as diverged (None if its loss never was inf/NaN): the first record
    that sees inf/NaN brackets it, and that bracket is trained again one epoch at a time. losses: (R, T)."""
    finite = torch.isfinite(losses)
    first_bad = [None if bool(row.all()) else int((~row).nonzero()[0]) for row in finite]
    found = [0 if j == 0 else None for j in first_bad]  # a start that is not finite diverged at once
    epochs = recorder.epochs
    for j in sorted({j for j in first_bad if j}):
        runs = [r for r, bad in enumerate(first_bad) if bad == j]
        recorder.restore(j - 1)
        for epoch in range(epochs[j - 1] + 1, epochs[j] + 1):
            gradients()
            recorder.optimizer.step()
            now = torch.isfinite(recorder.loss_now())
            for r in runs:
                if found[r] is None and not now[r]:
                    found[r] = epoch
            if all(found[r] is not None for r in runs):
                break
    return [None if steps is None else logged_divergence_epoch(steps) for steps in found]


def train_setting(setting, data, epochs=None, signals=None, on_record=None):
    """Train one setting's lrs together; None if Ctrl-C or SIGTERM stopped it. data: (x, y, model), the model
    being the start that every lr copies. on_record(epoch, losses) at each record (a progress bar)."""
    x, y, model = data
    name, optimizer = setting.model_name, setting.optimizer
    epochs = epochs or default_epochs(optimizer, name, setting.standardize)
    scale = Standardization.of(x) if setting.standardize else Standardization()
    inputs = scale(x)
    start_limit, formula, local = predicted_limit(name, model, inputs, y, optimizer)
    default = default_lr(optimizer, name, setting.standardize)
    lrs = explorer_lrs(default, start_limit)
    replicas = Replicas([copy.deepcopy(model) for _ in lrs]).to(inputs.device)
    ys = y.expand(len(lrs), *y.shape).contiguous()
    rates = torch.tensor(lrs, dtype=torch.float64, device=inputs.device)
    opt = PerRunSGD(replicas.parameters(), rates, OPTIMIZERS[optimizer].beta)
    gradients = MODELS[name].batched_gradients(replicas, inputs, ys)
    recorder = Recorder(replicas=replicas, inputs=inputs, ys=ys, optimizer=opt, epochs=recorded_epochs(epochs),
                        signals=signals, on_record=on_record)
    began = time.perf_counter()
    lesson.train_by_hand(gradients, opt, epochs, recorder)
    seconds = time.perf_counter() - began
    if len(recorder.losses) < len(recorder.epochs):
        return None
    losses = torch.stack(recorder.losses, dim=1)  # (R, T)
    final = dict(zip(replicas.names, recorder.states[-1][0]))
    limit, where = start_limit, "exact" if not local else "the start"
    if local:
        limit, where = balanced_limit(setting, model, final, (inputs, y), losses[:, -1]) or (limit, where)
    return ExploredRuns(setting=setting, epochs=epochs, lrs=lrs, default_lr=default, recorded_epochs=recorder.epochs,
                        loss=losses, start_loss=losses[0, 0].item(),
                        coefficients=run_coefficients(name, replicas.names, recorder.states, scale),
                        trained_coefficients=run_coefficients(name, replicas.names, recorder.states, Standardization()),
                        diverged_at=divergence_epochs(recorder, gradients, losses),
                        limit=limit, limit_where=where, start_limit=start_limit if local else None,
                        limit_formula=formula, limit_is_local=local,
                        end_point_limits=end_point_limits(setting, model, final, (inputs, y)) if local else None,
                        bowl=bowl(inputs, y), seconds=seconds)


def balanced_limit(setting, model, final_params, data, final_losses):
    """(limit, "the balanced fit"): the limit at the least-squares fit with the start's balance. Of the valley's
    points with that balance, the one nearest the end of the smallest lr that reached least squares (as --lr-sweep
    takes it), or nearest the start if none did. None for a model without a valley."""
    inputs, y = data
    balance_of = MODELS[setting.model_name].balance
    if balance_of is None:
        return None
    least = least_squares(inputs.cpu(), y.cpu())
    floor = within_one_percent(least.loss[0].item(), least.scale)
    reached = [r for r, v in enumerate(final_losses.tolist()) if v <= floor]
    start = {k: v.detach().cpu() for k, v in model.named_parameters()}
    near = {name: value[reached[0]] for name, value in final_params.items()} if reached else start
    point = valley_point(least.coefficients[0], balance_of(start), product_theta(near))
    if point is None:
        return None
    factor = 1 + OPTIMIZERS[setting.optimizer].beta
    return limit_at(point, inputs.cpu(), y.cpu(), factor), "the balanced fit"


def run_coefficients(model_name, names, states, scale):
    """(R, T, 3) float64 a, b, c of every run at every record, rewritten for x by `scale` (z's units if identity)."""
    stacked = {name: torch.stack([params[i].cpu().double() for params, _ in states], dim=1)  # (R, T, ...)
               for i, name in enumerate(names)}
    runs, records = next(iter(stacked.values())).shape[:2]
    p = scale.to_x_units(model_name, stacked)
    return coefficients_of(model_name, p).reshape(runs, records, 3)


def end_point_limits(setting, model, final_params, data):
    """The predicted limit at each run's end point (the product's Hessian there), None for a run whose end is not
    finite. data: (inputs, y)."""
    inputs, y = data
    factor = 1 + OPTIMIZERS[setting.optimizer].beta
    limits = []
    for r in range(next(iter(final_params.values())).shape[0]):
        end = {name: value[r] for name, value in final_params.items()}
        finite = all(bool(torch.isfinite(v).all()) for v in end.values())
        limits.append(2 * factor / largest_curvature(model, end, inputs, y) if finite else None)
    return limits


def settings_asked(models, standardizations, optimizers):
    """Every combination, in the page's order: models, then inputs, then optimizers."""
    return [Combination(m, s, o) for m in models for s in standardizations for o in optimizers]


def data_and_starts(models, seed, data_options):
    """x, y and each model's start, drawn as a single run with `seed` draws them (the data, then the model).
    data_options: samples, noise, x_range."""
    torch.manual_seed(seed)
    x, y = lesson.make_data(*data_options)
    after_data = torch.get_rng_state()
    starts = {}
    for name in models:
        torch.set_rng_state(after_data)
        starts[name] = MODELS[name].build()
    return x, y, starts
