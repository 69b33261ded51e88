"""The exit statuses, in one place (as httpie's status.py): what each number means, and the one-line error.

torch-free: --help prints the list below, and a mistake is reported before torch loads.
"""
import os
import sys
import textwrap
from enum import IntEnum

PROG = "quadratic_regression.py"


class ExitStatus(IntEnum):
    """What the program's exit status says. 128 + N is the shell's code for a run ended by signal N."""
    SUCCESS = 0
    DIVERGED = 1        # training diverged (any run)
    BAD_ARGUMENTS = 2   # a mistake on the command line, reported before any work
    NO_RESOURCES = 71   # the machine could not run it: out of memory, or no working folder (EX_OSERR)
    IO_ERROR = 74       # a file or standard output could not be written (EX_IOERR)
    HANGUP = 129        # the terminal closed: 128 + SIGHUP
    INTERRUPTED = 130   # Ctrl-C: 128 + SIGINT
    PIPE_CLOSED = 141   # standard output closed early: 128 + SIGPIPE
    TERMINATED = 143    # SIGTERM: 128 + SIGTERM


MEANINGS = {
    ExitStatus.SUCCESS: "done",
    ExitStatus.DIVERGED: "training diverged (any run)",
    ExitStatus.BAD_ARGUMENTS: "bad arguments",
    ExitStatus.NO_RESOURCES: "out of memory, or the working folder is gone",
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
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def shown(path):
    """A path as an error line names it: as given if every character prints, else quoted with escapes, so a
    newline, a tab or a byte that is not UTF-8 cannot break the line ('a\\nb.png', 'fig\\xff.png')."""
    path = os.fsdecode(path)
    if path.isprintable():
        return path
    return "'" + "".join(escaped(c) for c in path) + "'"


def escaped(character):
    if "\udc80" <= character <= "\udcff":  # a byte that is not UTF-8, as Python decodes a file name
        return f"\\x{ord(character) - 0xdc00:02x}"
    if character in "'\\":
        return "\\" + character
    return character if character.isprintable() else repr(character)[1:-1]


def one_line(text):
    """The text with every line break and other unprintable character escaped: an error stays one line."""
    return "".join(c if c.isprintable() else escaped(c) for c in str(text))


def refuse(message):
    """A mistake found after parsing (the data, the device): one line, exit status 2."""
    error_line(f"{message} (see --help)")
    return ExitStatus.BAD_ARGUMENTS
