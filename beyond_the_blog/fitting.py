"""One fit, start to end: standardize the inputs if asked, run the lesson's training loop with a
monitor hooked in, and report everything back in x's units."""
import time
from dataclasses import dataclass

import torch
from torch import nn

from .model_registry import default_epochs, default_lr
from .training import Monitor, TrainLog, ctrl_c_ends_training, make_optimizer


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
        criterion=None, target=None, **monitor_options):
    """Train `model` on (x, y) with `train`, the lesson's loop, and return a Fit in x's units.

    With standardize the model sees z = (x - mean)/std, and its parameters are rewritten for x
    afterwards. With `target` (a, b, c), training stops once every coefficient is within 0.01 of
    it (the benchmark's time to fit). monitor_options go to Monitor: record_interval, on_record,
    tol, frame_epochs.
    """
    lr = default_lr(optimizer, model_name, standardize) if lr is None else lr
    epochs = default_epochs(optimizer, model_name, standardize) if epochs is None else epochs
    mean, std = (x.mean().item(), x.std().item()) if standardize else (0.0, 1.0)
    inputs = (x - mean) / std if standardize else x
    criterion = criterion or getattr(model, "criterion", None) or nn.MSELoss()  # replicas bring their own
    initial = {k: v.clone() for k, v in named_tensors(model).items()}

    def close_to_target():
        return bool(((coefficients_in_x(model, mean, std, standardize) - target).abs() <= 0.01).all())

    monitor = Monitor(model, inputs, y, criterion, stop_when=close_to_target if target is not None else None,
                      **monitor_options)
    opt = make_optimizer(optimizer, model.parameters(), lr, loss_of_model=lambda: criterion(model(inputs), y))
    start = time.perf_counter()
    with ctrl_c_ends_training() as monitor.ctrl_c:
        train(model, inputs, y, opt, epochs, monitor=monitor, criterion=criterion)
    monitor.log.seconds = time.perf_counter() - start
    trained = {k: v.clone() for k, v in named_tensors(model).items()}
    if standardize:
        rewrite_for_x(model, trained, mean, std)
    return Fit(model_name, model, optimizer, lr, epochs, standardize, monitor.log, final_loss(model, x, y, criterion),
               coefficients_in_x(model), initial, trained, mean, std)


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
