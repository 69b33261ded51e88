"""Everything a run prints besides the blog's own lines and the explanations (explain.py): the fitted
function, the least-squares table, the side-by-side comparison and the replications. sweep_text.py prints
the lr sweep."""
import math
import sys

from ..many_runs.replicas import SMALLEST_EXCESS
from ..models import MODELS
from ..theory.least_squares import TRUE_COEFFICIENTS
from ..training.judge import CONVERGED_ATOL, distance_from_least_squares, within_one_percent
from .words import WIDTH, count, wrapped  # noqa: F401  (WIDTH and wrapped: the names other modules import here)


def fixed(value, decimals=4, sign=""):
    """`value` with `decimals` decimals, as the tables print it; from 1e7 up in scientific notation,
    so that no number outgrows its column."""
    value = float(value)
    notation = "e" if math.isfinite(value) and abs(value) >= 1e7 else "f"
    return f"{value:{sign}.{decimals}{notation}}"


def cell(text, width):
    """`text` right-aligned in `width` characters, always after at least one space."""
    return " " + str(text).rjust(width - 1)


def format_quadratic(coefficients, digits=4):
    """'1.0048 x^2 - 12.0305 x + 31.8826'; digits=None prints exact values: 'x^2 - 12 x + 32'."""
    def number(v):
        return fixed(v, digits) if digits is not None else f"{v:g}"
    terms = []
    for value, power in zip((float(v) for v in coefficients), ("x^2", "x", "")):
        magnitude = number(abs(value))
        if digits is None and power and abs(value) == 1:
            magnitude = ""
        text = f"{magnitude} {power}".strip() if magnitude else power
        if not terms:
            terms.append(("-" if value < 0 else "") + text)
        else:
            terms.append(("- " if value < 0 else "+ ") + text)
    return " ".join(terms)


def print_fitted(fit):
    """After the blog's parameter lines: the fitted function beside the true one."""
    print(f"fitted: y = {format_quadratic(fit.coefficients[0])}")
    print(f"true:   y = {format_quadratic(TRUE_COEFFICIENTS, digits=None)}")
    if fit.standardize:
        scale = fit.standardization
        print(f"(trained on z = (x - {scale.mean:.4f}) / {scale.std:.4f}; the parameters above are rewritten for x)")


def print_model_heading(name):
    """--model both: the heading before each model's lines."""
    print(f"== model {name} ==")


def print_stop(fit, tol, record_interval, least):
    """Why training ended, when it was not at the last epoch."""
    log = fit.log
    if log.stop_reason == "interrupted":
        print_interrupted(f"interrupted after {count(log.epochs_run, 'epoch')}: "
                          "the parameters above are where training stopped")
    if log.stop_reason == "converged" and log.epochs_run < fit.epochs:
        print(wrapped(f"stopped at epoch {log.epochs_run} of {fit.epochs}: converged: the loss no longer changed "
                      f"(see --help) and a, b, c are within {CONVERGED_ATOL:g} of the least-squares fit"))
    if log.stop_reason == "stalled":
        print(wrapped(f"stopped at epoch {log.epochs_run} of {fit.epochs}: stalled, not converged: the loss no "
                      f"longer changed (see --help) at {fit.final_loss:.6g}, {stall_gap(fit.final_loss, least)}, "
                      f"and a, b or c is {distance_from_least_squares(fit.coefficients, least)[0]:.3g} from "
                      "the least-squares fit"))
    if log.stop_reason == "tol":
        print(wrapped(f"stopped early at epoch {log.epochs_run}: the loss fell by less than --tol {tol:g} "
                      f"(relative) over the last {count(record_interval, 'epoch')}"))


def stall_gap(final, least):
    """Where a stalled loss sits against the least-squares loss: a ratio, or float32's verdict."""
    floor = least.loss[0].item()
    if final <= floor * (1 + 1e-6) + 1e-9 * least.scale:
        return "the least-squares loss to float32's precision, though the coefficients are not"
    if floor > 1e-9 * least.scale:
        return f"{final / floor:.4g} times the least-squares loss {floor:.6g}"
    return f"{final - floor:.3g} above the least-squares loss, which is 0 here (an exact fit)"


