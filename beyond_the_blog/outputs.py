"""Writing a run's files: the figure, the GIF, the metrics and the saved model, each atomically.

A file that cannot be written is reported in one line, naming the option and the reason; the others
are still written, and the run's exit status says that one failed (74).
"""
import sys

import torch

from .command_line import PROG
from .output_files import atomic_path
from .plots import can_show, plot_fits, plot_replications, write_animation
from .report import fit_metrics, replication_metrics, write_json
from .sweep_report import sweep_metrics
from .why_figures import plot_landscape, plot_sweep


def write_each(outputs):
    """outputs: (option, path, write(temporary_path), message when done). Returns how many failed."""
    failed = 0
    for option, path, write, message in outputs:
        try:
            with atomic_path(path) as temporary:
                write(temporary)
        except Exception as error:  # one output failing must not cost the others
            reason = getattr(error, "strerror", None) or str(error)
            print(f"{PROG}: error: could not write {option} {path}: {reason}; a file already there is unchanged",
                  file=sys.stderr)
            failed += 1
        else:
            print(message)
    return failed


def write_single_outputs(settings, fits, diagnoses, x, y, least, full_batch=()):
    show = not settings.no_show and can_show()
    outputs = []
    if settings.plot:
        outputs.append(("--plot", settings.plot, lambda path: plot_fits(fits, x, y, least, path, show, full_batch),
                        f"figure written to {settings.plot}"))
    if settings.animate and fits[0].log.frames:
        outputs.append(("--animate", settings.animate, lambda path: write_animation(path, x, y, fits[0]),
                        f"animation written to {settings.animate} ({len(fits[0].log.frames)} frames)"))
    elif settings.animate:
        print(f"{PROG}: --animate {settings.animate} not written: training stopped before its first frame",
              file=sys.stderr)
    outputs += landscape_output(settings.landscape, fits, x, y)
    if settings.metrics:
        records = {f.model_name: fit_metrics(f, least, diagnoses.get(f.model_name), settings.seed) for f in fits}
        for f in fits:
            if f.trajectory is not None:
                records[f.model_name]["trajectory"] = f.trajectory.metrics()
        data = records if settings.model == "both" else records[settings.model]
        outputs.append(("--metrics", settings.metrics, lambda path: write_json(path, data),
                        f"metrics written to {settings.metrics}"))
    if settings.save_model:
        states = {f.model_name: f.model.state_dict() for f in fits}
        state = states if settings.model == "both" else states[settings.model]
        outputs.append(("--save-model", settings.save_model, lambda path: torch.save(state, path),
                        f"model saved to {settings.save_model}"))
    failed = write_each(outputs)
    show_figure(show and settings.plot)
    return failed


def landscape_output(path, fits, x, y):
    """--landscape: the bowl with the paths of the fits that did not diverge (a diverged path leaves it)."""
    drawn = [f for f in fits if f.log.stop_reason != "diverged"]
    if not path:
        return []
    if not drawn:
        print(f"{PROG}: --landscape {path} not written: the run diverged, its path leaves the bowl", file=sys.stderr)
        return []
    return [("--landscape", path, lambda temporary: plot_landscape(drawn, x.cpu(), y.cpu(), temporary),
             f"landscape written to {path}")]


def write_sweep_outputs(settings, result):
    outputs = []
    if settings.plot:
        outputs.append(("--plot", settings.plot, lambda path: plot_sweep(result, path),
                        f"figure written to {settings.plot}"))
    if settings.metrics:
        data = sweep_metrics(result, settings.seed)
        outputs.append(("--metrics", settings.metrics, lambda path: write_json(path, data),
                        f"metrics written to {settings.metrics}"))
    return write_each(outputs)


def write_replication_outputs(settings, result, x, ys, summary):
    show = not settings.no_show and can_show()
    outputs = []
    if settings.plot:
        outputs.append(("--plot", settings.plot, lambda path: plot_replications(result, x, ys, summary, path, show),
                        f"figure written to {settings.plot}"))
    if settings.metrics:
        data = replication_metrics(result, summary, settings.seed)
        outputs.append(("--metrics", settings.metrics, lambda path: write_json(path, data),
                        f"metrics written to {settings.metrics}"))
    if settings.save_model:
        state = {k: v.cpu() for k, v in result.parameters.items()}
        outputs.append(("--save-model", settings.save_model, lambda path: torch.save(state, path),
                        f"model saved to {settings.save_model}"))
    failed = write_each(outputs)
    show_figure(show and settings.plot)
    return failed


def show_figure(show):
    if show:
        import matplotlib.pyplot as plt
        plt.show()
