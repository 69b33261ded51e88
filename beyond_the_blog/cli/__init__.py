"""The command line: the options, their checks and the options they resolve to (options.py), --explore's
option (explore_option.py), and main(). torch-free on purpose: `--help` and a mistyped option answer before torch
loads (about 1.5 s)."""
from ..system.environment import (
    library_warnings_held,
    out_of_memory,
    same_numbers_on_every_processor,
    working_folder_problem,
)
from ..system.interruptions import end_at_once_on_signals, usable_standard_streams
from ..system.status import ExitStatus, error_line
from .options import parse_args


def main(argv=None) -> int:
    """The program: the arguments parsed and checked once, then the run (beyond_the_blog/run.py), which
    loads torch and the lesson. Returns the exit status. Called without argv it reads the real command
    line and, until training starts, a Ctrl-C, SIGTERM or SIGHUP ends it at once and quietly: nothing is
    computed yet."""
    if argv is None:
        end_at_once_on_signals()
        usable_standard_streams()
    problem = working_folder_problem()  # before any path is resolved against it
    if problem:
        error_line(problem)
        return ExitStatus.NO_RESOURCES
    try:
        options = parse_args(argv)
    except SystemExit as exit:  # --help, or a mistake already reported in one line
        return exit.code
    same_numbers_on_every_processor()
    try:
        with library_warnings_held():  # said after the last check, so that a refusal stays one line
            from ..program.run import run  # torch loads here (about 1.5 s): only once the arguments are good
        return run(options)
    except (MemoryError, RuntimeError, OSError, ImportError) as error:
        if not out_of_memory(error):
            raise
        error_line("out of memory: the run stopped here. What is printed above and every file already written are "
                   "whole; fewer --samples, --runs or --epochs need less")
        return ExitStatus.NO_RESOURCES
