"""What --lr-sweep prints and writes: a short summary against the theory, a table, the metrics."""
import math

from .command_line import DIVERGED_FACTOR

TABLE_ROWS = 16


def print_sweep(sweep):
    space = "z = (x - mean)/std" if sweep.standardize else "x"
    lrs = sweep.lrs
    print()
    print(f"Learning-rate sweep ({sweep.model_name}, {sweep.optimizer}, on {space}): {len(lrs)} learning rates "
          f"from {lrs[0]:.3g} to {lrs[-1]:.3g}, {sweep.epochs} epochs each, trained together from the same start "
          f"with {window_words(sweep)} ({sweep.seconds:.2f} s, "
          f"{sweep.vectorized_runs} vectorized run{'s' if sweep.vectorized_runs > 1 else ''}"
          f"{f' after a pilot of {sweep.pilot_epochs} epochs' if sweep.pilot_epochs else ''})")
    times = "" if DIVERGED_FACTOR == 1 else f"{DIVERGED_FACTOR:g} times "
    print(f"  a run diverged if its final loss is inf/NaN or above {times}its starting loss")
    where = ("local: from the Hessian at the start; the product's curvature changes as it trains"
             if sweep.edge_is_local else "exact: the Hessian of this bowl is the same everywhere")
    print(f"  predicted limit {sweep.edge_formula} = {sweep.predicted_edge:.4g} ({where})")
    lo, hi = sweep.edge_bracket
    provisional = " (provisional: training was interrupted)" if sweep.stop_reason == "interrupted" else ""
    if sweep.measured_edge is not None:
        print(f"  measured limit{provisional} {sweep.measured_edge:.4g}: the largest lr that did not diverge "
              f"({hi:.4g} did), to 1%; {sweep.measured_edge / sweep.predicted_edge:.4f} times the prediction")
    elif lo is None:
        print(f"  measured limit{provisional}: none, every learning rate diverged")
    else:
        print(f"  measured limit{provisional}: above {lo:.4g}, the largest lr swept: none diverged")
    if sweep.fastest_lr is not None:
        print(f"  plain SGD's fastest lr 2/(lambda_min + lambda_max) = {sweep.fastest_lr:.4g}: it shrinks the "
              "slowest error most per epoch")
    print_sweep_table(sweep)


def window_words(sweep):
    """Where the first computation's extra lrs, 1% apart, were placed."""
    lrs = sweep.refined[0].lrs
    apart = f"{100 * (lrs[1] / lrs[0] - 1):.2g}% apart" if len(lrs) > 1 else "one"
    if sweep.window_from_pilot:
        return f"{len(lrs)} more, {apart}, inside the bracket that a pilot found"
    return f"{len(lrs)} more, {apart}, around the predicted limit"


def print_sweep_table(sweep):
    count = len(sweep.lrs)
    rows = sorted({round(i * (count - 1) / (TABLE_ROWS - 1)) for i in range(TABLE_ROWS)}) if count > TABLE_ROWS \
        else range(count)
    print(f"  {'lr':>11s}{'final loss':>14s}{'diverged':>10s}   epochs to 1% above the least-squares loss "
          f"{sweep.least_squares_loss:.6f}")
    for i in rows:
        reached = sweep.epochs_to_1pct[i]
        final = f"{sweep.final_loss[i]:.6g}" if math.isfinite(sweep.final_loss[i]) else "inf/NaN"
        print(f"  {sweep.lrs[i]:11.4g}{final:>14s}{'yes' if sweep.diverged[i] else 'no':>10s}   "
              f"{reached if reached is not None else 'never'}")
    if count > TABLE_ROWS:
        print(f"  ({len(rows)} of {count} rows; --metrics has them all)")


def sweep_metrics(sweep, seed):
    return {"model": sweep.model_name, "optimizer": sweep.optimizer, "seed": seed, "epochs": sweep.epochs,
            "standardize": sweep.standardize, "least_squares_loss": sweep.least_squares_loss,
            "stop_reason": sweep.stop_reason, "lr_sweep": sweep.metrics()}
