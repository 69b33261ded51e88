"""One fit, start to end: standardize the inputs if asked, run one of the lesson's loops with the
monitor as its hook, and report everything back in x's units."""
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import quadratic_regression as lesson

from ..models import MODELS, Standardization, coefficients_of, default_epochs, default_lr
from ..optimizers import OPTIMIZERS, make_optimizer
from ..steps.minibatches import Minibatches
from ..system.interruptions import signals_received
from .batched_runs import BatchedMonitor
from .monitor import Monitor, TrainLog

LOOPS = ("blog", "manual", "minibatches", "batched")  # train, train_by_hand, train_in_minibatches, and
# train_by_hand over replicas with every run's gradients by hand (batched_gradients.py, batched_runs.py)


@dataclass(frozen=True)
class FitConfig:
    """How to train one fit: everything fit() needs besides the model and the data."""
    model_name: str
    optimizer: str = "sgd"
    lr: float | None = None           # None: the model's default for the optimizer
    epochs: int | None = None         # None: likewise
    standardize: bool = False         # train on z = (x - mean)/std
    loop: str = "blog"                # one of LOOPS: --gradients manual, --batch-size, --runs
    batch_size: int | None = None     # the minibatch loop's B
    shuffle_seeds: tuple = (0,)       # the minibatch loop: each run's order drawn from its seed
    record_interval: int = 100        # the Monitor keeps the loss every this many epochs
    on_record: Callable | None = None  # on_record(epoch, loss) at each record: the printer, the path
    tol: float | None = None          # --tol
    frame_epochs: tuple = ()          # --animate: the epochs whose prediction is kept
    converged: Callable | None = None  # a stop rule (monitor.convergence_rule)
    target: tuple | None = None       # (a, b, c): stop once every coefficient is within 0.01 (the benchmark)

    def resolved_lr(self):
        return default_lr(self.optimizer, self.model_name, self.standardize) if self.lr is None else self.lr

    def resolved_epochs(self):
        return default_epochs(self.optimizer, self.model_name, self.standardize) if self.epochs is None else self.epochs


@dataclass(kw_only=True)
class Fit:
    """A trained model and everything measured about it, in x's units."""
    model_name: str
    model: nn.Module
    optimizer: str
    lr: float
    epochs: int
    standardization: Standardization  # z = (x - mean)/std, or the identity
    log: TrainLog
    final_loss: object          # float, or a tensor with one loss per run
    end_loss: object            # the same, computed as each epoch's loss was (in the space trained in): the judge's
    coefficients: torch.Tensor  # (runs, 3): a, b, c of the expanded quadratic
    initial: dict               # parameters before training, in the space trained in
    trained: dict               # parameters after training, in the space trained in
    gradients: str = "autograd"  # or "manual": the lesson's train_by_hand (for replicas, batched over the runs)
    batch_size: int | None = None  # minibatch SGD's batch size; None: the full batch
    trajectory: object = None   # the recorded path (monitor.Trajectory), when one was recorded

    @property
    def standardize(self):
        return self.standardization.applied

    @property
    def parameters(self):
        return named_tensors(self.model)


