"""Regenerate every block of program output, every figure and every quoted number in the docs.

    python docs/generate.py           # everything: the slow runs, the figures, the benchmark (about 20 minutes)
    python docs/generate.py --check   # the fast blocks only, compared with what the files hold (CI runs this)

README.md and docs/*.md carry cog blocks (https://nedbatchelder.com/code/cog): a line
`<!-- [[[cog shell("python quadratic_regression.py --model linear") ]]] -->`, the output, then
`<!-- [[[end]]] -->`. The helpers below are what those lines call. A block marked slow=True (the
500000-epoch run, the figures, the benchmark) is rerun by the full regeneration only; `--check`
keeps its text as it is and reruns the rest.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from beyond_the_blog.system.environment import same_numbers_on_every_processor  # noqa: E402

same_numbers_on_every_processor()  # the in-process blocks below compute as the command line does
FILES = ["README.md", "README.zh-CN.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FAST_ONLY = "DOCS_FAST_ONLY"  # set by --check: slow blocks keep their previous text

_cache = {}


def _cog():
    import cog  # the module cog provides to the code it runs

    return cog


def _run(command, slow):
    """Run a shell command the way a reader would; fast ones in a scratch folder, so nothing lands in the repo."""
    if command in _cache:
        return _cache[command]
    scratch = None
    if slow:
        cwd = ROOT
    else:
        scratch = tempfile.mkdtemp()
        for name in ("quadratic_regression.py", "benchmarks", "reference"):
            os.symlink(ROOT / name, Path(scratch) / name)
        cwd = scratch
    env = dict(os.environ, COLUMNS="100", PYTHONIOENCODING="utf-8", MPLBACKEND="Agg")
    env.pop(FAST_ONLY, None)
    try:
        result = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    finally:
        if scratch:
            shutil.rmtree(scratch)
    _cache[command] = result
    return result


def _keep_previous(slow):
    if slow and os.environ.get(FAST_ONLY):
        _cog().out(_cog().previous)
        return True
    return False


def shell(command, *, slow=False, head=None, tail=None, grep=None, epochs=None, stderr=False, status=None):
    """A fenced block: `$ command` and what it printed. head/tail keep the first/last lines with "..." between;
    grep keeps the lines holding one of its strings; epochs=(first, last) keeps that many of the blog's
    `Epoch[...]` lines; status is the exit status the command must end with."""
    if _keep_previous(slow):
        return
    result = _run(command, slow)
    expected = 0 if status is None else status
    if result.returncode != expected:
        raise SystemExit(f"{command!r} exited {result.returncode}, not {expected}:\n{result.stderr[-2000:]}")
    text = result.stderr if stderr else result.stdout
    groups = logical_lines(text.rstrip("\n").splitlines())
    if grep is not None:
        groups = [group for group in groups if any(g in line for line in group for g in grep)]
    lines = [line for group in groups for line in group]
    if epochs is not None:
        lines = elide_epoch_lines(lines, *epochs)
    if head is not None or tail is not None:
        first, last = head or 0, tail or 0
        if first + last < len(groups):
            kept = groups[:first] + [["..."]] + (groups[len(groups) - last:] if last else [])
            lines = [line for group in kept for line in group]
    shown = f"$ {command}" + (f"   # exit status {result.returncode}" if status else "")
    _cog().out("```text\n" + shown + "\n" + "\n".join(lines) + "\n```\n")


WIDTH = 100  # the program's prose width (report/text.py), with COLUMNS=100 as _run sets it


def logical_lines(lines):
    """The printed lines grouped into sentences as the program wrote them, so a filter keeps or drops a whole one.
    A line joins the one before when the program's wrapping put it there (indented two more spaces than its
    sentence's first line, and its first word did not fit on the line above), or when the line above ends its
    clause with ',' or ';' and this one starts where the sentence did."""
    groups = []
    for line in lines:
        if groups and continues(groups[-1], line):
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def continues(group, line):
    def indent(text):
        return len(text) - len(text.lstrip())
    if not line.strip() or not group[0].strip():
        return False
    above, words = group[-1], line.split()
    wrapped = indent(line) == indent(group[0]) + 2 and len(above) + 1 + len(words[0]) > WIDTH
    clause_goes_on = above.rstrip().endswith((",", ";")) and indent(line) == indent(group[0])
    return wrapped or clause_goes_on


def elide_epoch_lines(lines, first, last):
    where = [i for i, line in enumerate(lines) if line.startswith("Epoch[")]
    if len(where) <= first + last:
        return lines
    cut = set(where[first:len(where) - last])
    kept = [line for i, line in enumerate(lines) if i not in cut]
    kept.insert(where[first], "...")
    return kept


def figure(command, path, alt):
    """Run the command that draws `path` (always slow: figures are regenerated in full only), then link it."""
    if _keep_previous(True):
        return
    result = _run(command, slow=True)
    if result.returncode not in (0, 1):  # 1: a run that diverged on purpose still draws its figure
        raise SystemExit(f"{command!r} exited {result.returncode}:\n{result.stderr[-2000:]}")
    _cog().out(f"`{command}`\n\n![{alt}]({path})\n")


def metrics(arguments, *, slow=False):
    """The metrics JSON of `python quadratic_regression.py ARGUMENTS`, for numbers quoted in prose and tables."""
    key = ("metrics", arguments)
    if key not in _cache:
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "m.json"
            result = _run(f"python quadratic_regression.py {arguments} -q --no-plot --metrics {target}", slow)
            if result.returncode not in (0, 1):
                raise SystemExit(f"{arguments!r} exited {result.returncode}:\n{result.stderr[-2000:]}")
            _cache[key] = json.loads(target.read_text())
    return _cache[key]


def text(build, *, slow=False):
    """Prose or a table built from the program's numbers: build() returns the markdown."""
    if _keep_previous(slow):
        return
    _cog().out(build().rstrip("\n") + "\n")


