"""The figures: the fit beside its loss curve, the replications, and the GIF of training.

matplotlib is imported inside the functions, so that runs without a figure never load it.
Without a display the figures are only written: a bare Figure, no GUI, no global state.
"""
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


def curve(coefficients, grid):
    a, b, c = (float(v) for v in coefficients)
    return a * grid**2 + b * grid + c


def draw_fit(ax, x, y, fits, least, title):
    """Left panel: the blog's picture (red dots, fitted line) plus the true and least-squares curves."""
    import numpy as np
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    ax.plot(x.cpu().numpy().ravel(), y.cpu().numpy().ravel(), "ro", markersize=3, label="Original Data")
    for label, coefficients, color in fits:
        ax.plot(grid, curve(coefficients, grid), color=color, linewidth=2, label=label)
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), color="gray", linewidth=1, label="True: (x-4)(x-8)")
    ax.plot(grid, curve(least.coefficients[0], grid), "k--", linewidth=1, label="Least squares")
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend()


def draw_losses(ax, curves, least_loss):
    """Right panel: the loss against the epoch, log-log, with the least-squares floor."""
    for label, history, color, *style in curves:  # style: an optional line style
        epochs, losses = zip(*history) if history else ((), ())
        ax.plot(epochs, losses, color=color, label=label, linestyle=style[0] if style else "-")
    ax.axhline(least_loss, color="k", linestyle="--", linewidth=1, label=f"least squares {least_loss:.6f}")
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="MSE loss", title="Loss")
    ax.legend()


def plot_fits(fits, x, y, least, path, show, full_batch=()):
    """One or both models: fits on the left, loss curves on the right; with --batch-size, the
    full-batch run of the same settings (`full_batch`, one Fit per model) dashed beside each."""
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = " and ".join(f.model_name for f in fits)
    losses = ", ".join(f"{f.final_loss:.6f}" for f in fits)
    lines = [("Fitting Line" if len(fits) == 1 else f"Fitting Line ({f.model_name})",
              f.coefficients[0], settings_of(f.model_name).color) for f in fits]
    draw_fit(left, x, y, lines, least, f"model {names}: final loss {losses}")
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
    ax.plot(x.numpy().ravel(), ys[0].numpy().ravel(), "ro", markersize=3, label=f"data of seed {summary.seeds[0]}")
    ok = summary.succeeded
    finite = torch.isfinite(fit_result.coefficients).all(dim=1)
    failed = int((~ok).sum())
    styles = ((ok, dict(colors=settings_of(fit_result.model_name).color, alpha=max(0.03, min(0.5, 10 / runs)),
                        label=f"{int(ok.sum())} succeeded fits")),
              (~ok & finite, dict(colors="purple", alpha=max(0.1, min(0.7, 20 / max(1, failed))), linestyles="--",
                                  label=f"{failed} failed fits")))
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
    quantiles = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    low, median, high = torch.nanquantile(losses, quantiles, dim=1)
    ax.fill_between(epochs, low.numpy(), high.numpy(), alpha=0.3, color=color, label="10-90% of runs")
    ax.plot(epochs, median.numpy(), color=color, label="median loss")
    ax.axhline(summary.least.loss.median().item(), color="k", linestyle="--", linewidth=1,
               label="median least-squares loss")
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="MSE loss", title="Loss across runs")
    ax.legend()


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
