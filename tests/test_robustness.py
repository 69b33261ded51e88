"""Nothing lost, no traceback: extreme values, output paths, atomic writes, signals, a closed stdout."""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SCRIPT, clean_env, run_script

from beyond_the_blog.output_files import FIGURE_FORMATS

FLOAT32_MAX = float(np.finfo(np.float32).max)

# Values that pass argparse but cannot run sensibly: refused with a reason, before any training.
REFUSED = [
    (["--seed", str(2**64)], "--seed"),
    (["--seed", str(-2**63 - 1)], "--seed"),
    (["--runs", "99999999999999999999"], "memory"),
    (["--runs", "3", "--seed", str(2**64 - 2)], "--runs 3"),
    (["--samples", "2000000000"], "memory"),
    (["--epochs", "9" * 400, "--animate", "a.gif"], "--epochs"),
    (["--x-range", "0", "1e39"], "float32"),
    (["--x-range", "0", "1e10"], "float32"),
    (["--noise", "1e30"], "float32"),
    (["--noise", "1e19", "--animate", "n.gif"], "float32"),
    (["--x-range", "0", "1e-45"], "too nearly dependent"),
    (["--x-range", "0", "1e-20", "--standardize"], "too nearly dependent"),
    (["--x-range", "1000000", "1000001"], "too nearly dependent"),
    (["--x-range", "-inf", "3"], "--x-range"),
    (["--threads", "0"], "--threads"),
    (["--metrics", ""], "empty"),
    (["--plot", ""], "empty"),
    (["--plot", "p.txt"], "cannot write .txt"),
    (["--plot", "o.png", "--metrics", "o.png"], "same file"),
    (["--metrics", "f", "--save-model", "f"], "same file"),
    (["--plot", "g.gif", "--animate", "g.gif"], "same file"),
    (["--plot", "noext", "--metrics", "noext.png"], "same file"),
]


