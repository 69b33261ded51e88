"""Writing a run's files: the figure, the GIF, the metrics and the saved model, each atomically; and the
metrics JSON, assembled here and nowhere else.

A file that cannot be written is reported in one line, naming the option and the reason; the others
are still written, and the run's exit status says that one failed (74).
"""
import sys

import torch

from ..report.figures import (
    NON_INTERACTIVE_BACKENDS,
    can_show,
    plot_fits,
    plot_replications,
    plot_sweep,
    write_animation,
)
from ..report.landscape_figure import plot_landscape
from ..report.words import count
from ..system.paths import ANIMATE, LANDSCAPE, METRICS, PLOT, SAVE_MODEL, atomic_path, write_json, written_in_place
from ..system.status import PROG, error_line, shown
from ..theory.diagnosis import LinearDiagnosis, ParamsDiagnosis
from ..training.judge import CONVERGED_ATOL, DIVERGED_FACTOR, single_verdict


def write_each(outputs):
    """outputs: (option, path, write(temporary_path), message when done). Returns how many failed."""
    failed = 0
    for option, path, write, message in outputs:
        try:
            with atomic_path(path) as temporary:
                write(temporary)
        except Exception as error:  # one output failing must not cost the others
            reason = getattr(error, "strerror", None) or str(error)
            kept = "" if written_in_place(path) else "; a file already there is unchanged"  # else it is written into
            error_line(f"could not write {option} {shown(path)}: {reason}{kept}")
            failed += 1
        else:
            print(message)
    return failed


def write_single_outputs(options, fits, diagnoses, x, y, least, full_batch=()):
    show = not options.no_show and can_show()
    outputs = []
    if options.plot:
        outputs.append((PLOT, options.plot, lambda path: plot_fits(fits, x, y, least, path, show, full_batch),
                        f"figure written to {options.plot}"))
    if options.animate and fits[0].log.frames:
        outputs.append((ANIMATE, options.animate, lambda path: write_animation(path, x, y, fits[0]),
                        f"animation written to {options.animate} ({count(len(fits[0].log.frames), 'frame')})"))
    elif options.animate:
        print(f"{PROG}: --animate {options.animate} not written: training stopped before its first frame",
              file=sys.stderr)
    outputs += landscape_output(options.landscape, fits, x, y)
    if options.metrics:
        records = {f.model_name: fit_metrics(f, least, diagnoses.get(f.model_name), options.seed) for f in fits}
        for f in fits:
            if f.trajectory is not None:
                records[f.model_name]["trajectory"] = trajectory_metrics(f.trajectory)
        for companion in full_batch:  # --batch-size: the full-batch run drawn beside it, as far as it got
            records[companion.model_name]["full_batch"] = {
                "final_loss": companion.final_loss, "epochs_run": companion.log.epochs_run,
                "interrupted": companion.log.stop_reason == "interrupted"}
        data = records if options.model == "both" else records[options.model]
        outputs.append((METRICS, options.metrics, lambda path: write_json(path, data),
                        f"metrics written to {options.metrics}"))
    if options.save_model:
        states = {f.model_name: f.model.state_dict() for f in fits}
        state = states if options.model == "both" else states[options.model]
        outputs.append((SAVE_MODEL, options.save_model, lambda path: torch.save(state, path),
                        f"model saved to {options.save_model}"))
    failed = write_each(outputs)
    show_figure(show and options.plot)
    return failed


def landscape_output(path, fits, x, y):
    """--landscape: the bowl with the paths of the fits that did not diverge (a diverged path leaves it)."""
    drawn = [f for f in fits if f.log.stop_reason != "diverged"]
    if not path:
        return []
    if not drawn:
        print(f"{PROG}: --landscape {path} not written: the run diverged, its path leaves the bowl", file=sys.stderr)
        return []
    return [(LANDSCAPE, path, lambda temporary: plot_landscape(drawn, x.cpu(), y.cpu(), temporary),
             f"landscape written to {path}")]


def write_sweep_outputs(options, result):
    outputs = []
    if options.plot:
        outputs.append((PLOT, options.plot, lambda path: plot_sweep(result, path),
                        f"figure written to {options.plot}"))
    if options.metrics:
        data = sweep_metrics(result, options.seed)
        outputs.append((METRICS, options.metrics, lambda path: write_json(path, data),
                        f"metrics written to {options.metrics}"))
    return write_each(outputs)


def write_replication_outputs(options, result, x, ys, summary):
    show = not options.no_show and can_show()
    outputs = []
    if options.plot:
        outputs.append((PLOT, options.plot, lambda path: plot_replications(result, x, ys, summary, path, show),
                        f"figure written to {options.plot}"))
    if options.metrics:
        data = replication_metrics(result, summary, options.seed)
        outputs.append((METRICS, options.metrics, lambda path: write_json(path, data),
                        f"metrics written to {options.metrics}"))
    if options.save_model:
        # one state_dict per run, in seed order: MODELS[name].build().load_state_dict(torch.load(path)[r]) loads run r
        runs = [{k: v[r].cpu().clone() for k, v in result.parameters.items()} for r in range(options.runs)]
        outputs.append((SAVE_MODEL, options.save_model, lambda path: torch.save(runs, path),
                        f"model saved to {options.save_model}"))
    failed = write_each(outputs)
    show_figure(show and options.plot)
    return failed


