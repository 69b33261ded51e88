"""The command line: options, their checks, and the settings they resolve to, once.

torch-free on purpose: `--help` and a mistyped option answer before torch loads (about 1.5 s).
"""
import argparse
import math
import os
import tempfile
from dataclasses import dataclass

from .model_registry import BLOG_MODELS, MODELS, OPTIMIZERS, default_epochs, default_lr, defaults_table

PROG = "quadratic_regression.py"
DEFAULT_SEED = 0
DIVERGED_FACTOR = 1.0  # --lr-sweep: a run diverged if its final loss is above this times its starting loss
# (1: below the limit every error along an eigenvector shrinks, so a stable run always ends below its start)
MAX_SWEEP = 4096       # --lr-sweep: more learning rates than this is a typo, not a sweep


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line instead of the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = OneLineErrorParser(
        prog=PROG,
        description="Fit y = (x-4)(x-8) + noise with PyTorch, as in HansBug's blog post, then explain the fit.",
        epilog=defaults_table() + "\n\nexit status: 0 done, 1 training diverged, 2 bad arguments, "
                                  "130 interrupted (Ctrl-C)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--model", choices=tuple(MODELS) + ("both",), default="params",
        help="params: y = a x^2 + b x + c;  linear: y = (w1 x + b1)(w2 x + b2);  both: one, then the other "
             "(default: params)")
    add("--epochs", type=int, metavar="N",
        help="full-batch training epochs (default: per optimizer and model, see below)")
    add("--lr", type=float, help="learning rate (default: per optimizer, see below; the blog's SGD: 2e-5)")
    add("--optimizer", choices=OPTIMIZERS, default="sgd",
        help="sgd: the blog's plain gradient descent; momentum: heavy ball, 0.9; adam; "
             "lbfgs: each epoch one L-BFGS step of up to 20 iterations (default: sgd)")
    add("--standardize", action="store_true",
        help="train on z = (x - mean) / std, report everything back in x's units")
    add("--tol", type=float, metavar="TOL",
        help="stop early once the loss falls by less than TOL (relative) over one log interval (default: off)")
    add("--runs", type=int, default=1, metavar="R", help="R replications at once, run r with seed + r (default: 1)")
    add("--seed", type=int, default=DEFAULT_SEED,
        help=f"random seed: noise, then initial parameters (default: {DEFAULT_SEED})")
    add("--samples", type=int, default=100, metavar="N", help="number of data points (default: 100)")
    add("--noise", type=float, default=1.0, metavar="SIGMA",
        help="standard deviation of the noise on y (default: 1.0)")
    add("--x-range", type=float, nargs=2, default=(-2.0, 12.0), metavar=("LO", "HI"),
        help="x = linspace(LO, HI) (default: -2 12)")
    add("--log-interval", type=int, metavar="K",
        help="print the loss every K epochs, 0 for never (default: 100, the blog's; a tenth of --epochs below "
             "1000 epochs)")
    add("--plot", metavar="PATH", help="where to write the figure (default: quadratic_regression_<model>.png)")
    add("--no-plot", action="store_true", help="do not draw the figure")
    add("--no-show", action="store_true", help="never open a window (none opens anyway without a display)")
    add("--animate", metavar="PATH.gif", help="write a GIF of the fitted curve through training")
    add("--metrics", metavar="PATH", help="write the results as JSON")
    add("--save-model", metavar="PATH", help="save the trained state_dict with torch.save")
    add("--device", choices=("cpu", "cuda", "mps"), default="cpu", help="where to train (default: cpu)")
    add("-q", "--quiet", action="store_true", help="no epoch lines and no progress bar")
    add("--landscape", metavar="PATH",
        help="write a figure of the loss bowl over (a, b, c), sliced through the least-squares optimum along the "
             "Hessian's steepest and flattest eigenvectors, with the run's path on it, the error along each "
             "eigenvector against (1 - lr*lambda)^k, and for the product model its two layers' sizes")
    add("--lr-sweep", type=int, metavar="N",
        help="instead of one run, N learning rates log-spaced from a tenth of the default lr to twice the predicted "
             "stability limit, trained together from the same start (sgd or momentum, one model); a run diverged if "
             "its final loss is inf/NaN or above its starting loss; the largest lr that "
             "did not diverge is then pinned down to 1%% (lrs 1%% apart around the prediction, trained with the "
             "others, and finer sweeps if it lies elsewhere); the figure goes to --plot "
             "(default: quadratic_regression_<model>_sweep.png)")
    return parser


