"""Accidents a user meets without a mistake on the command line: targets that are not regular files,
a standard output that cannot take what is printed, an environment torch or matplotlib dislike.
None may cost a file, replace what is not a regular file, or print a traceback."""
import json
import os
import re
import resource
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, SCRIPT, clean_env, run_main, run_script

from beyond_the_blog.system.environment import cgroup_headroom
from beyond_the_blog.system.status import ExitStatus

SHORT = ("--model", "linear", "--epochs", "50", "-q")


def run_by(run, capsys, *args, cwd, env=None):
    """run "main": main(argv) in this process (conftest.run_main); "script": the real script in a subprocess."""
    return run_main(capsys, *args, cwd=cwd, env=env) if run == "main" else run_script(*args, cwd=cwd, env=env)


def one_line_refusal(result, *words):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and all(w in result.stderr for w in words), result.stderr


def test_a_device_is_written_into_and_stays_a_device(tmp_path):
    result = run_script(*SHORT, "--no-plot", "--metrics", "/dev/null", "--save-model", "/dev/null", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and "metrics written to /dev/null" in result.stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_device_fails_the_write_and_stays_a_device(tmp_path):
    result = run_script(*SHORT, "--no-plot", "--metrics", "/dev/full", cwd=tmp_path)
    assert result.returncode == 74 and "Traceback" not in result.stderr and "/dev/full" in result.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_fifo_is_written_into_and_its_reader_gets_the_json(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = run_script(*SHORT, "--no-plot", "--metrics", fifo, cwd=tmp_path)
    reader.join(30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and json.loads(received[0])["epochs_run"] == 50


def test_a_fifo_nobody_reads_fails_at_once_and_costs_no_other_file(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # no reader: opening it to write would wait for ever
    result = run_script(*SHORT, "--no-plot", "--metrics", fifo, "--save-model", "m.pt", cwd=tmp_path)
    assert result.returncode == 74 and "Traceback" not in result.stderr, result.stderr
    assert "no process is reading this FIFO" in result.stderr and (tmp_path / "m.pt").is_file()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "pipe.json"]


@pytest.mark.parametrize("name", ["fig.png", "fig"])
def test_a_figure_into_a_fifo_reaches_its_reader_under_its_own_name(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)  # a PNG writer seeks; a FIFO cannot, so the bytes are made first and then written in
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run_script(*SHORT, "--no-show", "--plot", fifo, cwd=tmp_path)
    reader.join(30)
    assert result.returncode == 0 and f"figure written to {fifo}\n" in result.stdout, result.stderr
    assert received[0].startswith(b"\x89PNG\r\n\x1a\n") and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no fig.png beside the FIFO fig, no temporary file


def test_a_figure_into_a_device_adds_no_file_beside_it(tmp_path):
    before = set(os.listdir("/dev"))
    result = run_script(*SHORT, "--no-show", "--plot", "/dev/null", "--landscape", "/dev/null", cwd=tmp_path)
    assert result.returncode == 0 and "figure written to /dev/null\n" in result.stdout, result.stderr
    assert set(os.listdir("/dev")) - before == set() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_stdout_as_a_target_never_replaces_what_stdout_writes_to(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as stream:  # --metrics /dev/stdout > out.txt
        result = subprocess.run([sys.executable, str(SCRIPT), *SHORT, "--no-plot", "--metrics", "/dev/stdout"],
                                cwd=tmp_path, env=clean_env(), stdout=stream, stderr=subprocess.PIPE, text=True,
                                timeout=120)
    one_line_refusal(result, "/dev/stdout", "another file name")
    assert out.is_file() and not out.is_symlink()
    piped = subprocess.run([sys.executable, str(SCRIPT), *SHORT, "--no-plot", "--metrics", "/dev/stdout"],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr  # stdout is a pipe: the JSON goes down it, after the results
    assert '"epochs_run": 50' in piped.stdout and "fitted: y =" in piped.stdout


@pytest.mark.parametrize("option", ["--plot", "--landscape", "--save-model"])
def test_stdout_redirected_to_a_file_is_refused_for_every_output(tmp_path, option):
    out, before = tmp_path / "out.txt", set(os.listdir("/dev"))
    with open(out, "w") as stream:  # --plot /dev/stdout > out.txt: no /dev/stdout.png, no lost out.txt
        result = subprocess.run([sys.executable, str(SCRIPT), *SHORT, "--no-show", option, "/dev/stdout"],
                                cwd=tmp_path, env=clean_env(), stdout=stream, stderr=subprocess.PIPE, text=True,
                                timeout=120)
    one_line_refusal(result, "/dev/stdout", "another file name")
    assert out.is_file() and set(os.listdir("/dev")) == before


def test_a_socket_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        one_line_refusal(run_main(capsys, *SHORT, "--no-plot", "--metrics", path, cwd=tmp_path), "socket")
    finally:
        server.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_a_path_stdout_cannot_encode_costs_nothing(tmp_path):
    result = run_script(*SHORT, "--plot", "图.png", "--metrics", "m.json", cwd=tmp_path,
                        env=clean_env(PYTHONIOENCODING="cp1252"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "figure written to \\u56fe.png" in result.stdout
    assert (tmp_path / "图.png").is_file() and json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 50


def test_a_closed_stdout_costs_no_file(tmp_path):
    result = subprocess.run(f"{sys.executable} {SCRIPT} {' '.join(SHORT)} --plot c.png --metrics m.json >&-",
                            shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["epochs_run"] == 50 and (tmp_path / "c.png").is_file()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "2,1", "100000", "", "²", "٣"])  # '²'.isdigit() is True
def test_an_unusable_omp_num_threads_is_ignored_with_a_word(tmp_path, value):
    result = run_script(*SHORT, "--no-plot", "--metrics", "m.json", cwd=tmp_path, env=clean_env(OMP_NUM_THREADS=value))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "OMP_NUM_THREADS" in result.stderr and "libgomp" not in result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["torch_threads"] == 1


# the single run through the real script too: there torch (and its OpenMP library) loads after the warning is held
@pytest.mark.parametrize("mode,run", [([], "script"), (["--runs", "3"], "main"), (["--lr-sweep", "3"], "main"),
                                      (["--explore", "e.html"], "main")])
def test_a_refusal_after_an_environment_warning_stays_one_line(tmp_path, capsys, mode, run):
    # the warning waits for the last check: a run refused for its data prints the error alone
    result = run_by(run, capsys, *SHORT, "--no-plot", "--x-range", "0", "1e-20", *mode, cwd=tmp_path,
                    env=clean_env(OMP_NUM_THREADS="abc", OMP_STACKSIZE="abc"))
    one_line_refusal(result, "--x-range 0 1e-20", "too nearly dependent")
    assert "OMP_NUM_THREADS" not in result.stderr and "libgomp" not in result.stderr
    assert not (tmp_path / "e.html").exists()


def test_thread_counts_are_bounded_by_the_cores(tmp_path, capsys):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    one_line_refusal(run_main(capsys, "--threads", 100000, cwd=tmp_path), "--threads", f"from 1 to {cores}")
    result = run_script(*SHORT, "--no-plot", "--metrics", "m.json", cwd=tmp_path,
                        env=clean_env(OMP_NUM_THREADS=str(cores)))
    assert result.returncode == 0 and not result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["torch_threads"] == cores


# MPLBACKEND through the real script: matplotlib reads it when it is imported, and this process imported it long ago
@pytest.mark.parametrize("args,env,words,run", [(("--animate", ".gif"), {}, ("--animate", ".gif"), "main"),
                                                (("--animate", "out/.GIF"), {}, ("--animate",), "main"),
                                                (("--plot", "a.png"), {"MPLBACKEND": "nonsense"}, ("MPLBACKEND",),
                                                 "script")])
def test_what_would_fail_after_training_is_refused_before_it(tmp_path, capsys, args, env, words, run):
    result = run_by(run, capsys, "--model", "linear", *args, cwd=tmp_path, env=clean_env(**env))
    one_line_refusal(result, *words)
    assert "Epoch[" not in result.stdout and not list(tmp_path.iterdir())


@pytest.mark.parametrize("env", [{"MPLCONFIGDIR": "/proc/no/such"}, {"HOME": "/proc/no/such"},
                                 {"MPLBACKEND": "TkAgg", "DISPLAY": ":97"}])
def test_matplotlib_settings_make_no_noise(tmp_path, env):
    result = run_script(*SHORT, "--plot", "a.png", cwd=tmp_path, env=clean_env(**env))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "a.png").is_file()


@pytest.mark.parametrize("name", ["a.eps", "a.ps", "a.svg", "a.pdf"])
def test_every_figure_format_is_written_without_a_warning(tmp_path, name):
    result = run_script(*SHORT, "--plot", name, cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / name).stat().st_size > 1000


def test_a_seed_gives_the_same_numbers_on_every_processor(tmp_path):
    """MKL_ENABLE_INSTRUCTIONS makes MKL act as on an older processor: without the program's one code path
    (MKL_CBWR), Adam's product run stops 100 epochs apart on an AVX-512 machine and on an AVX one."""
    args = ("--model", "linear", "--optimizer", "adam", "--no-plot", "-q")
    here = run_script(*args, cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    for instructions in ("SSE4_2", "AVX", "AVX2"):
        older = run_script(*args, cwd=tmp_path, env=clean_env(MKL_ENABLE_INSTRUCTIONS=instructions))
        assert older.returncode == 0, (instructions, older.stderr)
        assert here.stdout == older.stdout, instructions


# ----------------------------------------------------------------------------- the environment's limits
def libgomp_lines(env):
    """What torch's OpenMP library itself says of `env` when torch loads, with no program around it."""
    loaded = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True,
                            timeout=120)
    return [line for line in loaded.stderr.splitlines() if line.startswith("libgomp:")]


def test_what_openmp_says_of_the_environment_is_one_warning_each_and_threads_replace_a_bad_count(tmp_path):
    odd = {"OMP_STACKSIZE": "abc", "OMP_PROC_BIND": "xyz"}
    expected = libgomp_lines(clean_env(**odd))
    assert len(expected) == 2  # the library's own words, one line for each variable
    result = run_script(*SHORT, "--threads", "1", "--no-plot", "--metrics", "m.json", cwd=tmp_path,
                        env=clean_env(**odd, OMP_NUM_THREADS="abc"))
    assert result.returncode == 0, result.stderr
    # --threads given: the bad OMP_NUM_THREADS was replaced before torch loaded, so libgomp never saw it
    assert result.stderr.splitlines() == [f"quadratic_regression.py: warning: {line}" for line in expected]
    assert json.loads((tmp_path / "m.json").read_text())["torch_threads"] == 1


def address_space_limit(size):
    def limit():  # as `ulimit -v` in the shell that starts the program
        resource.setrlimit(resource.RLIMIT_AS, (size, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return limit


def test_a_run_too_big_for_the_address_space_limit_is_refused_before_training(tmp_path):
    limit = 1400 * 2**20  # under it, this run trained all its epochs, then failed with a traceback and status 1
    result = run_script("--runs", 100, "--samples", 200000, "--no-plot", "--metrics", "m.json", cwd=tmp_path,
                        preexec_fn=address_space_limit(limit))
    one_line_refusal(result, "ulimit -v", "--samples 200000 with --runs 100")
    left = float(re.search(r"leaves ([\d.]+) GiB", result.stderr)[1])
    assert limit / 2**30 - 0.1 < left <= limit / 2**30  # the limit, less what Python had mapped by then
    assert "Epoch[" not in result.stdout and not list(tmp_path.iterdir())


OUT_OF_MEMORY = """
import resource, sys
sys.path.insert(0, {root!r})
import beyond_the_blog.cli as cli
checked = cli.parse_args
def checked_then_limited(argv):  # the checks pass; then the memory left is less than they counted on
    options = checked(argv)
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return options
cli.parse_args = checked_then_limited
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_run_out_of_memory_anyway_ends_in_one_line_with_its_own_status(tmp_path):
    """The estimate before training can be wrong: then the allocation fails in training, and the program says so
    in one line with status 71, not a traceback and status 1, which means diverged."""
    code = OUT_OF_MEMORY.format(root=str(ROOT), limit=800 * 2**20)  # torch loads in it (650 MB), the data does not
    result = subprocess.run([sys.executable, "-c", code, "--samples", "2000000", "--epochs", "3",
                             "-q", "--no-plot", "--metrics", "m.json"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == ExitStatus.NO_RESOURCES == 71, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "out of memory" in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())  # no metrics of a run that never ended, no temporary file


def test_a_deleted_working_folder_is_one_line_before_any_work(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()

    def enter_then_delete():  # mkdir d && cd d && rmdir ../d
        os.chdir(gone)
        os.rmdir(gone)

    result = run_script(*SHORT, cwd=tmp_path, preexec_fn=enter_then_delete)
    assert result.returncode == ExitStatus.NO_RESOURCES, result.stderr  # was a traceback, or MKL's fatal error
    assert len(result.stderr.splitlines()) == 1 and "working folder is gone" in result.stderr, result.stderr


@pytest.fixture
def memory_cgroup():
    """A new memory cgroup, v2 or v1, with its limit file; skipped where this process may not make one."""
    name = f"quadratic-regression-test-{os.getpid()}"
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    if os.path.exists(v2) and "memory" in Path(v2).read_text().split():
        folder, limit_file = os.path.join("/sys/fs/cgroup", name), "memory.max"
    else:
        folder, limit_file = os.path.join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
    try:
        os.mkdir(folder)
    except OSError as error:
        pytest.skip(f"no memory cgroup can be made here: {error.strerror}")
    try:
        yield folder, limit_file
    finally:
        os.rmdir(folder)


def test_a_run_too_big_for_its_cgroup_is_refused_before_training(tmp_path, memory_cgroup):
    folder, limit_file = memory_cgroup
    with open(os.path.join(folder, limit_file), "w") as f:
        f.write(str(700 * 2**20))

    def enter():  # as a container's limit: the program starts inside the cgroup
        with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))

    result = run_script("--runs", 300, "--samples", 100000, "--no-plot", cwd=tmp_path, preexec_fn=enter)
    one_line_refusal(result, "cgroup", "--samples 100000 with --runs 300")
    assert "Epoch[" not in result.stdout


MIB = 2**20
CGROUP_LAYOUTS = {  # (what /proc/self/cgroup says, the mount, the limit, usage and memory.stat names) as the kernel
    "v2": ("0::/box/run\n", "", "memory.max", "memory.current", "inactive_file"),
    "v1": ("5:cpuset:/\n4:memory:/box/run\n0::/\n", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
           "total_inactive_file"),
}


@pytest.mark.parametrize("version", CGROUP_LAYOUTS)
def test_the_cgroup_headroom_is_the_strictest_of_a_cgroup_and_those_above_it(tmp_path, version):
    own, mount, limit_name, usage_name, inactive_name = CGROUP_LAYOUTS[version]
    (tmp_path / "cgroup").write_text(own)
    levels = {"box": (1000 * MIB, 300 * MIB, 50 * MIB), "box/run": (None, 200 * MIB, 10 * MIB)}  # run: no limit
    for path, (limit, usage, inactive) in levels.items():
        folder = tmp_path / "fs" / mount / path
        folder.mkdir(parents=True)
        (folder / limit_name).write_text(("max" if version == "v2" else str(2**63 - 4096)) if limit is None
                                         else str(limit))
        (folder / usage_name).write_text(str(usage))
        (folder / "memory.stat").write_text(f"cache 0\n{inactive_name} {inactive}\n")
    # the box's limit, less its usage, with the page cache it can drop counted free
    assert cgroup_headroom(own=tmp_path / "cgroup", root=tmp_path / "fs") == (1000 - 300 + 50) * MIB
