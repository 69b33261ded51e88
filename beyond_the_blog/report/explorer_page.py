"""The page --explore writes: one HTML file, the runs of explorer_runs.py embedded as JSON, four plotly panels and
the controls that pick a run and an epoch (explorer_page.js).

Why plotly: its standalone HTML output embeds the whole plotly.js (include_plotlyjs=True, about 4.8 MB), so the
page opens from a file with no server and no network; its figures are redrawn from JavaScript (Plotly.restyle)
on any event, and to_html's post_script runs our own script once the figure is drawn. Bokeh's standalone HTML
does the same with CustomJS callbacks; plotly's log axes, contours and restyle calls fit these four panels.

The data embedded in the page is the dict that --metrics writes (page_data): the page shows the metrics' numbers.
plotly is imported inside the functions that draw, so that a run without --explore never loads it.
"""
import json
import math
from pathlib import Path

import torch

from ..optimizers import OPTIMIZERS
from ..system.paths import json_safe
from ..theory.least_squares import TRUE_COEFFICIENTS, least_squares
from ..training.judge import within_one_percent

MAX_PAGE_BYTES = 8 * 2**20   # small enough to commit or mail; the page is about 5.6 MB at the defaults
GRID = 41                    # points on each side of the bowl's slice
SCRIPT = Path(__file__).with_name("explorer_page.js")


def rounded(values):
    """Floats to 9 significant digits, nested lists kept: enough to give back every float32 exactly."""
    if isinstance(values, list):
        return [rounded(v) for v in values]
    return float(f"{values:.9g}") if values is not None else None


def page_data(runs, x, y, options):
    """The page's data and the --metrics JSON, one dict: the data points, least squares, and each setting's runs.
    options: seed, samples, noise, x_range."""
    least = least_squares(x, y)
    seed, samples, noise, x_range = options
    return {"explorer": {
        "seed": seed, "samples": samples, "noise": noise, "x_range": list(x_range),
        "x": rounded(x.reshape(-1).tolist()), "y": rounded(y.reshape(-1).tolist()),
        "true_coefficients": list(TRUE_COEFFICIENTS),
        "least_squares": {**dict(zip("abc", least.coefficients[0].tolist())), "loss": least.loss[0].item()},
        "loss_at_epoch": "each run's MSE after that many epochs (float32, as trained); epoch 0 is the start",
        "diverged_at_epoch_means": "the first epoch after which the run's loss is inf or NaN (float32 overflowed)",
        "ended_above_start_means": "the run diverged without overflowing: its last loss is above its starting loss",
        "diverged_means": "inf/NaN, or ended above its start: the rule of a single run and of --lr-sweep",
        "settings": [setting_data(r, within_one_percent(least.loss[0].item(), least.scale)) for r in runs],
    }}


def setting_data(runs, near_floor):
    """One setting's runs: R lrs, T recorded epochs, each run's loss and a, b, c (x's units) at each of them."""
    final = runs.loss[:, -1]
    errors = runs.bowl.errors(runs.trained_coefficients.reshape(-1, 3)).reshape(len(runs.lrs), -1, 3)
    return {
        "model": runs.setting.model_name, "inputs": runs.setting.inputs, "optimizer": runs.setting.optimizer,
        "optimizer_title": OPTIMIZERS[runs.setting.optimizer].title, "epochs": runs.epochs,
        "default_lr": runs.default_lr, "lrs": runs.lrs, "recorded_epochs": runs.recorded_epochs,
        "loss": rounded(runs.loss.tolist()),
        **{name: rounded(runs.coefficients[:, :, i].tolist()) for i, name in enumerate("abc")},
        "diverged_at_epoch": runs.diverged_at,
        "ended_above_start": runs.ended_above_start, "diverged": runs.diverged,
        "within_1pct_of_least_squares": [bool(v <= near_floor) for v in final.tolist()],
        "start_loss": runs.start_loss, "limit": runs.limit, "limit_formula": runs.limit_formula,
        "limit_is_local": runs.limit_is_local, "end_point_limits": runs.end_point_limits,
        "train_seconds": runs.seconds, "bowl": bowl_data(runs, errors),
    }


