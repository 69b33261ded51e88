"""What --lr-sweep prints: the sweep against the theory, the measured limit, the table of its main lrs, and where a
signal stopped it (text.py prints everything else)."""
import math
import sys

from ..training.judge import CONVERGED_ATOL, DIVERGED_FACTOR
from .words import count, wrapped

TABLE_ROWS = 16


def print_sweep(sweep):
    space = "z = (x - mean)/std" if sweep.standardize else "x"
    lrs = sweep.lrs
    exact = "each run is the single run with its lr, bit for bit" if sweep.exact else \
        "its runs equal the single runs to float32 rounding, not bit for bit"
    print()
    print(wrapped(f"Learning-rate sweep ({sweep.model_name}, {sweep.optimizer}, on {space}): {len(lrs)} learning rates "
          f"from {lrs[0]:.3g} to {lrs[-1]:.3g}, {epochs_words(sweep)}, {how_trained(sweep)}; {exact}"))
    times = "" if DIVERGED_FACTOR == 1 else f"{DIVERGED_FACTOR:g} times "
    print(wrapped(f"  a run diverged if its final loss is inf/NaN or above {times}its starting loss; it converged if "
                  f"a, b and c are each within {CONVERGED_ATOL:g} of least squares"))
    where = ("local: from the Hessian at the start; the product's curvature changes as it trains"
             if sweep.limit_is_local else "exact: the Hessian of this bowl is the same everywhere")
    print(wrapped(f"  predicted limit {sweep.limit_formula} = {sweep.predicted_limit:.4g} ({where})"))
    print_measured_limit(sweep)
    if sweep.fastest_lr is not None:
        print(wrapped(f"  plain SGD's fastest lr 2/(lambda_min + lambda_max) = {sweep.fastest_lr:.4g}: it shrinks "
                      "the slowest error most per epoch"))
    print_edge_of_stability(sweep)
    print_sweep_table(sweep)


def print_measured_limit(sweep):
    """What the sweep measured: the lr up to which none diverged, the smallest that did, and any above it
    that did not (where the edge is not sharp)."""
    lo, hi = sweep.limit_bracket
    provisional = " (provisional: training was interrupted)" if sweep.stop_reason == "interrupted" else ""
    if sweep.measured_limit is not None:
        print(wrapped(f"  measured limit{provisional} {sweep.measured_limit:.4g}: every lr up to it did not diverge, "
                      f"{hi:.4g} did ({100 * (hi / lo - 1):.2g}% above it); "
                      f"{sweep.measured_limit / sweep.predicted_limit:.4f} times the prediction"))
    elif lo is None:
        print(f"  measured limit{provisional}: none, every learning rate diverged")
    else:
        print(wrapped(f"  measured limit{provisional}: above {lo:.4g}, the largest lr swept: none diverged"))
    cut = sweep.cut
    if cut is not None:
        print(wrapped(f"  {sweep.signal} cut {sweep.stage} short after {cut.epochs_run} of "
                      f"{count(sweep.epochs, 'epoch')}: "
                      f"its {count(len(cut.lrs), 'lr')} ({lr_range(cut.lrs)}) are left out here; --metrics lists them, "
                      "marked partial"))
    above = sweep.survived_above
    if above:
        print(wrapped(f"  the edge is not sharp: {count(len(above), 'lr')} above {hi:.4g} did "
                      f"not diverge ({lr_range(above)}; --metrics lists them)"))


def print_edge_of_stability(sweep):
    """A model whose curvature moves: the limit at the least-squares fit it reaches keeping its start's
    balance, and the runs that converged above it by ending where the curvature is lower."""
    if sweep.balanced_limit is None:
        return
    print(wrapped(f"  at the least-squares fit with the start's balance ({sweep.start_balance:+.4g}), "
                  f"{sweep.limit_formula} = {sweep.balanced_limit:.4g}"))
    rows = sweep.converged_above_balanced
    if not rows:
        print("  no run converged with an lr above it")
        return
    lrs = [sweep.rows.lrs[r] for r in rows]
    gap = max(abs(lr / sweep.end_limits[r] - 1) for lr, r in zip(lrs, rows))
    balances = [sweep.end_balances[r] for r in rows]
    print(wrapped(f"  {count(len(rows), 'run')} converged with an lr above it "
                  f"({lr_range(lrs)}): each ended where {sweep.limit_formula} is within {100 * gap:.2g}% of its "
                  f"lr, at the edge of stability; their balance at the end is between {min(balances):+.4g} and "
                  f"{max(balances):+.4g}"))


