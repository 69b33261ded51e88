"""--explore PATH.html: the option, what it combines with, and the settings it asks for (ExploreRequest).

torch-free, as the rest of the command line: a mistake is reported before torch loads.
"""
import argparse
from dataclasses import dataclass

from ..models import BLOG_MODELS
from ..optimizers import listed, optimizers_with
from ..system.paths import ANIMATE, EXPLORE, LANDSCAPE, PLOT, SAVE_MODEL

EXPLORE_OPTIMIZERS = optimizers_with("stability")  # the optimizers with a predicted stability limit
ONE_RUN_ONLY = {"--lr-sweep": "lr_sweep", ANIMATE: "animate", LANDSCAPE: "landscape",
                "--lr": "lr", "--tol": "tol", SAVE_MODEL: "save_model", "--batch-size": "batch_size",
                PLOT: "plot", "--log-interval": "log_interval"}  # what --explore chooses, prints or draws itself


@dataclass(frozen=True, kw_only=True)
class ExploreRequest:
    """The page --explore writes and the runs it holds: every combination of these."""
    path: str
    models: tuple            # "params", "linear"
    standardizations: tuple  # False: x, the blog's inputs; True: z (--standardize)
    optimizers: tuple        # "sgd", "momentum"
    epochs: int | None       # None: each setting's default (the blog's 500000 for params on x with sgd)


def add_explore_option(add):
    add(EXPLORE, metavar="PATH.html",
        help="write one self-contained HTML page (no server, no network) of real runs: both models, on x and on "
             f"z, with {listed(EXPLORE_OPTIMIZERS, 'and')}, 24 lrs each log-spaced from a tenth of the default to "
             "twice the predicted limit, and the default lr, trained together from the run's start for the default "
             "epochs, recorded at 60 epochs; --model, --optimizer, --standardize and --epochs narrow it; --metrics "
             "writes its data")


def given_narrowing(parser, argv):
    """(--model, --optimizer, --standardize) as given, None where not given. argparse fills in an option's
    default only if the namespace lacks the attribute, so parsing again into a namespace holding None tells."""
    given = parser.parse_args(argv, namespace=argparse.Namespace(model=None, optimizer=None, standardize=None))
    return given.model, given.optimizer, given.standardize


def check_explore(parser, args, argv):
    """The ExploreRequest for --explore (None without it); a combination it cannot serve is refused in one line."""
    if args.explore is None:
        return None
    if not args.explore.lower().endswith(".html"):
        parser.error(f"--explore writes an HTML page: the path must end in .html (got {args.explore})")
    given = [option for option, name in ONE_RUN_ONLY.items() if getattr(args, name) is not None]
    given += ["--runs"] if args.runs > 1 else []
    if given:
        parser.error(f"--explore chooses its learning rates, prints one line per setting and draws no figure "
                     f"besides the page: drop {' / '.join(given)}")
    if args.gradients == "autograd":  # its runs are trained with the gradients by hand, as --runs trains them
        parser.error("--explore trains every run with the gradients by hand (batched_gradients.py): drop "
                     "--gradients autograd")
    model, optimizer, standardize = given_narrowing(parser, argv)
    if optimizer is not None and optimizer not in EXPLORE_OPTIMIZERS:
        parser.error(f"--explore shows the stability limit of {listed(EXPLORE_OPTIMIZERS, 'and')}; {optimizer} has "
                     "none to predict")
    args.no_plot = True  # the page is the figure: no default --plot file is checked or written
    return ExploreRequest(path=args.explore, models=BLOG_MODELS if model in (None, "both") else (model,),
                          standardizations=(True,) if standardize else (False, True),
                          optimizers=(optimizer,) if optimizer else EXPLORE_OPTIMIZERS, epochs=args.epochs)
