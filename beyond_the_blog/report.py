"""What a run prints after training and what it writes: the fitted function, the least-squares
table, the side-by-side comparison, the replications table, and the metrics JSON."""
import json
import math

import torch

from .analysis import TRUE_COEFFICIENTS, LinearDiagnosis, ParamsDiagnosis


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
        print(f"(trained on z = (x - {fit.mean:.4f}) / {fit.std:.4f}; the parameters above are rewritten for x)")


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
    print(f"  final loss {fit.final_loss:.6f}; least-squares loss {floor:.6f}, "
          f"the floor no quadratic can beat on this data ({loss_gap(fit.final_loss, floor, least.scale)})")


def loss_gap(final, floor, scale):
    """How far `final` is above the least-squares loss `floor`: in percent, or, when the floor is
    about 0 (a noise-free or 3-point fit, which a quadratic matches exactly), in absolute terms."""
    if floor > 1e-9 * scale:
        return f"{100 * (final - floor) / floor:+.4f}%"
    if final <= 1e-9 * scale:
        return f"exact fit: both are 0 to float32 precision, {final - floor:+.3g} apart"
    return f"the least-squares fit is exact here; this fit is {final - floor:+.3g} above it"


def first_epoch_within(history, floor, rel):
    return next((e for e, v in history if v <= floor * (1 + rel)), None)


def print_comparison(fits, least):
    """--model both: the two models side by side, and the blog's '25 times sooner' checked."""
    print()
    print("== params and linear side by side ==")
    print(f"  {'':24s}" + "".join(f"{f.model_name:>34s}" for f in fits))
    rows = [("epochs run", [str(f.log.epochs_run) for f in fits]),
            ("training seconds", [f"{f.log.seconds:.2f}" for f in fits]),
            ("final loss", [f"{f.final_loss:.6f}" for f in fits]),
            ("fitted y =", [format_quadratic(f.coefficients[0], 3) for f in fits]),
            ("max |coef - least sq.|",
             [f"{(f.coefficients[0] - least.coefficients[0]).abs().max():.4f}" for f in fits])]
    for label, values in rows:
        print(f"  {label:24s}" + "".join(f"{v:>34s}" for v in values))
    floor = least.loss[0].item()
    reached = {f.model_name: first_epoch_within(f.log.history, floor, 0.01) for f in fits}
    print(f"  least-squares loss {floor:.6f}; first logged epoch within 1% of it: "
          + ", ".join(f"{k} {v if v else 'never'}" for k, v in reached.items()))
    if all(reached.values()):
        print(f"  linear got there {reached['params'] / reached['linear']:.1f} times sooner "
              "(the blog says 500000/20000 = 25)")


def print_replications(fit, summary):
    runs = len(summary.seeds)
    print()
    print(f"{runs} runs (seeds {summary.seeds[0]}-{summary.seeds[-1]}), {fit.log.epochs_run} epochs "
          f"in {fit.log.seconds:.2f} s:")
    print(f"  {int(summary.succeeded.sum())} of {runs} succeeded "
          "(final loss within 1% of the run's own least-squares loss)")
    failed = summary.failed_seeds
    if failed:
        print(f"  failed seeds: {seed_list(failed)}")
    diverged = summary.diverged_seeds
    if diverged:
        print(f"  {len(diverged)} of them diverged (their loss became inf/NaN), seeds {seed_list(diverged)}: "
              "they are left out of the means and spreads below")
    print(f"  {'':4s}{'true':>8s}{'mean fitted':>14s}{'std':>10s}{'std (succeeded)':>17s}{'mean LS std. error':>20s}")
    for i, name in enumerate("abc"):
        print(f"  {name:4s}{TRUE_COEFFICIENTS[i]:8g}{cell(statistic(summary.coefficients_mean[i]), 14)}"
              f"{cell(statistic(summary.coefficients_std[i]), 10)}{cell(statistic(summary.spread_succeeded[i]), 17)}"
              f"{cell(statistic(summary.mean_stderr[i]), 20)}")
    for reason in summary.missing_statistics:
        print(f"  n/a: {reason}")
    comparable = torch.isfinite(summary.coefficients_std).all() and torch.isfinite(summary.mean_stderr).all()
    if not comparable:
        return
    if bool((summary.coefficients_std <= 1.5 * summary.mean_stderr).all()):
        print("  the spread across runs matches the least-squares standard error: "
              "it is the noise in the data, not the training")
    else:
        print("  the spread across runs is wider than the least-squares standard error: "
              "the training, not the data, adds it" + (" (the failed runs)" if failed else ""))