def bowl_data(runs, errors):
    """The slice of the bowl through the optimum along its flattest and steepest eigenvectors, and every run's
    path projected on them (coordinates from the optimum, in the space trained in)."""
    bowl, stable = runs.bowl, [r for r, k in enumerate(runs.diverged_at) if k is None]
    kept = errors[stable] if stable else errors[:, :1]
    extent_flat = 1.15 * kept[..., 0].abs().max().item() or 1.0   # every stable path fits, with a margin
    extent_steep = 1.15 * kept[..., 2].abs().max().item() or 1.0
    flat = torch.linspace(-extent_flat, extent_flat, GRID, dtype=torch.float64)
    steep = torch.linspace(-extent_steep, extent_steep, GRID, dtype=torch.float64)
    loss = bowl.loss_on_slice(steep.reshape(-1, 1), flat.reshape(1, -1))  # rows: steep, columns: flat
    return {"eigenvalues": bowl.eigenvalues.tolist(), "min_loss": bowl.min_loss,
            "extent_flat": extent_flat, "extent_steep": extent_steep,
            "grid_flat": flat.tolist(), "grid_steep": steep.tolist(),
            "grid_log10_loss": rounded(torch.log10(loss).tolist()),
            "flat": rounded(errors[..., 0].tolist()), "steep": rounded(errors[..., 2].tolist())}


PANELS = {(1, 1): ("data", "true", "least_squares", "fit"),                             # (a) the data, the curves
          (1, 2): ("all_losses", "floor", "loss", "epoch_marker", "diverged_epoch"),    # (b) the loss, the epoch
          (2, 1): ("bowl", "optimum", "path", "here"),                                  # (c) the bowl, the path
          (2, 2): ("final_losses", "diverged", "limit", "end_limits", "chosen_lr")}     # (d) the last loss, the lr
TRACES = tuple(name for names in PANELS.values() for name in names)  # the figure's traces, in this order
PANEL = {name: panel for panel, names in PANELS.items() for name in names}


PANEL_TITLES = ("(a) the data, and the curve at this lr and epoch", "(b) the loss against the epoch",
                "(c) the bowl along its flattest and steepest eigenvectors", "(d) the last loss against the lr")


