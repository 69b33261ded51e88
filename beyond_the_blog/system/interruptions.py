"""Ctrl-C (SIGINT), SIGTERM, a closed terminal (SIGHUP) and a standard output that stops taking text,
at every stage of a run.

- Starting (imports, parsing): nothing is computed yet, so the program ends at once and quietly,
  with the shell's codes: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
- From making the data until the files are written: a signal is only recorded. The training loop
  stops after the current epoch, and a stage that starts later (the second model of --model both, a
  sweep's finer sweep, the explorer's next setting) after its first; what finished is printed and
  written (well under a second), then the run exits with 130, 143 or 129. A second signal changes nothing.
- After the last line: the program ends at once, quietly, with the same codes; everything is finished.
- A closed pipe (`| head`) or a full disk behind stdout: printing stops, the files are still
  written, and the exit status says so (141 for a closed pipe, 74 otherwise). A closed stdout
  (`>&-`) prints nowhere; a character its encoding lacks is printed as \\uXXXX.
"""
import errno
import io
import os
import signal
import sys
from contextlib import contextmanager, suppress

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def signal_name(signum):
    """SIGINT, SIGTERM or SIGHUP for a signal's number (a name is kept as it is)."""
    return signal.Signals(signum).name if isinstance(signum, int) else str(signum)


def end_at_once(signum, frame):
    os._exit(128 + signum)  # no traceback, no half-finished imports left behind: nothing is computed yet


def end_at_once_on_signals():
    """For the start of the program: Ctrl-C, SIGTERM or SIGHUP ends it at once, quietly."""
    for signum in SIGNALS:
        signal.signal(signum, end_at_once)
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit, a write fails with an error instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class RecordedSignals:
    """While active, SIGINT, SIGTERM and SIGHUP are appended to `received` instead of acting."""

    def __init__(self):
        self.received = []
        self.previous = {}

    def __enter__(self):
        with suppress(ValueError):  # not the main thread: signals keep their usual meaning
            for signum in SIGNALS:
                self.previous[signum] = signal.signal(signum, lambda signum, frame: self.received.append(signum))
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    @property
    def exit_status(self):
        """128 + the first signal received (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), None if none came."""
        return 128 + self.received[0] if self.received else None


@contextmanager
def signals_received(received=None):
    """Yields the list that Ctrl-C, SIGTERM and SIGHUP fill while training: `received`, when the caller
    already records them for the whole run, else a list recorded for the duration of the block."""
    if received is not None:
        yield received
        return
    with RecordedSignals() as recorded:
        yield recorded.received


class GuardedStdout:
    """Standard output that never raises: after the first failed write it drops what follows and
    remembers the error, so that a closed pipe or a full disk cannot stop the files being written."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, text):
        if self.error is None:
            try:
                return self.stream.write(text)
            except OSError as error:
                self.fail(error)
        return len(text)

    def flush(self):
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as error:
                self.fail(error)

    def fail(self, error):
        self.error = error
        with suppress(OSError, ValueError):  # later writes, Python's own flush at exit too, go nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def __getattr__(self, name):
        return getattr(self.stream, name)

    @property
    def exit_status(self):
        """141 (128 + SIGPIPE) for a closed pipe, 74 (EX_IOERR) for another failure, None if none."""
        if self.error is None:
            return None
        return 141 if self.error.errno == errno.EPIPE else 74


def usable_standard_streams():
    """Standard streams that cannot raise on what they are given. A closed one (`>&-`) is reopened on
    /dev/null first, so that no file this program opens later takes its number and receives its text.
    A character the stream's encoding lacks (a Chinese file name under cp1252) is written as \\uXXXX."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:  # closed: the lowest free number is this one, so /dev/null lands on it
            os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            mode = "r" if fd == 0 else "w"
            setattr(sys, name, io.TextIOWrapper(io.FileIO(fd, mode, closefd=False), write_through=True))
    for stream in (sys.stdout, sys.stderr):
        with suppress(AttributeError, ValueError):  # not a text stream Python made: left as it is
            stream.reconfigure(errors="backslashreplace")


@contextmanager
def guarded_stdout():
    guard = GuardedStdout(sys.stdout)
    sys.stdout = guard
    try:
        yield guard
    finally:
        guard.flush()
        sys.stdout = guard.stream
