"""In short: at most five plain lines, right after the blog's own output, on what a single run did.

How close the fit is to the best possible, why it stopped where it did, and what would fix it, with the flag.
Each line states what a detail printed below it shows (the least-squares table, the stop line, the diagnosis,
the divergence error), so a beginner reads these first and the details after.
"""
import math

import torch

from ..models import MODELS, Standardization
from ..optimizers import OPTIMIZERS, listed
from ..theory.curvature import params_hessian
from ..theory.diagnosis import ParamsDiagnosis, float32_held_it, slowest_shrink
from ..training.judge import CONVERGED_ATOL, distance_from_least_squares
from .text import loss_text
from .words import count

LINES = 5  # the most a summary prints: a beginner reads this much before the details


def summary(fit, least, diagnosis, x):
    """The plain lines for a finished (or stopped) single run, at most LINES of them."""
    if fit.log.stop_reason == "diverged":
        return diverged_lines(fit)
    distances = (fit.coefficients[0].double().cpu() - least.coefficients[0]).abs()
    distance = distance_from_least_squares(fit.coefficients, least)[0].item()
    if distance <= CONVERGED_ATOL:
        lines = [f"In short: the fit is as good as it gets: a, b and c are within {distance:.2g} of least squares."]
    else:
        lines = [f"In short: the fit has not reached the best possible (least squares): "
                 f"{'abc'[int(distances.argmax())]} is still {distance:.3g} away."]
    lines += [loss_line(fit.final_loss, least)]
    lines += why_lines(fit, diagnosis, distance, least)
    if distance > CONVERGED_ATOL:
        lines += [fix_line(fit, x)]
    return [line for line in lines if line][:LINES]


def loss_line(final, least):
    floor = least.loss[0].item()
    if floor <= 1e-9 * least.scale:
        return ""  # an exact fit: the least-squares line below says what 0 means here
    if final < floor or (final - floor) / floor < 5e-7:  # under the least-squares line's last digit
        return f"Its loss {loss_text(final)} is the least-squares loss, the lowest possible, to float32's precision."
    if final >= 2 * floor:
        return f"Its loss {loss_text(final)} is {final / floor:.3g} times the lowest possible, {loss_text(floor)}."
    return (f"Its loss {loss_text(final)} is {100 * (final - floor) / floor:.4f}% above the lowest possible, "
            f"{loss_text(floor)}.")


def why_lines(fit, diagnosis, distance, least):
    """Why it ended where it did: a signal, a stop rule, the slowest direction's pace, float32's rounding."""
    log = fit.log
    if log.stop_reason == "interrupted":
        return [f"It stopped after {count(log.epochs_run, 'epoch')}: a signal interrupted training."]
    if log.epochs_run < fit.epochs:
        return [f"It ended at epoch {log.epochs_run} of {fit.epochs}: a stop rule found its loss no longer "
                "falling (see below)."]
    if distance <= CONVERGED_ATOL:
        return [f"It got there within its {count(fit.epochs, 'epoch')}."]
    lines = [f"It used all {count(fit.epochs, 'epoch')} and ran out before getting there."]
    if isinstance(diagnosis, ParamsDiagnosis) and OPTIMIZERS[fit.optimizer].gradient_steps:
        slowest, log_rate = slowest_shrink(diagnosis.eigenvalues, fit.lr)
        if log_rate < 0:
            main = "abc"[int(diagnosis.eigenvectors[:, slowest].abs().argmax())]
            lines = [f"Why so slow: each epoch removes only {percent(-math.expm1(log_rate))} of the error along "
                     f"the slowest direction (mostly {main})."]
        if float32_held_it(diagnosis, fit.coefficients[0], least.coefficients[0]):
            names = listed(["abc"[i] for i in diagnosis.frozen], "and")
            them = "it" if len(diagnosis.frozen) == 1 else "them"
            lines.append(f"Then float32 froze {names}: the last updates were too small to change {them}.")
    return lines


def fix_line(fit, x):
    """The flag that would help most, and the fact below that says why."""
    if MODELS[fit.model_name].constant_hessian and not fit.standardize and OPTIMIZERS[fit.optimizer].gradient_steps:
        now, then = (condition_number(inputs) for inputs in (x, Standardization.of(x)(x)))
        if then < now:
            return (f"What would fix it: --standardize, which brings the condition number from {now:.2g} "
                    f"to {then:.2g}.")
    return "What might fix it: more --epochs, --standardize, or another --optimizer (see --help)."


def diverged_lines(fit):
    return [f"In short: the run diverged: its loss grew instead of falling, so lr {fit.lr:g} is too large here.",
            "The error below says where it broke and which lr limit applies.",
            "What would fix it: a smaller --lr; --lr-sweep 32 measures the largest that works."]


def condition_number(inputs):
    eigenvalues = torch.linalg.eigvalsh(params_hessian(inputs.double().cpu()))
    return (eigenvalues[-1] / eigenvalues[0]).item()


def percent(fraction):
    """A small fraction as a percent with two significant digits: 0.0013%, 12%."""
    return f"{100 * fraction:.2g}%" if 100 * fraction >= 1e-4 or fraction == 0 else f"{100 * fraction:.1e}%"


def print_summary(lines):
    for line in lines:
        print(line)
    if lines:
        print()