def figure(data):
    """The four panels with every trace the script redraws, empty until it fills them."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    explorer = data["explorer"]
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.08, vertical_spacing=0.16)
    least = explorer["least_squares"]
    grid = torch.linspace(*explorer["x_range"], 200, dtype=torch.float64).tolist()

    def curve(a, b, c):
        return [a * v * v + b * v + c for v in grid]

    red, blue = "#d62728", "#1f77b4"
    styles = {
        "data": go.Scatter(x=explorer["x"], y=explorer["y"], mode="markers", name="the data",
                           marker={"color": "red", "size": 4}),
        "true": go.Scatter(x=grid, y=curve(*TRUE_COEFFICIENTS), name="true: (x-4)(x-8)", line={"color": "gray"}),
        "least_squares": go.Scatter(x=grid, y=curve(least["a"], least["b"], least["c"]), name="least squares",
                                    line={"color": "black", "dash": "dash"}),
        "fit": go.Scatter(name="this run", line={"color": blue, "width": 3}),
        "all_losses": go.Scatter(name="the other lrs", line={"color": "#c4c4c4", "width": 1}, hoverinfo="skip"),
        "floor": go.Scatter(name="least-squares floor", mode="lines", line={"color": "black", "dash": "dash"}),
        "loss": go.Scatter(name="this run", line={"color": blue, "width": 2.5}),
        "epoch_marker": go.Scatter(mode="markers", marker={"color": red, "size": 10}, showlegend=False),
        "diverged_epoch": go.Scatter(name="diverged here", mode="lines", line={"color": red, "dash": "dot"}),
        "bowl": go.Contour(colorscale="Blues", reversescale=True, ncontours=18, showscale=False, showlegend=False,
                           hovertemplate="flat %{x:.3g}<br>steep %{y:.3g}<br>log10 loss %{z:.3f}<extra></extra>"),
        "optimum": go.Scatter(x=[0], y=[0], mode="markers", name="least squares",
                              marker={"symbol": "x", "color": "black", "size": 10}),
        "path": go.Scatter(name="the path so far", mode="lines+markers", line={"color": "#ff7f0e"},
                           marker={"size": 4}),
        "here": go.Scatter(mode="markers", marker={"color": red, "size": 10}, showlegend=False),
        "final_losses": go.Scatter(name="no divergence", mode="lines+markers", line={"color": blue}),
        "diverged": go.Scatter(name="diverged (at the start's loss)", mode="markers",
                               marker={"symbol": "x", "color": red, "size": 9}),
        "limit": go.Scatter(mode="lines", line={"color": "black", "dash": "dash"}),
        "end_limits": go.Scatter(name="limit at its end (within 1%)", mode="markers",
                                 marker={"symbol": "diamond-open", "color": "#2ca02c", "size": 9}),
        "chosen_lr": go.Scatter(mode="markers", marker={"color": red, "size": 12}, showlegend=False),
    }
    for name in TRACES:
        row, col = PANEL[name]
        trace = styles[name]
        trace.legend = LEGENDS[row, col]
        fig.add_trace(trace, row=row, col=col)
    layout_panels(fig, explorer)
    return fig


LEGENDS = {(1, 1): "legend", (1, 2): "legend2", (2, 1): "legend3", (2, 2): "legend4"}


def layout_panels(fig, explorer):
    """Axis titles and types; above each panel its title and legend in one line; the data panel's y range
    fixed to the data's, so that a diverging curve leaves it instead of rescaling it."""
    y_lo, y_hi = min(explorer["y"]), max(explorer["y"])
    pad = 0.15 * (y_hi - y_lo)
    axes = {(1, 1): ("x", "y", "linear"), (1, 2): ("epoch", "loss (MSE)", "log"),
            (2, 1): ("along the flattest eigenvector, from the optimum", "along the steepest", "linear"),
            (2, 2): ("learning rate", "loss at the last epoch", "log")}
    for (row, col), (x_title, y_title, kind) in axes.items():
        fig.update_xaxes(title_text=x_title, type=kind, exponentformat="power", row=row, col=col)
        fig.update_yaxes(title_text=y_title, type=kind, exponentformat="power", row=row, col=col)
    fig.update_yaxes(range=[y_lo - pad, y_hi + pad], row=1, col=1)
    legends = {}
    for (row, col), legend in LEGENDS.items():
        number = (row - 1) * 2 + col
        suffix = "" if number == 1 else str(number)
        x0, _ = fig.layout[f"xaxis{suffix}"].domain
        _, y1 = fig.layout[f"yaxis{suffix}"].domain
        legends[legend] = {"x": x0, "xanchor": "left", "y": y1 + 0.01, "yanchor": "bottom", "orientation": "h",
                           "title": {"text": PANEL_TITLES[number - 1], "side": "top"}, "font": {"size": 12}}
    fig.update_layout(height=900, margin={"l": 60, "r": 20, "t": 70, "b": 50}, template="plotly_white",
                      **legends)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>The explorer: quadratic regression with real PyTorch runs</title>
