"""The environment a run meets: cores, memory and matplotlib's settings, checked before any work.

torch-free; matplotlib is imported only when a figure is asked for.
"""
import atexit
import os
import re
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from .status import PROG

BYTES_PER_POINT = 300              # measured peak memory per data point and run, autograd's intermediates included
BYTES_PER_RECORD = 2000            # measured: a recorded epoch of one run (its loss, and the path's float64 copy)
BYTES_PER_RUN_RECORD = 400         # measured: each further replicated run's share of a recorded epoch
# --runs with the gradients by hand keeps no autograd graph and no (R, n) buffer: measured peaks of `--model linear
# --runs R --epochs E` less one run's were 28 bytes per point (R 20000, E 200), 26 with the records (R 100000,
# E 2000); per run and further record 21 bytes were measured before (R 20000, E 4000 against E 200); rounded up
BYTES_PER_POINT_BY_HAND = 32
BYTES_PER_RUN_RECORD_BY_HAND = 32
TORCH_BYTES = 400 * 2**20          # torch itself, loaded: one run's peak measured 250 to 370 MB on two machines
ADDRESS_SPACE_BYTES = 450 * 2**20  # measured: the address space torch and matplotlib reserve beyond the memory they
# use (VmPeak - VmHWM of a small run, 400 to 430 MB): what `ulimit -v` counts and MemAvailable does not


MKL_CODE_PATH = "COMPATIBLE"  # Intel MKL's one code path for every x86 processor (its "conditional numerical
# reproducibility"): without it MKL picks a kernel per processor, fused multiply-adds or not, and a run's float32
# losses differ in their last bits from one machine to another (Adam's stop on the product moved by 100 epochs)


def same_numbers_on_every_processor():
    """Before torch loads: MKL's matrix products take one code path on every x86 processor, so a seed gives the
    same losses, bit for bit, on any machine. A value the user set is kept; without MKL this changes nothing."""
    os.environ.setdefault("MKL_CBWR", MKL_CODE_PATH)


def available_cores():
    """The cores this process may run on: more threads than that only wait on each other."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_from_environment(asked=None):
    """The torch threads: --threads if `asked`, else OMP_NUM_THREADS if it is a whole number from 1 to the cores,
    else 1. An OMP_NUM_THREADS torch cannot use is replaced before torch loads, so its OpenMP library stays
    quiet; it is ignored with a word unless --threads made it irrelevant."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is None:
        return asked or 1
    cores = available_cores()
    if whole_number(value) and 1 <= int(value) <= cores:
        os.environ["OMP_NUM_THREADS"] = str(int(value))  # " 2" or "02" as libgomp reads it: 2
        return asked or int(value)
    os.environ["OMP_NUM_THREADS"] = str(asked or 1)
    if asked is None:
        WARNINGS.append(f"{PROG}: warning: OMP_NUM_THREADS={value!r} ignored, it is not a whole number from 1 to "
                        f"{cores} (the cores here): using 1 thread")
    return asked or 1


def whole_number(text):
    """Digits 0-9 only, spaces around allowed: '²'.isdigit() and '٣'.isdigit() are True, but int() or libgomp
    refuse them."""
    return re.fullmatch(r"\s*[0-9]+\s*", text) is not None


WARNINGS = []  # said by say_warnings() once the last check has passed: a refused run's error stays one line


def say_warnings():
    for warning in WARNINGS:
        print(warning, file=sys.stderr)
    WARNINGS.clear()


