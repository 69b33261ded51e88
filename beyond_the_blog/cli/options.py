"""The command line: options, their checks, the settings they resolve to (once), and main().

torch-free on purpose: `--help` and a mistyped option answer before torch loads (about 1.5 s).
"""
import argparse
import math
import re
import textwrap
from dataclasses import dataclass

from ..models import BLOG_MODELS, MODELS, default_epochs, default_lr, defaults_table
from ..optimizers import OPTIMIZERS, listed, optimizers_with, training_loop
from ..system.environment import available_cores, matplotlib_problem, threads_from_environment
from ..system.paths import (
    ANIMATE,
    EXPLORE,
    LANDSCAPE,
    METRICS,
    PLOT,
    SAVE_MODEL,
    OutputError,
    check_targets,
    figure_name,
)
from ..system.status import PROG, ExitStatus, exit_statuses_help, one_line, shown
from .explore_option import add_explore_option, check_explore
from .limits import check_float32_range, check_memory

DEFAULT_SEED = 0
SEED_RANGE = (-2**63, 2**64 - 1)   # what torch.manual_seed accepts
MAX_EPOCHS = 10**12                # at 10 microseconds an epoch, three years


STOPPING = textwrap.fill(
    "stopping: the blog's optimizer, plain sgd, always runs all its epochs. "
    f"The others ({', '.join(optimizers_with('stops_early'))}), at their default epochs, stop once converged: the "
    "loss changed by at most 1e-7 (relative) over 100 epochs (a tenth of a shorter run), whatever --log-interval is; "
    f"{listed(optimizers_with('line_search'))}: once an epoch (up to 20 iterations) leaves the loss exactly as it "
    "found it. A stop is called converged only if a, b and c are then within 0.01 of the least-squares fit, and "
    "stalled otherwise (float32 stopped the loss changing short of the optimum). An explicit --epochs N runs exactly "
    "N epochs (unless --tol stops it). The metrics' stop_reason says why training ended: epochs, converged, stalled, "
    "tol, diverged or interrupted. A run diverged if its loss became inf/NaN, or if it ended above its starting "
    "loss, the rule --runs and --lr-sweep apply to each of their runs.", width=100, break_on_hyphens=False)
