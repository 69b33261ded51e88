"""Output files: checked before training, written atomically after it.

A file is written to a temporary name in its own folder and then renamed over the target, so a
full disk, a file-size limit or an interruption leaves the previous file whole. No output ever
replaces what is not a regular file, and every output option treats each kind of object alike: a
device (/dev/null, a terminal), a FIFO and a file mounted on its own (mount --bind, a container's
volume), which a rename cannot replace, are written into directly; a folder, a socket, a block
device or any other object is refused before training. torch-free.
"""
import errno
import json
import math
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager

from .status import shown

# What Figure.savefig writes with the Agg canvas (tests/test_outputs.py checks it against matplotlib's own list)
FIGURE_FORMATS = ("avif", "eps", "gif", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                  "tif", "tiff", "webp")
# the options that write a file, each spelled here once: the command line defines them, the outputs name them
PLOT, ANIMATE, LANDSCAPE, METRICS, SAVE_MODEL, EXPLORE = (
    "--plot", "--animate", "--landscape", "--metrics", "--save-model", "--explore")
FIGURE_OPTIONS = (PLOT, LANDSCAPE)
WRITTEN_INTO = ("device", "fifo", "mounted file")  # what a rename would replace, or cannot
STREAMS = ("device", "fifo")  # several outputs may go into one: /dev/null, a pipe's reader


class OutputError(Exception):
    """An output that cannot be written; the message names the option and says why."""


def figure_name(path):
    """The name matplotlib really writes: it adds .png to a name without an extension. Anything that exists under
    the name and is not a regular file, and the file stdout goes to, keeps its name: it is then written into or
    refused, as for every other option (/dev/null.png would be a new file in /dev)."""
    kind = kind_of(path)
    if os.path.splitext(path)[1] or (kind not in (None, "file")) or (kind == "file" and is_standard_stream(path)):
        return path
    return path + ".png"


def check_targets(outputs):
    """outputs: option -> path or None. OutputError for the first that cannot be written as asked."""
    targets = {}
    for option, path in outputs.items():
        if path is None:
            continue
        check_name(option, path)
        if option in FIGURE_OPTIONS:
            path = figure_name(path)
        target = checked_target(option, path)
        if option in FIGURE_OPTIONS:
            check_figure_format(option, path)
        if target in targets:
            raise OutputError(f"{targets[target]} and {option} name the same file, {shown(path)}")
        if target is not None:
            targets[target] = option
    animation = outputs.get(ANIMATE) and os.path.basename(outputs[ANIMATE])
    if animation is not None and not (animation.lower().endswith(".gif") and len(animation) > len(".gif")):
        raise OutputError(f"--animate {shown(outputs[ANIMATE])}: needs a file name ending in .gif, such as fit.gif")


def check_name(option, path):
    """A path must end in a file name: "out/", "." or "x/.." name a folder, whatever exists there now."""
    if not path:
        raise OutputError(f"{option}: the path is empty")
    if os.path.basename(path) in ("", ".", "..") and not os.path.isdir(path):  # an existing one "is a folder"
        raise OutputError(f"{option} {shown(path)}: names a folder, expected a file name")


def checked_target(option, path):
    """What writing `path` replaces (a symlink is followed), or None for a device or a FIFO, which several outputs
    may share; OutputError if it cannot be written."""
    target = os.path.realpath(path)
    via = f" (a link to {shown(target)})" if os.path.islink(path) else ""
    named = f"{option} {shown(path)}{via}"
    kind = existing_kind(option, path)
    if kind == "folder":
        raise OutputError(f"{named}: is a folder, expected a file name")
    if kind not in (None, "file", *WRITTEN_INTO):
        raise OutputError(f"{named}: is a {kind}, not a file; give a file name")
    if kind in ("file", "mounted file") and is_standard_stream(path):
        raise OutputError(f"{option} {shown(path)}: is the file this program's output goes to; replacing it would lose "
                          "that output, so give another file name")
    if kind in WRITTEN_INTO:
        check_written_into(named, path, kind)
        return None if kind in STREAMS else target
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise OutputError(f"{named}: folder {shown(folder)} does not exist")
    try:
        with temporary_beside(target):
            pass
    except OSError as error:
        why = "is not writable" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else (
            f"cannot hold its temporary file ({error.strerror})")
        raise OutputError(f"{named}: folder {shown(folder)} {why}") from None
    if kind == "file" and not (os.stat(target).st_mode & 0o222 and os.access(target, os.W_OK)):
        raise OutputError(f"{named}: the file exists and is read-only")
    if kind == "file" and not replaceable(target):
        raise OutputError(f"{named}: the file belongs to another user in a folder that only lets "
                          "owners replace their files")
    return target


