"""The figures: the fit beside its loss curve, the replications, the GIF of training, and the lr sweep
against theory (the loss bowl of --landscape is in landscape_figure.py).

matplotlib is imported inside the functions, so that runs without a figure never load it.
Without a display the figures are only written: a bare Figure, no GUI, no global state.
"""
import math
import os
import sys

import torch

from ..models import MODELS
from ..theory.least_squares import TRUE_COEFFICIENTS
from .words import count

READABLE = {"font.size": 11, "legend.fontsize": 10, "axes.titlesize": 11}  # at least 9 pt at the README's width
NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def new_figure(show, **kwargs):
    """A pyplot figure when a window will be shown, else a bare Figure: no GUI, no global state."""
    import matplotlib
    matplotlib.rcParams.update(READABLE)
    if show:
        import matplotlib.pyplot as plt
        return plt.figure(**kwargs)
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def save(fig, path, dpi):
    """fig.savefig, without PostScript's warning that it draws transparent lines opaque (it does, and they read)."""
    import logging
    logger = logging.getLogger("matplotlib.backends.backend_ps")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        logger.setLevel(level)


def can_show():
    """A window can open: a display exists and matplotlib picked an interactive backend."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import matplotlib
    return matplotlib.get_backend().lower() not in NON_INTERACTIVE_BACKENDS


MAX_POINTS_DRAWN = 5000  # more red dots add nothing to see, and a million take matplotlib minutes


def data_points(x, y, label):
    """x, y as flat arrays to draw, thinned to at most MAX_POINTS_DRAWN evenly spaced points."""
    step = -(-x.numel() // MAX_POINTS_DRAWN)
    if step > 1:
        label += f" (every {step}th of {x.numel()} points)"
    return x.cpu().numpy().ravel()[::step], y.cpu().numpy().ravel()[::step], label


def curve(coefficients, grid):
    a, b, c = (float(v) for v in coefficients)
    return a * grid**2 + b * grid + c


# the first fit as a wide band the thin references show through; a second one, on the same curve, as a narrower
# dashed line on top of it, so the two read apart where they coincide
FIT_STYLES = (dict(linewidth=6, alpha=0.45, zorder=3), dict(linewidth=2.5, linestyle=(0, (4, 2)), alpha=0.9, zorder=4))


def rates(fits):
    """Each fit's optimizer and lr, for a title: 'sgd: params lr 2e-05, linear lr 0.01'."""
    optimizers = {f.optimizer for f in fits}
    if len(optimizers) == 1:
        return f"{fits[0].optimizer}: " + ", ".join(f"{f.model_name} lr {f.lr:g}" for f in fits)
    return ", ".join(f"{f.model_name} {f.optimizer} lr {f.lr:g}" for f in fits)


def draw_fit(ax, x, y, fits, least, title):
    """Left panel: the blog's picture (red dots, fitted line) plus the true and least-squares curves."""
    import numpy as np
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    xs, ys, label = data_points(x, y, "Original Data")
    ax.plot(xs, ys, "ro", markersize=3, label=label)
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), color="gray", linewidth=1, label="True: (x-4)(x-8)")
    ax.plot(grid, curve(least.coefficients[0], grid), "k--", linewidth=1, label="Least squares")
    drawable = [fit for fit in fits if torch.isfinite(torch.as_tensor(fit[1])).all()]  # a diverged fit has no curve
    for i, (label, coefficients, color) in enumerate(drawable):  # drawn last, over the references
        ax.plot(grid, curve(coefficients, grid), color=color, label=label, gid=f"fit:{label}", **FIT_STYLES[min(i, 1)])
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(loc="upper center")  # the parabola leaves the top middle empty


