"""--landscape: the loss bowl sliced through its optimum with each run's path on it, the error along
each eigenvector against the epoch, and for the product model its two layers' sizes.

matplotlib is imported inside the functions, so that runs without a figure never load it.
"""
import torch

from .figures import new_figure, save
from .models import MODELS
from .theory import bowl, path_on_bowl, slice_extent

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
    fig = new_figure(show, figsize=(17 if product else 12, 7), layout="constrained")
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
        ax.plot(p.errors[-1, 2].item(), p.errors[-1, 0].item(), "s", color=color, markersize=7, zorder=4)
    ax.plot([0], [0], "k*", markersize=12, label="least squares")
    ev = the_bowl.eigenvalues.tolist()
    ax.set(xlabel=f"along the steepest eigenvector (lambda = {ev[2]:.4g})",
           ylabel=f"along the flattest eigenvector (lambda = {ev[0]:.4g})",
           title=f"Loss over (a, b, c) on {space}, sliced through its optimum")
    ax.legend(loc="upper right", fontsize=9, title="o start, ■ end", title_fontsize=9)


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
        if p.stall is not None:  # each model's stall in its own color and dash, so the two read apart
            ax.axvline(p.stall, color=MODELS[p.model_name].color, linestyle="-." if p.model_name == "params" else ":",
                       linewidth=1.5,
                       label=f"{p.model_name}: float32 stall from epoch {p.stall}", gid=f"stall:{p.model_name}")
    measured = torch.cat([p.errors[1:].abs().reshape(-1) for p in paths])
    positive = measured[measured > 0]
    if len(positive):  # the exact prediction falls to 1e-300: show the range the run itself reaches
        ax.set_ylim(positive.min().item() / 5, positive.max().item() * 5)
    rates = ", ".join(f"{f.model_name} lr {f.lr:g}" for f in fits)
    units = " (in z's units)" if fits[0].standardize else ""
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel=f"|error along the eigenvector|{units}",
           title=f"Error along each eigenvector ({fits[0].optimizer}: {rates})")
    # below the axes: inside, it would cover the curves it names
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


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
    ax.legend(fontsize=9, loc="upper left")
