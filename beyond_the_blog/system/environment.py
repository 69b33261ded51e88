"""The environment a run meets: cores, memory and matplotlib's settings, checked before any work.

torch-free; matplotlib is imported only when a figure is asked for.
"""
import atexit
import os
import shutil
import sys
import tempfile

from .status import PROG

BYTES_PER_POINT = 300              # measured peak memory per data point and run, autograd's intermediates included
BYTES_PER_RECORD = 2000            # measured: a recorded epoch of one run (its loss, and the path's float64 copy)
BYTES_PER_RUN_RECORD = 400         # measured: each further replicated run's share of a recorded epoch
# --runs with the gradients by hand keeps no autograd graph: measured peaks of `--model linear --runs R --epochs E`
# less one run's were 57 bytes per point (R 20000, E 200), 46 with the records (R 100000, E 2000), and 21 per run
# and further record (R 20000, E 4000 against E 200); rounded up
BYTES_PER_POINT_BY_HAND = 64
BYTES_PER_RUN_RECORD_BY_HAND = 32
TORCH_BYTES = 300 * 2**20          # torch itself, loaded


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


def threads_from_environment():
    """OMP_NUM_THREADS if it is a whole number from 1 to the cores, else 1 thread. A value torch cannot
    use is ignored with a word, and replaced before torch loads, so its OpenMP library stays quiet."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is None:
        return 1
    cores = available_cores()
    if value.strip().isdigit() and 1 <= int(value) <= cores:
        return int(value)
    WARNINGS.append(f"{PROG}: warning: OMP_NUM_THREADS={value!r} ignored, it is not a whole number from 1 to "
                    f"{cores} (the cores here): using 1 thread")
    os.environ["OMP_NUM_THREADS"] = "1"
    return 1


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


def memory_needed(epochs, runs, samples, log_interval, by_hand=False):
    """Peak bytes of a run, roughly: the data and autograd's tensors (or, by_hand, the batched gradients' buffers),
    and the recorded losses of every run."""
    records = epochs // (log_interval or 100) + 40
    per_point, per_run_record = ((BYTES_PER_POINT_BY_HAND, BYTES_PER_RUN_RECORD_BY_HAND) if by_hand
                                 else (BYTES_PER_POINT, BYTES_PER_RUN_RECORD))
    return TORCH_BYTES + runs * samples * per_point + records * (BYTES_PER_RECORD + runs * per_run_record)


def memory_available():
    """Bytes of memory available to a new process (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