<style>
body {{ font-family: sans-serif; margin: 12px 20px; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 4px 0; }}
p.about {{ margin: 0 0 8px 0; font-size: 0.9em; color: #444; }}
.controls {{ display: flex; flex-wrap: wrap; gap: 8px 22px; align-items: center; font-size: 0.95em; }}
.controls input[type=range] {{ width: 320px; vertical-align: middle; height: 8px; border-radius: 4px;
  -webkit-appearance: none; appearance: none; background: #dde3ea; }}
.controls input[type=range]::-webkit-slider-thumb {{ -webkit-appearance: none; width: 18px; height: 18px;
  border-radius: 50%; background: #1f77b4; cursor: pointer; }}
.controls input[type=range]::-moz-range-thumb {{ width: 18px; height: 18px; border-radius: 50%; background: #1f77b4; }}
#readout {{ margin: 8px 0 0 0; padding: 6px 10px; background: #f4f6fa; border-radius: 6px; font-size: 0.95em; }}
#readout b {{ font-weight: 600; }}
#readout-status {{ font-weight: 600; }}
</style>
</head>
<body>
<h1>The explorer: y = (x−4)(x−8) + noise, fitted by real PyTorch float32 runs</h1>
<p class="about">{about}</p>
<div class="controls">
  <label>model <select id="model-select"></select></label>
  <label>inputs <select id="inputs-select"></select></label>
  <label>optimizer <select id="optimizer-select"></select></label>
  <button id="play" type="button">play</button>
</div>
<div class="controls">
  <label>learning rate <input type="range" id="lr-slider" min="0" max="0" step="1" value="0"></label>
  <span id="lr-value"></span>
</div>
<div class="controls">
  <label>epoch <input type="range" id="epoch-slider" min="0" max="0" step="1" value="0"></label>
  <span id="epoch-value"></span>
</div>
<div id="readout"><span id="readout-setting"></span> · lr <b id="readout-lr"></b> · epoch <b id="readout-epoch"></b>
 · loss <b id="readout-loss"></b> · <span id="readout-coefficients"></span><br><span id="readout-status"></span></div>
<script type="application/json" id="explorer-data">{data}</script>
<script type="application/json" id="explorer-traces">{traces}</script>
{plot}
</body>
</html>
"""


def about(data):
    """The line under the title: the data, and what each setting trained (every number from `data`)."""
    explorer = data["explorer"]
    lo, hi = explorer["x_range"]
    settings = explorer["settings"]
    epochs = sorted({s["epochs"] for s in settings})
    epochs = f"{epochs[0]} to {epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
    lrs = " or ".join(str(n) for n in sorted({len(s["lrs"]) for s in settings}))
    records = " or ".join(str(n) for n in sorted({len(s["recorded_epochs"]) for s in settings}))
    return (f"Seed {explorer['seed']}, {explorer['samples']} points, x from {lo:g} to {hi:g}, noise "
            f"{explorer['noise']:g}. Each setting trained {lrs} learning rates from one start as one vectorized "
            f"PyTorch computation, for {epochs} epochs, recorded at {records} epochs. The page only shows them; "
            "a red dot marks the chosen run and epoch.")


def page_html(data):
    """The whole page: plotly's standalone div (plotly.js inline, no CDN), the data as JSON, the controls."""
    import plotly.io as pio
    plot = pio.to_html(figure(data), include_plotlyjs=True, full_html=False, div_id="explorer-plot",
                       post_script=SCRIPT.read_text(encoding="utf-8"), config={"displaylogo": False})
    text = json.dumps(json_safe(data), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    traces = json.dumps({name: i for i, name in enumerate(TRACES)})
    return PAGE.format(about=about(data), data=text, traces=traces, plot=plot)


def page_bytes(data):
    """The page as UTF-8 bytes; ValueError if it would pass MAX_PAGE_BYTES."""
    html = page_html(data).encode("utf-8")
    if len(html) > MAX_PAGE_BYTES:
        raise ValueError(f"the page would be {megabytes(len(html))}, above the limit of {megabytes(MAX_PAGE_BYTES)}")
    return html


def megabytes(size):
    """A size as the lines print it: 5.6 MB, 12 kB, 800 B."""
    if size >= 2**20:
        return f"{size / 2**20:.1f} MB"
    return f"{math.ceil(size / 1024)} kB" if size >= 1024 else f"{size} B"
