"""The figures: the fit beside its loss curve, the replications, and the GIF of training.

matplotlib is imported inside the functions, so that runs without a figure never load it.
Without a display the figures are only written: a bare Figure, no GUI, no global state.
"""
import math
import os
import sys

import torch

from .analysis import TRUE_COEFFICIENTS
from .model_registry import settings_of

NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def new_figure(show, **kwargs):
    """A pyplot figure when a window will be shown, else a bare Figure: no GUI, no global state."""
    if show:
        import matplotlib.pyplot as plt
        return plt.figure(**kwargs)
    from matplotlib.figure import Figure
    return Figure(**kwargs)


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


def draw_fit(ax, x, y, fits, least, title):
    """Left panel: the blog's picture (red dots, fitted line) plus the true and least-squares curves."""
    import numpy as np
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    xs, ys, label = data_points(x, y, "Original Data")
    ax.plot(xs, ys, "ro", markersize=3, label=label)
    for label, coefficients, color in fits:
        if torch.isfinite(torch.as_tensor(coefficients)).all():  # a diverged fit has no curve to draw
            ax.plot(grid, curve(coefficients, grid), color=color, linewidth=2, label=label)
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), color="gray", linewidth=1, label="True: (x-4)(x-8)")
    ax.plot(grid, curve(least.coefficients[0], grid), "k--", linewidth=1, label="Least squares")
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend()


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
    diverged = [f"{f.model_name} diverged at epoch {f.log.diverged_at}, not drawn"
                for f in fits if f.log.stop_reason == "diverged"]
    title = f"model {names}: " + "; ".join(([f"final loss {', '.join(ended)}"] if ended else []) + diverged)
    lines = [("Fitting Line" if len(fits) == 1 else f"Fitting Line ({f.model_name})",
              f.coefficients[0], settings_of(f.model_name).color) for f in fits if f.log.stop_reason != "diverged"]
    draw_fit(left, x, y, lines, least, title)
    curves = [(f.model_name + (f", batches of {f.batch_size}" if f.batch_size else ""), f.log.history,
               settings_of(f.model_name).color) for f in fits]
    curves += [(f"{f.model_name}, full batch", f.log.history, settings_of(f.model_name).color, "--")
               for f in full_batch]
    draw_losses(right, curves, least.loss[0].item())
    fig.savefig(path, dpi=100)
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
    styles = ((ok, dict(colors=settings_of(fit_result.model_name).color, alpha=max(0.03, min(0.5, 10 / runs)),
                        label=f"{int(ok.sum())} succeeded fits")),
              (~ok & drawable, dict(colors="purple", alpha=max(0.1, min(0.7, 20 / max(1, failed))),
                                    linestyles="--", label=f"{failed} failed fits{not_drawn}")))
    for chosen, style in styles:
        if chosen.any():  # one LineCollection draws thousands of curves at the cost of one
            curves = [np.column_stack([grid, curve(c, grid)]) for c in fit_result.coefficients[chosen]]
            ax.add_collection(LineCollection(curves, linewidths=1, **style))
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), "k--", linewidth=1, label="True: (x-4)(x-8)")
    ax.set(xlabel="x", ylabel="y", title=f"model {fit_result.model_name}, {runs} runs: "
           f"{int(summary.succeeded.sum())} reached least squares")
    for handle in ax.legend().legend_handles:
        handle.set_alpha(1)  # the faint lines, drawn solid in the legend


def draw_replica_losses(ax, fit_result, summary):
    """The median loss across runs with its 10-90% band, and the median least-squares loss."""
    color = settings_of(fit_result.model_name).color
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
    loss_axes(ax, bool((torch.isfinite(median) & (median > 0)).any()), "Loss across runs")


def plot_replications(fit_result, x, ys, summary, path, show):
    """Every run's fit on the left; the median loss with its 10-90% band on the right."""
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    draw_replica_fits(left, fit_result, x, ys, summary)
    draw_replica_losses(right, fit_result, summary)
    fig.savefig(path, dpi=100)
    return fig


def write_animation(path, x, y, fit_result):
    """The fitted curve through training, one frame per recorded epoch, as a GIF."""
    import numpy as np
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig = new_figure(False, figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    xs, ys = x.cpu().numpy().ravel(), y.cpu().numpy().ravel()
    ax.plot(xs, ys, "ro", markersize=3, label="Original Data")
    color = settings_of(fit_result.model_name).color
    (line,) = ax.plot(xs, ys * 0, color=color, linewidth=2, label="Fitting Line")
    ax.set(xlabel="x", ylabel="y", ylim=(ys.min() - 0.15 * np.ptp(ys), ys.max() + 0.15 * np.ptp(ys)))
    ax.legend(loc="upper center")
    frames = fit_result.log.frames

    def draw(i):
        epoch, prediction = frames[i]
        loss = ((prediction - y.cpu()) ** 2).mean().item()
        line.set_ydata(prediction.numpy().ravel())
        ax.set_title(f"{fit_result.model_name}: epoch {epoch}/{fit_result.epochs}, loss {loss:.4f}")
        return (line,)

    FuncAnimation(fig, draw, frames=len(frames), blit=False).save(path, writer=PillowWriter(fps=15))
    return len(frames)
