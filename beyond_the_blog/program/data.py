"""The data a run trains on, checked before training: a data set float32 cannot fit is refused in one line."""
import torch

from ..system.environment import say_warnings
from ..system.status import refuse
from ..theory.least_squares import design_condition

MAX_DESIGN_CONDITION = 1e7  # beyond it, float64 least squares and eigenvalues lose most of their digits


def data_problem(options, x, y):
    """Why this data cannot be fitted in floating point, or None."""
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return "the data is not finite in float32"
    condition = design_condition(x)
    if condition > MAX_DESIGN_CONDITION:
        lo, hi = options.x_range
        return (f"--x-range {lo:g} {hi:g}: on these {x.numel()} float32 points x^2, x and 1 are too nearly "
                f"dependent to fit a quadratic (condition number {condition:.2g} of [x^2, x, 1], at most "
                f"{MAX_DESIGN_CONDITION:.0e}): use a wider range, or one nearer 0")
    return None


def refused_data(options, x, y):
    """The last check before training: a refusal's exit status, or None once the environment's warnings are
    said (held back until now, so that a refusal stays one line)."""
    problem = data_problem(options, x, y)
    if problem:
        return refuse(problem)
    say_warnings()
    return None