def print_interrupted(message):
    """On stderr: training was interrupted, and what the printed results are."""
    print(message, file=sys.stderr)


def print_explanation(lines):
    """A diagnosis's explanation (explain.py), after a blank line, wrapped for a terminal."""
    if lines:
        print()
        print("\n".join(wrapped(line) for line in lines))


def print_full_batch_companion(fit, companion, batch_size):
    if companion.log.stop_reason == "interrupted":
        print_interrupted(f"interrupted: the full-batch run drawn dashed beside {fit.model_name} stopped at epoch "
                          f"{companion.log.epochs_run} of {companion.epochs}, so its curve is partial; "
                          f"the run with batches of {batch_size} above is whole")
        return
    print(wrapped(f"{fit.model_name}: final loss {fit.final_loss:.6f} with batches of {batch_size}; the same "
                  f"settings on the full batch (drawn dashed in the figure): {companion.final_loss:.6f}"))


def print_least_squares(fit, least):
    fitted, best = fit.coefficients[0], least.coefficients[0]
    print()
    print("The best possible fit: least squares on the same data (float64, torch.linalg.lstsq)")
    header = f"  {'':5s}{'true':>9s}{'fitted':>12s}{'least sq.':>12s}{'fitted-LS':>12s}"
    if least.stderr is not None:
        header += f"{'std. error':>12s}   95% interval"
    print(header)
    for i, name in enumerate("abc"):
        row = (f"  {name:5s}{TRUE_COEFFICIENTS[i]:9g}{cell(fixed(fitted[i]), 12)}{cell(fixed(best[i]), 12)}"
               f"{cell(fixed(fitted[i] - best[i], sign='+'), 12)}")
        if least.stderr is not None:
            se = least.stderr[0, i].item()
            lo, hi = best[i] - least.t95 * se, best[i] + least.t95 * se
            inside = "contains" if lo <= TRUE_COEFFICIENTS[i] <= hi else "misses"
            row += f"{cell(fixed(se), 12)}   [{fixed(lo)}, {fixed(hi)}] {inside} the true value"
        print(row)
    floor = least.loss[0].item()
    print(wrapped(f"  final loss {loss_text(fit.final_loss)}; least-squares loss {loss_text(floor)}, "
                  f"the floor no quadratic can beat on this data ({loss_gap(fit.final_loss, floor, least.scale)})"))


def loss_text(loss):
    """A loss as the blog prints it (6 decimals), or in 7 significant digits once that would be long."""
    return f"{loss:.6f}" if abs(loss) < 1e6 else f"{loss:.7g}"


def loss_gap(final, floor, scale):
    """How far `final` is above the least-squares loss `floor`: in percent, or, when the floor is
    about 0 (a noise-free or 3-point fit, which a quadratic matches exactly), in absolute terms."""
    if floor > 1e-9 * scale and final < floor:  # float32's loss rounds differently from float64's
        return f"{100 * (final - floor) / floor:+.4f}%, float32's rounding, not a better fit"
    if floor > 1e-9 * scale:
        return f"{100 * (final - floor) / floor:+.4f}%"
    if final <= 1e-9 * scale:
        return f"exact fit: both are 0 to float32 precision, {final - floor:+.3g} apart"
    return f"the least-squares fit is exact here; this fit is {final - floor:+.3g} above it"


def first_epoch_within_one_percent(history, least):
    near = within_one_percent(least.loss[0].item(), least.scale)
    return next((e for e, v in history if v <= near), None)


