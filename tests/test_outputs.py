"""A run's files: checked before training (a read-only file, a dangling link, a format matplotlib
cannot write), written under the name printed, through a link, and atomically: a file that cannot
be written leaves the previous one whole, and the others are still written."""
import json
import os
import resource
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_the_printed_name_is_the_written_name(tmp_path, capsys):
    result = run_main(capsys, "--model", "linear", "--epochs", "200", "--plot", "noext", cwd=tmp_path)
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


# ----------------------------------------------------------------------------- every kind of object, every option
SHORT = ("--model", "linear", "--epochs", "50", "-q", "--no-show")
OPTIONS = ("--plot", "--landscape", "--metrics", "--save-model", "--animate")


def made(kind, path):
    """A `kind` of object at `path`, as a user's machine may hold one; skipped where this process may not make it."""
    if kind == "folder":
        path.mkdir()
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return server
    elif kind == "block device":
        try:  # a device number no driver has: nothing can be written to it, even by mistake
            os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(259, 999_999))
        except OSError as error:
            pytest.skip(f"no block device can be made here: {error.strerror}")
    return None


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("kind", ["block device", "socket", "folder"])
def test_what_is_not_a_file_is_refused_by_every_option_and_gets_nothing_beside_it(capsys, tmp_path, kind, option):
    name = "out.gif" if option == "--animate" else "out"  # no extension: a figure would have become out.png
    server = made(kind, tmp_path / name)
    try:
        result = run_main(capsys, *SHORT, option, name, cwd=tmp_path)
    finally:
        if server is not None:
            server.close()
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{option} {name}: is a" in result.stderr and kind in result.stderr, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("option", OPTIONS)
def test_a_link_to_a_device_is_written_into_by_every_option(capsys, tmp_path, option):
    name = "null.gif" if option == "--animate" else "null"
    (tmp_path / name).symlink_to(os.devnull)
    result = run_main(capsys, *SHORT, "--epochs", 5, "--no-plot" if option != "--plot" else "-q", option, name,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f" {name}" in result.stdout and [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).is_symlink() and stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("path", ["out/", "gone/..", "gone/.", "fig.png/"])
@pytest.mark.parametrize("option", ["--plot", "--metrics"])
def test_a_path_that_names_a_folder_is_refused(capsys, tmp_path, path, option):
    result = run_main(capsys, *SHORT, option, path, cwd=tmp_path)  # "out/" once became out/.png, a hidden file in out
    assert result.returncode == 2 and f"{option} {path}: names a folder" in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())


def test_a_long_file_name_is_written_under_that_name(capsys, tmp_path):
    name = "m" * 250 + ".json"  # 255 bytes, the most a name may have: its temporary name once could not be made
    result = run_main(capsys, *SHORT, "--no-plot", "--metrics", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert json.loads((tmp_path / name).read_text())["epochs_run"] == 50


ODD_NAMES = {"newline": "a\nb", "tab": "a\tb", "not UTF-8": os.fsdecode(b"a\xffb")}


@pytest.mark.parametrize("odd", ODD_NAMES)
def test_an_error_naming_an_odd_path_stays_one_line(capsys, tmp_path, odd):
    folder = ODD_NAMES[odd]
    refused = run_main(capsys, *SHORT, "--metrics", f"{folder}/m.json", cwd=tmp_path)  # the folder does not exist
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert repr(f"{folder}/m.json").strip("'") in refused.stderr.replace("\\xff", "\\udcff")  # quoted, escaped
    fifo = tmp_path / f"{folder}.json"
    os.mkfifo(fifo)  # nobody reads it: the write fails after training, and says so
    failed = run_main(capsys, *SHORT, "--no-plot", "--metrics", fifo.name, cwd=tmp_path)
    assert failed.returncode == 74 and len(failed.stderr.splitlines()) == 1, failed.stderr


@pytest.fixture
def bind_mounted(tmp_path):
    """mount --bind: (the file mounted, the name it is mounted on); skipped where this process may not mount."""
    source, mounted = tmp_path / "source", tmp_path / "out" / "result"  # no extension: a figure keeps the name
    mounted.parent.mkdir()
    source.write_text("the previous file")
    mounted.write_text("")
    done = subprocess.run(["mount", "--bind", str(source), str(mounted)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {done.stderr.strip()}")
    try:
        yield source, mounted
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def test_a_bind_mounted_file_is_written_into_by_every_option(capsys, bind_mounted):
    source, mounted = bind_mounted  # a rename cannot replace a mount point: "Device or resource busy" after training
    for option, starts in (("--metrics", b"{"), ("--save-model", b"PK"), ("--plot", b"\x89PNG\r\n\x1a\n")):
        plot = ["--no-plot"] if option != "--plot" else []
        result = run_main(capsys, *SHORT, *plot, option, mounted, cwd=mounted.parent)
        assert result.returncode == 0 and f" to {mounted}" in result.stdout, result.stderr
        assert source.read_bytes().startswith(starts)  # written into the file mounted there
        assert [p.name for p in mounted.parent.iterdir()] == ["result"]  # no result.png, no temporary file
        assert f" {mounted} " in Path("/proc/self/mountinfo").read_text()  # still mounted


def test_a_read_only_bind_mount_is_refused_before_training(capsys, bind_mounted):
    source, mounted = bind_mounted
    remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"a read-only remount is not permitted here: {remount.stderr.strip()}")
    result = run_main(capsys, *SHORT, "--no-plot", "--metrics", mounted, cwd=mounted.parent)
    assert result.returncode == 2 and "not writable" in result.stderr, result.stderr
    assert source.read_text() == "the previous file"