def blog_table():
    """The post's printed numbers (reference/blog_output.py) beside this program's, from the README's two runs."""
    import re

    from beyond_the_blog.report.text import format_quadratic
    from reference.blog_output import BLOG
    rows = ["| | the post (no seed) | this run (seed 0) |", "|---|---|---|"]
    for name in ("params", "linear"):
        printed = _run(f"python quadratic_regression.py --model {name}", slow=name == "params").stdout
        losses = re.findall(r"^Epoch\[\d+/\d+\], loss:([\d.]+)$", printed, flags=re.M)
        fitted = re.search(r"^fitted: y = (.*)$", printed, flags=re.M)[1]
        p = BLOG[name]["parameters"]
        a, b, c = ((p["a"], p["b"], p["c"]) if name == "params" else
                   (p["linear1.weight"] * p["linear2.weight"],
                    p["linear1.weight"] * p["linear2.bias"] + p["linear2.weight"] * p["linear1.bias"],
                    p["linear1.bias"] * p["linear2.bias"]))
        rows += [f"| `{name}`: first logged loss | {BLOG[name]['first losses'][0]:.6f} | {losses[0]} |",
                 f"| `{name}`: last logged loss | {BLOG[name]['last loss']:.6f} | {losses[-1]} |",
                 f"| `{name}`: fitted y | {format_quadratic((a, b, c))} | {fitted} |"]
    return "\n".join(rows)


def bowl_table():
    """The bowl on x and on z: eigenvalues, condition number, stable lr and the epochs a 1000-fold reduction takes."""
    rows = ["| inputs | eigenvalues of H | condition number | largest stable lr | epochs for 1000× at the default lr |",
            "|---|---|---:|---:|---:|"]
    for label, options in (("x (the blog's)", ""), ("z (`--standardize`)", " --standardize")):
        run = metrics(f"--model params --epochs 1{options}")
        d = run["diagnosis"]
        eigenvalues = ", ".join(f"{v:.4g}" for v in sorted(d["eigenvalues"], reverse=True))
        rows.append(f"| {label} | {eigenvalues} | {d['condition_number']:.3g} | {d['max_stable_lr']:.2g} "
                    f"| {d['epochs_to_converge']:.0f} (lr {run['lr']:g}) |")
    return "\n".join(rows)


def explorer_data(path="docs/explorer.html"):
    """The runs embedded in an explorer page: the same JSON that --metrics writes beside it."""
    import re
    html = (ROOT / path).read_text(encoding="utf-8")
    return json.loads(re.search(r'id="explorer-data">(.*?)</script>', html, re.S)[1])["explorer"]