def lr_range(lrs):
    return f"{lrs[0]:.4g}" if len(lrs) == 1 else f"{lrs[0]:.4g} to {lrs[-1]:.4g}"


def epochs_words(sweep):
    """The epochs each main lr ran: all of them, or as far as a signal let them."""
    if sweep.rows_partial:
        return f"{sweep.epochs_run} of {count(sweep.epochs, 'epoch')} each ({sweep.signal} cut {sweep.stage} short)"
    return f"{count(sweep.epochs, 'epoch')} each"


def how_trained(sweep):
    """How the lrs were trained: with the window, in how many computations, after which pilot."""
    if not sweep.refined:  # a signal cut the pilot: nothing else was trained
        return f"trained together from the same start as the pilot ({sweep.seconds:.2f} s)"
    pilot = f" after a pilot of {count(sweep.pilot_epochs, 'epoch')}" if sweep.pilot_epochs else ""
    return (f"trained together from the same start with {window_words(sweep)} ({sweep.seconds:.2f} s, "
            f"{count(sweep.vectorized_runs, 'vectorized run')}{pilot})")


def print_sweep_stage(stage, lrs, epochs):
    """On stderr, before the pilot and each finer sweep: where a signal would land."""
    print(f"training {stage}: {count(len(lrs), 'lr')} from {lrs[0]:.4g} to {lrs[-1]:.4g}, {count(epochs, 'epoch')}",
          file=sys.stderr)


def sweep_interruption(sweep):
    """The one line a signal during the sweep gets: where it came and what the printed sweep is."""
    where = f"interrupted by {sweep.signal} in {sweep.stage}"
    if sweep.rows_partial:
        return (f"{where}, after {count(sweep.epochs_run, 'epoch')}: the sweep above is where training stopped, "
                "provisional")
    return (f"{where}, after {count(sweep.cut.epochs_run, 'epoch')}: the sweep above holds the lrs trained in full "
            f"before it, and leaves out the {count(len(sweep.cut.lrs), 'lr')} it cut short")


def window_words(sweep):
    """Where the first computation's extra lrs, 1% apart, were placed."""
    lrs = sweep.refined[0].lrs
    apart = f"{100 * (lrs[1] / lrs[0] - 1):.2g}% apart" if len(lrs) > 1 else "one"
    if sweep.window_from_pilot:
        return f"{len(lrs)} more, {apart}, inside the bracket that a pilot found"
    return f"{len(lrs)} more, {apart}, around the predicted limit"


def print_sweep_table(sweep):
    swept = len(sweep.lrs)
    rows = sorted({round(i * (swept - 1) / (TABLE_ROWS - 1)) for i in range(TABLE_ROWS)}) if swept > TABLE_ROWS \
        else range(swept)
    local = bool(sweep.end_limits)
    end_header = f"{sweep.limit_formula + ' at the end':>26s}" if local else ""
    if sweep.rows_partial:
        print(f"  every row is provisional: {sweep.signal} stopped training after {count(sweep.epochs_run, 'epoch')}")
    print(wrapped(f"  epochs to 1%: the first recorded epoch within 1% of the least-squares loss "
                  f"{sweep.least_squares_loss:.6f}"))
    print(f"  {'lr':>11s}{'final loss':>14s}  {'verdict':<14s}{end_header}   epochs to 1%")
    for i in rows:
        reached = sweep.epochs_to_1pct[i]
        final = f"{sweep.final_loss[i]:.6g}" if math.isfinite(sweep.final_loss[i]) else "inf/NaN"
        end = ""
        if local:
            limit = sweep.end_limits[sweep.rows.lrs.index(sweep.lrs[i])]
            end = f"{limit:26.4g}" if math.isfinite(limit) else " " * 26
        print(f"  {sweep.lrs[i]:11.4g}{final:>14s}  {sweep.verdicts[i]:<14s}{end}   "
              f"{reached if reached is not None else 'never'}")
    if swept > TABLE_ROWS:
        print(f"  ({len(rows)} of {count(swept, 'row')}; --metrics has them all)")
