"""The command line end to end, in a subprocess, as a user runs it."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
import torch
from conftest import SCRIPT, clean_env, run_script

import quadratic_regression as qr

EPOCH_LINE = re.compile(r"Epoch\[(\d+)/(\d+)\], loss:(\d+\.\d{6})")


def blog_data(seed=0):
    torch.manual_seed(seed)
    return qr.make_data()


def lstsq_loss(x, y):
    """The best possible MSE of any quadratic on (x, y): an independent torch.linalg.lstsq."""
    x, y = x.double(), y.double()
    design = torch.cat([x**2, x, torch.ones_like(x)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution
    return ((design @ solution - y) ** 2).mean().item()


def printed_coefficients(stdout, label="fitted"):
    line = next(line for line in stdout.splitlines() if line.startswith(f"{label}:"))
    numbers = re.findall(r"[-+]?\s*\d+\.\d+", line.split("=", 1)[1])
    return [float(n.replace(" ", "")) for n in numbers]


@pytest.mark.slow
@pytest.mark.xdist_group("default_both")  # one worker runs the shared one-minute fixture
def test_default_fits_reach_the_least_squares_loss(default_both):
    """Both models at the blog's settings end within 1% of the best possible loss."""
    folder, result = default_both
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "m.json").read_text())
    floor = lstsq_loss(*blog_data())
    for name, epochs in (("params", 500_000), ("linear", 20_000)):
        assert metrics[name]["epochs_run"] == epochs
        assert metrics[name]["final_loss"] <= 1.01 * floor
    assert metrics["params"]["least_squares"]["loss"] == pytest.approx(floor, rel=1e-9)


