"""The exit statuses, in one place (as httpie's status.py): what each number means, and the one-line error.

torch-free: --help prints the list below, and a mistake is reported before torch loads.
"""
import sys
import textwrap
from enum import IntEnum

PROG = "quadratic_regression.py"


class ExitStatus(IntEnum):
    """What the program's exit status says. 128 + N is the shell's code for a run ended by signal N."""
    SUCCESS = 0
    DIVERGED = 1        # training diverged (any run)
    BAD_ARGUMENTS = 2   # a mistake on the command line, reported before any work
    IO_ERROR = 74       # a file or standard output could not be written (EX_IOERR)
    HANGUP = 129        # the terminal closed: 128 + SIGHUP
    INTERRUPTED = 130   # Ctrl-C: 128 + SIGINT
    PIPE_CLOSED = 141   # standard output closed early: 128 + SIGPIPE
    TERMINATED = 143    # SIGTERM: 128 + SIGTERM


MEANINGS = {
    ExitStatus.SUCCESS: "done",
    ExitStatus.DIVERGED: "training diverged (any run)",
    ExitStatus.BAD_ARGUMENTS: "bad arguments",
    ExitStatus.IO_ERROR: "a file or standard output could not be written",
    ExitStatus.HANGUP: "the terminal closed (SIGHUP)",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitStatus.PIPE_CLOSED: "standard output closed early",
    ExitStatus.TERMINATED: "terminated (SIGTERM)",
}


def exit_statuses_help():
    """The --help epilog's list, made from the enum: 'exit status: 0 done, 1 ...', at most 120 characters a line."""
    return textwrap.fill("exit status: " + ", ".join(f"{s.value} {MEANINGS[s]}" for s in ExitStatus), width=120)


def error_line(message):
    """The one line a mistake gets on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def refuse(message):
    """A mistake found after parsing (the data, the device): one line, exit status 2."""
    error_line(f"{message} (see --help)")
    return ExitStatus.BAD_ARGUMENTS
