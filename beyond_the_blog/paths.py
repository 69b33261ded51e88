"""Output files: checked before training, written atomically after it.

A file is written to a temporary name in its own folder and then renamed over the target, so a
full disk, a file-size limit or an interruption leaves the previous file whole. torch-free.
"""
import os
import shutil
import tempfile
from contextlib import contextmanager

# What Figure.savefig writes with the Agg canvas (tests/test_outputs.py checks it against matplotlib's own list)
FIGURE_FORMATS = ("avif", "eps", "gif", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                  "tif", "tiff", "webp")


class OutputError(Exception):
    """An output that cannot be written; the message names the option and says why."""


def figure_name(path):
    """The name matplotlib really writes: it adds .png to a name without an extension."""
    return path if os.path.splitext(path)[1] else path + ".png"


def checked_target(option, path):
    """The file that writing `path` replaces (a symlink is followed); OutputError if it cannot be written."""
    if not path:
        raise OutputError(f"{option}: the path is empty")
    target = os.path.realpath(path)
    via = f" (a link to {target})" if os.path.islink(path) else ""
    if os.path.isdir(target):
        raise OutputError(f"{option} {path}{via}: is a folder, expected a file name")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise OutputError(f"{option} {path}{via}: folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        raise OutputError(f"{option} {path}{via}: folder {folder} is not writable") from None
    if os.path.exists(target) and not os.stat(target).st_mode & 0o222:
        raise OutputError(f"{option} {path}{via}: the file exists and is read-only")
    return target


def check_figure_format(option, path):
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FIGURE_FORMATS:
        raise OutputError(f"{option} {path}: matplotlib cannot write .{extension} figures "
                          f"(it writes {', '.join(FIGURE_FORMATS)})")
    if extension == "pgf" and shutil.which("xelatex") is None:  # matplotlib's default pgf.texsystem
        raise OutputError(f"{option} {path}: a .pgf figure needs LaTeX (xelatex), which this machine lacks")


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds, removed if not."""
    folder, name = os.path.split(os.path.realpath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=os.path.splitext(name)[1])
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, file_mode(path))
        os.replace(temporary, os.path.realpath(path))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def file_mode(path):
    """The permissions the file keeps (if it exists) or would get from open() (if not)."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
