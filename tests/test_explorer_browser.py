"""The explorer's page in a real browser (headless Chromium driven by selenium), on a small page made here by the
real script: every setting stepped through every lr at its first, a middle and its last epoch, and played, with
no console error; the readout's claims against the page's data; a diverging run drawn up to the edge of (b) and
(c); the four panels at a phone's, a tablet's and a desktop's width, none overlapping another, the controls in
reach; and the guided steps."""
import contextlib
import json
import shutil
import time

import pytest
from conftest import run_script

EPOCHS = 300  # enough for the largest lrs to overflow float32, a second to train
WIDTHS = (390, 900, 1400)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer_browser")
    result = run_script("--explore", "page.html", "--metrics", "m.json", "--epochs", EPOCHS, "-q", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "page.html", json.loads((folder / "m.json").read_text())["explorer"]


def browser(width):
    """Headless Chromium through selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},1200"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


def wait_for(condition, seconds=30):
    """Poll until condition() is true (a page on a busy machine draws late); False if it never is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def opened(page_path, width=1400):
    """The page in headless Chromium, once its script has filled the readout; no console error by the end."""
    driver = browser(width)
    try:
        driver.get(page_path.as_uri())
        assert wait_for(lambda: driver.execute_script("return document.getElementById('readout-loss').textContent")), \
            "the script never filled the readout"
        yield driver
        severe = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        assert not severe, severe
    finally:
        driver.quit()


STEP_ALL = """
// Every setting, every lr, at the first, a middle and the last epoch: each panel's traces as the page would draw
// them, every number checked to lie near its axis's frame (plotly is never handed an overflowing position), and
// the readout at the last epoch. Then a few of those states drawn for real: the first lr, the first past the
// limit and the last, at the three epochs.
const data = JSON.parse(document.getElementById('explorer-data').textContent).explorer, seen = [], far = [];
const lr = document.getElementById('lr-slider'), epoch = document.getElementById('epoch-slider');
const text = (id) => document.getElementById(id).textContent;
function check(where, figure) {
  for (const [panel, [traces, frame]] of Object.entries(figure)) {
    for (const axis of ['x', 'y']) {
      const spec = frame[axis + 'axis'];
      if (!spec.range) continue;
      const [lo, hi] = spec.range, span = hi - lo;
      for (const trace of traces) {
        if (trace.type === 'contour') continue;
        for (const v of trace[axis] || []) {
          if (v === null) continue;
          const u = spec.type === 'log' ? Math.log10(v) : v;
          if (!Number.isFinite(u) || u < lo - 20 * span || u > hi + 20 * span) far.push([where, panel, axis, v]);
        }
      }
    }
  }
}
for (const s of data.settings) {
  window.explorer.choose(s.model, s.inputs, s.optimizer);
  const last = s.recorded_epochs.length - 1;
  for (let r = 0; r < s.lrs.length; r++) {
    for (const k of [0, Math.floor(last / 2), last]) check([s.model, s.inputs, s.optimizer, r, k],
                                                          window.explorer.figures(r, k));
    window.explorer.readout(r, last);
    seen.push({setting: [s.model, s.inputs, s.optimizer], r: r, status: text('readout-status'),
               limit: text('readout-limit'), loss: text('readout-loss')});
  }
  const past = s.lrs.findIndex((v) => v > s.limit);
  for (const r of [0, past < 0 ? 0 : past, s.lrs.length - 1]) {
    for (const k of [0, Math.floor(last / 2), last]) {
      lr.value = r; epoch.value = k; window.explorer.drawRun();
    }
  }
}
return {seen: seen, far: far};
"""


def expected_status_words(setting, r):
    """What the readout must say of run r, from the page's data: the verdict and which side of which limit."""
    lr, above = setting["lrs"][r], setting["lrs"][r] > setting["limit"]
    where = {"exact": "(exact: the Hessian is constant)", "the balanced fit": "at the balanced fit"}
    words = [f"is {'above' if above else 'below'} the limit {setting['limit_formula']} {where[setting['limit_where']]}"]
    epoch = setting["diverged_at_epoch"][r]
    if epoch is not None:
        words.append(f"overflowed float32 at epoch {epoch}")
    elif setting["diverged"][r]:
        words.append("ended above its start")
    elif setting["at_edge"][r]:
        words.append("edge of stability")
    else:
        words.append("did not diverge")
    if setting["diverged"][r] and not above:
        words.append("below the limit: that limit holds where a run settles")
    return lr, words


@pytest.mark.xdist_group("explorer")
def test_every_setting_every_lr_and_play_without_a_console_error(page):
    """Every setting, every lr, at the first, a middle and the last epoch, through the page's own controls; then
    play. The readout at the last epoch says what the data says, for every run; the console stays empty."""
    from selenium.webdriver.common.by import By
    path, data = page
    with opened(path) as driver:
        stepped = driver.execute_script(STEP_ALL)
        assert stepped["far"] == []
        seen = stepped["seen"]
        settings = {(s["model"], s["inputs"], s["optimizer"]): s for s in data["settings"]}
        assert len(seen) == sum(len(s["lrs"]) for s in data["settings"])
        for shown in seen:
            setting, r = settings[tuple(shown["setting"])], shown["r"]
            lr, words = expected_status_words(setting, r)
            text = shown["status"] + " " + shown["limit"]
            assert all(w in text for w in words), (shown["setting"], lr, words, text)
            assert ("diverged" in shown["status"] and "did not diverge" not in shown["status"]) == \
                setting["diverged"][r], text
            last = setting["loss"][r][-1]
            assert shown["loss"] == ("inf/NaN" if last is None else f"{last:.6g}"), shown
        driver.find_element(By.ID, "play").click()
        slider = driver.find_element(By.ID, "epoch-slider")
        assert wait_for(lambda: int(slider.get_attribute("value")) >= 3)
        driver.find_element(By.ID, "play").click()  # pause


@pytest.mark.xdist_group("explorer")
def test_a_diverging_run_is_drawn_up_to_the_edge(page):
    """One step past the limit (params on x, plain SGD): (b) draws its loss up to the top of the axis, with a marker
    there that says at which epoch it overflowed, as the single run counts it; (c) draws its path up to the frame."""
    path, data = page
    setting = data["settings"][0]
    r = next(r for r, lr in enumerate(setting["lrs"]) if lr > setting["limit"])
    with opened(path) as driver:
        drawn = driver.execute_script(f"""
            const lr = document.getElementById('lr-slider'); lr.value = {r}; lr.dispatchEvent(new Event('input'));
            const b = document.getElementById('panel-b'), c = document.getElementById('panel-c');
            const pick = (gd) => gd.data.map((t) => ({{name: t.name, x: Array.from(t.x || []),
                                                       y: Array.from(t.y || []), text: t.text}}));
            return {{b: pick(b), c: pick(c), top: b.layout.yaxis.range[1], box: [c.layout.xaxis.range[1],
                     c.layout.yaxis.range[1]], status: document.getElementById('readout-status').textContent}};""")
    epoch = setting["diverged_at_epoch"][r]
    assert epoch is not None and f"overflowed float32 at epoch {epoch}" in drawn["status"]
    b = {t["name"]: t for t in drawn["b"]}
    mine, edge = b["this run"], b["this run left the axis"]
    assert mine["y"][-1] == pytest.approx(10 ** drawn["top"]) and edge["y"] == [mine["y"][-1]]
    assert edge["text"] == [f"overflowed float32 at epoch {epoch}"]
    assert max(mine["y"]) <= 10 ** drawn["top"] * (1 + 1e-9)
    c = {t["name"]: t for t in drawn["c"] if t["name"]}
    path_x, path_y = c["the path so far"]["x"], c["the path so far"]["y"]
    fx, fy = drawn["box"]
    assert all(abs(v) <= fx * (1 + 1e-9) for v in path_x) and all(abs(v) <= fy * (1 + 1e-9) for v in path_y)
    exit_x, exit_y = c["the path left the frame"]["x"], c["the path left the frame"]["y"]
    assert exit_x == path_x[-1:] and (abs(exit_x[0]) == pytest.approx(fx) or abs(exit_y[0]) == pytest.approx(fy))


LAYOUT = """
const rect = (el) => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
const panels = ['a', 'b', 'c', 'd'].map((n) => document.getElementById('panel-' + n));
const hit = (el) => { const [l, t, r, b] = rect(el); el.scrollIntoView({block: 'center'});
                      const box = el.getBoundingClientRect();
                      const at = document.elementFromPoint((box.left + box.right) / 2, (box.top + box.bottom) / 2);
                      return at === el || el.contains(at); };
return {width: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth,
        panels: panels.map((p) => rect(p)),
        svg: panels.map((p) => p.querySelector('.main-svg').getBoundingClientRect().width),
        controls: ['lr-slider', 'epoch-slider', 'model-select', 'inputs-select', 'optimizer-select', 'play']
                  .map((id) => [id, rect(document.getElementById(id)), hit(document.getElementById(id))])};
"""


def overlap(a, b):
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


@pytest.mark.xdist_group("explorer")
@pytest.mark.parametrize("width", WIDTHS)
def test_the_panels_fit_the_screen_without_overlapping(page, width):
    """At a phone's, a tablet's and a desktop's width, on a params and on a linear setting: no panel overlaps
    another, each plot is as wide as its panel, two columns only on the wide screen, nothing wider than the window,
    and every control inside it and on top (what a tap at its centre reaches)."""
    path, _ = page
    with opened(path, width) as driver:
        for model in ("params", "linear"):
            driver.execute_script(f"window.explorer.choose('{model}', 'x', 'sgd')")
            time.sleep(0.3)  # plotly's resize, on the next frames
            got = driver.execute_script(LAYOUT)
            boxes = got["panels"]
            assert not [(i, j) for i in range(4) for j in range(i + 1, 4) if overlap(boxes[i], boxes[j])], boxes
            for box, svg in zip(boxes, got["svg"]):
                assert svg == pytest.approx(box[2] - box[0], abs=2), (model, box, svg)
            columns = len({round(box[0]) for box in boxes})
            assert columns == (2 if width >= 1000 else 1), boxes
            assert got["scroll"] <= got["width"], got
            for name, box, reached in got["controls"]:
                assert box[0] >= 0 and box[2] <= got["width"] and reached, (name, box, reached)
            if columns == 2:
                assert boxes[1][2] - boxes[0][0] >= 0.95 * got["width"] - 40  # the grid spans the page


@pytest.mark.xdist_group("explorer")
def test_each_guided_step_sets_the_controls_it_names(page):
    """The buttons above the controls: each one chooses its setting, lr and epoch, and says what to look at."""
    from selenium.webdriver.common.by import By
    path, data = page
    with opened(path) as driver:
        buttons = driver.find_elements(By.CSS_SELECTOR, "#steps button")
        labels = [b.text for b in buttons]
        assert labels[:3] == ["1. The blog's run", "2. One step past the limit", "3. Standardized inputs"], labels
        buttons[1].click()
        setting = data["settings"][0]
        past = next(lr for lr in setting["lrs"] if lr > setting["limit"])
        assert driver.find_element(By.ID, "readout-lr").text == f"{past:.6g}"
        assert "overflowed float32" in driver.find_element(By.ID, "readout-status").text
        assert driver.find_element(By.ID, "step-note").text.startswith("Watch (b)")
        buttons[2].click()
        assert driver.find_element(By.ID, "readout-setting").text == "params on z, plain SGD"
        buttons[0].click()  # plays from the first epoch
        slider = driver.find_element(By.ID, "epoch-slider")
        assert wait_for(lambda: int(slider.get_attribute("value")) >= 2)
        driver.find_element(By.ID, "play").click()
