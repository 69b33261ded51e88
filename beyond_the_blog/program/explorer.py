"""--explore PATH.html, start to end: the data and each model's start as a single run draws them, every setting's
runs (explorer_runs.py), a line about each, then the page (explorer_page.py) and, if asked, the same data as
the --metrics JSON."""
import sys

from ..many_runs.explorer_runs import data_and_starts, settings_asked, train_setting
from ..models import default_epochs
from ..report.explorer_page import megabytes, page_bytes, page_data
from ..report.text import print_interrupted, wrapped
from ..system.paths import write_json
from ..system.status import PROG, ExitStatus
from ..training.monitor import Progress
from .data import refused_data
from .outputs import write_each


def run_explorer(options, device, signals):
    """Train every setting the request asks for, print a line about each, write the page; the exit status."""
    request = options.explore
    x, y, starts = data_and_starts(request.models, options.seed, (options.samples, options.noise, options.x_range))
    refused = refused_data(options, x, y)
    if refused:
        return refused
    explored = []
    for setting in settings_asked(request.models, request.standardizations, request.optimizers):
        epochs = request.epochs or default_epochs(setting.optimizer, setting.model_name, setting.standardize)
        progress = Progress(epochs, 0, options.quiet, label=setting.label)
        try:
            runs = train_setting(setting, (x.to(device), y.to(device), starts[setting.model_name].to(device)),
                                 epochs, signals.received, progress)
        finally:
            progress.close()
        if runs is None:
            print_interrupted(f"interrupted while training {setting.label}: no page written")
            return ExitStatus.INTERRUPTED
        print_explored(runs)
        explored.append(runs)
    data = page_data(explored, x, y, (options.seed, options.samples, options.noise, options.x_range))
    try:
        html = page_bytes(data)
    except ValueError as error:
        print(f"{PROG}: error: could not write --explore {request.path}: {error}", file=sys.stderr)
        return ExitStatus.IO_ERROR
    outputs = [("--explore", request.path, lambda path: write_bytes(path, html),
                f"explorer written to {request.path} ({megabytes(len(html))}): open it in a browser")]
    if options.metrics:
        outputs.append(("--metrics", options.metrics, lambda path: write_json(path, data),
                        f"metrics written to {options.metrics}"))
    return ExitStatus.IO_ERROR if write_each(outputs) else ExitStatus.SUCCESS


def write_bytes(path, content):
    with open(path, "wb") as f:
        f.write(content)


def print_explored(runs):
    """One line per setting: what was trained, how long it took, the limit, which runs diverged."""
    diverged = [lr for lr, gone in zip(runs.lrs, runs.diverged) if gone]  # inf/NaN or above its start
    where = "at the start" if runs.limit_is_local else "exact: the Hessian is constant"
    verdict = f"{len(diverged)} diverged (the smallest lr of them {min(diverged):.3g})" if diverged else "none diverged"
    print(wrapped(f"{runs.setting.label}: {len(runs.lrs)} lrs x {runs.epochs} epochs in {runs.seconds:.1f} s; "
                  f"predicted limit {runs.limit_formula} = {runs.limit:.3g} ({where}); {verdict}"))
    sys.stdout.flush()
