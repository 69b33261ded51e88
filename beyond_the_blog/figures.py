"""The figures: the fit beside its loss curve, the replications, the GIF of training, and the figures
that show why: the loss bowl with the run's path on it (--landscape), the lr sweep against theory.

matplotlib is imported inside the functions, so that runs without a figure never load it.
Without a display the figures are only written: a bare Figure, no GUI, no global state.
"""
import math
import os
import sys

import torch

from .models import MODELS
from .theory import TRUE_COEFFICIENTS, bowl, path_on_bowl, slice_extent

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


def draw_fit(ax, x, y, fits, least, title):
    """Left panel: the blog's picture (red dots, fitted line) plus the true and least-squares curves."""
    import numpy as np
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    xs, ys, label = data_points(x, y, "Original Data")
    ax.plot(xs, ys, "ro", markersize=3, label=label)
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), color="gray", linewidth=1, label="True: (x-4)(x-8)")
    ax.plot(grid, curve(least.coefficients[0], grid), "k--", linewidth=1, label="Least squares")
    for label, coefficients, color in fits:  # drawn last, as a wide band: the thin references show through it
        if torch.isfinite(torch.as_tensor(coefficients)).all():  # a diverged fit has no curve to draw
            ax.plot(grid, curve(coefficients, grid), color=color, linewidth=6, alpha=0.45, label=label, zorder=3)
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
    diverged = [f"{f.model_name} diverged at epoch {f.log.diverged_at}, not drawn"
                for f in fits if f.log.stop_reason == "diverged"]
    title = f"model {names}: " + "; ".join(([f"final loss {', '.join(ended)}"] if ended else []) + diverged)
    lines = [("Fitting Line" if len(fits) == 1 else f"Fitting Line ({f.model_name})",
              f.coefficients[0], MODELS[f.model_name].color) for f in fits if f.log.stop_reason != "diverged"]
    draw_fit(left, x, y, lines, least, title)
    curves = [(f.model_name + (f", batches of {f.batch_size}" if f.batch_size else ""), f.log.history,
               MODELS[f.model_name].color) for f in fits]
    curves += [(f"{f.model_name}, full batch", f.log.history, MODELS[f.model_name].color, "--")
               for f in full_batch]
    draw_losses(right, curves, least.loss[0].item())
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
           f"{int(summary.succeeded.sum())} reached least squares")
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
    loss_axes(ax, bool((torch.isfinite(median) & (median > 0)).any()), "Loss across runs")


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
    import numpy as np
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig = new_figure(False, figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    xs, ys = x.cpu().numpy().ravel(), y.cpu().numpy().ravel()
    ax.plot(xs, ys, "ro", markersize=3, label="Original Data")
    color = MODELS[fit_result.model_name].color
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


# ----------------------------------------------------------------------------- the figures that show why
DIRECTIONS = (("flattest", "tab:purple"), ("middle", "tab:green"), ("steepest", "tab:red"))
STYLES = {"params": "-", "linear": ":"}


def plot_landscape(fits, x, y, path, show=False):
    """--landscape: the bowl's slice with each fit's path, the error along each eigenvector against
    the epoch, and for the product model its two layers' sizes. Returns the figure."""
    trained_on = fits[0]
    inputs = trained_on.standardization(x)
    the_bowl = bowl(inputs, y)
    paths = [path_on_bowl(f, the_bowl) for f in fits]
    product = [p for p in paths if p.layer_sizes is not None]
    fig = new_figure(show, figsize=(17 if product else 12, 5.2), layout="constrained")
    axes = fig.subplots(1, 3 if product else 2)
    space = "z (standardized x)" if trained_on.standardize else "x"
    draw_bowl(axes[0], the_bowl, paths, space)
    draw_eigen_errors(axes[1], the_bowl, paths, fits)
    if product:
        draw_balance(axes[2], product[0])
    save(fig, path, dpi=100)
    return fig


def draw_bowl(ax, the_bowl, paths, space):
    """The loss on the plane through θ* spanned by the steepest and flattest eigenvectors, log-spaced
    contours of the excess over least squares, and each path projected on that plane."""
    import numpy as np
    from matplotlib.colors import LogNorm
    steep, flat = slice_extent(paths)
    s, t = np.meshgrid(np.linspace(-steep, steep, 300), np.linspace(-flat, flat, 300))
    excess = the_bowl.loss_on_slice(s, t) - the_bowl.min_loss
    top = float(excess.max())
    levels = top * np.logspace(-7, 0, 22)
    contours = ax.contour(s, t, np.maximum(excess, levels[0] / 10), levels=levels, norm=LogNorm(), cmap="viridis",
                          linewidths=0.8)
    bar = ax.figure.colorbar(contours, ax=ax, label="loss - least-squares loss (log-spaced contours)")
    decades = 10.0 ** np.arange(np.ceil(np.log10(levels[0])), np.floor(np.log10(top)) + 1)
    bar.set_ticks(decades, labels=[f"{d:.0e}" for d in decades])
    for p in paths:
        color = MODELS[p.model_name].color
        ax.plot(p.errors[:, 2].numpy(), p.errors[:, 0].numpy(), "-", marker=".", markersize=3, linewidth=1,
                color=color, label=f"{p.model_name} path", gid=f"path:{p.model_name}")
        ax.plot(p.errors[0, 2].item(), p.errors[0, 0].item(), "o", color=color, markersize=7)
    ax.plot([0], [0], "k*", markersize=12, label="least squares")
    ev = the_bowl.eigenvalues.tolist()
    ax.set(xlabel=f"along the steepest eigenvector (lambda = {ev[2]:.4g})",
           ylabel=f"along the flattest eigenvector (lambda = {ev[0]:.4g})",
           title=f"Loss over (a, b, c) on {space}, sliced through its optimum")
    ax.legend(loc="upper right", fontsize=8, title="o start", title_fontsize=8)


def draw_eigen_errors(ax, the_bowl, paths, fits):
    """|error along each eigenvector| against the epoch, log-log: measured (solid for params, dotted
    for the product), and plain SGD's (1 - lr λ)^k dashed where it applies."""
    import numpy as np
    ev = the_bowl.eigenvalues.tolist()
    for p in paths:
        epochs = np.array(p.epochs[1:], dtype=float)  # epoch 0 has no place on a log axis
        for i, (name, color) in enumerate(DIRECTIONS):
            measured = p.errors[1:, i].abs().numpy()
            ax.plot(epochs, np.where(measured > 0, measured, np.nan), STYLES.get(p.model_name, "-"), color=color,
                    linewidth=1.5, label=f"{p.model_name}: {name} (lambda {ev[i]:.3g})",
                    gid=f"error:{p.model_name}:{i}")
            if p.predicted is not None:
                ax.plot(epochs, p.predicted[1:, i].abs().numpy(), "--", color="black", linewidth=0.8, alpha=0.7,
                        label="(1 - lr lambda)^k |e_0|, exact arithmetic" if i == 0 else None,
                        gid=f"predicted:{p.model_name}:{i}")
        if p.stall is not None:
            ax.axvline(p.stall, color="gray", linestyle="-.", linewidth=1,
                       label=f"{p.model_name}: float32 stall from epoch {p.stall}", gid=f"stall:{p.model_name}")
    measured = torch.cat([p.errors[1:].abs().reshape(-1) for p in paths])
    positive = measured[measured > 0]
    if len(positive):  # the exact prediction falls to 1e-300: show the range the run itself reaches
        ax.set_ylim(positive.min().item() / 5, positive.max().item() * 5)
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="|error along the eigenvector|",
           title=f"Error along each eigenvector (lr {fits[0].lr:g}, {fits[0].optimizer})")
    ax.legend(fontsize=7, loc="lower left")