def draw_losses(ax, curves, least_loss):
    """Right panel: the loss against the epoch, log-log, with the least-squares floor. Only finite,
    positive losses can go on log axes; a run that diverged at once has none."""
    drawn = 0
    for label, history, color, *style in curves:  # style: an optional line style
        points = [(e, v) for e, v in history if math.isfinite(v) and v > 0]
        epochs, losses = zip(*points) if points else ((), ())
        ax.plot(epochs, losses, color=color, label=label, linestyle=style[0] if style else "-")
        drawn += len(points)
    if least_loss > 0:
        ax.axhline(least_loss, color="k", linestyle="--", linewidth=1, label=f"least squares {least_loss:.6f}")
    loss_axes(ax, drawn > 0, "Loss")


def loss_axes(ax, anything_drawn, title):
    """Log-log axes for the losses, or, when no finite loss was recorded, plain ones that say so."""
    scale = "log" if anything_drawn else "linear"
    ax.set(xscale=scale, yscale=scale, xlabel="epoch", ylabel="MSE loss", title=title)
    if not anything_drawn:
        ax.text(0.5, 0.3, "no finite loss was recorded", ha="center", va="center", transform=ax.transAxes)
    ax.legend()


def plot_fits(fits, x, y, least, path, show, full_batch=()):
    """One or both models: fits on the left, loss curves on the right; with --batch-size, the
    full-batch run of the same settings (`full_batch`, one Fit per model) dashed beside each."""
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = " and ".join(f.model_name for f in fits)
    ended = [f"{f.final_loss:.6f}" for f in fits if f.log.stop_reason != "diverged"]
    diverged = [f"{f.model_name} diverged" + (f" at epoch {f.log.diverged_at}" if f.log.diverged_at else "")
                + ", not drawn" for f in fits if f.log.stop_reason == "diverged"]
    title = (f"model {names}: " + "; ".join(([f"final loss {', '.join(ended)}"] if ended else []) + diverged)
             + f"\n{rates(fits)}")
    lines = [("Fitting Line" if len(fits) == 1 else f"Fitting Line ({f.model_name})",
              f.coefficients[0], MODELS[f.model_name].color) for f in fits if f.log.stop_reason != "diverged"]
    draw_fit(left, x, y, lines, least, title)
    curves = [(f.model_name + (f", batches of {f.batch_size}" if f.batch_size else ""), f.log.history,
               MODELS[f.model_name].color) for f in fits]
    curves += [(f"{f.model_name}, full batch", f.log.history, MODELS[f.model_name].color, "--")
               for f in full_batch]
    draw_losses(right, curves, least.loss[0].item())
    right.set_title(f"Loss ({rates(fits)}" + (", full batch dashed" if full_batch else "") + ")")
    save(fig, path, dpi=100)
    return fig


def draw_replica_fits(ax, fit_result, x, ys, summary):
    """Every run's fit faintly (failed runs dashed, in purple), over the first run's data."""
    import numpy as np
    from matplotlib.collections import LineCollection
    runs = len(summary.seeds)
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    xs, first, label = data_points(x, ys[0], f"data of seed {summary.seeds[0]}")
    ax.plot(xs, first, "ro", markersize=3, label=label)
    ok, drawable = summary.succeeded, ~summary.diverged  # a diverged run's curve is not a fit
    failed = int((~ok).sum())
    not_drawn = f" ({int(summary.diverged.sum())} diverged, not drawn)" if summary.diverged.any() else ""
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), "k--", linewidth=1, label="True: (x-4)(x-8)", zorder=1)
    # the failed fits first, the succeeded ones last and on top: they are the point, and the true curve under them
    styles = ((~ok & drawable, dict(colors="purple", alpha=max(0.1, min(0.7, 20 / max(1, failed))),
                                    linestyles="--", label=f"{failed} failed fits{not_drawn}", zorder=2)),
              (ok, dict(colors=MODELS[fit_result.model_name].color, alpha=max(0.05, min(0.5, 10 / runs)),
                        label=f"{int(ok.sum())} succeeded fits", zorder=3)))
    for chosen, style in styles:
        if chosen.any():  # one LineCollection draws thousands of curves at the cost of one
            curves = [np.column_stack([grid, curve(c, grid)]) for c in fit_result.coefficients[chosen]]
            ax.add_collection(LineCollection(curves, linewidths=2, **style))
    ax.set(xlabel="x", ylabel="y", title=f"model {fit_result.model_name}, {runs} runs: "
           f"{int(summary.succeeded.sum())} reached least squares\n{rates([fit_result])}, "
           f"{count(fit_result.epochs, 'epoch')}")
    for handle in ax.legend().legend_handles:
        handle.set_alpha(1)  # the faint lines, drawn solid in the legend


