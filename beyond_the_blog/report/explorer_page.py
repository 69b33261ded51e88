"""The page --explore writes: one HTML file, the runs of explorer_runs.py embedded as JSON, four plotly panels and
the controls that pick a run and an epoch (explorer_page.js).

Why plotly: plotly.js (about 4.6 MB) goes inline once, so the page opens from a file with no server and no network;
its figures are redrawn from JavaScript (Plotly.react) on any event. Each panel is a figure of its own in a CSS
grid: two by two on a wide screen, stacked on a phone, each as wide as its cell.

The data embedded in the page is the dict that --metrics writes (page_data): the page shows the metrics' numbers.
They are stored to 6 significant digits: the readout shows no more, and a plot cannot show as many.
plotly is imported inside the function that writes the page, so that a run without --explore never loads it.
"""
import json
import math
import re
from pathlib import Path

import torch

from ..optimizers import OPTIMIZERS
from ..system.paths import json_safe
from ..theory.least_squares import TRUE_COEFFICIENTS, least_squares
from ..training.judge import at_edge_of_stability, within_one_percent
from .words import count

MAX_PAGE_BYTES = 8 * 2**20   # small enough to commit or mail; the page is about 5.7 MB at the defaults
GRID = 41                    # points on each side of the bowl's slice
DIGITS = 6                   # significant digits of the stored numbers: what the readout shows
NUMBER_CHARS = 13            # the longest number at DIGITS digits and its comma: -1.23457e-300,
SETTING_CHARS = 4096         # a setting's keys, strings and short lists, at most
SCRIPT = Path(__file__).with_name("explorer_page.js")


def rounded(values, digits=DIGITS):
    """Floats to `digits` significant digits, nested lists kept, None (inf/NaN) kept."""
    if isinstance(values, list):
        return [rounded(v, digits) for v in values]
    if values is None or not math.isfinite(values):
        return None
    return float(f"{values:.{digits}g}")


def page_data(runs, x, y, options, partial=False):
    """The page's data and the --metrics JSON, one dict: the data points, least squares, and each setting's runs.
    options: seed, samples, noise, x_range. partial: a signal stopped the training before every setting was done."""
    least = least_squares(x, y)
    seed, samples, noise, x_range = options
    return {"explorer": {
        "seed": seed, "samples": samples, "noise": noise, "x_range": list(x_range), "partial": partial,
        "x": rounded(x.reshape(-1).tolist()), "y": rounded(y.reshape(-1).tolist()),
        "true_coefficients": list(TRUE_COEFFICIENTS),
        "least_squares": {**dict(zip("abc", least.coefficients[0].tolist())), "loss": least.loss[0].item()},
        "loss_at_epoch": "each run's MSE after that many epochs (float32, as trained); epoch 0 is the start",
        "diverged_at_epoch_means": "the epoch whose loss, computed before its step, is first inf or NaN (float32 "
                                   "overflowed): the epoch a single run with that lr says it diverged",
        "ended_above_start_means": "the run diverged without overflowing: its last loss is above its starting loss",
        "diverged_means": "inf/NaN, or ended above its start: the rule of a single run and of --lr-sweep",
        "at_edge_means": "within 1% of the least-squares loss, where the limit is the run's own lr to 1%",
        "settings": [setting_data(r, within_one_percent(least.loss[0].item(), least.scale)) for r in runs],
    }}


def setting_data(runs, near_floor):
    """One setting's runs: R lrs, T recorded epochs, each run's loss and a, b, c (x's units) at each of them."""
    final = runs.loss[:, -1]
    errors = runs.bowl.errors(runs.trained_coefficients.reshape(-1, 3)).reshape(len(runs.lrs), -1, 3)
    within = [bool(v <= near_floor) for v in final.tolist()]
    ends = runs.end_point_limits or [None] * len(runs.lrs)
    return {
        "model": runs.setting.model_name, "inputs": runs.setting.inputs, "optimizer": runs.setting.optimizer,
        "optimizer_title": OPTIMIZERS[runs.setting.optimizer].title, "epochs": runs.epochs,
        "default_lr": runs.default_lr, "lrs": runs.lrs, "recorded_epochs": runs.recorded_epochs,
        "loss": rounded(runs.loss.tolist()),
        **{name: rounded(runs.coefficients[:, :, i].tolist()) for i, name in enumerate("abc")},
        "diverged_at_epoch": runs.diverged_at,
        "ended_above_start": runs.ended_above_start, "diverged": runs.diverged,
        "within_1pct_of_least_squares": within,
        "at_edge": [near and not gone and at_edge_of_stability(lr, end)
                    for lr, near, gone, end in zip(runs.lrs, within, runs.diverged, ends)],
        "start_loss": runs.start_loss, "limit": runs.limit, "limit_where": runs.limit_where,
        "start_limit": runs.start_limit, "limit_formula": runs.limit_formula,
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
            "grid_flat": rounded(flat.tolist()), "grid_steep": rounded(steep.tolist()),
            "grid_log10_loss": rounded(torch.log10(loss).tolist(), 4),  # a colour: 4 digits are more than seen
            "flat": rounded(errors[..., 0].tolist()), "steep": rounded(errors[..., 2].tolist())}