def named_tensors(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def fit(model, x, y, config, signals=None, criterion=None):
    """Train `model` on (x, y) with the lesson's loop that `config.loop` names; a Fit in x's units.

    With standardize the model sees z = (x - mean)/std, and its parameters are rewritten for x
    afterwards. `signals`, a list that a RecordedSignals fills, stops training after the epoch in
    which Ctrl-C, SIGTERM or SIGHUP came (by default fit records them itself while it trains). Replicas
    bring their own criterion (each run's loss, summed); `criterion` overrides both. The loop "batched"
    trains replicas with every run's gradients by hand, the model's batched_gradients (models.py).
    """
    name, lr, epochs = config.model_name, config.resolved_lr(), config.resolved_epochs()
    scale = Standardization.of(x) if config.standardize else Standardization()
    inputs = scale(x) if config.standardize else x
    criterion_given = criterion is not None or hasattr(model, "criterion")
    criterion = criterion or getattr(model, "criterion", None) or nn.MSELoss()
    initial = {k: v.clone() for k, v in named_tensors(model).items()}

    def close_to_target():
        return bool(((coefficients_in_x(name, model, scale) - config.target).abs() <= 0.01).all())

    monitor = (BatchedMonitor if config.loop == "batched" else Monitor)(
        model, inputs, y, criterion, config, stop_when=close_to_target if config.target is not None else None)
    opt = make_optimizer(config.optimizer, model.parameters(), lr, loss_of_model=lambda: criterion(model(inputs), y),
                         gradients=line_search_gradients(config, model, inputs, y, criterion_given),
                         rebalance=valley_move(config.optimizer, name, model))

    def loop():
        if config.loop == "batched":
            lesson.train_by_hand(monitor.attach(MODELS[name].batched_gradients(model, inputs, y), opt), opt, epochs,
                                 monitor)
        elif config.loop == "manual":
            lesson.train_by_hand(MODELS[name].manual_gradients(model, inputs, y), opt, epochs, monitor)
        elif config.loop == "minibatches":
            minibatches = Minibatches(inputs, y, config.batch_size, config.shuffle_seeds)
            lesson.train_in_minibatches(model, inputs, y, opt, epochs, minibatches, monitor, criterion)
        else:
            lesson.train(model, inputs, y, opt, epochs, monitor, criterion)

    start = time.perf_counter()
    with signals_received(signals) as monitor.signals:
        train_until_overflow(loop, monitor)
    monitor.log.seconds = time.perf_counter() - start
    end_loss = monitor.loss_at_end()  # before the rewrite for x: held against the start, which was computed so too
    trained = {k: v.clone() for k, v in named_tensors(model).items()}
    if config.standardize:
        rewrite_for_x(model, scale.to_x_units(name, trained))
    return Fit(model_name=name, model=model, optimizer=config.optimizer, lr=lr, epochs=epochs, standardization=scale,
               log=monitor.log, final_loss=final_loss(model, x, y, criterion), end_loss=end_loss,
               coefficients=coefficients_in_x(name, model), initial=initial,
               trained=trained, gradients="manual" if config.loop in ("manual", "batched") else "autograd",
               batch_size=config.batch_size if config.loop == "minibatches" else None)


def coefficients_in_x(model_name, model, scale=None):
    """(runs, 3) float64 a, b, c of the model's quadratic, rewritten for x if it is still in z's units."""
    params = {k: v.cpu().double() for k, v in named_tensors(model).items()}
    return coefficients_of(model_name, scale.to_x_units(model_name, params) if scale is not None else params)


def line_search_gradients(config, model, inputs, y, criterion_given):
    """L-BFGS evaluates the loss and its gradient 20 to 60 times an epoch: with the model's gradients
    by hand (the MSE loss, bit for bit) rather than autograd, each evaluation costs a quarter."""
    by_hand = MODELS[config.model_name].manual_gradients if config.model_name in MODELS else None
    if not OPTIMIZERS[config.optimizer].line_search or criterion_given or by_hand is None:
        return None
    return by_hand(model, inputs, y)


def rebalance_for(optimizer, model_name):
    """The model's rebalance (models.py) if `optimizer` makes that move before each epoch:
    L-BFGS only; gradient-based optimizers keep to the blog. None otherwise."""
    rebalance = MODELS[model_name].rebalance if model_name in MODELS else None
    return rebalance if OPTIMIZERS[optimizer].rebalances else None


def valley_move(optimizer, model_name, model):
    """rebalance_for(...) bound to `model`: the move along the valley of equal loss, or None."""
    rebalance = rebalance_for(optimizer, model_name)
    return None if rebalance is None else lambda: rebalance(model)


def train_until_overflow(loop, monitor):
    """Run the lesson's loop; a step that overflows float32 inside an optimizer (L-BFGS's line search
    can try steps past float32's range, and torch refuses them) ends it as a divergence, not a traceback."""
    try:
        loop()
    except RuntimeError as error:
        if "overflow" not in str(error):
            raise
        monitor.log.epochs_run += 1
        monitor.diverged(monitor.log.epochs_run, math.inf)


def rewrite_for_x(model, converted):
    """Give the model the parameters `converted` (rewritten for x from those trained on z)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(converted[name])


def final_loss(model, x, y, criterion):
    """The loss of the parameters returned (the log's last entry is from before the last step)."""
    with torch.no_grad():
        out = model(x)
    per_run = getattr(criterion, "per_run", None)
    return per_run(out, y).cpu() if per_run is not None else criterion(out, y).item()