def check_written_into(named, path, kind):
    """A device, a FIFO or a mounted file: it must take writes, and its bytes are prepared in a temporary folder."""
    if not os.access(path, os.W_OK):
        raise OutputError(f"{named}: the {kind} is not writable")
    try:
        tempfile.gettempdir()
    except OSError:
        raise OutputError(f"{named}: no writable temporary folder to prepare its bytes in (set TMPDIR)") from None


KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISCHR, "device"), (stat.S_ISFIFO, "fifo"),
         (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def existing_kind(option, path):
    """What `path` names now (a link followed): file, mounted file, folder, device, fifo, ..., or None if nothing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise OutputError(f"{option} {shown(path)}: {error.strerror}") from None
    kind = next((name for test, name in KINDS if test(mode)), "special file")
    return "mounted file" if kind == "file" and is_mount_point(path) else kind


def kind_of(path):
    """existing_kind without an option to blame: None also where `path` cannot be looked at."""
    try:
        return existing_kind("", path)
    except OutputError:
        return None


def written_in_place(path):
    """A device, a FIFO or a mounted file: written into directly, never renamed over (that would replace it)."""
    return kind_of(path) in WRITTEN_INTO


def is_mount_point(path):
    """Whether the file `path` is mounted on its own (mount --bind, a container's volume): a rename over it fails
    ("Device or resource busy"). Its device differs from its folder's, or the kernel's list of mounts names it."""
    target = os.path.realpath(path)
    try:
        if os.stat(target).st_dev != os.stat(os.path.dirname(target)).st_dev:
            return True
    except OSError:
        return False
    return target in mount_points()


def mount_points():
    """Every mount point of this process: the fifth field of /proc/self/mountinfo (none where it cannot be read)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            return {unescaped(fields[4]) for fields in map(bytes.split, f) if len(fields) > 4}
    except OSError:
        return set()


def unescaped(field):
    """The kernel writes a space in a mount point as \\040, a tab \\011, a newline \\012, a backslash \\134."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field))


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
        raise OutputError(f"{option} {shown(path)}: matplotlib cannot write .{extension} figures "
                          f"(it writes {', '.join(FIGURE_FORMATS)})")
    if extension == "pgf" and shutil.which("xelatex") is None:  # matplotlib's default pgf.texsystem
        raise OutputError(f"{option} {shown(path)}: a .pgf figure needs LaTeX (xelatex), which this machine lacks")


@contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds, removed if not.
    A device, a FIFO or a mounted file is never replaced or removed: its bytes are written into it (written_into)."""
    if written_in_place(path):
        with tempfile.TemporaryDirectory() as folder:
            # a file that can seek, as savefig and the GIF writer need; named with the format savefig reads
            temporary = os.path.join(folder, "output" + (os.path.splitext(path)[1] or ".png"))
            yield temporary
            written_into(path, temporary)
        return
    target = os.path.realpath(path)
    with temporary_beside(target) as temporary:
        yield temporary
        os.chmod(temporary, file_mode(path))
        os.replace(temporary, target)


@contextmanager
def temporary_beside(target):
    """A new hidden file in the folder of `target`, ending in its extension (savefig reads the format there),
    removed on leaving unless it was renamed. The check before training makes the same file, so a name too long
    for it is refused then, not after training."""
    folder, name = os.path.split(target)
    extension = os.path.splitext(name)[1]
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name[:40]}.",
                                         suffix=extension if len(extension) <= 16 else "")
    os.close(handle)
    try:
        yield temporary
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


def written_into(path, temporary):
    """Copy the bytes of `temporary` into the device, FIFO or mounted file `path` (a file is emptied first). A FIFO
    that no process reads fails at once (ENXIO: "No such device or address") rather than waiting for a reader."""
    truncate = os.O_TRUNC if stat.S_ISREG(os.stat(path).st_mode) else 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | truncate)
    except OSError as error:
        if error.errno == errno.ENXIO and stat.S_ISFIFO(os.stat(path).st_mode):
            raise OSError(error.errno, "no process is reading this FIFO") from None
        raise
    try:
        os.set_blocking(fd, True)  # a reader is there: now let writes wait for it to read
        copy_into(temporary, fd)
    finally:
        os.close(fd)


def copy_into(temporary, fd):
    """The bytes of `temporary` written to `fd`; an error says how many were written before it."""
    written = 0
    with open(temporary, "rb") as source:
        for chunk in iter(lambda: source.read(1 << 16), b""):
            view = memoryview(chunk)
            while view:
                try:
                    count = os.write(fd, view)
                except OSError as error:
                    if written:
                        raise OSError(error.errno, f"{error.strerror} after {written} bytes were written into it") \
                            from None
                    raise
                written, view = written + count, view[count:]


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