def about(data):
    """The line under the title: the data, and what each setting trained (every number from `data`)."""
    explorer = data["explorer"]
    lo, hi = explorer["x_range"]
    settings = explorer["settings"] or [{"epochs": 0, "lrs": [], "recorded_epochs": []}]
    epochs = sorted({s["epochs"] for s in settings})
    epochs = f"{epochs[0]} to {epochs[-1]}" if len(epochs) > 1 else str(epochs[0])
    lrs = " or ".join(str(n) for n in sorted({len(s["lrs"]) for s in settings}))
    records = " or ".join(str(n) for n in sorted({len(s["recorded_epochs"]) for s in settings}))
    partial = (" Training was stopped by a signal: this page holds only the settings that had finished."
               if explorer.get("partial") else "")
    return (f"Seed {explorer['seed']}, {explorer['samples']} points, x from {lo:g} to {hi:g}, noise "
            f"{explorer['noise']:g}. Each setting trained {lrs} learning rates from one start as one vectorized "
            f"PyTorch computation, for {count(epochs, 'epoch')}, recorded at {count(records, 'epoch')}. "
            f"The page only shows them.{partial}")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>The explorer: quadratic regression with real PyTorch runs</title>
<style>
body { font-family: sans-serif; margin: 10px 16px; color: #222; }
h1 { font-size: 1.25em; margin: 0 0 4px 0; }
h2 { font-size: 0.95em; font-weight: 600; margin: 4px 0 0 6px; }
p.about { margin: 0 0 8px 0; font-size: 0.9em; color: #444; }
.controls { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; font-size: 0.95em; margin: 4px 0; }
.controls label { white-space: nowrap; }
.controls select { max-width: 100%; }
.slider { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; margin: 6px 0; font-size: 0.95em; }
.slider input[type=range] { flex: 1 1 260px; max-width: 520px; min-width: 200px; height: 8px; border-radius: 4px;
  -webkit-appearance: none; appearance: none; background: #dde3ea; }
.slider input[type=range]::-webkit-slider-thumb { -webkit-appearance: none; width: 20px; height: 20px;
  border-radius: 50%; background: #1f77b4; cursor: pointer; }
.slider input[type=range]::-moz-range-thumb { width: 20px; height: 20px; border-radius: 50%; background: #1f77b4; }
.slider span { flex: 1 1 300px; }
#steps { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
#steps button { font-size: 0.9em; padding: 4px 10px; border: 1px solid #1f77b4; border-radius: 14px;
  background: #eef4fb; cursor: pointer; }
#step-note { font-size: 0.9em; color: #333; margin: 0 0 6px 0; min-height: 1.2em; }
#readout { margin: 6px 0; padding: 6px 10px; background: #f4f6fa; border-radius: 6px; font-size: 0.95em; }
#readout-status { font-weight: 600; }
.panels { display: grid; grid-template-columns: minmax(0, 1fr); gap: 10px 16px; }
@media (min-width: 1000px) { .panels { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); } }
.panel { min-width: 0; }
.plot { width: 100%; height: 400px; }
</style>
</head>
<body>
<h1>The explorer: y = (x−4)(x−8) + noise, fitted by real PyTorch float32 runs</h1>
<p class="about">@@about@@</p>
<div id="steps"><span>What to try:</span></div>
<p id="step-note"></p>
<div class="controls">
  <label>model <select id="model-select"></select></label>
  <label>inputs <select id="inputs-select"></select></label>
  <label>optimizer <select id="optimizer-select"></select></label>
  <button id="play" type="button">play</button>
</div>
<div class="slider"><label for="lr-slider">learning rate</label>
  <input type="range" id="lr-slider" min="0" max="0" step="1" value="0"><span id="lr-value"></span></div>
<div class="slider"><label for="epoch-slider">epoch</label>
  <input type="range" id="epoch-slider" min="0" max="0" step="1" value="0"><span id="epoch-value"></span></div>
<div id="readout"><span id="readout-setting"></span> · lr <b id="readout-lr"></b> · epoch <b id="readout-epoch"></b>
 · loss <b id="readout-loss"></b> · <span id="readout-coefficients"></span><br><span id="readout-status"></span>
 <br><span id="readout-limit"></span></div>
<div class="panels">
  <div class="panel"><h2>(a) the data, and the curve at this lr and epoch</h2>
    <div class="plot" id="panel-a"></div></div>
  <div class="panel"><h2>(b) the loss against the epoch</h2><div class="plot" id="panel-b"></div></div>
  <div class="panel"><h2>(c) the bowl along its flattest and steepest eigenvectors</h2>
    <div class="plot" id="panel-c"></div></div>
  <div class="panel"><h2>(d) the last loss against the lr</h2><div class="plot" id="panel-d"></div></div>
</div>
<script type="application/json" id="explorer-data">@@data@@</script>
<script>@@plotly@@</script>
<script>@@script@@</script>
</body>
</html>
"""


def page_html(data):
    """The whole page: plotly.js inline (no CDN), the data as JSON, the controls, the panels, the script."""
    from plotly.offline import get_plotlyjs
    text = json.dumps(json_safe(data), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    parts = {"about": about(data), "data": text, "plotly": get_plotlyjs(), "script": SCRIPT.read_text(encoding="utf-8")}
    return re.sub(r"@@(\w+)@@", lambda m: parts[m[1]], PAGE)  # one pass: no part is searched for another's mark


def page_size_bound(settings, runs, records, samples):
    """The most bytes a page of `settings` settings of `runs` lrs and `records` recorded epochs on `samples` points
    can take: every number at its longest. Known before training, so that a page too large is refused first."""
    empty = {"explorer": {"seed": 0, "samples": 0, "noise": 0.0, "x_range": [0.0, 1.0], "x": [], "y": [],
                          "least_squares": {}, "settings": []}}
    per_setting = 6 * runs * records + GRID * GRID + 2 * GRID + 12 * runs + records + 8
    numbers = 2 * samples + settings * per_setting
    return len(page_html(empty).encode("utf-8")) + NUMBER_CHARS * numbers + SETTING_CHARS * settings


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
