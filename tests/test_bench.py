"""benchmarks/bench.py runs: its quick mode end to end, and its rows for --lr-sweep. (The numbers are
the benchmark's business; here only that it runs and reports what it says.)"""
import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import ROOT, bowl_eigenvalues, seeded_start


def test_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "bench.json"
    tables = tmp_path / "tables.md"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--json", str(out),
                             "--markdown", str(tables)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"faithful", "time_to_fit", "replications", "frames", "startup", "machine", "busy_machine",
            "runs_target"} <= set(report)
    for row in report["runs_target"]:  # --runs R by hand against one run, both models
        assert row["ratio_to_one_run"] == pytest.approx(row["seconds"] / row["single_run_seconds"])
    assert [row["model"] for row in report["runs_target"]] == ["params", "linear"]
    assert "### `--runs 100` against one run" in tables.read_text()
    assert report["faithful"]["identical_losses"] is True
    assert "| " in result.stdout  # markdown tables
    assert "### Faithful path" in tables.read_text() and "| blog's loop (torch.optim.SGD) |" in tables.read_text()


def test_benchmark_rows_for_the_sweep():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.bench_lr_sweep(8, epochs=300, rounds=1)
    assert [r["model"] for r in rows] == ["params", "linear"]
    for r in rows:
        assert r["ratio_to_one_run"] == pytest.approx(r["sweep_seconds"] / r["single_run_seconds"])
        assert r["vectorized_runs"] >= 1 and r["single_run_seconds"] > 0
    x, _, _ = seeded_start("params")
    assert rows[0]["predicted_edge"] == pytest.approx(2 / bowl_eigenvalues(x)[-1])
    table = bench.markdown_lr_sweep(rows)
    assert "### `--lr-sweep` against one run of the same epochs" in table
    assert all(f"| {r['model']} | 8 | 300 |" in table for r in rows)