@pytest.mark.parametrize("args,mentions", REFUSED, ids=[" ".join(a)[:40] for a, _ in REFUSED])
def test_values_past_the_parser_are_refused_in_one_line(args, mentions, tmp_path):
    result = run_script(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("quadratic_regression.py: error:") and mentions in lines[0]
    assert not list(tmp_path.iterdir())


def test_figure_formats_are_matplotlibs():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    assert set(FIGURE_FORMATS) == set(FigureCanvasAgg(Figure()).get_supported_filetypes())


def test_pgf_needs_latex(tmp_path):
    result = run_script("--plot", "p.pgf", cwd=tmp_path, env=clean_env(PATH=os.path.dirname(sys.executable)))
    assert result.returncode == 2 and "LaTeX" in result.stderr and not list(tmp_path.iterdir())


def test_read_only_file_and_dangling_link_are_refused(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "old.json").chmod(0o444)
    result = run_script("--metrics", "old.json", cwd=tmp_path)
    assert result.returncode == 2 and "read-only" in result.stderr
    (tmp_path / "link.png").symlink_to(tmp_path / "no" / "such" / "target.png")
    result = run_script("--plot", "link.png", cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr and "a link to" in result.stderr


def test_a_link_is_followed_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link.json").symlink_to(tmp_path / "real" / "m.json")
    result = run_script("--model", "linear", "--epochs", "200", "--no-plot", "--metrics", "link.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real" / "m.json").read_text())["epochs_run"] == 200


def test_the_printed_name_is_the_written_name(tmp_path):
    result = run_script("--model", "linear", "--epochs", "200", "--plot", "noext", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "figure written to noext.png" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["noext.png"]


@pytest.mark.parametrize("args", [["--x-range", "-1e3", "1e3"], ["--x-range", "-1E1", "-.5"], ["--seed", "-5"],
                                  ["--x-range", "-2_0", "1e1"]])
def test_negative_numbers_in_any_notation(args, tmp_path):
    result = run_script("--model", "linear", "--epochs", "50", "--no-plot", "-q", *args, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # -1e3..1e3 diverges at lr 2e-5, and says so
    assert "Traceback" not in result.stderr and "expected" not in result.stderr


def largest_eigenvalue(x_lo=-2.0, x_hi=12.0, n=100):
    x = np.linspace(np.float32(x_lo), np.float32(x_hi), n, dtype=np.float32).astype(np.float64)
    features = np.stack([x**2, x, np.ones_like(x)], axis=1)
    return np.linalg.eigvalsh(2 / n * features.T @ features).max()


@pytest.mark.parametrize("optimizer,lr,factor", [("sgd", "1", 2.0), ("momentum", "1e-3", 3.8)])
def test_divergence_names_its_optimizers_limit_and_keeps_the_outputs(optimizer, lr, factor, tmp_path):
    result = run_script("--optimizer", optimizer, "--lr", lr, "--metrics", "m.json", "--plot", "d.png", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "overflowed float32" in message
    limit = float(re.search(r"stable below lr ([\d.e+-]+)", message)[1])
    assert limit == pytest.approx(factor / largest_eigenvalue(), rel=1e-2)
    metrics = json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert metrics["diverged"] is True and metrics["diverged_at_epoch"] == metrics["epochs_run"]
    import matplotlib.image
    assert matplotlib.image.imread(tmp_path / "d.png").shape[1] >= 1000


@pytest.mark.parametrize("optimizer,lr,says", [("adam", "1e30", "Adam has no such limit"),
                                               ("lbfgs", "1e25", "L-BFGS")])
def test_adam_and_lbfgs_divergence_say_what_is_known(optimizer, lr, says, tmp_path):
    result = run_script("--optimizer", optimizer, "--lr", lr, "--epochs", "30", "--metrics", "m.json", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        assert says in result.stderr and "2/lambda_max" not in result.stderr
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)


def test_replications_name_the_runs_that_diverged(tmp_path):
    result = run_script("--model", "linear", "--runs", "10", "--lr", "1.1e-3", "--epochs", "2000", "-q",
                        "--metrics", "m.json", "--plot", "r.png", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rep = json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)["replications"]
    diverged = rep["diverged_seeds"]
    assert 0 < len(diverged) < 10
    assert f"{len(diverged)} of them diverged" in result.stdout
    assert f"{len(diverged)} of 10 runs diverged (seeds {', '.join(map(str, diverged))})" in result.stderr
    kept = np.array([c for seed, c in zip(rep["seeds"], rep["coefficients"]) if seed not in diverged])
    np.testing.assert_allclose([rep["coefficients_mean"][k] for k in "abc"], kept.mean(axis=0), rtol=1e-9)
    assert not re.search(r"(?<!/)\bnan\b", result.stdout.lower())  # no NaN printed as a number
    assert all(rep["diverged_at_epoch_per_run"][s] > 0 for s in diverged)


def test_too_few_runs_for_a_statistic_say_why(tmp_path):
    result = run_script("--samples", "3", "--runs", "3", "--epochs", "100", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\bnan\b", result.stdout.lower())
    assert "n/a: a standard error needs more than 3 points" in result.stdout


@pytest.mark.parametrize("args,says", [(["--noise", "0", "--standardize"], "exact fit"),
                                       (["--samples", "3", "--epochs", "100"], "least-squares fit is exact here")])
def test_the_gap_to_an_exact_least_squares_fit(args, says, tmp_path):
    result = run_script("--no-plot", "-q", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "the floor no quadratic can beat" in line)
    assert says in line and "%" not in line


def test_wide_numbers_keep_their_columns(tmp_path):
    result = run_script("--samples", "5", "--x-range", "0", "0.001", "--optimizer", "lbfgs", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"  [abc] ", line)]
    assert len(rows) == 3 and all(len(row) >= 7 for row in rows)
    assert all(float(row[2]) and float(row[3]) and float(row[4]) for row in rows)  # each a number of its own


def test_balance_line_says_what_happened_under_lbfgs(tmp_path):
    result = run_script("--model", "linear", "--optimizer", "lbfgs", "--no-plot", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(nearly) conserves" not in result.stdout and "L-BFGS's steps are not gradient steps" in result.stdout
    assert "if their sizes differed by more than 1%, it rescaled them to equal sizes" in result.stdout


def test_a_file_size_limit_leaves_the_old_file_whole(tmp_path):
    (tmp_path / "fit.png").write_bytes(b"the previous figure")
    limit = 30_000  # the metrics (a few kB) fit, the figure (about 60 kB) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, str(SCRIPT), "--model", "linear", "--epochs", "300", "--plot", "fit.png",
                             "--metrics", "m.json"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=120, preexec_fn=small_files)
    assert result.returncode == 74, result.stderr
    assert "could not write --plot fit.png" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "fit.png").read_bytes() == b"the previous figure"
    assert json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.png", "m.json"]  # no temporary file left


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("delay", [0.15, 0.4, 1.0])
def test_ctrl_c_while_starting_up_is_quiet(delay, tmp_path):
    # (in Python's own first ~30 ms, before the script's first line runs, Python itself answers Ctrl-C)
    process = start(tmp_path, "--model", "params", "--metrics", "m.json")
    time.sleep(delay)  # somewhere in the imports or the first epochs
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_during_training_keep_the_outputs_even_when_repeated(signum, status, tmp_path):
    process = start(tmp_path, "--model", "params", "--metrics", "m.json", "--plot", "c.png")
    assert process.stdout.readline().startswith("Epoch[100/500000]")
    for _ in range(3):  # pressed again while the outputs are written
        process.send_signal(signum)
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status and "Traceback" not in stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs_run"] < 500_000
    assert (tmp_path / "c.png").exists()


def test_a_closed_stdout_does_not_stop_the_files(tmp_path):
    command = f"{sys.executable} {SCRIPT} --model linear --epochs 3000 --log-interval 1 --metrics m.json | true"
    result = subprocess.run(command, shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 3000
    assert (tmp_path / "quadratic_regression_linear.png").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_stdout_does_not_stop_the_files(tmp_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, str(SCRIPT), "--model", "linear", "--epochs", "500", "--metrics",
                                 "m.json", "--no-plot"], cwd=tmp_path, env=clean_env(), stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 74 and "Traceback" not in result.stderr
    assert "standard output" in result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 500


@pytest.mark.parametrize("extra,env,threads", [([], {}, 1), (["--threads", "2"], {}, 2),
                                               ([], {"OMP_NUM_THREADS": "2"}, 2)])
def test_torch_threads(extra, env, threads, tmp_path):
    result = run_script("--model", "linear", "--epochs", "10", "--no-plot", "--metrics", "m.json", *extra,
                        cwd=tmp_path, env=clean_env(**env))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["torch_threads"] == threads


def test_a_loss_panel_without_a_finite_loss_draws():
    from matplotlib.figure import Figure

    from beyond_the_blog.plots import draw_losses
    ax = Figure().subplots()
    draw_losses(ax, [("params", [(1, float("inf"))], "tab:blue")], 1.0)
    assert ax.get_yscale() == "linear" and "no finite loss" in ax.texts[0].get_text()
