"""Output files: checked before training, written atomically after it.

A file is written to a temporary name in its own folder and then renamed over the target, so a
full disk, a file-size limit or an interruption leaves the previous file whole. A target that
exists and is not a regular file is never replaced: a device (/dev/null, a terminal) or a FIFO
is written into directly, anything else is refused before training. torch-free.
"""
import errno
import json
import math
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager

# What Figure.savefig writes with the Agg canvas (tests/test_outputs.py checks it against matplotlib's own list)
FIGURE_FORMATS = ("avif", "eps", "gif", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                  "tif", "tiff", "webp")


class OutputError(Exception):
    """An output that cannot be written; the message names the option and says why."""


def figure_name(path):
    """The name matplotlib really writes: it adds .png to a name without an extension. A device, a FIFO
    or the file stdout goes to keeps its name (/dev/null.png would be a new file in /dev)."""
    if os.path.splitext(path)[1] or written_in_place(path) or (os.path.isfile(path) and is_standard_stream(path)):
        return path
    return path + ".png"


def check_targets(outputs):
    """outputs: option -> path or None. OutputError for the first that cannot be written as asked."""
    targets = {}
    for option, path in outputs.items():
        if path is None:
            continue
        if option in ("--plot", "--landscape"):
            path = path if not path or os.path.isdir(path) else figure_name(path)
        target = checked_target(option, path)
        if option in ("--plot", "--landscape"):
            check_figure_format(option, path)
        if target in targets and not written_in_place(path):  # two outputs into /dev/null are fine
            raise OutputError(f"{targets[target]} and {option} name the same file, {path}")
        targets[target] = option
    animation = outputs.get("--animate") and os.path.basename(outputs["--animate"])
    if animation is not None and not (animation.lower().endswith(".gif") and len(animation) > len(".gif")):
        raise OutputError(f"--animate {outputs['--animate']}: needs a file name ending in .gif, such as fit.gif")


def checked_target(option, path):
    """The file that writing `path` replaces (a symlink is followed); OutputError if it cannot be written."""
    if not path:
        raise OutputError(f"{option}: the path is empty")
    target = os.path.realpath(path)
    via = f" (a link to {target})" if os.path.islink(path) else ""
    kind = existing_kind(option, path)
    if kind == "folder":
        raise OutputError(f"{option} {path}{via}: is a folder, expected a file name")
    if kind in ("device", "fifo"):
        return target  # written into, not replaced
    if kind is not None and kind != "file":
        raise OutputError(f"{option} {path}{via}: is a {kind}, not a file; give a file name")
    if kind == "file" and is_standard_stream(path):
        raise OutputError(f"{option} {path}: is the file this program's output goes to; replacing it would lose "
                          "that output, so give another file name")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise OutputError(f"{option} {path}{via}: folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        raise OutputError(f"{option} {path}{via}: folder {folder} is not writable") from None
    if kind == "file" and not os.stat(target).st_mode & 0o222:
        raise OutputError(f"{option} {path}{via}: the file exists and is read-only")
    if kind == "file" and not replaceable(target):
        raise OutputError(f"{option} {path}{via}: the file belongs to another user in a folder that only lets "
                          "owners replace their files")
    return target


KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISCHR, "device"), (stat.S_ISFIFO, "fifo"),
         (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def existing_kind(option, path):
    """What `path` names now (a link followed): file, folder, device, fifo, ..., or None if nothing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise OutputError(f"{option} {path}: {error.strerror}") from None
    return next((name for test, name in KINDS if test(mode)), "special file")


def written_in_place(path):
    """A device or a FIFO: written into directly, never renamed over (that would replace it)."""
    try:
        return stat.S_ISCHR(os.stat(path).st_mode) or stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def is_standard_stream(path):
    """Whether `path` is the very file stdout or stderr writes to (as /dev/stdout is, redirected to a file)."""
    identity = os.stat(path)
    for fd in (1, 2):
        try:
            stream = os.fstat(fd)
        except OSError:
            continue
        if (stream.st_dev, stream.st_ino) == (identity.st_dev, identity.st_ino):
            return True
    return False


def replaceable(target):
    """A rename over `target` succeeds unless its folder is sticky (as /tmp) and someone else owns it."""
    folder = os.stat(os.path.dirname(target))
    if not folder.st_mode & stat.S_ISVTX or os.geteuid() == 0:
        return True
    return os.geteuid() in (os.stat(target).st_uid, folder.st_uid)


def check_figure_format(option, path):
    extension = os.path.splitext(path)[1].lstrip(".").lower() or "png"  # a device's name: png, as savefig does
    if extension not in FIGURE_FORMATS:
        raise OutputError(f"{option} {path}: matplotlib cannot write .{extension} figures "
                          f"(it writes {', '.join(FIGURE_FORMATS)})")
    if extension == "pgf" and shutil.which("xelatex") is None:  # matplotlib's default pgf.texsystem
        raise OutputError(f"{option} {path}: a .pgf figure needs LaTeX (xelatex), which this machine lacks")


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds, removed if not.
    A device or a FIFO is never replaced or removed: its bytes are written into it (written_into)."""
    if written_in_place(path):
        with tempfile.TemporaryDirectory() as folder:
            # a file that can seek, as savefig and the GIF writer need; named with the format savefig reads
            temporary = os.path.join(folder, "output" + (os.path.splitext(path)[1] or ".png"))
            yield temporary
            written_into(path, temporary)
        return
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


def written_into(path, temporary):
    """Copy the bytes of `temporary` into the device or FIFO `path`. A FIFO that no process reads fails at
    once (ENXIO: "No such device or address") rather than waiting for ever for a reader."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO and stat.S_ISFIFO(os.stat(path).st_mode):
            raise OSError(error.errno, "no process is reading this FIFO") from None
        raise
    try:
        os.set_blocking(fd, True)  # a reader is there: now let writes wait for it to read
        with open(fd, "wb", closefd=False) as target, open(temporary, "rb") as source:
            shutil.copyfileobj(source, target)
    finally:
        os.close(fd)


def file_mode(path):
    """The permissions the file keeps (if it exists) or would get from open() (if not)."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def json_safe(value):
    """inf and NaN (a diverged run) become null: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(json_safe(data), f, indent=2, allow_nan=False)
        f.write("\n")
