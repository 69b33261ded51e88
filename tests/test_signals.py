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
from conftest import SCRIPT, clean_env


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
