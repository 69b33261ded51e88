"""benchmarks/bench.py runs: its quick mode end to end, its tables' ratios from their own figures, the machine's
state it writes beside them (against a process that keeps one core busy), and its refusal to write a busy
machine's figures. (The numbers are the benchmark's business; here that it runs and reports what it says.)"""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT, bowl_eigenvalues, seeded_start

BENCH = ROOT / "benchmarks" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def spinner():
    """Another process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def test_benchmark_quick_mode_runs(tmp_path):
    out, tables, figure = tmp_path / "bench.json", tmp_path / "tables.md", tmp_path / "growth.png"
    result = subprocess.run([sys.executable, str(BENCH), "--quick", "--allow-busy", "--json", str(out),
                             "--markdown", str(tables), "--figure", str(figure)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    sections = ["faithful", "time_to_fit", "lbfgs_default", "runs_target", "growth", "whole_process",
                "checked_runs", "frames", "lr_sweep", "startup", "busy_machine"]
    assert set(sections) <= set(report)
    state = report["machine_state"]
    assert set(state["sections"]) == set(sections)
    assert report["busy"] == (state["before"]["busy"] or any(s["busy"] for s in state["sections"].values()))
    assert result.stdout.startswith("BUSY MACHINE") == report["busy"]
    text = tables.read_text()
    assert text.count("_Measured idle: ") + text.count("**Measured on a busy machine**") == len(sections)
    for row in report["runs_target"]:  # --runs R by hand against one run, both models
        assert row["ratio_to_one_run"] == pytest.approx(row["seconds"] / row["single_run_seconds"])
    for row in report["growth"]["rows"]:
        assert row["ratio_to_one_run"] == pytest.approx(row["seconds"] / row["single_run_seconds"])
        assert row["us_per_run_epoch"] == pytest.approx(row["seconds"] / (row["runs"] * row["epochs"]) * 1e6)
        assert row["overhead"] == pytest.approx((row["setup_seconds"] + row["summary_seconds"]) / row["seconds"])
    assert [(r["model"], r["runs"], r["epochs"]) for r in report["growth"]["rows"]] == [
        (m, r, 20 if r == 100 else 50) for m in ("params", "linear") for r in (1, 10, 100)]  # the last: fewer epochs
    whole = report["whole_process"]
    assert whole["ratio_to_one_run"] == pytest.approx(whole["seconds"] / whole["single_run_seconds"])
    checked = report["checked_runs"]
    assert checked["returncode"] == 0 and checked["printed_mean_matches_numpy"] is True
    assert checked["printed_std_matches_numpy"] is True and checked["sample_matches_single_runs"] is True
    assert report["faithful"]["identical_losses"] is True
    assert "### The growth" in text and "### `--runs 100` against one run" in text
    assert "| blog's loop (torch.optim.SGD) |" in text
    import matplotlib.image
    assert matplotlib.image.imread(figure).shape[1] >= 600


def test_the_machine_state_sees_another_process_keep_a_core_busy():
    """Over a second in which this process sleeps and a spinner runs, the others' cores the benchmark measures hold
    at least the spinner's own CPU time (the kernel's account of that child, through os.wait4), and it says busy."""
    bench = load_bench()
    spinning = spinner()
    try:
        time.sleep(0.3)  # the spinner's interpreter has started
        start = bench.counters()
        time.sleep(1.0)
        end = bench.counters()
    finally:
        spinning.kill()
    _, _, usage = os.wait4(spinning.pid, 0)
    state = bench.machine_state(start, end)
    spun = usage.ru_utime + usage.ru_stime  # the spinner's whole life: at most 0.3 s more than the window's share
    assert state["busy"] is True
    assert state["others_cores"] * state["seconds"] >= spun - 0.3 - 0.05  # a tick of /proc/stat is 0.01 s
    assert state["others_cores"] <= os.cpu_count() + 0.05
    assert "**Measured on a busy machine**" in bench.state_line(state)


def test_a_busy_machine_gets_one_line_and_no_files(tmp_path):
    """With a core kept busy before any timing, the benchmark refuses: exit status 3, one line, nothing written."""
    spinning = spinner()
    try:
        result = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "startup", "--json",
                                 str(tmp_path / "b.json"), "--markdown", str(tmp_path / "t.md")],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        spinning.kill()
        spinning.wait()
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "busy" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_benchmark_rows_for_the_sweep():
    bench = load_bench()
    rows = bench.bench_lr_sweep([4, 8], epochs=300, rounds=1)
    assert [(r["model"], r["lrs"]) for r in rows] == [("params", 4), ("params", 8), ("linear", 4), ("linear", 8)]
    for r in rows:
        assert r["ratio_to_one_run"] == pytest.approx(r["sweep_seconds"] / r["single_run_seconds"])
        assert r["vectorized_runs"] >= 1 and r["single_run_seconds"] > 0
    x, _, _ = seeded_start("params")
    assert rows[0]["predicted_edge"] == pytest.approx(2 / bowl_eigenvalues(x)[-1])
    table = bench.markdown_lr_sweep(rows)
    assert "### `--lr-sweep` against one run of the same epochs" in table
    assert all(f"| {r['model']} | {r['lrs']} | 300 |" in table for r in rows)
