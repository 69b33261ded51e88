"""Ctrl-C, SIGTERM and a standard output that stops taking text, at every stage of a run: no
traceback, and once training has started what was learnt is printed and written."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import SCRIPT, clean_env, prose


def test_output_piped_into_head_is_no_traceback(tmp_path):
    # 5000 epoch lines overflow the pipe after `head` has gone, so the script must meet a broken pipe
    command = f"{sys.executable} {SCRIPT} --model linear --epochs 5000 --log-interval 1 --no-plot | head -n 2"
    result = subprocess.run(command, shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=120)
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr


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


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines_after_cli(line):
    """Whether an `-X importtime` line comes after beyond_the_blog.cli's: main() has run its first line."""
    return line.rstrip().endswith("| beyond_the_blog.cli")


@pytest.mark.parametrize("moment", ["the first import after the handlers", "the 400th, inside torch"])
def test_ctrl_c_while_starting_up_is_quiet(moment, tmp_path):
    # Each moment is a point in the program's order, not a delay: `-X importtime` prints a line as each import
    # ends, and main() installs its handlers first thing, right after beyond_the_blog.cli's line. (Before that,
    # in Python's own start-up, Python itself answers Ctrl-C.) A delay would land elsewhere on a busy machine.
    process = subprocess.Popen([sys.executable, "-X", "importtime", str(SCRIPT), "--model", "params", "--metrics",
                                "m.json"], cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # stdout unread would fill its pipe and block
    wanted = {"the first import after the handlers": 1, "the 400th, inside torch": 400}[moment]
    after_cli = None
    for line in process.stderr:
        if after_cli is not None and line.startswith("import time:"):
            after_cli += 1
            if after_cli == wanted:
                break
        elif lines_after_cli(line):
            after_cli = 0
    assert after_cli, "the run never got past its imports"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-500:]
    assert not (tmp_path / "m.json").exists()  # nothing was computed, so nothing is written


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
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


SWEEP = ("--model", "linear", "--lr-sweep", "5", "--epochs", "6000", "--no-plot", "--metrics", "m.json")


def signalled_at(tmp_path, stage, signum, *args):
    """Run the script with `args`, send `signum` once stderr announces `stage` (the program's own line, written as
    the stage starts), and return (process, stdout, stderr lines after the announcement, the announcement)."""
    process = start(tmp_path, *args)
    for line in process.stderr:
        if line.startswith(f"training {stage}:"):
            process.send_signal(signum)
            break
    else:
        pytest.fail(f"the run never announced {stage}")
    stdout, stderr = process.communicate(timeout=120)
    return process, stdout, stderr.splitlines(), line


@pytest.fixture(scope="module")
def full_sweep(tmp_path_factory):
    """The same sweep, uninterrupted: its metrics and its printed table."""
    folder = tmp_path_factory.mktemp("full_sweep")
    result = subprocess.run([sys.executable, str(SCRIPT), *SWEEP], cwd=folder, env=clean_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "m.json").read_text()), table_rows(result.stdout)


def table_rows(stdout):
    return [line for line in stdout.splitlines() if re.match(r"^ +[\d.e+-]+ +(inf/NaN|[\d.e+-]+)  \w", line)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_in_a_finer_sweep_keeps_the_finished_rows(signum, tmp_path, full_sweep):
    process, stdout, stderr, announced = signalled_at(tmp_path, "finer sweep 1", signum, *SWEEP)
    full, full_table = full_sweep
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum and not any("Traceback" in line for line in stderr)
    said = [line for line in stderr if line.startswith("interrupted")]
    assert len(said) == 1 and said[0].startswith(f"interrupted by {name} in finer sweep 1, after "), stderr
    assert "after training had ended" not in "\n".join(stderr)
    metrics = json.loads((tmp_path / "m.json").read_text())
    sweep = metrics["lr_sweep"]
    assert metrics["stop_reason"] == "interrupted" and metrics["signal"] == name
    assert metrics["interrupted_stage"] == "finer sweep 1" and metrics["epochs_run"] == 6000  # the main lrs finished
    cut = sweep["cut_short"]
    assert cut["partial"] and 1 <= cut["epochs_run"] < 6000
    assert f"after {cut['epochs_run']} epoch" in said[0]
    assert announced.startswith(f"training finer sweep 1: {len(cut['lrs'])} lrs from {cut['lrs'][0]:.4g} to ")
    # an independent check: every row kept is the full run's row for that lr, trained in full
    rows, whole = sweep["all_lrs"], full["lr_sweep"]["all_lrs"]
    assert not rows["partial"] and set(rows["epochs_run"]) == {6000}
    index = {lr: i for i, lr in enumerate(whole["lrs"])}
    assert set(rows["lrs"]) < set(index) and set(cut["lrs"]) <= set(index) - set(rows["lrs"])
    for i, lr in enumerate(rows["lrs"]):
        j = index[lr]
        assert (rows["final_loss"][i], rows["verdicts"][i]) == (whole["final_loss"][j], whole["verdicts"][j]), lr
    assert full["lr_sweep"]["refined"][1]["lrs"] == cut["lrs"]  # the full run's finer sweep 1 finished them
    assert table_rows(stdout) == full_table  # the printed table: the main lrs, finished
    assert "measured limit (provisional: training was interrupted)" in stdout
    assert f"{name} cut finer sweep 1 short after {cut['epochs_run']} of 6000 epochs" in prose(stdout)


def test_a_signal_in_the_pilot_keeps_its_rows_with_the_epochs_they_ran(tmp_path):
    process, stdout, stderr, _ = signalled_at(tmp_path, "the pilot", signal.SIGINT, *SWEEP)
    assert process.returncode == 130 and not any("Traceback" in line for line in stderr)
    metrics = json.loads((tmp_path / "m.json").read_text())
    sweep, ran = metrics["lr_sweep"], metrics["epochs_run"]
    assert metrics["interrupted_stage"] == "the pilot" and 1 <= ran <= 300  # the pilot: a twentieth of 6000
    assert f"5 learning rates from 2e-06 to 0.00215, {ran} of 6000 epochs each (SIGINT cut the pilot short)" \
        in prose(stdout)
    assert sweep["all_lrs"]["partial"] and sweep["all_lrs"]["epochs_run"] == [ran] * 5
    assert f"every row is provisional: SIGINT stopped training after {ran} epoch" in stdout
    for lr, loss in zip(sweep["lrs"], sweep["final_loss"]):  # each row: the blog's loop, written here, run `ran` epochs
        assert loss == blog_loss_after(lr, ran), lr


def blog_loss_after(lr, epochs):
    """The loss of the blog's linear model after `epochs` epochs of torch.optim.SGD at `lr` (None for inf/NaN)."""
    import math

    import torch

    import quadratic_regression as qr
    torch.manual_seed(0)
    x, y = qr.make_data()
    model = qr.LinearProduct()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = torch.nn.functional.mse_loss(model(x), y).item()
    return final if math.isfinite(final) else None
