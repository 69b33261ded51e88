"""--explore PATH.html, start to end: the data and each model's start as a single run draws them, every setting's
runs (explorer_runs.py), a line about each, then the page (explorer_page.py) and, if asked, the same data as
the --metrics JSON. A page too large for its settings is refused before training; a signal keeps the settings
already trained, written as a page marked partial."""
import sys

from ..many_runs.explorer_runs import LEARNING_RATES, data_and_starts, recorded_epochs, settings_asked, train_setting
from ..models import default_epochs
from ..report import explorer_page
from ..report.explorer_page import megabytes, page_bytes, page_data, page_size_bound
from ..report.text import print_interrupted
from ..report.words import count, wrapped
from ..system.paths import EXPLORE, METRICS, write_json
from ..system.status import PROG, ExitStatus, refuse
from ..training.monitor import Progress
from .data import refused_data
from .outputs import write_each


def run_explorer(options, device, signals):
    """Train every setting the request asks for, print a line about each, write the page; the exit status."""
    request = options.explore
    settings = settings_asked(request.models, request.standardizations, request.optimizers)
    epochs = {s: request.epochs or default_epochs(s.optimizer, s.model_name, s.standardize) for s in settings}
    bound = page_size_bound(len(settings), LEARNING_RATES + 1, max(len(recorded_epochs(e)) for e in epochs.values()),
                            options.samples)
    limit = explorer_page.MAX_PAGE_BYTES
    if bound > limit:
        return refuse(f"--explore {request.path}: {len(settings)} settings on {options.samples} points make a page of "
                      f"up to {megabytes(bound)}, above the limit of {megabytes(limit)}; ask for fewer --samples "
                      "or narrow it with --model, --optimizer or --standardize")
    x, y, starts = data_and_starts(request.models, options.seed, (options.samples, options.noise, options.x_range))
    refused = refused_data(options, x, y)
    if refused:
        return refused
    explored = []
    for setting in settings:
        progress = Progress(epochs[setting], 0, options.quiet, label=setting.label)
        try:
            runs = train_setting(setting, (x.to(device), y.to(device), starts[setting.model_name].to(device)),
                                 epochs[setting], signals.received, progress)
        finally:
            progress.close()
        if runs is None:
            return interrupted(options, explored, (x, y), setting)
        print_explored(runs)
        explored.append(runs)
    return write_page(options, explored, (x, y))


def interrupted(options, explored, data, setting):
    """A signal stopped `setting`: the settings already trained are written, marked partial (none: nothing is)."""
    if not explored:
        print_interrupted(f"interrupted while training {setting.label}, the first setting: no page written")
        return ExitStatus.INTERRUPTED
    print_interrupted(f"interrupted while training {setting.label}: the page holds the {len(explored)} "
                      f"setting{'s' if len(explored) > 1 else ''} already trained, marked partial")
    write_page(options, explored, data, partial=True)
    return ExitStatus.INTERRUPTED  # run() answers with the signal's own status: 130, 143 or 129


def write_page(options, explored, data, partial=False):
    """The page and, if asked, the --metrics JSON of the settings in `explored`."""
    request, (x, y) = options.explore, data
    page = page_data(explored, x, y, (options.seed, options.samples, options.noise, options.x_range), partial)
    try:
        html = page_bytes(page)
    except ValueError as error:
        print(f"{PROG}: error: could not write --explore {request.path}: {error}", file=sys.stderr)
        return ExitStatus.IO_ERROR
    part = ", partial" if partial else ""
    outputs = [(EXPLORE, request.path, lambda path: write_bytes(path, html),
                f"explorer written to {request.path} ({megabytes(len(html))}{part}): open it in a browser")]
    if options.metrics:
        outputs.append((METRICS, options.metrics, lambda path: write_json(path, page),
                        f"metrics written to {options.metrics}{part}"))
    return ExitStatus.IO_ERROR if write_each(outputs) else ExitStatus.SUCCESS


def write_bytes(path, content):
    with open(path, "wb") as f:
        f.write(content)


def print_explored(runs):
    """One line per setting: what was trained, how long it took, the limit, which runs diverged."""
    diverged = [lr for lr, gone in zip(runs.lrs, runs.diverged) if gone]  # inf/NaN or above its start
    where = {"exact": "exact: the Hessian is constant", "the balanced fit": "at the balanced fit",
             "the start": "at the start"}[runs.limit_where]
    start = f", {runs.start_limit:.3g} at the start" if runs.start_limit is not None else ""
    verdict = f"{len(diverged)} diverged (the smallest lr of them {min(diverged):.3g})" if diverged else "none diverged"
    trained = f"{count(len(runs.lrs), 'lr')} x {count(runs.epochs, 'epoch')}"
    print(wrapped(f"{runs.setting.label}: {trained} in {runs.seconds:.1f} s; "
                  f"predicted limit {runs.limit_formula} = {runs.limit:.3g} ({where}{start}); {verdict}"))
    sys.stdout.flush()
