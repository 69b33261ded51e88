"""The command line: the options, their checks and the options they resolve to (options.py), --explore's
option (explore_option.py), and main(). torch-free on purpose: `--help` and a mistyped option answer before torch
loads (about 1.5 s)."""
from ..system.environment import same_numbers_on_every_processor
from ..system.interruptions import end_at_once_on_signals, usable_standard_streams
from .options import parse_args


def main(argv=None) -> int:
    """The program: the arguments parsed and checked once, then the run (beyond_the_blog/run.py), which
    loads torch and the lesson. Returns the exit status. Called without argv it reads the real command
    line and, until training starts, a Ctrl-C, SIGTERM or SIGHUP ends it at once and quietly: nothing is
    computed yet."""
    if argv is None:
        end_at_once_on_signals()
        usable_standard_streams()
    try:
        options = parse_args(argv)
    except SystemExit as exit:  # --help, or a mistake already reported in one line
        return exit.code
    same_numbers_on_every_processor()
    from ..program.run import run  # torch loads here (about 1.5 s): only once the arguments are known to be good
    return run(options)