def print_comparison(fits, least):
    """--model both: the two models side by side, and the blog's '25 times sooner' checked."""
    print()
    print("== params and linear side by side ==")
    print(f"  {'':24s}" + "".join(f"{f.model_name:>34s}" for f in fits))
    rows = [("epochs run", [str(f.log.epochs_run) for f in fits]),
            ("training seconds", [f"{f.log.seconds:.2f}" for f in fits]),
            ("final loss", [loss_text(f.final_loss) for f in fits]),
            ("fitted y =", [format_quadratic(f.coefficients[0], 3) for f in fits]),
            ("max |coef - least sq.|",
             [f"{(f.coefficients[0] - least.coefficients[0]).abs().max():.4f}" for f in fits])]
    for label, values in rows:
        print(f"  {label:24s}" + "".join(f"{v:>34s}" for v in values))
    floor = least.loss[0].item()
    reached = {f.model_name: first_epoch_within_one_percent(f.log.history, least) for f in fits}
    print(wrapped(f"  least-squares loss {floor:.6f}; first logged epoch within 1% of it: "
                  + ", ".join(f"{k} {v if v else 'never'}" for k, v in reached.items())))
    if all(reached.values()):
        first, second = (f.model_name for f in fits)
        ratio = reached[first] / reached[second]
        pace = f"{ratio:.1f} times sooner" if ratio >= 1 else f"{1 / ratio:.1f} times later"
        blog = [MODELS[name].defaults["sgd", False][1] for name in (first, second)]  # the blog's epochs
        print(f"  {second} got there {pace} (the blog says {blog[0]}/{blog[1]} = {blog[0] / blog[1]:g} times sooner)")


def print_replications(fit, summary):
    runs = len(summary.seeds)
    print()
    gradients = "the gradients by hand over all runs" if fit.gradients == "manual" else "autograd"
    print(wrapped(f"{runs} runs (seeds {summary.seeds[0]}-{summary.seeds[-1]}), {count(fit.log.epochs_run, 'epoch')} "
                  f"in {fit.log.seconds:.2f} s with {gradients}:"))
    print(wrapped(f"  {int(summary.succeeded.sum())} of {runs} succeeded "
                  "(final loss within 1% of the run's own least-squares loss)"))
    failed = summary.failed_seeds
    if failed:
        print(wrapped(f"  failed seeds: {seed_list(failed)}"))
    diverged = summary.diverged_seeds
    if diverged:
        print(wrapped(f"  {len(diverged)} of them diverged (their loss became inf/NaN or ended above its start), "
                      f"seeds {seed_list(diverged)}: {'it is' if len(diverged) == 1 else 'they are'} left out of the "
                      "means and spreads below"))
    print(f"  {'':4s}{'true':>8s}{'mean fitted':>14s}{'std':>10s}{'std (succeeded)':>17s}{'mean LS std. error':>20s}")
    for i, name in enumerate("abc"):
        print(f"  {name:4s}{TRUE_COEFFICIENTS[i]:8g}{cell(statistic(summary.coefficients_mean[i]), 14)}"
              f"{cell(statistic(summary.coefficients_std[i]), 10)}{cell(statistic(summary.spread_succeeded[i]), 17)}"
              f"{cell(statistic(summary.mean_stderr[i]), 20)}")
    for reason in summary.missing_statistics:
        print(f"  n/a: {reason}")
    verdict, hi, succeeded = summary.spread_verdict, summary.spread_bound, int(summary.succeeded.sum())
    within = f"{count(succeeded, 'run')}' standard deviation is within {hi:.2f} times the standard error 95% of the " \
        "time"
    spread = f"the spread of the {count(succeeded, 'succeeded run')}"
    lines = {"training": f"{spread} is wider than the least-squares standard error allows ({within}): the training "
                         "adds to it",
             "noise": f"{spread} matches the least-squares standard error "
                      f"({within}): it is the noise in the data, not the training",
             "too few": f"too few runs to tell whether the training adds to the spread: {within}, so even a "
                        f"spread {SMALLEST_EXCESS:g} times wider could pass for noise"}
    if verdict is not None:
        print(wrapped("  " + lines[verdict]))


def seed_list(seeds, most=20):
    return ", ".join(map(str, seeds[:most])) + (" ..." if len(seeds) > most else "")


def statistic(value):
    """A table entry: the value, or n/a where there was too little to compute it."""
    return fixed(value) if math.isfinite(float(value)) else "n/a"