MAX_SWEEP = 4096       # --lr-sweep: more learning rates than this is a typo, not a sweep


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line instead of the whole usage, and a negative
    number in any notation (-1e3, -.5, -inf) is taken as a value, not as an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # argparse's own pattern knows only -12 and -1.5: "--x-range -1e3 1e3" would read -1e3 as an option
        self._negative_number_matcher = re.compile(r"^-(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$",
                                                   re.IGNORECASE)

    def error(self, message):
        self.exit(ExitStatus.BAD_ARGUMENTS, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def build_parser():
    parser = OneLineErrorParser(
        prog=PROG,
        description="Fit y = (x-4)(x-8) + noise with PyTorch, as in HansBug's blog post, then explain the fit.",
        epilog=defaults_table() + "\n\n" + STOPPING + "\n\n" + exit_statuses_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--model", choices=tuple(MODELS) + ("both",), default="params",
        help="params: y = a x^2 + b x + c;  linear: y = (w1 x + b1)(w2 x + b2);  both: one, then the other "
             "(default: params)")
    add("--epochs", type=int, metavar="N",
        help="full-batch training epochs (default: per optimizer and model, see below)")
    add("--lr", type=float, help="learning rate (default: per optimizer, see below; the blog's SGD: 2e-5)")
    add("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
        help="; ".join(f"{name}: {facts.help}" if facts.help else name for name, facts in OPTIMIZERS.items())
             + " (default: sgd)")
    add("--standardize", action="store_true",
        help="train on z = (x - mean) / std, report everything back in x's units")
    add("--tol", type=float, metavar="TOL",
        help="stop early once the loss falls by less than TOL (relative) over one log interval (default: off)")
    add("--runs", type=int, default=1, metavar="R",
        help="R replications at once, run r with seed + r, trained as one (see --gradients); each run is judged by "
             "the single run's rules, and one that diverged is left out of the means (default: 1)")
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
    add(PLOT, metavar="PATH", help="where to write the figure (default: quadratic_regression_<model>.png)")
    add("--no-plot", action="store_true", help="do not draw the figure")
    add("--no-show", action="store_true", help="never open a window (none opens anyway without a display)")
    add(ANIMATE, metavar="PATH.gif", help="write a GIF of the fitted curve through training")
    add(METRICS, metavar="PATH", help="write the results as JSON")
    add(SAVE_MODEL, metavar="PATH",
        help="save the trained state_dict with torch.save; with --runs R a list of R state_dicts, run r's at index r")
    add("--device", choices=("cpu", "cuda", "mps"), default="cpu", help="where to train (default: cpu)")
    add("-q", "--quiet", action="store_true", help="no epoch lines and no progress bar")
    add_beyond_options(add)
    add_explore_option(add)
    return parser


def add_beyond_options(add):
    """The options of the later lessons: the stages, a busy machine, and the figures that show why."""
    add("--gradients", choices=("autograd", "manual"),
        help="autograd: loss.backward(), the blog's; manual: every d loss / d p written out by hand, no autograd, "
             "the same losses bit for bit with sgd, and faster (default: autograd; with --runs, manual where the "
             f"model has them over the runs and steps are full-batch {listed(optimizers_with('vectorizable'))}, "
             "equal to autograd's runs to float32 rounding; --gradients autograd forces autograd)")
    add("--batch-size", type=int, metavar="B",
        help="minibatch SGD: a step per B points, the data reshuffled every epoch (seeded by --seed); the loss "
             "printed and plotted is still the full-data loss (default: all points, the blog's full batch)")
    add("--threads", type=int, metavar="N",
        help="torch threads (default: the OMP_NUM_THREADS environment variable if set, else 1: the tensors here "
             "are too small to gain from more, and a second thread waits on a busy core)")
    add(LANDSCAPE, metavar="PATH",
        help="write a figure of the loss bowl over (a, b, c), sliced through the least-squares optimum along the "
             "Hessian's steepest and flattest eigenvectors, with the run's path on it, the error along each "
             "eigenvector against (1 - lr*lambda)^k, and for the product model its two layers' sizes")
    add("--lr-sweep", type=int, metavar="N",
        help="instead of one run, N learning rates log-spaced from a tenth of the default lr to twice the predicted "
             f"stability limit, trained together from the same start ({listed(optimizers_with('stability'))}, one "
             "model), each run bit for bit the single run with its lr; "
             "a run diverged if its final loss is inf/NaN or above its starting "
             "loss; the lr up to which none diverged and the smallest that did are then pinned down to 1%% apart "
             "(lrs 1%% apart around the prediction, trained with the others, and finer sweeps if the edge lies "
             "elsewhere); the figure goes to --plot (default: quadratic_regression_<model>_sweep.png)")


def check_outputs(parser, args):
    """Fail now, not after a minute of training, if an output cannot be written where asked."""
    outputs = {PLOT: args.plot, ANIMATE: args.animate, METRICS: args.metrics,
               SAVE_MODEL: args.save_model, LANDSCAPE: args.landscape, EXPLORE: args.explore}
    if args.plot is None and not args.no_plot:
        outputs[PLOT] = default_plot_path(args.model, args.runs, args.lr_sweep)
    try:
        check_targets(outputs)
    except OutputError as error:
        parser.error(str(error))
    problem = any(outputs[option] for option in (PLOT, ANIMATE, LANDSCAPE)) and matplotlib_problem()
    if problem:
        parser.error(problem)


def asked_models(args):
    """The models to train, in order: --model both is the blog's two."""
    return BLOG_MODELS if args.model == "both" else (args.model,)


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
    if not SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]:
        parser.error(f"--seed must be between -2**63 and 2**64 - 1 (got {args.seed})")
    if args.epochs is not None and args.epochs > MAX_EPOCHS:
        parser.error(f"--epochs above {MAX_EPOCHS:.0e} would take years (got a number of {len(str(args.epochs))} "
                     "digits)")
    cores = available_cores()
    if args.threads is not None and not 1 <= args.threads <= cores:
        parser.error(f"--threads must be from 1 to {cores}, this machine's cores (got {args.threads})")