def test_linear_run_end_to_end(tmp_path):
    """Line formats, the PNG, and metrics that agree with what was printed."""
    result = run_script("--model", "linear", "--metrics", "m.json", "--save-model", "m.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings on a machine without a display
    lines = result.stdout.splitlines()
    epochs = [EPOCH_LINE.fullmatch(line) for line in lines if line.startswith("Epoch")]
    assert all(epochs) and [int(m[1]) for m in epochs] == list(range(100, 20_001, 100))
    assert all(m[2] == "20000" for m in epochs)
    names = [line.split(" ", 1)[0] for line in lines[200:204]]
    assert names == ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
    assert re.fullmatch(r"linear1\.weight tensor\(\[\[-?\d+\.\d{4}\]\]\)", lines[200])
    assert lines[205] == "true:   y = x^2 - 12 x + 32"

    metrics = json.loads((tmp_path / "m.json").read_text())
    for key in ("model", "seed", "lr", "epochs", "epochs_run", "final_loss", "parameters", "coefficients",
                "train_seconds", "diverged", "interrupted"):
        assert key in metrics
    assert (metrics["model"], metrics["seed"], metrics["lr"], metrics["epochs"]) == ("linear", 0, 2e-5, 20_000)
    assert metrics["diverged"] is False and metrics["interrupted"] is False
    printed = printed_coefficients(result.stdout)
    assert printed == [round(metrics["coefficients"][k], 4) for k in "abc"]
    assert float(epochs[-1][3]) == pytest.approx(metrics["loss_history"][-1][1], abs=5e-7)
    assert f"final loss {metrics['final_loss']:.6f}" in result.stdout
    for name, value in metrics["parameters"].items():
        assert f"{name} tensor(" in result.stdout
        w = torch.tensor(value)
        assert w.shape == (1, 1) if name.endswith("weight") else w.shape == (1,)
    # the expanded coefficients are w1 w2, w1 b2 + w2 b1, b1 b2 of the printed parameters
    p = {k: torch.tensor(v).reshape(()).item() for k, v in metrics["parameters"].items()}
    w1, b1, w2, b2 = p["linear1.weight"], p["linear1.bias"], p["linear2.weight"], p["linear2.bias"]
    assert metrics["coefficients"]["a"] == pytest.approx(w1 * w2, rel=1e-6)
    assert metrics["coefficients"]["b"] == pytest.approx(w1 * b2 + w2 * b1, rel=1e-5)
    assert metrics["final_loss"] <= 1.01 * lstsq_loss(*blog_data())

    import matplotlib.image
    image = matplotlib.image.imread(tmp_path / "quadratic_regression_linear.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # something was drawn

    state = torch.load(tmp_path / "m.pt")
    model = qr.LinearProduct()
    model.load_state_dict(state)
    x, y = blog_data()
    assert torch.nn.functional.mse_loss(model(x), y).item() == pytest.approx(metrics["final_loss"], rel=1e-6)


def test_params_run_prints_the_blogs_lines_then_the_expansion(tmp_path):
    result = run_script("--model", "params", "--epochs", "2000", "--plot", "p.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [bool(EPOCH_LINE.fullmatch(line)) for line in lines[:20]] == [True] * 20
    assert [line.split(" ", 1)[0] for line in lines[20:23]] == ["a", "b", "c"]
    assert re.fullmatch(r"a tensor\(\[\[-?\d+\.\d{4}\]\]\)", lines[20])
    assert re.fullmatch(r"fitted: y = -?\d+\.\d{4} x\^2 [+-] \d+\.\d{4} x [+-] \d+\.\d{4}", lines[23])
    assert lines[24] == "true:   y = x^2 - 12 x + 32"
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_same_seed_same_output(tmp_path):
    runs = [run_script("--model", "linear", "--epochs", "3000", "--seed", "5", "--metrics", f"m{i}.json", "--no-plot",
                       cwd=tmp_path)
            for i in range(2)]
    assert runs[0].stdout.replace("m0.json", "") == runs[1].stdout.replace("m1.json", "")
    metrics = [json.loads((tmp_path / f"m{i}.json").read_text()) for i in range(2)]
    for m in metrics:
        m.pop("train_seconds")
    assert metrics[0] == metrics[1]
    other = run_script("--model", "linear", "--epochs", "3000", "--seed", "6", "--no-plot", cwd=tmp_path)
    assert other.stdout != runs[0].stdout.replace("metrics written to m0.json\n", "")


def test_quiet_has_no_epoch_lines(tmp_path):
    result = run_script("--model", "linear", "--epochs", "500", "-q", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0
    assert "Epoch[" not in result.stdout and "linear1.weight tensor" in result.stdout


def test_output_piped_into_head_is_no_traceback(tmp_path):
    # 5000 epoch lines overflow the pipe after `head` has gone, so the script must meet a broken pipe
    command = f"{sys.executable} {SCRIPT} --model linear --epochs 5000 --log-interval 1 --no-plot | head -n 2"
    result = subprocess.run(command, shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr


def test_log_interval(tmp_path):
    result = run_script("--model", "linear", "--epochs", "500", "--log-interval", "250", "--no-plot", cwd=tmp_path)
    assert [m[1] for m in EPOCH_LINE.finditer(result.stdout)] == ["250", "500"]
    result = run_script("--model", "linear", "--epochs", "500", "--log-interval", "0", "--no-plot", cwd=tmp_path)
    assert "Epoch[" not in result.stdout


def test_no_display_no_window_no_warning(tmp_path):
    """Without DISPLAY the run writes its PNG, warns about nothing and does not wait for a window."""
    env = clean_env()
    assert "DISPLAY" not in env
    result = run_script("--model", "linear", "--epochs", "300", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0
    assert result.stderr == ""
    assert (tmp_path / "quadratic_regression_linear.png").exists()


BAD_INPUTS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--samples", "2"], "--samples"),
    (["--noise", "-1"], "--noise"),
    (["--noise", "nan"], "--noise"),
    (["--x-range", "5", "5"], "--x-range"),
    (["--x-range", "12", "-2"], "--x-range"),
    (["--log-interval", "-1"], "--log-interval"),
    (["--model", "cubic"], "--model"),
    (["--plot", "no/such/folder/fit.png"], "does not exist"),
    (["--metrics", "no/such/folder/m.json"], "does not exist"),
    (["--save-model", "no/such/folder/m.pt"], "does not exist"),
    (["--metrics", "/sys/m.json"], "not writable"),
    (["--plot", "."], "is a folder"),
    (["--runs", "0"], "--runs"),
    (["--tol", "-1"], "--tol"),
    (["--runs", "3", "--optimizer", "lbfgs"], "lbfgs"),
    (["--animate", "fit.png"], ".gif"),
    (["--optimizer", "rmsprop"], "--optimizer"),
]


@pytest.mark.parametrize("args,mentions", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_error(args, mentions, tmp_path):
    result = run_script(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quadratic_regression.py: error:") and mentions in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_device_is_refused_before_training(tmp_path):
    result = run_script("--device", "cuda", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == ("quadratic_regression.py: error: --device cuda: not available on this machine "
                                     "(see --help)")


def test_errors_and_help_come_before_torch_is_imported(tmp_path):
    """--help and argument mistakes must not wait for `import torch`: with an importable `torch`
    that fails on purpose, they still answer."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    env = clean_env(PYTHONPATH=str(fake))
    help_ = run_script("--help", cwd=tmp_path, env=env)
    assert help_.returncode == 0 and "--model {params,linear,both}" in help_.stdout
    for option in ("--epochs", "--lr", "--seed", "--log-interval", "--save-model", "--optimizer", "--standardize",
                   "--tol", "--runs", "--animate", "--metrics", "--device", "--x-range", "--no-show", "--quiet"):
        assert option in help_.stdout
    error = run_script("--lr", "-1", cwd=tmp_path, env=env)
    assert error.returncode == 2 and "torch was imported" not in error.stderr
    valid = run_script("--epochs", "1", cwd=tmp_path, env=env)
    assert "torch was imported" in valid.stderr  # the fake really is what `import torch` finds


def test_divergence_stops_at_once_and_names_a_stable_lr(tmp_path):
    result = run_script("--model", "params", "--lr", "1", "--metrics", "m.json", "--plot", "d.png", cwd=tmp_path)
    assert result.returncode == 1
    assert "nan" not in result.stdout.lower().replace("tensor", "")
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    match = re.search(r"diverged at epoch (\d+).*stable below lr ([\d.e+-]+)", message)
    assert match, message
    x, _ = blog_data()
    features = np.hstack([x.double().numpy() ** 2, x.double().numpy(), np.ones((100, 1))])
    largest = np.linalg.eigvalsh(2 / 100 * features.T @ features).max()
    assert float(match[2]) == pytest.approx(2 / largest, rel=1e-2)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["diverged"] is True and metrics["diverged_at_epoch"] == int(match[1]) < 50
    assert metrics["epochs_run"] == int(match[1])
    assert (tmp_path / "d.png").exists()


def test_ctrl_c_keeps_what_was_learnt(tmp_path):
    command = [sys.executable, str(SCRIPT), "--model", "params", "--metrics", "m.json", "--plot", "c.png"]
    process = subprocess.Popen(command,
                               cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # training has started once the first epoch line is out
    assert first.startswith("Epoch[100/500000]")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "interrupted after" in stderr
    assert re.search(r"^a tensor\(\[\[", stdout, re.M) and "fitted: y =" in stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["interrupted"] is True and 100 <= metrics["epochs_run"] < 500_000
    assert (tmp_path / "c.png").exists()


def test_progress_bar_on_a_terminal_keeps_lines_whole(tmp_path):
    """On a terminal a tqdm bar shows rate and ETA; the epoch lines still come out whole."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--model", "linear", "--epochs", "20000", "--no-plot"],
                               cwd=tmp_path, env=clean_env(), stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    os.close(leader)
    text = output.decode()
    assert process.returncode == 0
    assert "epoch/s" in text and "<" in text  # rate and ETA of the bar
    pieces = [p for line in text.replace("\r\n", "\n").split("\n") for p in line.split("\r")]
    whole = [p.strip() for p in pieces if p.strip().startswith("Epoch[")]
    assert len(whole) == 200
    assert all(EPOCH_LINE.fullmatch(p.replace("\x1b[A", "").strip()) for p in whole)
