"""One fit, start to end: standardize the inputs if asked, run the lesson's training loop with a
monitor hooked in, and report everything back in x's units."""
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from .interruptions import signals_received
from .minibatches import Minibatches
from .model_registry import MODELS, default_epochs, default_lr, settings_of
from .training import Monitor, TrainLog, make_optimizer


@dataclass
class Fit:
    """A trained model and everything measured about it, in x's units."""
    model_name: str
    model: nn.Module
    optimizer: str
    lr: float
    epochs: int
    standardize: bool
    log: TrainLog
    final_loss: object          # float, or a tensor with one loss per run
    coefficients: torch.Tensor  # (runs, 3): a, b, c of the expanded quadratic
    initial: dict               # parameters before training, in the space trained in
    trained: dict               # parameters after training, in the space trained in
    mean: float = 0.0           # the standardization, if any: z = (x - mean) / std
    std: float = 1.0
    gradients: str = "autograd"  # or "manual": the lesson's train_by_hand
    batch_size: int | None = None  # minibatch SGD's batch size; None: the full batch
    trajectory: object = None   # the recorded path (trajectory.Trajectory), when one was recorded

    @property
    def parameters(self):
        return named_tensors(self.model)


def named_tensors(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def model_class(model):
    """The model's class; for vectorized replicas, the class of one run."""
    return getattr(model, "model_class", type(model))


def coefficients_in_x(model, mean=0.0, std=1.0, standardize=False):
    """(runs, 3) float64 a, b, c of the model's quadratic, rewritten for x if it was trained on z."""
    cls = model_class(model)
    params = {k: v.cpu().double() for k, v in named_tensors(model).items()}
    return cls.coefficients(cls.to_x_units(params, mean, std) if standardize else params)


def fit(model, x, y, *, train, model_name, optimizer="sgd", lr=None, epochs=None, standardize=False,
        criterion=None, target=None, signals=None, manual_gradients=None, batch_size=None, shuffle_seeds=(0,),
        **monitor_options):
    """Train `model` on (x, y) with `train`, the lesson's loop, and return a Fit in x's units.

    With standardize the model sees z = (x - mean)/std, and its parameters are rewritten for x
    afterwards. With `target` (a, b, c), training stops once every coefficient is within 0.01 of
    it (the benchmark's time to fit). `train` is the lesson's train_by_hand when manual_gradients
    (the model's registered factory) is given, its train_in_minibatches when batch_size is, each
    run's order drawn from its seed in shuffle_seeds. `signals`, a list that a RecordedSignals fills,
    stops training after the epoch in which Ctrl-C or SIGTERM came (by default fit records them
    itself while it trains). monitor_options go to Monitor: record_interval, on_record, tol,
    frame_epochs, converged.
    """
    lr = default_lr(optimizer, model_name, standardize) if lr is None else lr
    epochs = default_epochs(optimizer, model_name, standardize) if epochs is None else epochs
    mean, std = (x.mean().item(), x.std().item()) if standardize else (0.0, 1.0)
    inputs = (x - mean) / std if standardize else x
    criterion_given = criterion is not None or hasattr(model, "criterion")
    criterion = criterion or getattr(model, "criterion", None) or nn.MSELoss()  # replicas bring their own
    initial = {k: v.clone() for k, v in named_tensors(model).items()}

    def close_to_target():
        return bool(((coefficients_in_x(model, mean, std, standardize) - target).abs() <= 0.01).all())

    monitor = Monitor(model, inputs, y, criterion, stop_when=close_to_target if target is not None else None,
                      **monitor_options)
    opt = make_optimizer(optimizer, model.parameters(), lr, loss_of_model=lambda: criterion(model(inputs), y),
                         gradients=line_search_gradients(optimizer, model_name, model, inputs, y, criterion_given),
                         rebalance=valley_move(optimizer, model_name, model))

    def loop():
        if manual_gradients is not None:
            train(manual_gradients(model, inputs, y), opt, epochs, monitor=monitor)
        elif batch_size is not None:
            minibatches = Minibatches(inputs, y, batch_size, shuffle_seeds)
            train(model, inputs, y, opt, epochs, minibatches, monitor=monitor, criterion=criterion)
        else:
            train(model, inputs, y, opt, epochs, monitor=monitor, criterion=criterion)

    start = time.perf_counter()
    with signals_received(signals) as monitor.signals:
        train_until_overflow(loop, monitor)
    monitor.log.seconds = time.perf_counter() - start
    trained = {k: v.clone() for k, v in named_tensors(model).items()}
    if standardize:
        rewrite_for_x(model, trained, mean, std)
    return Fit(model_name, model, optimizer, lr, epochs, standardize, monitor.log, final_loss(model, x, y, criterion),
               coefficients_in_x(model), initial, trained, mean, std,
               "autograd" if manual_gradients is None else "manual", batch_size)


def line_search_gradients(optimizer, model_name, model, inputs, y, criterion_given):
    """L-BFGS evaluates the loss and its gradient 20 to 60 times an epoch: with the model's gradients
    by hand (the MSE loss, bit for bit) rather than autograd, each evaluation costs a quarter."""
    by_hand = settings_of(model_name).manual_gradients if model_name in MODELS else None
    if optimizer != "lbfgs" or criterion_given or by_hand is None:
        return None
    return by_hand(model, inputs, y)


def rebalance_for(optimizer, model_name):
    """The model's registered rebalance (rescaling.py) if `optimizer` makes that move before each epoch:
    L-BFGS only; gradient-based optimizers keep to the blog. None otherwise."""
    rebalance = settings_of(model_name).rebalance if model_name in MODELS else None
    return rebalance if optimizer == "lbfgs" else None


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


def rewrite_for_x(model, trained, mean, std):
    """Give the model the parameters that predict on x what `trained` predicted on z."""
    converted = model_class(model).to_x_units(trained, mean, std)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(converted[name])


def final_loss(model, x, y, criterion):
    """The loss of the parameters returned (the log's last entry is from before the last step)."""
    with torch.no_grad():
        out = model(x)
    per_run = getattr(criterion, "per_run", None)
    return per_run(out, y).cpu() if per_run is not None else criterion(out, y).item()
