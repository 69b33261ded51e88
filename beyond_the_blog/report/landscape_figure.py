"""--landscape: the loss bowl sliced through its optimum with each run's path on it, the error along
each eigenvector against the epoch, and for the product model its two layers' sizes.

matplotlib is imported inside the functions, so that runs without a figure never load it.
"""
import torch

from ..models import MODELS
from ..theory.bowl import bowl, path_on_bowl, slice_extent
from .figures import new_figure, rates, save

DIRECTIONS = (("flattest", "tab:purple"), ("middle", "tab:green"), ("steepest", "tab:red"))
# on the bowl the two paths share the valley floor: the first model's (params') thin and solid on top, every other
# (the product's) wide and dotted underneath, so both show where they overlap; rank() says which a model is
STYLES = ("-", ":")
PATH_STYLES = (dict(linestyle="-", linewidth=1.2, markersize=2, zorder=4),
               dict(linestyle=":", linewidth=5, markersize=3, zorder=3))
STALL_STYLES = ("-.", ":")


def rank(model_name):
    """0 for the model table's first model, 1 for every other: which of the two styles above it is drawn in."""
    return min(list(MODELS).index(model_name), 1)
ZOOM = 0.32  # the inset's side, as a fraction of the bowl's axes
ROOM = (0.12, 0.09, 0.02, 0.11)  # what its tick labels and its title take left, below, right and above it



def path_of(fit, the_bowl):
    """The fit's path on the bowl; plain SGD on a model linear in its parameters follows (I - lr H)^k exactly, so
    its path carries that prediction."""
    return path_on_bowl(fit, the_bowl, exact=fit.optimizer == "sgd" and MODELS[fit.model_name].constant_hessian)

def plot_landscape(fits, x, y, path, show=False):
    """--landscape: the bowl's slice with each fit's path, the error along each eigenvector against
    the epoch, and for the product model its two layers' sizes. Returns the figure."""
    trained_on = fits[0]
    inputs = trained_on.standardization(x)
    the_bowl = bowl(inputs, y)
    paths = [path_of(f, the_bowl) for f in fits]
    product = [p for p in paths if p.layer_sizes is not None]
    fig = new_figure(show, figsize=(17 if product else 12, 7), layout="constrained")
    axes = fig.subplots(1, 3 if product else 2)
    space = "z (standardized x)" if trained_on.standardize else "x"
    draw_bowl(axes[0], the_bowl, paths, space, fits)
    draw_eigen_errors(axes[1], the_bowl, paths, fits)
    if product:
        draw_balance(axes[2], product[0], next(f for f in fits if f.model_name == product[0].model_name))
    save(fig, path, dpi=100)
    return fig


def draw_bowl(ax, the_bowl, paths, space, fits):
    """The loss on the plane through θ* spanned by the steepest and flattest eigenvectors, log-spaced
    contours of the excess over least squares, and each path projected on that plane; an inset zooms
    on the ends when they sit too close to the optimum to tell apart."""
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
    draw_paths(ax, paths, labels=True)
    ev = the_bowl.eigenvalues.tolist()
    units = space.split()[0]
    ax.set(xlabel=f"along the steepest eigenvector (lambda = {ev[2]:.4g})\nin (a, b, c) on {units}",
           ylabel=f"along the flattest eigenvector (lambda = {ev[0]:.4g})\nin (a, b, c) on {units}",
           title=f"Loss over (a, b, c) on {space}, sliced through its optimum\n{rates(fits)}")
    zoom_on_the_ends(ax, paths, (steep, flat))
    # below the axes: inside, it would cover the contours and the paths
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=9, title="o start, ■ end",
              title_fontsize=9)


def draw_paths(ax, paths, labels):
    """Each path on the bowl's plane, params' on top of the product's, with a marker at its start and its end."""
    for p in paths:
        color, style = MODELS[p.model_name].color, PATH_STYLES[rank(p.model_name)]
        where = "" if labels else "zoom:"
        ax.plot(p.errors[:, 2].numpy(), p.errors[:, 0].numpy(), marker=".", color=color,
                label=f"{p.model_name} path" if labels else None, gid=f"{where}path:{p.model_name}", **style)
        ax.plot(p.errors[0, 2].item(), p.errors[0, 0].item(), "o", color=color, markersize=7, zorder=5,
                gid=f"{where}start:{p.model_name}")
        hollow = rank(p.model_name) == 0  # larger and hollow: the product's end shows inside it where they meet
        ax.plot(p.errors[-1, 2].item(), p.errors[-1, 0].item(), "s", color=color, markersize=11 if hollow else 7,
                markerfacecolor="none" if hollow else color, markeredgewidth=2, zorder=6,
                gid=f"{where}end:{p.model_name}")
    ax.plot([0], [0], "k*", markersize=12, label="least squares" if labels else None, zorder=5,
            gid=f"{'' if labels else 'zoom:'}optimum")


