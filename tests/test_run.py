"""One run from the command line, start to end: the lines it prints, the figure and the metrics that
agree with the printout, the same output for the same seed, and the options of the printout (-q,
--log-interval, the progress bar on a terminal) and of the machine (--threads)."""
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
import torch
from conftest import SCRIPT, clean_env, lstsq_loss, run_main, run_script, seeded_data

import quadratic_regression as qr

EPOCH_LINE = re.compile(r"Epoch\[(\d+)/(\d+)\], loss:(\d+\.\d{6})")


def printed_coefficients(stdout, label="fitted"):
    line = next(line for line in stdout.splitlines() if line.startswith(f"{label}:"))
    numbers = re.findall(r"[-+]?\s*\d+\.\d+", line.split("=", 1)[1])
    return [float(n.replace(" ", "")) for n in numbers]


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
    assert lines[204].startswith("In short: ")  # the plain lines come right after the blog's own (test_summary.py)
    assert lines[lines.index("", 204) + 2] == "true:   y = x^2 - 12 x + 32"

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
    assert metrics["final_loss"] <= 1.01 * lstsq_loss(*seeded_data())

    import matplotlib.image
    image = matplotlib.image.imread(tmp_path / "quadratic_regression_linear.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # something was drawn

    state = torch.load(tmp_path / "m.pt")
    model = qr.LinearProduct()
    model.load_state_dict(state)
    x, y = seeded_data()
    assert torch.nn.functional.mse_loss(model(x), y).item() == pytest.approx(metrics["final_loss"], rel=1e-6)


def test_params_run_prints_the_blogs_lines_then_the_expansion(tmp_path):
    result = run_script("--model", "params", "--epochs", "2000", "--plot", "p.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [bool(EPOCH_LINE.fullmatch(line)) for line in lines[:20]] == [True] * 20
    assert [line.split(" ", 1)[0] for line in lines[20:23]] == ["a", "b", "c"]
    assert re.fullmatch(r"a tensor\(\[\[-?\d+\.\d{4}\]\]\)", lines[20])
    assert lines[23].startswith("In short: ")
    fitted = lines.index("", 23) + 1
    assert re.fullmatch(r"fitted: y = -?\d+\.\d{4} x\^2 [+-] \d+\.\d{4} x [+-] \d+\.\d{4}", lines[fitted])
    assert lines[fitted + 1] == "true:   y = x^2 - 12 x + 32"
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


def test_log_interval(tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--epochs", "500", "--log-interval", "250", "--no-plot",
                      cwd=tmp_path)
    assert [m[1] for m in EPOCH_LINE.finditer(result.stdout)] == ["250", "500"]
    result = run_main(capsys, "--model", "linear", "--epochs", "500", "--log-interval", "0", "--no-plot", cwd=tmp_path)
    assert "Epoch[" not in result.stdout


def test_no_display_no_window_no_warning(tmp_path):
    """Without DISPLAY the run writes its PNG, warns about nothing and does not wait for a window."""
    env = clean_env()
    assert "DISPLAY" not in env
    result = run_script("--model", "linear", "--epochs", "300", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0
    assert result.stderr == ""
    assert (tmp_path / "quadratic_regression_linear.png").exists()


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


@pytest.mark.parametrize("extra,env,threads", [([], {}, 1), (["--threads", "2"], {}, 2),
                                               ([], {"OMP_NUM_THREADS": "2"}, 2)])
def test_torch_threads(extra, env, threads, tmp_path):
    result = run_script("--model", "linear", "--epochs", "10", "--no-plot", "--metrics", "m.json", *extra,
                        cwd=tmp_path, env=clean_env(**env))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["torch_threads"] == threads