def draw_balance(ax, p):
    """The product model's two layer sizes through training, on the curve of equal balance
    |(w1, b1)|² - |(w2, b2)|² = its start value, which gradient flow conserves."""
    import numpy as np
    sizes = p.layer_sizes.numpy()
    color = MODELS[p.model_name].color
    ax.plot(sizes[:, 1], sizes[:, 0], "-", marker=".", markersize=3, color=color, label="training path",
            gid="balance:path")
    ax.plot(sizes[0, 1], sizes[0, 0], "o", color=color, markersize=7, label="start")
    ax.plot(sizes[-1, 1], sizes[-1, 0], "s", color=color, markersize=7, label="end")
    top = 1.1 * float(sizes.max())
    second = np.linspace(0, top, 400)
    first_squared = second**2 + p.balance_start
    valid = first_squared >= 0
    ax.plot(second[valid], np.sqrt(first_squared[valid]), "k--", linewidth=1, gid="balance:curve",
            label=f"equal balance: |(w1,b1)|^2 - |(w2,b2)|^2 = {p.balance_start:+.4f}")
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", xlabel="|(w2, b2)|", ylabel="|(w1, b1)|",
           title="The product's valley: its two layers' sizes")
    ax.legend(fontsize=8, loc="upper left")


def plot_sweep(sweep, path, show=False):
    """--lr-sweep: the final loss and the epochs to 1% above least squares against lr, log axes,
    with the predicted limit, plain SGD's fastest lr and the blog's lr marked. Returns the figure."""
    import numpy as np
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    loss_ax, speed_ax = fig.subplots(1, 2)
    lrs = np.array(sweep.lrs)
    final = np.array([v if v is not None else np.nan for v in sweep.final_loss], dtype=float)
    diverged = np.array(sweep.diverged)
    shown = np.where(np.isfinite(final), final, np.nan)
    loss_ax.plot(lrs, np.where(diverged, np.nan, shown), "o-", markersize=3, color="tab:blue", label="converging",
                 gid="sweep:final")
    loss_ax.plot(lrs[diverged], np.where(np.isfinite(shown[diverged]), shown[diverged], np.nanmax(
        np.append(shown, 1.0))), "x", color="tab:red", label="diverged (drawn at the top if inf/NaN)",
        gid="sweep:diverged")
    loss_ax.axhline(sweep.least_squares_loss, color="k", linestyle="--", linewidth=1, label="least squares")
    loss_ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final loss",
                title=f"Final loss after {sweep.epochs} epochs ({sweep.model_name}, {sweep.optimizer})")
    reached = np.array([v if v is not None else np.nan for v in sweep.epochs_to_1pct], dtype=float)
    speed_ax.plot(lrs, reached, "o-", markersize=3, color="tab:blue", gid="sweep:epochs")
    if not np.isfinite(reached).any():
        speed_ax.text(0.5, 0.5, f"no run got within 1% in {sweep.epochs} epochs", transform=speed_ax.transAxes,
                      ha="center")
    speed_ax.set(xscale="log", yscale="log", ylim=(1, 2 * sweep.epochs), xlabel="learning rate",
                 ylabel="first recorded epoch within 1% of least squares",
                 title="Epochs to 1% above the least-squares loss (gaps: never)")
    from matplotlib.ticker import NullFormatter
    for ax in (loss_ax, speed_ax):
        mark_rates(ax, sweep)
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap on a short range
    loss_ax.legend(fontsize=8, loc="best")
    save(fig, path, dpi=100)
    return fig


def mark_rates(ax, sweep):
    """Vertical marks: the predicted and measured limits, plain SGD's fastest lr, the blog's lr."""
    marks = [(sweep.predicted_edge, "tab:red", "--", "predicted limit " + sweep.edge_formula
              + (" (at the start)" if sweep.edge_is_local else "")),
             (sweep.measured_edge, "tab:orange", "-", "measured limit"),
             (sweep.fastest_lr, "tab:green", ":", "plain SGD's fastest 2/(lambda_min+lambda_max)"),
             (2e-5, "gray", "-.", "the blog's lr")]
    for value, color, style, label in marks:
        if value is not None:
            ax.axvline(value, color=color, linestyle=style, linewidth=1, label=f"{label} = {value:.3g}",
                       gid=f"mark:{label}")