def explorer_table(path="docs/explorer.html"):
    """Per setting of the committed page: its limit, the default lr's run, and the smallest lr that diverged."""
    data = explorer_data(path)
    floor = data["least_squares"]["loss"]
    rows = ["| setting | epochs | predicted limit | default lr | its last loss | first record within 1% of "
            "least squares | smallest lr that diverged | at epoch |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in data["settings"]:
        r = s["lrs"].index(s["default_lr"])
        within = next((e for e, v in zip(s["recorded_epochs"], s["loss"][r]) if v is not None and v <= 1.01 * floor),
                      None)
        diverged = [(lr, "ended above its start" if k is None else k)  # no epoch: it rose without overflowing
                    for lr, k, gone in zip(s["lrs"], s["diverged_at_epoch"], s["diverged"]) if gone]
        smallest = f"{min(diverged)[0]:.3g} | {min(diverged)[1]}" if diverged else "none |"
        where = {"exact": "", "the balanced fit": " at the balanced fit",
                 "the start": " at the start"}[s["limit_where"]]
        rows.append(f"| {s['model']} on {s['inputs']}, {s['optimizer']} | {s['epochs']} "
                    f"| {s['limit_formula']} = {s['limit']:.3g}{where} | {s['default_lr']:g} | {s['loss'][r][-1]:.6g} "
                    f"| {within if within is not None else 'not reached'} | {smallest} |")
    return "\n".join(rows)


def explorer_cost(path="docs/explorer.html"):
    """The page's size and training time (a ratio to a single run would need both timed in one run: see speed.md)."""
    import plotly
    data = explorer_data(path)
    total = sum(s["train_seconds"] for s in data["settings"])
    runs = sum(len(s["lrs"]) for s in data["settings"])
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return (f"The page in this folder trained its {runs} runs in {total:.1f} s, all eight settings together.\n"
            f"The page is {(ROOT / path).stat().st_size / 2**20:.1f} MB; plotly.js is "
            f"{plotly_js.stat().st_size / 2**20:.1f} MB of it.\n")


def explorer_product(path="docs/explorer.html"):
    """What the product's runs did around the limit at the balanced fit and the limit at their start."""
    data = explorer_data(path)
    lines = []
    for s in data["settings"]:
        if s["model"] != "linear":
            continue
        runs = list(zip(s["lrs"], s["diverged"], s["at_edge"]))
        below_start = sum(lr < s["start_limit"] and gone for lr, gone, _ in runs)
        below = sum(lr < s["limit"] and gone for lr, gone, _ in runs)
        edge = sum(lr > s["limit"] and at for lr, _, at in runs)
        lines.append(f"| {s['inputs']}, {s['optimizer']} | {s['limit']:.3g} | {below} | {s['start_limit']:.3g} "
                     f"| {below_start} | {edge} |")
    return ("| the product on | limit at the balanced fit | runs below it that diverged | limit at the start "
            "| runs below it that diverged | runs above the balanced one at the edge |\n"
            "|---|---:|---:|---:|---:|---:|\n" + "\n".join(lines) + "\n")


def package_map():
    """The package's layers, bottom first, each module with the first line of its docstring: read from the code."""
    import ast

    from beyond_the_blog import LAYERS
    package = ROOT / "beyond_the_blog"
    rows = ["| layer | module | what it holds |", "|---|---|---|"]
    for layer in LAYERS:
        paths = [package / f"{layer}.py"] if (package / f"{layer}.py").exists() else sorted(
            p for p in (package / layer).glob("*.py") if p.name != "__init__.py")
        for path in paths:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            link = path.relative_to(ROOT).as_posix()
            rows.append(f"| {layer} | [`{path.relative_to(package).as_posix()}`](../{link}) | {first} |")
    return "\n".join(rows)


def metrics_keys(arguments):
    """The top-level keys of a run's metrics, each with the type of its value."""
    run = metrics(arguments)
    kinds = {dict: "object", list: "list", str: "text", bool: "true/false", int: "number", float: "number",
             type(None): "null"}
    return "\n".join(f"* `{key}`: {kinds[type(value)]}" for key, value in run.items())


def ended(run):
    """How a run that did not diverge ended: all its epochs, or the stop rule that fired."""
    return f"all {run['epochs_run']} epochs" if run["stop_reason"] == "epochs" else run["stop_reason"]


def edge_table(lrs, *, slow=True):
    """For `--model linear` at each lr: how the run ended, the end point's largest curvature and its 2/lambda_max,
    and the final balance. A run that diverged has no end point to measure."""
    if _keep_previous(slow):
        return
    rows = ["| lr | ended | λmax at the end | 2/λmax at the end | balance at the end |", "|---:|---|---:|---:|---:|"]
    for lr in lrs:
        run = metrics(f"--model linear --lr {lr}", slow=slow)
        if run["diverged"]:
            rows.append(f"| {lr:g} | diverged at epoch {run['diverged_at_epoch']} | | | |")
            continue
        top = max(run["diagnosis"]["eigenvalues"])
        rows.append(f"| {lr:g} | {ended(run)}, loss {run['final_loss']:.6f} | {top:.4g} | {2 / top:.4g} "
                    f"| {run['diagnosis']['balance_end']:.3g} |")
    _cog().out("\n".join(rows) + "\n")


def lbfgs_rescaling(seeds, *, slow=True):
    """`--model linear --optimizer lbfgs` on raw x for each seed, with the product rescaled before each epoch (the
    program's way) and without: the seeds where either misses least squares by more than 0.01, with layer sizes.
    Slow: a stall of the unrescaled run hangs on float32 rounding, which may differ on another CPU."""
    if _keep_previous(slow):
        return
    import dataclasses

    import numpy as np
    import torch

    import quadratic_regression as qr
    from beyond_the_blog.models import MODELS, default_epochs
    from beyond_the_blog.training.fit import FitConfig, fit
    config = FitConfig(model_name="linear", optimizer="lbfgs", lr=1.0, epochs=default_epochs("lbfgs", "linear", False))
    rows, misses, product = [], {"rescaled": 0, "left alone": 0}, MODELS["linear"]
    for seed in seeds:
        torch.manual_seed(seed)  # as `--seed SEED` draws the data, then the model
        x, y = qr.make_data()
        after_data = torch.get_rng_state()
        best = np.polyfit(x.numpy().ravel(), y.numpy().ravel(), 2)
        ends = {}
        for way, entry in (("rescaled", product), ("left alone", dataclasses.replace(product, rebalance=None))):
            torch.set_rng_state(after_data)
            MODELS["linear"] = entry  # fit() takes the rescaling from the model's entry
            try:
                result = fit(entry.build(), x, y, config)
            finally:
                MODELS["linear"] = product
            p = {k: v.double() for k, v in result.parameters.items()}
            sizes = (float(torch.hypot(p["linear1.weight"], p["linear1.bias"]).squeeze()),
                     float(torch.hypot(p["linear2.weight"], p["linear2.bias"]).squeeze()))
            ends[way] = (np.abs(result.coefficients[0].double().numpy() - best).max(), sizes)
            misses[way] += bool(ends[way][0] > 0.01)
        if any(error > 0.01 for error, _ in ends.values()):
            cells = (f"{e:.3g} | {a:.2g}, {b:.2g}" for e, (a, b) in ends.values())
            rows.append(f"| {seed} | " + " | ".join(cells) + " |")
    table = ["| seed | rescaled: worst coefficient error | layer sizes | left alone: worst error | layer sizes |",
             "|---:|---:|---|---:|---|"] + rows
    said = (f"Of seeds {seeds[0]} to {seeds[-1]}, {misses['left alone']} missed least squares by more than 0.01 "
            f"left alone and {misses['rescaled']} rescaled; the table lists them.")
    _cog().out(said + "\n\n" + "\n".join(table) + "\n")


def bench_results():
    """The benchmark's numbers behind docs/speed-tables.md, from the same run (docs/bench-results.json)."""
    return json.loads((ROOT / "docs" / "bench-results.json").read_text())


def measured_as(results):
    """How the machine was while the benchmark timed: what a page says beside a figure it quotes."""
    busy = results.get("busy")
    return {False: "measured idle", True: "measured on a busy machine"}.get(busy, "machine state not recorded")


def default_run_time():
    """The README's sentence on the default run's time: the benchmark's "CLI default" row of the params model."""
    results = bench_results()
    row = next(r for r in results["time_to_fit"] if (r["model"], r["optimizer"], r["standardize"]) == (
        "params", "sgd", False))["cli_default"]
    return (f"The default run trains the blog's `params` model for {row['epochs_run']} epochs: "
            f"{row['seconds']:.0f} s of training on one core ({measured_as(results)}, [Speed](docs/speed.md)).\n")


def main(argv=None):
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    env = dict(os.environ)
    if check:
        env[FAST_ONLY] = "1"
    else:  # the benchmark refuses a busy machine (exit status 3) before it writes anything: then so does this
        bench = subprocess.run([sys.executable, "benchmarks/bench.py", "--markdown", "docs/speed-tables.md",
                                "--json", "docs/bench-results.json", "--figure", "docs/growth.png"], cwd=ROOT)
        if bench.returncode:
            return bench.returncode
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench import counters, machine_state
        start = counters()
    command = [sys.executable, "-m", "cogapp", "-I", str(ROOT / "docs"), "-p", "from generate import *"]
    command += ["--check", "--check-fail-msg", "run: python docs/generate.py"] if check else ["-r"]
    status = subprocess.run(command + FILES, cwd=ROOT, env=env).returncode
    if not check and machine_state(start, counters())["busy"]:  # the blocks' printed times are not idle figures
        print("generate.py: the machine became busy while the blocks ran; their time figures are not idle ones "
              "(git checkout the pages and run again)", file=sys.stderr)
        return status or 3
    return status


if __name__ == "__main__":
    sys.exit(main())