def draw_replica_losses(ax, fit_result, summary):
    """The median loss across runs with its 10-90% band, and the median least-squares loss."""
    color = MODELS[fit_result.model_name].color
    epochs = [e for e, _ in fit_result.log.history]
    losses = torch.stack([v for _, v in fit_result.log.history]).double()  # (T, R)
    losses[~torch.isfinite(losses)] = math.nan
    if not summary.diverged.all():
        losses[:, summary.diverged] = math.nan  # the diverged runs are left out, as in the printed summary
    quantiles = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    low, median, high = torch.nanquantile(losses, quantiles, dim=1)
    ax.fill_between(epochs, low.numpy(), high.numpy(), alpha=0.3, color=color, label="10-90% of runs")
    ax.plot(epochs, median.numpy(), color=color, label="median loss")
    floor = summary.least.loss.median().item()
    if floor > 0:
        ax.axhline(floor, color="k", linestyle="--", linewidth=1, label="median least-squares loss")
    loss_axes(ax, bool((torch.isfinite(median) & (median > 0)).any()), f"Loss across runs ({rates([fit_result])})")


def plot_replications(fit_result, x, ys, summary, path, show):
    """Every run's fit on the left; the median loss with its 10-90% band on the right."""
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    draw_replica_fits(left, fit_result, x, ys, summary)
    draw_replica_losses(right, fit_result, summary)
    save(fig, path, dpi=100)
    return fig


def write_animation(path, x, y, fit_result):
    """The fitted curve through training, one frame per recorded epoch, as a GIF."""
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, draw = animation_frames(x, y, fit_result)
    frames = len(fit_result.log.frames)
    FuncAnimation(fig, draw, frames=frames, blit=False).save(path, writer=PillowWriter(fps=15))
    return frames