def zoom_on_the_ends(ax, paths, extent):
    """An inset around the optimum, in the corner the paths leave emptiest, when every end lies within 3%
    of the slice's extent from it (so close that the markers cover each other and the star)."""
    import numpy as np
    ends = np.array([[p.errors[-1, 2].item(), p.errors[-1, 0].item()] for p in paths])
    if np.any(np.abs(ends) > 0.03 * np.array(extent)):
        return None
    half = np.maximum(2 * np.abs(ends).max(axis=0), 1e-6 * np.array(extent))  # each axis zoomed on its own
    points = np.concatenate([along(p.errors[:, [2, 0]].numpy()) for p in paths]) / np.array(extent) / 2 + 0.5
    corners = [(x0, y0) for y0 in (1 - ZOOM - ROOM[3], ROOM[1]) for x0 in (ROOM[0], 1 - ZOOM - ROOM[2])]

    def covered(corner):  # how many points lie under the inset and its labels
        low, high = np.array(corner) - ROOM[:2], np.array(corner) + ZOOM + np.array(ROOM[2:])
        return np.sum(np.all((points >= low) & (points <= high), axis=1))

    def clearance(corner):  # how far the inset's centre is from the nearest point
        return np.min(np.hypot(*(points - np.array(corner) - ZOOM / 2).T))

    best = min(corners, key=lambda corner: (covered(corner), -clearance(corner)))
    inset = ax.inset_axes([*best, ZOOM, ZOOM], gid="zoom")
    draw_paths(inset, paths, labels=False)
    inset.set(xlim=(-half[0], half[0]), ylim=(-half[1], half[1]), facecolor="white")
    steep, flat = (f"{v:,.0f}" if v < 1e4 else f"{v:.0e}" for v in np.array(extent) / half)
    inset.set_title(f"the ends, zoomed\nsteep ×{steep}, flat ×{flat}", fontsize=9)
    inset.tick_params(labelsize=9)
    for axis in (inset.xaxis, inset.yaxis):
        axis.get_offset_text().set_fontsize(9)
    return inset


def along(vertices, steps=20):
    """Points all along a polyline, `steps` per segment: a long straight segment covers what it crosses too."""
    import numpy as np
    w = np.linspace(0, 1, steps).reshape(1, -1, 1)
    return np.concatenate([vertices[:1], (vertices[:-1, None] * (1 - w) + vertices[1:, None] * w).reshape(-1, 2)])


def draw_eigen_errors(ax, the_bowl, paths, fits):
    """|error along each eigenvector| against the epoch, log-log: measured (solid for params, dotted
    for the product), and plain SGD's (1 - lr λ)^k dashed where it applies."""
    import numpy as np
    ev = the_bowl.eigenvalues.tolist()
    for p in paths:
        epochs = np.array(p.epochs[1:], dtype=float)  # epoch 0 has no place on a log axis
        for i, (name, color) in enumerate(DIRECTIONS):
            measured = p.errors[1:, i].abs().numpy()
            ax.plot(epochs, np.where(measured > 0, measured, np.nan), STYLES[rank(p.model_name)], color=color,
                    linewidth=1.5, label=f"{p.model_name}: {name} (lambda {ev[i]:.3g})",
                    gid=f"error:{p.model_name}:{i}")
            if p.predicted is not None:
                ax.plot(epochs, p.predicted[1:, i].abs().numpy(), "--", color="black", linewidth=0.8, alpha=0.7,
                        label="(1 - lr lambda)^k |e_0|, exact arithmetic" if i == 0 else None,
                        gid=f"predicted:{p.model_name}:{i}")
        if p.stall is not None:  # each model's stall in its own color and dash, so the two read apart
            ax.axvline(p.stall, color=MODELS[p.model_name].color, linestyle=STALL_STYLES[rank(p.model_name)],
                       linewidth=1.5,
                       label=f"{p.model_name}: float32 stall from epoch {p.stall}", gid=f"stall:{p.model_name}")
    measured = torch.cat([p.errors[1:].abs().reshape(-1) for p in paths])
    positive = measured[measured > 0]
    if len(positive):  # the exact prediction falls to 1e-300: show the range the run itself reaches
        ax.set_ylim(positive.min().item() / 5, positive.max().item() * 5)
    units = "z" if fits[0].standardize else "x"
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel=f"|error along the eigenvector|, in (a, b, c) on {units}",
           title=f"Error along each eigenvector\n{rates(fits)}")
    # below the axes: inside, it would cover the curves it names
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)


def draw_balance(ax, p, fitted):
    """The product model's two layer sizes through training, on the curve of equal balance
    |(w1, b1)|² - |(w2, b2)|² = its start value, which gradient flow conserves: the path on top, as a
    wide band the thin curve shows through."""
    import numpy as np
    sizes = p.layer_sizes.numpy()
    color = MODELS[p.model_name].color
    top = 1.1 * float(sizes.max())
    second = np.linspace(0, top, 400)
    first_squared = second**2 + p.balance_start
    valid = first_squared >= 0
    ax.plot(second[valid], np.sqrt(first_squared[valid]), "--", color="black", linewidth=1, zorder=2,
            gid="balance:curve", label=f"equal balance: |(w1,b1)|^2 - |(w2,b2)|^2 = {p.balance_start:+.4f}")
    ax.plot(sizes[:, 1], sizes[:, 0], "-", marker=".", markersize=4, linewidth=6, alpha=0.45, color=color, zorder=3,
            label="training path", gid="balance:path")
    ax.plot(sizes[0, 1], sizes[0, 0], "o", color=color, markersize=7, label="start", zorder=4, gid="balance:start")
    ax.plot(sizes[-1, 1], sizes[-1, 0], "s", color=color, markersize=7, label="end", zorder=4, gid="balance:end")
    units = "z" if fitted.standardize else "x"
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", xlabel=f"|(w2, b2)|, the second layer's weights on {units}",
           ylabel=f"|(w1, b1)|, the first layer's weights on {units}",
           title=f"The product's valley: its two layers' sizes\n{rates([fitted])}")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