def seed_list(seeds, most=20):
    return ", ".join(map(str, seeds[:most])) + (" ..." if len(seeds) > most else "")


def statistic(value):
    """A table entry: the value, or n/a where there was too little to compute it."""
    return fixed(value) if math.isfinite(float(value)) else "n/a"


# ----------------------------------------------------------------------------- metrics
def base_metrics(fit, seed):
    log = fit.log
    metrics = {
        "model": fit.model_name, "optimizer": fit.optimizer, "seed": seed,
        "lr": fit.lr, "epochs": fit.epochs, "epochs_run": log.epochs_run,
        "standardize": fit.standardize,
        "parameters": {k: v.cpu().tolist() for k, v in fit.parameters.items()},
        "train_seconds": log.seconds,
        "torch_threads": torch.get_num_threads(),
        "stop_reason": log.stop_reason,
        "diverged": log.stop_reason == "diverged",
        "diverged_at_epoch": log.diverged_at,
        "interrupted": log.stop_reason == "interrupted",
        "gradients": fit.gradients,    # autograd, or manual: the lesson's train_by_hand
        "batch_size": fit.batch_size,  # null: the full batch
    }
    if fit.standardize:
        metrics["standardization"] = {"mean": fit.mean, "std": fit.std}
    return metrics


def diagnosis_metrics(diagnosis):
    if isinstance(diagnosis, ParamsDiagnosis):
        metrics = {"eigenvalues": diagnosis.eigenvalues.tolist(), "condition_number": diagnosis.condition_number,
                   "max_stable_lr": diagnosis.max_stable_lr, "epochs_to_converge": diagnosis.epochs_to_converge}
        if diagnosis.predicted is not None:
            metrics["exact_arithmetic_coefficients"] = dict(zip("abc", diagnosis.predicted.tolist()))
            metrics["frozen_by_float32"] = ["abc"[i] for i in diagnosis.frozen]
        return metrics
    if isinstance(diagnosis, LinearDiagnosis):
        return {"eigenvalues": diagnosis.eigenvalues.tolist(), "condition_number": diagnosis.condition_number,
                "condition_number_without_flat_direction": diagnosis.condition_without_flat,
                "balance_start": diagnosis.balance_start, "balance_end": diagnosis.balance_end}
    return None


def fit_metrics(fit, least, diagnosis, seed):
    metrics = base_metrics(fit, seed)
    stderr = least.stderr
    metrics.update({
        "final_loss": fit.final_loss,
        "coefficients": dict(zip("abc", fit.coefficients[0].tolist())),
        "loss_history": fit.log.history,
        "least_squares": {**dict(zip("abc", least.coefficients[0].tolist())), "loss": least.loss[0].item(),
                          "stderr": dict(zip("abc", stderr[0].tolist())) if stderr is not None else None},
    })
    details = diagnosis_metrics(diagnosis)
    if details is not None:
        metrics["diagnosis"] = details
    return metrics


def replication_metrics(fit, summary, seed):
    metrics = base_metrics(fit, seed)
    stderr = summary.least.stderr
    metrics["replications"] = {
        "runs": len(summary.seeds), "seeds": summary.seeds,
        "final_loss": fit.final_loss.tolist(),
        "succeeded": summary.succeeded.tolist(),
        "success_rate": summary.succeeded.double().mean().item(),
        "failed_seeds": summary.failed_seeds,
        "diverged_seeds": summary.diverged_seeds,
        "diverged_at_epoch_per_run": fit.log.run_diverged_at.tolist() if fit.log.run_diverged_at is not None else None,
        "coefficients": fit.coefficients.tolist(),
        "coefficients_mean": dict(zip("abc", summary.coefficients_mean.tolist())),
        "coefficients_std": dict(zip("abc", summary.coefficients_std.tolist())),
        "least_squares_loss": summary.least.loss.tolist(),
        "least_squares_stderr_mean": dict(zip("abc", stderr.mean(dim=0).tolist())) if stderr is not None else None,
        "loss_history_median": [[e, v.nanmedian().item()] for e, v in fit.log.history],
    }
    return metrics


def json_safe(value):
    """inf and NaN (a diverged run) become null: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(json_safe(data), f, indent=2, allow_nan=False)
        f.write("\n")