def animation_frames(x, y, fit_result):
    """The GIF's figure and draw(i), which puts frame i on it: the fit at that epoch, its lr and loss in the title."""
    import numpy as np
    fig = new_figure(False, figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    xs, ys = x.cpu().numpy().ravel(), y.cpu().numpy().ravel()
    ax.plot(xs, ys, "ro", markersize=3, label="Original Data")
    color = MODELS[fit_result.model_name].color
    (line,) = ax.plot(xs, ys * 0, color=color, linewidth=2, label="Fitting Line", gid="animation:fit")
    ax.set(xlabel="x", ylabel="y", ylim=(ys.min() - 0.15 * np.ptp(ys), ys.max() + 0.15 * np.ptp(ys)))
    ax.legend(loc="upper center")
    frames = fit_result.log.frames

    def draw(i):
        epoch, prediction = frames[i]
        loss = ((prediction - y.cpu()) ** 2).mean().item()
        line.set_ydata(prediction.numpy().ravel())
        ax.set_title(f"{fit_result.model_name} ({fit_result.optimizer}, lr {fit_result.lr:g}): "
                     f"epoch {epoch}/{fit_result.epochs}, loss {loss:.4f}")
        return (line,)

    return fig, draw


# ----------------------------------------------------------------------------- the figures that show why
def plot_sweep(sweep, path, show=False):
    """--lr-sweep: the final loss and the epochs to 1% above least squares against lr, log axes, every lr
    trained marked by its verdict, with the predicted and measured limits and the blog's lr. Returns the figure."""
    import numpy as np
    fig = new_figure(show, figsize=(12, 6), layout="constrained")
    loss_ax, speed_ax = fig.subplots(1, 2, sharex=True)
    lrs, final, reached, verdicts = sweep_points(sweep)
    diverged = verdicts == "diverged"
    loss_ax.plot(lrs, np.where(diverged, np.nan, final), "-", color="tab:blue", linewidth=1, alpha=0.5)
    top = np.nanmax(np.append(np.where(np.isfinite(final), final, np.nan), 1.0))
    styles = {"converged": ("o", "tab:blue", "converged"),
              "not converged": ("s", "tab:olive", "did not diverge, not converged"),
              "diverged": ("x", "tab:red", "diverged (drawn at the top if inf/NaN)")}
    for verdict, (marker, color, label) in styles.items():
        chosen = verdicts == verdict
        if not chosen.any():
            continue  # no legend entry for a verdict no run got
        shown = np.where(np.isfinite(final[chosen]), final[chosen], top)
        loss_ax.plot(lrs[chosen], shown, marker, markersize=4, color=color, linestyle="none", label=label,
                     gid=f"sweep:{verdict}")
    ran = (f"{sweep.epochs_run} of {count(sweep.epochs, 'epoch')}" if sweep.rows_partial  # a signal cut them
           else count(sweep.epochs, 'epoch'))
    loss_ax.axhline(sweep.least_squares_loss, color="k", linestyle="--", linewidth=1, label="least squares")
    loss_ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final loss",
                title=f"Final loss after {ran} ({sweep.model_name}, {sweep.optimizer})")
    speed_ax.plot(lrs, reached, "o-", markersize=3, color="tab:blue", gid="sweep:epochs")
    if not np.isfinite(reached).any():
        speed_ax.text(0.5, 0.5, f"no run got within 1% in {count(sweep.epochs, 'epoch')}", transform=speed_ax.transAxes,
                      ha="center")
    fastest = np.nanmin(reached) if np.isfinite(reached).any() else 1
    speed_ax.set(xscale="log", yscale="log", ylim=(max(1, fastest / 2), 2 * sweep.epochs), xlabel="learning rate",
                 ylabel="first recorded epoch within 1% of least squares",
                 title="Epochs to 1% above the least-squares loss (gaps: never)")
    from matplotlib.ticker import NullFormatter
    for ax in (loss_ax, speed_ax):
        mark_rates(ax, sweep)
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap on a short range
    fig.legend(*loss_ax.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)  # off the data
    save(fig, path, dpi=100)
    return fig


def sweep_points(sweep):
    """Every lr the sweep trained (its main lrs, the window and the finer sweeps), ascending, as arrays: lr,
    final loss, epochs to 1% (NaN: never) and verdict."""
    import numpy as np
    if sweep.rows is not None and sweep.row_verdicts:
        rows = sweep.rows
        lrs, final, reached, verdicts = rows.lrs, rows.final_loss.tolist(), rows.epochs_to_1pct, sweep.row_verdicts
    else:
        lrs, final, reached, verdicts = sweep.lrs, sweep.final_loss, sweep.epochs_to_1pct, sweep.verdicts
    as_float = [np.nan if v is None else v for v in final], [np.nan if v is None else v for v in reached]
    return (np.array(lrs, dtype=float), np.array(as_float[0], dtype=float), np.array(as_float[1], dtype=float),
            np.array(verdicts, dtype=object))


def mark_rates(ax, sweep):
    """Vertical marks: the predicted limits (at the start, and for the product at the balanced fit), the measured
    limit, plain SGD's fastest lr, the blog's lr."""
    marks = [(sweep.predicted_limit, "tab:red", "--", "predicted limit " + sweep.limit_formula
              + (" (at the start)" if sweep.limit_is_local else "")),
             (sweep.balanced_limit, "tab:purple", (0, (6, 2, 1, 2, 1, 2)),
              "limit at the balanced least-squares fit"),
             (sweep.measured_limit, "tab:orange", "-", "measured limit"),
             (sweep.fastest_lr, "tab:green", ":", "plain SGD's fastest 2/(lambda_min+lambda_max)"),
             (2e-5, "gray", "-.", "the blog's lr")]
    for value, color, style, label in marks:
        if value is not None:
            ax.axvline(value, color=color, linestyle=style, linewidth=1, label=f"{label} = {value:.3g}",
                       gid=f"mark:{label}")
