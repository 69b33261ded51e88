"""A run's files: checked before training (a read-only file, a dangling link, a format matplotlib
cannot write), written under the name printed, through a link, and atomically: a file that cannot
be written leaves the previous one whole, and the others are still written."""
import json
import os
import resource
import subprocess
import sys

from conftest import SCRIPT, clean_env, run_main, run_script

from beyond_the_blog.system.paths import FIGURE_FORMATS


def test_figure_formats_are_matplotlibs():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    assert set(FIGURE_FORMATS) == set(FigureCanvasAgg(Figure()).get_supported_filetypes())


def test_pgf_needs_latex(tmp_path, capsys):
    result = run_main(capsys, "--plot", "p.pgf", cwd=tmp_path, env=clean_env(PATH=os.path.dirname(sys.executable)))
    assert result.returncode == 2 and "LaTeX" in result.stderr and not list(tmp_path.iterdir())


def test_read_only_file_and_dangling_link_are_refused(tmp_path, capsys):
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "old.json").chmod(0o444)
    result = run_main(capsys, "--metrics", "old.json", cwd=tmp_path)
    assert result.returncode == 2 and "read-only" in result.stderr
    (tmp_path / "link.png").symlink_to(tmp_path / "no" / "such" / "target.png")
    result = run_main(capsys, "--plot", "link.png", cwd=tmp_path)
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