def show_figure(show):
    if show:
        import matplotlib.pyplot as plt
        if plt.get_backend().lower() in NON_INTERACTIVE_BACKENDS:  # its window could not open (no display): quiet
            return
        plt.show()


# ----------------------------------------------------------------------------- the metrics JSON, assembled here
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
        metrics["standardization"] = {"mean": fit.standardization.mean, "std": fit.standardization.std}
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
        "verdict": single_verdict(fit.log, fit.coefficients, least),
        "verdict_definition": VERDICT_DEFINITION,
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
    metrics["diverged"] = bool(summary.diverged.any())  # any run, as the exit status says
    stderr = summary.least.stderr
    metrics["replications"] = {
        "runs": len(summary.seeds), "seeds": summary.seeds,
        "final_loss": fit.final_loss.tolist(),
        "succeeded": summary.succeeded.tolist(),
        "success_rate": summary.succeeded.double().mean().item(),
        "failed_seeds": summary.failed_seeds,
        "diverged_seeds": summary.diverged_seeds,
        "diverged_per_run": summary.diverged.tolist(),  # each as its single run's "diverged"
        "diverged_at_epoch_per_run": summary.judged.diverged_at,  # each as its single run's "diverged_at_epoch"
        "verdicts": summary.judged.verdicts,
        "verdict_definition": VERDICT_DEFINITION,
        "coefficients": fit.coefficients.tolist(),
        "coefficients_mean": dict(zip("abc", summary.coefficients_mean.tolist())),
        "coefficients_std": dict(zip("abc", summary.coefficients_std.tolist())),
        "least_squares_loss": summary.least.loss.tolist(),
        "least_squares_stderr_mean": dict(zip("abc", stderr.mean(dim=0).tolist())) if stderr is not None else None,
        "loss_history_median": [[e, v.nanmedian().item()] for e, v in fit.log.history],
    }
    return metrics


VERDICT_DEFINITION = (f"diverged: the loss became inf/NaN, or the final loss is above {DIVERGED_FACTOR:g} x the "
                      f"starting loss; converged: a, b and c each within {CONVERGED_ATOL:g} of least squares; "
                      "otherwise not converged")


def sweep_metrics(sweep, seed):
    return {"model": sweep.model_name, "optimizer": sweep.optimizer, "seed": seed, "epochs": sweep.epochs,
            "standardize": sweep.standardize, "least_squares_loss": sweep.least_squares_loss,
            "stop_reason": sweep.stop_reason, "epochs_run": sweep.epochs_run, "signal": sweep.signal,
            "interrupted_stage": sweep.stage, "lr_sweep": lr_sweep_metrics(sweep)}


def lr_sweep_metrics(sweep):
    return {"lrs": sweep.lrs, "final_loss": sweep.final_loss, "diverged": sweep.diverged,
            "epochs_to_1pct": sweep.epochs_to_1pct, "predicted_edge": sweep.predicted_limit,
            "measured_edge": sweep.measured_limit, "edge_bracket": list(sweep.limit_bracket),
            "edge_formula": sweep.limit_formula, "edge_is_local": sweep.limit_is_local,
            "fastest_plain_sgd_lr": sweep.fastest_lr, "diverged_definition":
            f"final loss inf/NaN or above {DIVERGED_FACTOR:g} x the starting loss",
            "verdicts": sweep.verdicts, "verdict_definition": VERDICT_DEFINITION, "runs_are_single_runs": sweep.exact,
            "all_lrs": {"lrs": sweep.rows.lrs, "verdicts": sweep.row_verdicts,
                        "final_loss": sweep.rows.final_loss.tolist(), "end_limit": sweep.end_limits or None,
                        "end_balance": sweep.end_balances or None, "epochs_run": sweep.rows.epochs_each,
                        "partial": sweep.rows_partial},
            "cut_short": cut_metrics(sweep),
            "survived_above_smallest_diverged": sweep.survived_above, "start_balance": sweep.start_balance,
            "balanced_edge": sweep.balanced_limit,
            "refined": [{"lrs": r.lrs, "diverged": r.diverged.tolist()} for r in sweep.refined],
            "vectorized_runs": sweep.vectorized_runs, "pilot_epochs": sweep.pilot_epochs, "seconds": sweep.seconds}


def cut_metrics(sweep):
    """The finer sweep a signal cut short, as far as it got: left out of all_lrs and of the measured limit."""
    cut = sweep.cut
    if cut is None:
        return None
    return {"stage": sweep.stage, "lrs": cut.lrs, "epochs_run": cut.epochs_run, "partial": True,
            "final_loss": cut.final_loss.tolist(), "verdicts": sweep.cut_verdicts}


def trajectory_metrics(trajectory):
    return {"epochs": list(trajectory.epochs), "coefficients": trajectory.coefficients_in_x().tolist()}
