"""The judge: how a run ended, decided here and nowhere else, for a single run, --runs, --lr-sweep and --explore.

A run diverged if its loss became inf/NaN, or if its loss after the last step is above its starting loss. A stop
rule's "converged" holds only where a, b and c are each within CONVERGED_ATOL of least squares; otherwise the run
stalled. A run "reached least squares" if its final loss is within 1% of the least-squares loss.
"""
import math
from dataclasses import dataclass

import torch

DIVERGED_FACTOR = 1.0  # a run diverged if its final loss is above this times its starting loss
# (1: below the limit every error along an eigenvector shrinks, so a stable run always ends below its start)



def ended_above_start(final_loss, start_loss):
    """The rule for a finite run, a single one or each of a sweep's (floats or tensors): it diverged."""
    return final_loss > DIVERGED_FACTOR * start_loss



def end_held_against_start(log):
    """Whether a run's end is held against its start: it ran its epochs (or --tol stopped it) and its start was
    logged. A run stopped for its own reason (inf/NaN, a stop rule, a signal) is judged by that reason."""
    return log.stop_reason in ("epochs", "tol") and log.start_loss is not None


def judge_rise(log, final_loss):
    """A single run whose logged losses stayed finite diverged, as in the sweep, if the loss after its last
    step is inf/NaN or above its starting loss."""
    if end_held_against_start(log) and diverged(final_loss, log.start_loss):
        log.stop_reason, log.diverged_loss = "diverged", final_loss


CONVERGED_ATOL = 0.01  # "converged": a, b and c each within this of the least-squares fit, in x's units



def distance_from_least_squares(coefficients, least):
    """(runs,) the largest |fitted - least squares| over a, b and c, in float64: how far each run is
    from the fit no quadratic can beat. A stop rule that fires farther away than CONVERGED_ATOL has
    found a stall (the loss stopped changing in float32), not the optimum."""
    return (coefficients.double().cpu() - least.coefficients).abs().max(dim=1).values



def judge_stop(log, coefficients, least):
    """A stop rule fires when the loss stops changing, which a stall does too: keep "converged" only
    where every run is within CONVERGED_ATOL of its least-squares fit, and call the rest "stalled"."""
    if log.stop_reason == "converged" and not bool((distance_from_least_squares(coefficients, least)
                                                     <= CONVERGED_ATOL).all()):
        log.stop_reason = "stalled"



def within_one_percent(floor, scale):
    """The loss below which a run counts as "within 1% of the least-squares loss" `floor`. The small term
    in scale (the mean of y²) lets noise-free data, whose floor is 0 and float32 cannot reach, count too."""
    return 1.01 * floor + 1e-6 * scale


def diverged(final_loss, start_loss):
    """The rule for every run: its final loss is inf/NaN, or above its starting loss (floats or tensors)."""
    if isinstance(final_loss, float):
        return not math.isfinite(final_loss) or ended_above_start(final_loss, start_loss)
    return ~final_loss.isfinite() | ended_above_start(final_loss, start_loss)


def logged_divergence_epoch(steps):
    """The epoch a single run reports as diverged (TrainLog.diverged_at) when its loss is first inf/NaN after
    `steps` steps: the blog's loop computes epoch K's loss before epoch K's step, so after K - 1 steps."""
    return steps + 1


EDGE_TOLERANCE = 0.01  # a run settled at the edge of stability if 2/λmax where it ended is its lr to 1%


def at_edge_of_stability(lr, end_limit):
    """A run that settled where the limit (2/λmax, times 1 + β with momentum) is its own lr, to EDGE_TOLERANCE:
    the edge of stability of Cohen et al. (2021). end_limit None: it did not settle anywhere."""
    return end_limit is not None and abs(end_limit / lr - 1) <= EDGE_TOLERANCE


def verdicts(diverged_runs, distances):
    """Each run's verdict from whether it diverged and its distance from least squares (distance_from_least_squares):
    diverged, converged (a, b and c each within CONVERGED_ATOL) or not converged."""
    return ["diverged" if bad else "converged" if distance <= CONVERGED_ATOL else "not converged"
            for bad, distance in zip(diverged_runs.tolist(), distances.tolist())]


def single_verdict(log, coefficients, least):
    """A single run's verdict in the words of verdicts() (--runs gives each replica one): diverged, converged or
    not converged."""
    return verdicts(torch.tensor([log.stop_reason == "diverged"]), distance_from_least_squares(coefficients, least))[0]


@dataclass(kw_only=True)
class RunVerdicts:
    """How each of R replicas ended, judged as its single run (seed + r) is judged."""
    diverged: torch.Tensor  # (R,) bool: its loss became inf/NaN, or it ended above its starting loss
    diverged_at: list       # per run: the epoch its loss was first inf/NaN, as TrainLog.diverged_at; None if never
    verdicts: list          # per run: diverged, converged or not converged (verdicts())


def judge_replicas(log, final_loss, distances):
    """Each replica's verdict by the single run's rules: diverged if its loss became inf/NaN at some epoch
    (log.run_diverged_at, the epoch its single run names), or, where judge_rise would hold the single run's end
    against its start, if its final loss is inf/NaN or above its own starting loss. When every replica diverged,
    the log's stop_reason says so, as a single run's does. distances: distance_from_least_squares, (R,)."""
    at = log.run_diverged_at if log.run_diverged_at is not None else torch.zeros(final_loss.numel(), dtype=torch.long)
    bad = at > 0
    if end_held_against_start(log):
        bad = bad | diverged(final_loss, log.start_loss)
    if bool(bad.all()) and log.stop_reason != "interrupted":
        log.stop_reason = "diverged"
    return RunVerdicts(diverged=bad, diverged_at=[k or None for k in at.tolist()],
                       verdicts=verdicts(bad, distances))