def check_tol(parser, args):
    """--tol compares the loss at two record epochs: refused where a run holds fewer than two of them."""
    if args.tol is None or args.lr_sweep is not None:
        return
    for name in asked_models(args):
        epochs = args.epochs or default_epochs(args.optimizer, name, args.standardize)
        record = args.log_interval or (100 if epochs >= 1000 else max(1, epochs // 10))
        if epochs < 2 * record:
            parser.error(f"--tol compares the loss over one log interval: {epochs} epochs of {name} hold fewer than "
                         f"two intervals of {record}, so it could never stop the run")


def check_combinations(parser, args):
    if args.runs > 1 and args.model == "both":
        parser.error("--runs needs one model: --model params or --model linear")
    if args.runs > 1 and not OPTIMIZERS[args.optimizer].vectorizable:
        parser.error(f"--optimizer {args.optimizer} cannot be vectorized over runs: its line search couples them; "
                     f"use {listed(optimizers_with('vectorizable'))}")
    if args.animate is not None and (args.runs > 1 or args.model == "both"):
        parser.error("--animate draws a single run of one model: drop --runs / --model both")
    if args.animate is not None and not args.animate.lower().endswith(".gif"):
        parser.error(f"--animate writes a GIF: the path must end in .gif (got {shown(args.animate)})")
    if args.plot is not None and args.no_plot:
        parser.error("--plot and --no-plot contradict each other")
    check_why_options(parser, args)
    check_memory(parser, args, asked_models(args))
    if args.seed + args.runs - 1 > SEED_RANGE[1]:
        parser.error(f"--runs {args.runs}: the seeds of the runs, {args.seed} + r, pass 2**64 - 1")
    check_float32_range(parser, args)


def check_stages(parser, args):
    """--gradients manual and --batch-size: the combinations they cannot serve, refused with the reason."""
    if args.batch_size is not None and not 1 <= args.batch_size <= args.samples:
        parser.error(f"--batch-size must be between 1 and --samples {args.samples} (got {args.batch_size})")
    if args.batch_size is not None and not OPTIMIZERS[args.optimizer].minibatches:
        parser.error(f"--batch-size cannot be used with --optimizer {args.optimizer}: "
                     "its line search needs the full-data loss")
    if args.gradients != "manual":
        return
    if args.batch_size is not None:
        parser.error("--gradients manual writes out the full-batch gradients: drop --batch-size")
    for name in asked_models(args):
        kind, over = ("batched_gradients", " over the runs") if args.runs > 1 else ("manual_gradients", "")
        if getattr(MODELS[name], kind) is None:
            parser.error(f"--gradients manual: model {name} has no gradients written by hand{over} "
                         f"(give its Model a {kind}=...); use --gradients autograd")


def check_why_options(parser, args):
    """--landscape and --lr-sweep: what they can be combined with."""
    if args.landscape is not None and (args.runs > 1 or args.lr_sweep is not None):
        parser.error("--landscape draws the path of a single run: drop --runs / --lr-sweep")
    if args.lr_sweep is None:
        return
    if not 2 <= args.lr_sweep <= MAX_SWEEP:
        parser.error(f"--lr-sweep needs between 2 and {MAX_SWEEP} learning rates (got {args.lr_sweep})")
    if OPTIMIZERS[args.optimizer].stability is None:
        reasons = ", ".join(f"{name} {facts.no_limit}" for name, facts in OPTIMIZERS.items() if facts.no_limit)
        parser.error(f"--lr-sweep measures the stability limit of {listed(optimizers_with('stability'))}; "
                     f"{args.optimizer} has no such limit to predict ({reasons})")
    if args.runs > 1 or args.model == "both":
        parser.error("--lr-sweep trains one model on one data set: drop --runs / --model both")
    if any(v is not None for v in (args.animate, args.tol, args.lr, args.save_model)):
        parser.error("--lr-sweep chooses the learning rates and trains them all to --epochs: "
                     "drop --animate / --tol / --lr / --save-model")
    if args.batch_size is not None or args.gradients == "manual":
        parser.error("--lr-sweep trains full-batch with autograd's gradients: drop --batch-size / --gradients manual")


def default_plot_path(model, runs, lr_sweep=None):
    if lr_sweep is not None:
        return f"quadratic_regression_{model}_sweep.png"
    return f"quadratic_regression_{model}{'_runs' if runs > 1 else ''}.png"


@dataclass(frozen=True, kw_only=True)
class RunOptions:
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
    threads: int              # --threads, else OMP_NUM_THREADS if usable, else 1
    loop: str                 # fit.LOOPS: blog, manual (--gradients manual), minibatches, batched (--runs)
    batch_size: int | None    # None: the full batch
    stop_when_converged: bool  # momentum/adam/lbfgs at their default epochs (see STOPPING)
    landscape: str | None     # --landscape PATH
    lr_sweep: int | None      # --lr-sweep N
    explore: object = None    # --explore PATH.html: an explorer_options.ExploreRequest

    def intervals(self, epochs):
        """(record, print): the loss is kept every `record` epochs (for the plot and --tol) and printed
        every `print` (0: never). By default both are the blog's 100, or a tenth of a shorter run."""
        default = 100 if epochs >= 1000 else max(1, epochs // 10)
        if self.log_interval is None:
            return default, default
        return self.log_interval or default, self.log_interval


def resolve(args, explore=None):
    """The RunOptions for checked arguments: every default filled in, once."""
    models = asked_models(args)
    plot = (None if args.no_plot else figure_name(args.plot) if args.plot
            else default_plot_path(args.model, args.runs, args.lr_sweep))
    return RunOptions(
        model=args.model, models=models, optimizer=args.optimizer,
        lr={m: default_lr(args.optimizer, m, args.standardize) if args.lr is None else args.lr for m in models},
        epochs={m: args.epochs or default_epochs(args.optimizer, m, args.standardize) for m in models},
        standardize=args.standardize, tol=args.tol, runs=args.runs, seed=args.seed, samples=args.samples,
        noise=args.noise, x_range=tuple(args.x_range), log_interval=args.log_interval, plot=plot,
        animate=args.animate, metrics=args.metrics, save_model=args.save_model, device=args.device,
        quiet=args.quiet, no_show=args.no_show, threads=threads_from_environment(args.threads),
        loop=training_loop(args.model, args.optimizer, args.runs, args.batch_size, args.gradients),
        batch_size=args.batch_size,
        stop_when_converged=(args.epochs is None and OPTIMIZERS[args.optimizer].stops_early
                             and all(MODELS[m].stop_when_converged for m in models)),
        landscape=args.landscape and figure_name(args.landscape), lr_sweep=args.lr_sweep, explore=explore)


def parse_args(argv=None):
    """The settings for `argv`; --help, or a mistake reported in one line, exits here (SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_numbers(parser, args)
    check_combinations(parser, args)
    check_tol(parser, args)
    check_stages(parser, args)
    explore = check_explore(parser, args, argv)
    check_outputs(parser, args)
    return resolve(args, explore)
