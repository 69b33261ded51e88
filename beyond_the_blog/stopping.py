"""Stop when done: the rule that ends the faster optimizers' runs once they have converged.

The blog's optimizer, plain SGD, never stops early: on raw x its loss still falls, slowly, after
500000 epochs, and reproducing it loss for loss is the point (with --standardize, --tol stops
it). momentum, Adam and L-BFGS have default epoch counts that are upper bounds, chosen to be safe
for every seed; most runs are done long before, and the rest re-computes the same numbers. A
model opts in with ModelSettings(stop_when_converged=True) (the blog's two do); the runner
applies the rule only at the default epochs, never to an explicit --epochs.
"""
import torch

CONVERGED_RTOL = 1e-7   # the loss changed by at most this (relative) over one record interval


class Converged:
    """converged(epoch, loss, loss_now) -> True once the loss has changed by at most rtol (relative)
    since the last check, `interval` epochs ago. For replicated runs (a tensor of losses) every run
    must have. (loss_now() is the loss after the step; this rule does not need it.)"""

    def __init__(self, rtol, interval):
        self.rtol, self.interval, self.previous = rtol, interval, None

    def __call__(self, epoch, loss, loss_now=None):
        if epoch % self.interval:
            return False
        previous, self.previous = self.previous, loss
        return previous is not None and relative_change(previous, loss) <= self.rtol


def relative_change(before, after):
    """|before - after| / before; for a tensor of runs the largest, NaN (a diverged run) counting as unsettled."""
    if isinstance(after, torch.Tensor):
        change = ((before - after).abs() / before).nan_to_num(nan=float("inf"))
        return change.max().item()
    return abs(before - after) / before if before > 0 else 0.0


class StepChangedNothing:
    """L-BFGS's rule: converged(epoch, loss, loss_now) -> True once an epoch's step (up to 20
    iterations with a line search) has left the loss exactly as it found it: in float32 there is
    nothing left to gain. loss is the loss the epoch started from, loss_now() the one it ends with."""

    def __call__(self, epoch, loss, loss_now):
        return loss_now() == loss


def convergence_rule(optimizer, record_interval):
    """The stop rule for an optimizer run at its default epochs (the help's "stopping" paragraph)."""
    if optimizer == "lbfgs":
        return StepChangedNothing()
    return Converged(CONVERGED_RTOL, record_interval)