def matplotlib_problem():
    """Before a figure is drawn: an unwritable matplotlib config folder is replaced by a temporary one
    (removed at exit), so matplotlib does not warn; a bad MPLBACKEND is reported (the message), not met
    after training."""
    if not writable_or_creatable(matplotlib_config_folder()):
        folder = tempfile.mkdtemp(prefix="matplotlib-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["MPLCONFIGDIR"] = folder
    if not os.environ.get("MPLBACKEND"):
        return None
    try:  # matplotlib reads MPLBACKEND on import (some versions on first use) and refuses a name it does not know
        import matplotlib
        matplotlib.get_backend()
    except ValueError:
        return (f"MPLBACKEND={os.environ.get('MPLBACKEND')!r} is not a backend matplotlib knows: unset it, "
                "or set it to agg")
    return None


def matplotlib_config_folder():
    """Where matplotlib keeps its config and font cache (matplotlib.get_configdir's rule, without importing it)."""
    if os.environ.get("MPLCONFIGDIR"):
        return os.environ["MPLCONFIGDIR"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "matplotlib")


def writable_or_creatable(folder):
    """Whether matplotlib can keep its cache in `folder`: tried for real, as root passes every access check."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@dataclass(frozen=True, kw_only=True)
class MemoryNeed:
    """Peak bytes of a run, roughly, in its three parts."""
    torch: int    # torch itself
    data: int     # the data and autograd's tensors, for every run
    records: int  # the recorded losses of every run

    @property
    def total(self):
        return self.torch + self.data + self.records


def memory_needed(epochs, runs, samples, log_interval, by_hand=False):
    """The MemoryNeed of a run of `epochs` epochs, `runs` runs at once, on `samples` points; `by_hand`: the batched
    gradients by hand, which keep no autograd graph."""
    records = epochs // (log_interval or 100) + 40
    per_point, per_run_record = ((BYTES_PER_POINT_BY_HAND, BYTES_PER_RUN_RECORD_BY_HAND) if by_hand
                                 else (BYTES_PER_POINT, BYTES_PER_RUN_RECORD))
    return MemoryNeed(torch=TORCH_BYTES, data=runs * samples * per_point,
                      records=records * (BYTES_PER_RECORD + runs * per_run_record))


def memory_shortage(need):
    """The strictest limit `need` does not fit in, in words that name it and say what it leaves; None if it fits.
    Each limit counts: the machine's MemAvailable, this process's cgroup, its address space (ulimit -v), which also
    counts what torch reserves without using it, and its data segment (ulimit -d)."""
    limits = [("this machine has {} available", memory_available(), 0),
              ("the memory limit of this process's cgroup leaves {}", cgroup_headroom(), 0)]
    limits += [(f"the {name} limit (ulimit {flag}) leaves {{}}"
                + (f", and torch reserves {gib(reserved)} of it beyond the memory it uses" if reserved else ""),
                headroom, reserved) for name, flag, headroom, reserved in resource_headrooms()]
    short = [(headroom - reserved, words, headroom) for words, headroom, reserved in limits
             if headroom is not None and need.total + reserved > headroom]
    if not short:
        return None
    _, words, headroom = min(short)
    return words.format(gib(max(headroom, 0)))


def gib(size):
    return f"{size / 2**30:.3g} GiB"


def memory_available():
    """Bytes of memory available to a new process (MemAvailable), or None where it cannot be read."""
    return proc_field("/proc/meminfo", "MemAvailable")


def proc_field(path, name):
    """A field in kB of /proc/meminfo or /proc/self/status, in bytes; None where it cannot be read."""
    try:
        with open(path) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields[name].split()[0]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None


def resource_headrooms():
    """(name, ulimit flag, bytes left, bytes reserved beyond the need) for each limit set on this process: its
    address space (VmSize counts what is reserved, ADDRESS_SPACE_BYTES) and its data segment (VmData, measured about
    the memory used)."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limits
        return []
    headrooms = []
    for name, flag, limit, used, reserved in (("address-space", "-v", "RLIMIT_AS", "VmSize", ADDRESS_SPACE_BYTES),
                                              ("data-segment", "-d", "RLIMIT_DATA", "VmData", 0)):
        soft = resource.getrlimit(getattr(resource, limit))[0]
        if soft != resource.RLIM_INFINITY:
            headrooms.append((name, flag, soft - (proc_field("/proc/self/status", used) or 0), reserved))
    return headrooms


CGROUP_FILES = {"v2": ("memory.max", "memory.current", "inactive_file"),
                "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}


def cgroup_headroom(own="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """Bytes this process's memory cgroup and those above it still leave (the limit less the usage, the page cache
    it can drop counted free), the least of them; None where none sets a limit or none can be read."""
    headrooms = []
    for folder, version in cgroup_folders(own, root):
        limit_file, usage_file, inactive_field = CGROUP_FILES[version]
        limit, usage = read_number(folder, limit_file), read_number(folder, usage_file)
        if limit is not None and usage is not None:
            headrooms.append(limit - usage + (stat_field(folder, inactive_field) or 0))
    return min(headrooms, default=None)


def cgroup_folders(own, root):
    """(folder, version) of each memory cgroup this process is in, its own first, then every one above it. Inside a
    container its own cgroup is often the root of the mount: folders that do not exist there are left out."""
    try:
        with open(own) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if number == "0" and not controllers:
            mount, version = root, "v2"
        elif "memory" in controllers.split(","):
            mount, version = os.path.join(root, "memory"), "v1"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(mount, *parts[:depth])
            if os.path.isfile(os.path.join(folder, CGROUP_FILES[version][0])):
                folders.append((folder, version))
    return folders


def read_number(folder, name):
    """A cgroup file's number; None for "max" (no limit) or a file that cannot be read."""
    try:
        with open(os.path.join(folder, name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stat_field(folder, name):
    """A field of the cgroup's memory.stat, or None."""
    try:
        with open(os.path.join(folder, "memory.stat")) as f:
            return next((int(line.split()[1]) for line in f if line.split()[:1] == [name]), None)
    except (OSError, ValueError, IndexError):
        return None


def out_of_memory(error):
    """Whether `error` says memory ran out: Python's MemoryError, torch's allocator ("can't allocate memory"), or a
    library that could not be mapped under an address-space limit."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, (RuntimeError, OSError, ImportError)) and any(
        words in text for words in ("can't allocate memory", "Cannot allocate memory", "out of memory",
                                    "failed to map segment"))


def working_folder_problem():
    """Why the working folder cannot be used, or None. Checked first: every relative path is resolved against it,
    and Intel MKL, loaded with torch, stops the process with a fatal error without it."""
    try:
        os.getcwd()
    except OSError as error:
        return (f"the working folder is gone ({error.strerror}): it was deleted or moved after the shell entered "
                "it; cd to a folder that exists")
    return None


@contextmanager
def library_warnings_held():
    """While torch loads, what libgomp, its OpenMP library, says on stderr is held back, then said with the warnings
    once the last check has passed: it prints a line for each OMP_* variable it cannot read (OMP_STACKSIZE=abc), and
    a refused run's error must stay one line. Every other line goes on to stderr at once, as it comes."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr: nothing to hold back
        yield
        return
    read_end, write_end = os.pipe()
    held = []
    reader = threading.Thread(target=sort_lines, args=(read_end, saved, held), daemon=True)
    reader.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        with suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer is gone: the reader reads to its end
        reader.join()
        os.close(saved)
    WARNINGS.extend(f"{PROG}: warning: {line}" for line in held)


def sort_lines(read_end, stderr, held):
    """libgomp's lines into `held`, every other line on to `stderr` (its blank lines, libgomp's, left out)."""
    with open(read_end, "rb") as pipe, suppress(OSError):
        for line in pipe:
            if line.startswith(b"libgomp:"):
                held.append(line.decode(errors="backslashreplace").rstrip())
            elif line.strip():
                os.write(stderr, line)