def check_writable(parser, option, path):
    """Fail now, not after a minute of training, if `path` cannot be written."""
    if path is None:
        return
    if os.path.isdir(path):
        parser.error(f"{option} {path}: is a folder, expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option} {path}: folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        parser.error(f"{option} {path}: folder {folder} is not writable")


def check_numbers(parser, args):
    finite = math.isfinite
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1 (got {args.epochs})")
    if args.lr is not None and not (finite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a positive finite number (got {args.lr})")
    if args.samples < 3:
        parser.error(f"--samples must be at least 3, the number of coefficients (got {args.samples})")
    if not (finite(args.noise) and args.noise >= 0):
        parser.error(f"--noise must be a finite number >= 0 (got {args.noise})")
    lo, hi = args.x_range
    if not (finite(lo) and finite(hi) and lo < hi):
        parser.error(f"--x-range needs finite LO < HI (got {lo:g} {hi:g})")
    if args.log_interval is not None and args.log_interval < 0:
        parser.error(f"--log-interval must be >= 0 (got {args.log_interval})")
    if args.tol is not None and not (finite(args.tol) and args.tol >= 0):
        parser.error(f"--tol must be a finite number >= 0 (got {args.tol})")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1 (got {args.runs})")


def check_combinations(parser, args):
    if args.runs > 1 and args.model == "both":
        parser.error("--runs needs one model: --model params or --model linear")
    if args.runs > 1 and args.optimizer == "lbfgs":
        parser.error("--optimizer lbfgs cannot be vectorized over runs: its line search couples them; "
                     "use sgd, momentum or adam")
    if args.animate is not None and (args.runs > 1 or args.model == "both"):
        parser.error("--animate draws a single run of one model: drop --runs / --model both")
    if args.animate is not None and not args.animate.lower().endswith(".gif"):
        parser.error(f"--animate writes a GIF: the path must end in .gif (got {args.animate})")
    if args.plot is not None and args.no_plot:
        parser.error("--plot and --no-plot contradict each other")
    check_why_options(parser, args)


def check_why_options(parser, args):
    """--landscape and --lr-sweep: what they can be combined with."""
    if args.landscape is not None and (args.runs > 1 or args.lr_sweep is not None):
        parser.error("--landscape draws the path of a single run: drop --runs / --lr-sweep")
    if args.lr_sweep is None:
        return
    if not 2 <= args.lr_sweep <= MAX_SWEEP:
        parser.error(f"--lr-sweep needs between 2 and {MAX_SWEEP} learning rates (got {args.lr_sweep})")
    if args.optimizer not in ("sgd", "momentum"):
        parser.error(f"--lr-sweep measures the stability limit of sgd or momentum; {args.optimizer} has no such "
                     "limit to predict (adam scales its steps, lbfgs searches its own)")
    if args.runs > 1 or args.model == "both":
        parser.error("--lr-sweep trains one model on one data set: drop --runs / --model both")
    if any(v is not None for v in (args.animate, args.tol, args.lr, args.save_model)):
        parser.error("--lr-sweep chooses the learning rates and trains them all to --epochs: "
                     "drop --animate / --tol / --lr / --save-model")


def check_distinct_outputs(parser, args, plot):
    """--landscape must not overwrite another output of the same run."""
    if args.landscape is None:
        return
    others = {"--plot": plot, "--animate": args.animate, "--metrics": args.metrics, "--save-model": args.save_model}
    for option, path in others.items():
        if path is not None and os.path.abspath(path) == os.path.abspath(args.landscape):
            parser.error(f"--landscape {args.landscape}: the same file as {option}")


def default_plot_path(model, runs, lr_sweep=None):
    if lr_sweep is not None:
        return f"quadratic_regression_{model}_sweep.png"
    return f"quadratic_regression_{model}{'_runs' if runs > 1 else ''}.png"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once from the command line. lr and epochs are per model
    (their defaults depend on it); plot is None when no figure is wanted."""
    model: str               # as given: a model's name or "both"
    models: tuple            # the models to train, in order
    optimizer: str
    lr: dict                 # model name -> learning rate
    epochs: dict             # model name -> epochs
    standardize: bool
    tol: float | None
    runs: int
    seed: int
    samples: int
    noise: float
    x_range: tuple
    log_interval: int | None  # as given; see intervals()
    plot: str | None
    animate: str | None
    metrics: str | None
    save_model: str | None
    device: str
    quiet: bool
    no_show: bool
    landscape: str | None = None   # --landscape PATH
    lr_sweep: int | None = None    # --lr-sweep N

    def intervals(self, epochs):
        """(record, print): the loss is kept every `record` epochs (for the plot and --tol) and printed
        every `print` (0: never). By default both are the blog's 100, or a tenth of a shorter run."""
        default = 100 if epochs >= 1000 else max(1, epochs // 10)
        if self.log_interval is None:
            return default, default
        return self.log_interval or default, self.log_interval


def resolve(args):
    models = BLOG_MODELS if args.model == "both" else (args.model,)
    lr = {m: default_lr(args.optimizer, m, args.standardize) if args.lr is None else args.lr for m in models}
    epochs = {m: args.epochs or default_epochs(args.optimizer, m, args.standardize) for m in models}
    plot = None if args.no_plot else args.plot or default_plot_path(args.model, args.runs, args.lr_sweep)
    return Settings(args.model, models, args.optimizer, lr, epochs, args.standardize, args.tol, args.runs,
                    args.seed, args.samples, args.noise, tuple(args.x_range), args.log_interval, plot,
                    args.animate, args.metrics, args.save_model, args.device, args.quiet, args.no_show,
                    args.landscape, args.lr_sweep)


def parse_args(argv=None):
    """The settings for `argv`; --help, or a mistake reported in one line, exits here (SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_numbers(parser, args)
    check_combinations(parser, args)
    for option in ("plot", "animate", "metrics", "save_model", "landscape"):
        check_writable(parser, "--" + option.replace("_", "-"), getattr(args, option))
    if args.plot is None and not args.no_plot:
        check_writable(parser, "--plot", default_plot_path(args.model, args.runs, args.lr_sweep))
    check_distinct_outputs(parser, args, None if args.no_plot else
                           args.plot or default_plot_path(args.model, args.runs, args.lr_sweep))
    return resolve(args)
