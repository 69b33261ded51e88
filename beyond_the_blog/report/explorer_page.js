// The explorer's controls (plain JavaScript, run by plotly once the figure is drawn).
// Every number drawn or shown is read from #explorer-data: the runs PyTorch trained when the page was made.
// This script computes nothing about training; it only picks a run and an epoch and redraws.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent).explorer;
  const TRACES = JSON.parse(document.getElementById("explorer-traces").textContent);
  const plot = document.getElementById("{plot_id}");
  const $ = (id) => document.getElementById(id);
  const choices = {model: $("model-select"), inputs: $("inputs-select"), optimizer: $("optimizer-select")};
  const lrSlider = $("lr-slider"), epochSlider = $("epoch-slider"), playButton = $("play");
  const LABELS = {
    model: {params: "params: a x² + b x + c", linear: "linear: (w1 x + b1)(w2 x + b2)"},
    inputs: {x: "x, as the blog", z: "z = (x − mean)/std"},
  };
  const xs = grid(DATA.x_range[0], DATA.x_range[1], 200);
  let setting = DATA.settings[0], timer = null;

  function grid(lo, hi, count) {
    return Array.from({length: count}, (_, i) => lo + (hi - lo) * i / (count - 1));
  }
  function g(value, digits) {  // a number as Python's "g" format would print it, about
    return value === null ? "inf/NaN" : String(parseFloat(value.toPrecision(digits)));
  }
  function fixed(value) {  // a, b, c as the program prints them: 4 decimals
    return value === null ? "inf/NaN" : (Math.abs(value) >= 1e7 ? value.toExponential(4) : value.toFixed(4));
  }
  function finite(value) {
    return value !== null && Number.isFinite(value);
  }
  function log10Range(values, pad) {
    const kept = values.filter((v) => finite(v) && v > 0);
    if (kept.length === 0) return [-1, 1];  // nothing finite to show: any range will do
    return [Math.log10(Math.min(...kept)) - pad, Math.log10(Math.max(...kept)) + pad];
  }

  function fillChoices() {
    for (const [key, select] of Object.entries(choices)) {
      const values = [...new Set(DATA.settings.map((s) => s[key]))];
      for (const value of values) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = key === "optimizer"
          ? DATA.settings.find((s) => s.optimizer === value).optimizer_title : LABELS[key][value];
        select.appendChild(option);
      }
      select.addEventListener("change", chooseSetting);
    }
  }

  function chooseSetting() {
    setting = DATA.settings.find((s) => Object.entries(choices).every(([key, select]) => s[key] === select.value));
    lrSlider.max = setting.lrs.length - 1;
    lrSlider.value = setting.lrs.indexOf(setting.default_lr);
    epochSlider.max = setting.recorded_epochs.length - 1;
    epochSlider.value = epochSlider.max;
    const above = setting.lrs.findIndex((lr) => lr > setting.limit);  // the slider's track turns red past the limit
    const edge = above < 0 ? 100 : 100 * (above - 0.5) / (setting.lrs.length - 1);
    lrSlider.style.background = `linear-gradient(to right, #cfe8cf ${edge}%, #f3c1c1 ${edge}%)`;
    drawSetting();
    drawRun();
  }

  function runs(keep) {  // the indices of the runs for which keep(r) holds
    return setting.lrs.map((_, r) => r).filter(keep);
  }

  function drawSetting() {
    const epochs = setting.recorded_epochs, last = epochs.length - 1, bowl = setting.bowl;
    // Loss curves need finite losses; panel (d) needs the verdict, which also counts a run that ended above its start.
    const finiteRuns = runs((r) => setting.diverged_at_epoch[r] === null);
    const stable = runs((r) => !setting.diverged[r]), diverged = runs((r) => setting.diverged[r]);
    const curves = {x: [], y: []};
    for (const r of finiteRuns) {
      curves.x.push(...epochs.slice(1), null);
      curves.y.push(...setting.loss[r].slice(1), null);
    }
    const finals = stable.map((r) => setting.loss[r][last]);
    const lossRange = log10Range([DATA.least_squares.loss, setting.start_loss,
                                  ...finiteRuns.flatMap((r) => setting.loss[r])], 0.3);
    const finalRange = log10Range([DATA.least_squares.loss, setting.start_loss, ...finals], 0.3);
    const ends = setting.end_point_limits || [];
    const endRuns = stable.filter((r) => setting.within_1pct_of_least_squares[r] && finite(ends[r]));
    const update = {
      [TRACES.all_losses]: curves,
      [TRACES.floor]: {x: [1, setting.epochs], y: [DATA.least_squares.loss, DATA.least_squares.loss]},
      [TRACES.bowl]: {x: bowl.grid_flat, y: bowl.grid_steep, z: bowl.grid_log10_loss},
      [TRACES.final_losses]: {x: stable.map((r) => setting.lrs[r]), y: finals},
      [TRACES.diverged]: {x: diverged.map((r) => setting.lrs[r]), y: diverged.map(() => setting.start_loss),
                          text: diverged.map((r) => divergedText(r))},
      [TRACES.limit]: {x: [setting.limit, setting.limit], y: finalRange.map((v) => 10 ** v),
                       name: `${setting.limit_formula}${setting.limit_is_local ? " at the start" : ""}`},
      [TRACES.end_limits]: {x: endRuns.map((r) => ends[r]), y: endRuns.map((r) => setting.loss[r][last]),
                            text: endRuns.map((r) => `the run with lr ${g(setting.lrs[r], 4)}`)},
    };
    restyle(update);
    Plotly.relayout(plot, {
      "xaxis2.range": [0, Math.log10(setting.epochs) + 0.05], "yaxis2.range": lossRange,
      "xaxis3.range": [-bowl.extent_flat, bowl.extent_flat], "yaxis3.range": [-bowl.extent_steep, bowl.extent_steep],
      "yaxis4.range": finalRange,
      "xaxis4.range": log10Range([...setting.lrs, setting.limit, ...endRuns.map((r) => ends[r])], 0.1),
    });
  }

  function divergedText(r) {  // the hover text of a diverged run in panel (d)
    const epoch = setting.diverged_at_epoch[r], last = setting.loss[r][setting.recorded_epochs.length - 1];
    return epoch !== null ? `diverged at epoch ${epoch}` : `ended above its start: its last loss ${g(last, 4)}`;
  }

  function restyle(update) {  // {trace index: {attribute: value}}: one Plotly.restyle per set of attributes
    const groups = {};
    for (const [index, attributes] of Object.entries(update)) {
      const key = Object.keys(attributes).sort().join(" ");
      (groups[key] = groups[key] || []).push([Number(index), attributes]);
    }
    for (const [key, members] of Object.entries(groups)) {
      const attributes = {};
      for (const name of key.split(" ")) attributes[name] = members.map(([, values]) => values[name]);
      Plotly.restyle(plot, attributes, members.map(([index]) => index));
    }
  }

  function drawRun() {
    const r = Number(lrSlider.value), k = Number(epochSlider.value);
    const epochs = setting.recorded_epochs, epoch = epochs[k], last = epochs.length - 1;
    const [a, b, c] = [setting.a[r][k], setting.b[r][k], setting.c[r][k]];
    const curve = [a, b, c].every(finite) ? xs.map((x) => a * x * x + b * x + c) : xs.map(() => null);
    const loss = setting.loss[r], lr = setting.lrs[r];
    const diverged = setting.diverged_at_epoch[r];
    const finalShown = setting.diverged[r] ? setting.start_loss : loss[last];  // where panel (d) draws this run
    restyle({
      [TRACES.fit]: {x: xs, y: curve},
      [TRACES.loss]: {x: epochs.slice(1), y: loss.slice(1)},
      [TRACES.epoch_marker]: {x: [epoch >= 1 ? epoch : null], y: [epoch >= 1 ? loss[k] : null]},
      [TRACES.diverged_epoch]: {x: diverged === null ? [] : [diverged, diverged], y: diverged === null ? [] :
                                [10 ** plot.layout.yaxis2.range[0], 10 ** plot.layout.yaxis2.range[1]]},
      [TRACES.path]: {x: setting.bowl.flat[r].slice(0, k + 1), y: setting.bowl.steep[r].slice(0, k + 1)},
      [TRACES.here]: {x: [setting.bowl.flat[r][k]], y: [setting.bowl.steep[r][k]]},
      [TRACES.chosen_lr]: {x: [lr], y: [finalShown]},
    });
    const ends = setting.end_point_limits;
    const local = setting.limit_is_local ? " at the start" : "";
    let limits = `limit ${setting.limit_formula} = ${g(setting.limit, 4)}${local}: this lr is ` +
      (lr > setting.limit ? "above it" : "below it");
    if (ends && finite(ends[r])) limits += `; at this run's end point ${g(ends[r], 4)}`;
    $("lr-value").textContent = `lr ${g(lr, 4)} (${limits})`;
    $("epoch-value").textContent = `epoch ${epoch} of ${setting.epochs}`;
    $("readout-setting").textContent = `${setting.model} on ${setting.inputs}, ${setting.optimizer_title}`;
    $("readout-lr").textContent = g(lr, 6);
    $("readout-epoch").textContent = String(epoch);
    $("readout-loss").textContent = finite(loss[k]) ? loss[k].toPrecision(7) : "inf/NaN";
    $("readout-coefficients").textContent = `a = ${fixed(a)}, b = ${fixed(b)}, c = ${fixed(c)}`;
    $("readout-status").textContent = status(r);
  }

  function status(r) {
    const diverged = setting.diverged_at_epoch[r];
    if (diverged !== null) return `diverged at epoch ${diverged}: its loss overflowed float32 (inf/NaN)`;
    if (setting.ended_above_start[r]) return "diverged: its loss ended above its start (without overflowing float32)";
    const last = setting.loss[r][setting.recorded_epochs.length - 1].toPrecision(7);
    const floor = DATA.least_squares.loss.toPrecision(7);
    if (setting.within_1pct_of_least_squares[r]) return `its last loss ${last} is within 1% of the least-squares ` +
      `loss ${floor}`;
    return `it did not diverge; its last loss ${last} is not within 1% of the least-squares loss ${floor}`;
  }

  function play() {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
      playButton.textContent = "play";
      return;
    }
    if (Number(epochSlider.value) === Number(epochSlider.max)) epochSlider.value = 0;
    playButton.textContent = "pause";
    timer = setInterval(() => {
      if (Number(epochSlider.value) >= Number(epochSlider.max)) return play();
      epochSlider.value = Number(epochSlider.value) + 1;
      drawRun();
    }, 150);
  }

  fillChoices();
  lrSlider.addEventListener("input", drawRun);
  epochSlider.addEventListener("input", drawRun);
  playButton.addEventListener("click", play);
  chooseSetting();
})();
