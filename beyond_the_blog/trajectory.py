"""The path a run takes: the model's parameters at every recorded epoch, kept by a small recorder
that the Monitor calls beside the progress printer (the lesson's loop is not touched)."""
from dataclasses import dataclass

import torch

from .fitting import model_class


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
        return Trajectory(epochs, stacked, model_class(fit.model), fit.mean, fit.std, fit.standardize)


@dataclass
class Trajectory:
    """The parameters (name -> (T, ...) float64, in the space trained in) at `epochs` (T of them)."""
    epochs: list
    parameters: dict
    model_class: type
    mean: float = 0.0
    std: float = 1.0
    standardize: bool = False

    def coefficients_trained(self):
        """(T, 3) a, b, c in the space trained in (z with --standardize)."""
        return self.model_class.coefficients(self.parameters)

    def coefficients_in_x(self):
        """(T, 3) a, b, c in x's units: what the metrics keep."""
        if not self.standardize:
            return self.coefficients_trained()
        return self.model_class.coefficients(self.model_class.to_x_units(self.parameters, self.mean, self.std))

    def metrics(self):
        return {"epochs": list(self.epochs), "coefficients": self.coefficients_in_x().tolist()}
