// The explorer's controls and four panels (plain JavaScript, run once plotly.js is loaded).
// Every number drawn or shown is read from #explorer-data: the runs PyTorch trained when the page was made.
// This script computes nothing about training; it picks a run and an epoch, and draws what lies inside each frame.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent).explorer;
  const $ = (id) => document.getElementById(id);
  const panels = {a: $("panel-a"), b: $("panel-b"), c: $("panel-c"), d: $("panel-d")};
  const choices = {model: $("model-select"), inputs: $("inputs-select"), optimizer: $("optimizer-select")};
  const lrSlider = $("lr-slider"), epochSlider = $("epoch-slider"), playButton = $("play");
  const LABELS = {
    model: {params: "params: a x² + b x + c", linear: "linear: (w1 x + b1)(w2 x + b2)"},
    inputs: {x: "x, as the blog", z: "z = (x − mean)/std"},
  };
  const RED = "#d62728", BLUE = "#1f77b4", ORANGE = "#ff7f0e", GREEN = "#2ca02c";
  const RISE = 3;  // decades of room above the start's loss in (b): a diverging run is seen rising before it leaves
  const CONFIG = {displayModeBar: false, responsive: true};  // no toolbar over the legends on a phone
  const xs = grid(DATA.x_range[0], DATA.x_range[1], 200);
  let setting = DATA.settings[0], timer = null;

  function grid(lo, hi, count) {
    return Array.from({length: count}, (_, i) => lo + (hi - lo) * i / (count - 1));
  }
  function finite(value) {
    return value !== null && value !== undefined && Number.isFinite(value);
  }
  function shown(value) {  // a stored number as stored (6 significant digits), or what it stood for
    return finite(value) ? String(value) : "inf/NaN";
  }
  function g(value, digits) {
    return String(parseFloat(value.toPrecision(digits)));
  }
  function quadratic(a, b, c) {
    return xs.map((x) => a * x * x + b * x + c);
  }
  function layout(xTitle, yTitle, kind, ranges) {
    const axis = (title, range) => ({title: {text: title}, type: kind, exponentformat: "power", gridcolor: "#e5e9f0",
                                     zeroline: false, automargin: true, ...(range ? {range: range} : {autorange: true})});
    return {xaxis: axis(xTitle, ranges[0]), yaxis: axis(yTitle, ranges[1]), margin: {l: 56, r: 12, t: 8, b: 44},
            legend: {orientation: "h", x: 0, y: -0.2, yanchor: "top", font: {size: 11}},
            plot_bgcolor: "white", paper_bgcolor: "white", hovermode: "closest", uirevision: "setting"};
  }

  // ---------------------------------------------------------------- what lies inside a frame
  function clipToTop(points, top) {
    // points: [[epoch, loss]] on log-log axes. Up to the first point above `top` (or not finite): that segment is cut
    // where it crosses the top, in log space; returns the points kept and the crossing (null if it never left).
    const kept = [];
    for (const [x, y] of points) {
      if (finite(y) && y <= top) {
        kept.push([x, y]);
        continue;
      }
      if (kept.length === 0) return {kept, edge: null};
      const [x0, y0] = kept[kept.length - 1];
      const t = finite(y) ? (Math.log(top) - Math.log(y0)) / (Math.log(y) - Math.log(y0)) : 1;
      const edge = [Math.exp(Math.log(x0) + t * (Math.log(x) - Math.log(x0))), top];
      kept.push(edge);
      return {kept, edge};
    }
    return {kept, edge: null};
  }
  function clipToBox(points, fx, fy) {
    // points: [[x, y]]; the box |x| <= fx, |y| <= fy. Up to the first point outside it: the segment is cut at the
    // box's edge (Liang-Barsky); returns the points kept and where the path left the box (null if it never did).
    const kept = [];
    for (const [x, y] of points) {
      if (finite(x) && finite(y) && Math.abs(x) <= fx && Math.abs(y) <= fy) {
        kept.push([x, y]);
        continue;
      }
      if (kept.length === 0) return {kept, edge: null};
      const [x0, y0] = kept[kept.length - 1];
      const [dx, dy] = finite(x) && finite(y) ? [x - x0, y - y0] : [0, 0];
      let t = 1;
      for (const [d, p, limit] of [[dx, x0, fx], [dy, y0, fy]]) {
        if (d > 0) t = Math.min(t, (limit - p) / d);
        if (d < 0) t = Math.min(t, (-limit - p) / d);
      }
      const edge = [x0 + t * dx, y0 + t * dy];
      kept.push(edge);
      return {kept, edge};
    }
    return {kept, edge: null};
  }
  function lossFrame() {  // (b)'s y range, log10: from the floor to RISE decades above the start
    const stable = runs((r) => !setting.diverged[r]).flatMap((r) => setting.loss[r]).filter((v) => finite(v) && v > 0);
    const low = Math.min(DATA.least_squares.loss, ...stable);
    return [Math.log10(low) - 0.2, Math.log10(setting.start_loss) + RISE];
  }
  function runs(keep) {
    return setting.lrs.map((_, r) => r).filter(keep);
  }

  // ---------------------------------------------------------------- the panels
  function figureA(r, k) {
    const [a, b, c] = [setting.a[r][k], setting.b[r][k], setting.c[r][k]];
    const ys = DATA.y, low = Math.min(...ys), high = Math.max(...ys), pad = 0.15 * (high - low);
    const far = 10 * (high - low);  // beyond the frame, where plotly's clipping hides it: no overflowing position
    const fit = [a, b, c].every(finite) ? quadratic(a, b, c).map((v) => Math.max(low - far, Math.min(high + far, v)))
      : xs.map(() => null);
    const [ta, tb, tc] = DATA.true_coefficients, least = DATA.least_squares;
    return [[
      {x: DATA.x, y: ys, mode: "markers", name: "the data", marker: {color: "red", size: 4}},
      {x: xs, y: quadratic(ta, tb, tc), name: "true: (x-4)(x-8)", line: {color: "gray"}},
      {x: xs, y: quadratic(least.a, least.b, least.c), name: "least squares", line: {color: "black", dash: "dash"}},
      {x: xs, y: fit, name: "this run", line: {color: BLUE, width: 3}},
    ], layout("x", "y", "linear", [null, [low - pad, high + pad]])];
  }

  function figureB(r, k) {
    const epochs = setting.recorded_epochs, frame = lossFrame(), top = 10 ** frame[1];
    const curve = (s) => clipToTop(epochs.slice(1).map((e, i) => [e, setting.loss[s][i + 1]]), top);
    const others = {x: [], y: []};
    for (const s of runs((s) => s !== r)) {
      const {kept} = curve(s);
      others.x.push(...kept.map((p) => p[0]), null);
      others.y.push(...kept.map((p) => p[1]), null);
    }
    const mine = curve(r), here = setting.loss[r][k], inside = epochs[k] >= 1 && finite(here) && here <= top;
    const overflow = setting.diverged_at_epoch[r];
    const edgeText = overflow !== null ? `overflowed float32 at epoch ${overflow}` : "left the axis, still finite";
    return [[
      {x: others.x, y: others.y, name: "the other lrs", line: {color: "#c4c4c4", width: 1}, hoverinfo: "skip"},
      {x: [1, setting.epochs], y: [DATA.least_squares.loss, DATA.least_squares.loss], mode: "lines",
       name: "least-squares floor", line: {color: "black", dash: "dash"}},
      {x: mine.kept.map((p) => p[0]), y: mine.kept.map((p) => p[1]), name: "this run", line: {color: BLUE, width: 2.5}},
      {x: [inside ? epochs[k] : null], y: [inside ? here : null], mode: "markers", showlegend: false,
       marker: {color: RED, size: 10}, hoverinfo: "skip"},
      {x: mine.edge ? [mine.edge[0]] : [], y: mine.edge ? [mine.edge[1]] : [], mode: "markers+text",
       name: "this run left the axis", text: [edgeText], textposition: "bottom right",
       marker: {symbol: "triangle-up", color: RED, size: 12}},
    ], layout("epochs trained", "loss (MSE)", "log", [[0, Math.log10(setting.epochs) + 0.05], frame])];
  }

  function figureC(r, k) {
    const bowl = setting.bowl, fx = bowl.extent_flat, fy = bowl.extent_steep;
    const path = clipToBox(bowl.flat[r].slice(0, k + 1).map((v, i) => [v, bowl.steep[r][i]]), fx, fy);
    const here = [bowl.flat[r][k], bowl.steep[r][k]], inside = path.edge === null && finite(here[0]);
    return [[
      {type: "contour", x: bowl.grid_flat, y: bowl.grid_steep, z: bowl.grid_log10_loss, colorscale: "Blues",
       reversescale: true, ncontours: 18, showscale: false, showlegend: false,
       hovertemplate: "flat %{x:.3g}<br>steep %{y:.3g}<br>log10 loss %{z:.3f}<extra></extra>"},
      {x: [0], y: [0], mode: "markers", name: "least squares", marker: {symbol: "x", color: "black", size: 10}},
      {x: path.kept.map((p) => p[0]), y: path.kept.map((p) => p[1]), name: "the path so far",
       mode: "lines+markers", line: {color: ORANGE}, marker: {size: 4}},
      {x: [inside ? here[0] : null], y: [inside ? here[1] : null], mode: "markers", showlegend: false,
       marker: {color: RED, size: 10}},
      {x: path.edge ? [path.edge[0]] : [], y: path.edge ? [path.edge[1]] : [], mode: "markers",
       name: "the path left the frame", marker: {symbol: "triangle-up", color: RED, size: 12}},
    ], layout("along the flattest, from the optimum", "along the steepest", "linear",
              [[-fx, fx], [-fy, fy]])];
  }

  function figureD(r) {
    const last = setting.recorded_epochs.length - 1, stable = runs((s) => !setting.diverged[s]);
    const gone = runs((s) => setting.diverged[s]), edge = runs((s) => setting.at_edge[s]);
    const finals = stable.map((s) => setting.loss[s][last]);
    const values = [DATA.least_squares.loss, setting.start_loss, ...finals].filter((v) => finite(v) && v > 0);
    const yRange = [Math.log10(Math.min(...values)) - 0.3, Math.log10(Math.max(...values)) + 0.3];
    const vertical = (lr) => ({x: [lr, lr], y: yRange.map((v) => 10 ** v)});
    const limits = [{...vertical(setting.limit), mode: "lines", name: `${setting.limit_formula} ${limitWhere()}`,
                     line: {color: "black", dash: "dash"}}];
    if (setting.start_limit !== null) {
      limits.push({...vertical(setting.start_limit), mode: "lines", name: `${setting.limit_formula} at the start`,
                   line: {color: "#aaaaaa", dash: "dot"}});
    }
    const ends = setting.end_point_limits || [];
    return [[
      {x: stable.map((s) => setting.lrs[s]), y: finals, name: "no divergence", mode: "lines+markers",
       line: {color: BLUE}},
      {x: gone.map((s) => setting.lrs[s]), y: gone.map(() => setting.start_loss), mode: "markers",
       name: "diverged (at the start's loss)", text: gone.map(divergedText), marker: {symbol: "x", color: RED, size: 9}},
      ...limits,
      {x: edge.map((s) => ends[s]), y: edge.map((s) => setting.loss[s][last]), mode: "markers",
       name: "at the edge: the limit at its end", text: edge.map((s) => `the run with lr ${g(setting.lrs[s], 6)}`),
       marker: {symbol: "diamond-open", color: GREEN, size: 11}},
      {x: [setting.lrs[r]], y: [setting.diverged[r] ? setting.start_loss : setting.loss[r][last]], mode: "markers",
       showlegend: false, marker: {color: RED, size: 12}},
    ], layout("learning rate", "loss at the last epoch", "log",
              [logRange([...setting.lrs, setting.limit, setting.start_limit, ...edge.map((s) => ends[s])]), yRange])];
  }
  function logRange(values) {
    const kept = values.filter((v) => finite(v) && v > 0);
    return [Math.log10(Math.min(...kept)) - 0.1, Math.log10(Math.max(...kept)) + 0.1];
  }
  function divergedText(r) {
    const epoch = setting.diverged_at_epoch[r], last = setting.loss[r][setting.recorded_epochs.length - 1];
    return epoch !== null ? `diverged at epoch ${epoch}` : `ended above its start: its last loss ${shown(last)}`;
  }

  // ---------------------------------------------------------------- the readout
  function limitWhere() {  // where the limit is taken, as the legend of (d) and the readout name it
    return {exact: "(exact: the Hessian is constant)", "the balanced fit": "at the balanced fit",
            "the start": "at the start"}[setting.limit_where];
  }
  function limitLine(r) {
    const lr = setting.lrs[r], side = lr > setting.limit ? "above" : "below";
    let line = `lr ${g(lr, 6)} is ${side} the limit ${setting.limit_formula} ${limitWhere()}, ${g(setting.limit, 4)}`;
    if (setting.start_limit !== null) line += ` (at the start it is ${g(setting.start_limit, 4)})`;
    return line + ".";
  }
  function status(r) {
    const last = setting.loss[r][setting.recorded_epochs.length - 1], floor = g(DATA.least_squares.loss, 6);
    const epoch = setting.diverged_at_epoch[r], above = setting.lrs[r] > setting.limit;
    if (setting.diverged[r]) {
      const how = epoch !== null ? `diverged: its loss overflowed float32 at epoch ${epoch}`
        : "diverged: its loss ended above its start, without overflowing float32";
      return above ? `It ${how}.` : `It ${how}, below the limit: that limit holds where a run settles, and this ` +
        "run never settled.";
    }
    if (setting.at_edge[r]) return "It settled at the edge of stability: where it ended, the limit is its own lr, " +
      `to 1% (${g(setting.end_point_limits[r], 4)}); its last loss ${shown(last)} is within 1% of the ` +
      `least-squares loss ${floor}.`;
    if (setting.within_1pct_of_least_squares[r]) return `It did not diverge; its last loss ${shown(last)} is ` +
      `within 1% of the least-squares loss ${floor}.`;
    return `It did not diverge${above ? " above the limit" : ""}; its last loss ${shown(last)} is not within 1% of ` +
      `the least-squares loss ${floor}.`;
  }

  function figures(r, k) {  // each panel's traces and layout for run r at its k-th recorded epoch
    return {a: figureA(r, k), b: figureB(r, k), c: figureC(r, k), d: figureD(r)};
  }

  function drawRun() {
    const r = Number(lrSlider.value), k = Number(epochSlider.value);
    for (const [name, [traces, frame]] of Object.entries(figures(r, k))) {
      Plotly.react(panels[name], traces, frame, CONFIG);
    }
    readout(r, k);
  }

  function readout(r, k) {
    const epoch = setting.recorded_epochs[k], lr = setting.lrs[r];
    $("lr-value").textContent = `lr ${g(lr, 6)} (${lr > setting.limit ? "above" : "below"} the limit)`;
    $("epoch-value").textContent = `epoch ${epoch} of ${setting.epochs}`;
    $("readout-setting").textContent = `${setting.model} on ${setting.inputs}, ${setting.optimizer_title}`;
    $("readout-lr").textContent = g(lr, 6);
    $("readout-epoch").textContent = String(epoch);
    $("readout-loss").textContent = shown(setting.loss[r][k]);
    $("readout-coefficients").textContent = "abc".split("").map((n) => `${n} = ${shown(setting[n][r][k])}`).join(", ");
    $("readout-status").textContent = status(r);
    $("readout-limit").textContent = limitLine(r);
  }

  // ---------------------------------------------------------------- the controls
  function fillChoices() {
    for (const [key, select] of Object.entries(choices)) {
      for (const value of [...new Set(DATA.settings.map((s) => s[key]))]) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = key === "optimizer"
          ? DATA.settings.find((s) => s.optimizer === value).optimizer_title : LABELS[key][value];
        select.appendChild(option);
      }
      select.addEventListener("change", () => chooseSetting(key));
    }
  }
  function chooseSetting(changed) {
    // the setting the three choices name; on a page that lacks it (a narrowed or partial page), the first setting
    // with the choice just made, and the other choices follow it
    const matches = (s) => Object.entries(choices).every(([key, select]) => s[key] === select.value);
    setting = DATA.settings.find(matches) || DATA.settings.find((s) => s[changed] === choices[changed].value);
    for (const [key, select] of Object.entries(choices)) select.value = setting[key];
    lrSlider.max = setting.lrs.length - 1;
    lrSlider.value = setting.lrs.indexOf(setting.default_lr);
    epochSlider.max = setting.recorded_epochs.length - 1;
    epochSlider.value = epochSlider.max;
    const above = setting.lrs.findIndex((lr) => lr > setting.limit);  // the slider's track turns red past the limit
    const edge = above < 0 ? 100 : 100 * (above - 0.5) / (setting.lrs.length - 1);
    lrSlider.style.background = `linear-gradient(to right, #cfe8cf ${edge}%, #f3c1c1 ${edge}%)`;
    drawRun();
  }
  function choose(model, inputs, optimizer) {  // for the guided steps: false if this page lacks that setting
    const wanted = DATA.settings.find((s) => s.model === model && s.inputs === inputs && s.optimizer === optimizer);
    if (!wanted) return false;
    Object.assign(choices.model, {value: model});
    Object.assign(choices.inputs, {value: inputs});
    Object.assign(choices.optimizer, {value: optimizer});
    chooseSetting("model");
    return true;
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

  // ---------------------------------------------------------------- what to try: each step sets the controls
  const STEPS = [
    {label: "1. The blog's run", setting: ["params", "x", "sgd"], lr: "default", epoch: "first", play: true,
     note: "Watch (c): the path drops along the steep direction first, then crawls along the flat one."},
    {label: "2. One step past the limit", setting: ["params", "x", "sgd"], lr: "past", epoch: "last",
     note: "Watch (b): the loss rises off the axis, and the readout says at which epoch it overflowed float32."},
    {label: "3. Standardized inputs", setting: ["params", "z", "sgd"], lr: "default", epoch: "last",
     note: "Compare (c) with step 1: on z the bowl is nearly round, and (b) reaches the floor far sooner."},
    {label: "4. The product at its edge", setting: ["linear", "x", "sgd"], lr: "edge", epoch: "last",
     note: "Watch (d): this run's lr is past the dashed limit, and its green diamond sits at its own lr: it " +
           "settled where the valley is flatter."},
  ];
  function stepLr(kind) {
    if (kind === "default") return setting.lrs.indexOf(setting.default_lr);
    if (kind === "past") return setting.lrs.findIndex((lr) => lr > setting.limit);
    const edges = runs((s) => setting.at_edge[s] && setting.lrs[s] > setting.limit);
    return edges.length ? edges[edges.length - 1] : -1;
  }
  function addSteps() {
    for (const step of STEPS) {
      const wanted = DATA.settings.find((s) => ["model", "inputs", "optimizer"].every((k, i) => s[k] === step.setting[i]));
      if (!wanted) continue;  // a narrowed page: no button for what it does not hold
      const saved = setting;
      setting = wanted;
      const lr = stepLr(step.lr);
      setting = saved;
      if (lr < 0) continue;  // nothing past the limit, or no run at the edge: the step would show nothing
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = step.label;
      button.addEventListener("click", () => {
        if (timer !== null) play();
        choose(...step.setting);
        lrSlider.value = lr;
        epochSlider.value = step.epoch === "first" ? 0 : epochSlider.max;
        drawRun();
        $("step-note").textContent = step.note;
        if (step.play) play();
      });
      $("steps").appendChild(button);
    }
  }

  fillChoices();
  lrSlider.addEventListener("input", drawRun);
  epochSlider.addEventListener("input", drawRun);
  playButton.addEventListener("click", play);
  addSteps();
  chooseSetting("model");
  window.explorer = {choose, drawRun, figures, readout};  // for the tests: the page's own controls, driven by script
})();
