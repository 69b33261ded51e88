"""Quadratic regression with PyTorch: a faithful reproduction of HansBug's blog post
"【学习笔记】深度学习 demo2 二次函数回归" (deep learning demo 2: quadratic regression), and
then what the post leaves out.

The blog samples y = (x - 4)(x - 8) + N(0, 1) noise at 100 points of [-2, 12] and fits it with
two models, trained by full-batch SGD (lr 2e-5) on the mean squared error:

    python quadratic_regression.py --model params   # y = a x^2 + b x + c, 500000 epochs
    python quadratic_regression.py --model linear   # y = (w1 x + b1)(w2 x + b2), 20000 epochs

By default the output is the blog's, loss for loss. After it come the least-squares optimum, a
diagnosis of why SGD needs so many epochs, and a two-panel plot. Beyond the blog: --model both,
--optimizer, --standardize, --tol, --runs (vectorized replications) and --animate.

The file reads top-down: command line (parsed before torch loads), data, the two models, the
training loop, the analysis, replications, plots, and main().
"""
import argparse
import copy
import json
import math
import os
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- command line
# This part comes first, before `import torch` (about 1.5 s), so that --help and a mistyped
# option answer at once. main() at the bottom of the file is what runs.

MODELS = ("params", "linear")
TRUE_COEFFICIENTS = (1.0, -12.0, 32.0)  # (x - 4)(x - 8) = x^2 - 12 x + 32
DEFAULT_SEED = 0

# Default (lr, epochs) per optimizer, with or without --standardize, per model. Plain "sgd" is
# the blog's own setting. The others were chosen so that both models reach the least-squares
# fit (coefficients within 0.01, loss within 0.1%) on the default data for seeds 0-9
# (tests/test_fast.py checks it). With --standardize the inputs z = (x - mean)/std span
# about [-1.7, 1.7], the loss is well conditioned, and steps can be 10000 times larger.
DEFAULTS = {
    ("sgd", False): {"params": (2e-5, 500_000), "linear": (2e-5, 20_000)},
    ("momentum", False): {"params": (4e-4, 5_000), "linear": (5e-5, 5_000)},
    ("adam", False): {"params": (0.02, 6_000), "linear": (0.05, 3_000)},
    ("lbfgs", False): {"params": (1.0, 20), "linear": (0.5, 50)},
    ("sgd", True): {"params": (0.3, 1_000), "linear": (0.01, 1_000)},
    ("momentum", True): {"params": (0.05, 500), "linear": (0.005, 500)},
    ("adam", True): {"params": (0.05, 2_000), "linear": (0.05, 2_000)},
    ("lbfgs", True): {"params": (1.0, 20), "linear": (1.0, 20)},
}
OPTIMIZERS = ("sgd", "momentum", "adam", "lbfgs")


def default_lr(optimizer, model, standardize):
    return DEFAULTS[optimizer, standardize][model][0]


def default_epochs(optimizer, model, standardize):
    return DEFAULTS[optimizer, standardize][model][1]


def defaults_table():
    lines = ["defaults per optimizer (params model / linear model):"]
    for (name, standardize), per_model in DEFAULTS.items():
        label = f"{name} --standardize" if standardize else name
        lrs = " / ".join(f"{lr:g}" for lr, _ in per_model.values())
        epochs = " / ".join(str(e) for _, e in per_model.values())
        lines.append(f"  {label:22s} lr {lrs:15s} epochs {epochs}")
    return "\n".join(lines)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a mistake is reported in one line instead of the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = OneLineErrorParser(
        prog="quadratic_regression.py",
        description="Fit y = (x-4)(x-8) + noise with PyTorch, as in HansBug's blog post, then explain the fit.",
        epilog=defaults_table() + "\n\nexit status: 0 done, 1 training diverged, 2 bad arguments, 130 interrupted (Ctrl-C)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", choices=MODELS + ("both",), default="params",
                        help="params: y = a x^2 + b x + c;  linear: y = (w1 x + b1)(w2 x + b2);  both: one, then the other (default: params)")
    parser.add_argument("--epochs", type=int, metavar="N", help="full-batch training epochs (default: per optimizer and model, see below)")
    parser.add_argument("--lr", type=float, help="learning rate (default: per optimizer, see below; the blog's SGD: 2e-5)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                        help="sgd: the blog's plain gradient descent; momentum: heavy ball, 0.9; adam; lbfgs: each epoch one L-BFGS step of up to 20 iterations (default: sgd)")
    parser.add_argument("--standardize", action="store_true",
                        help="train on z = (x - mean) / std, report everything back in x's units")
    parser.add_argument("--tol", type=float, metavar="TOL",
                        help="stop early once the loss falls by less than TOL (relative) over one log interval (default: off)")
    parser.add_argument("--runs", type=int, default=1, metavar="R",
                        help="R replications at once, run r with seed + r (default: 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed: noise, then initial parameters (default: {DEFAULT_SEED})")
    parser.add_argument("--samples", type=int, default=100, metavar="N", help="number of data points (default: 100)")
    parser.add_argument("--noise", type=float, default=1.0, metavar="SIGMA", help="standard deviation of the noise on y (default: 1.0)")
    parser.add_argument("--x-range", type=float, nargs=2, default=(-2.0, 12.0), metavar=("LO", "HI"), help="x = linspace(LO, HI) (default: -2 12)")
    parser.add_argument("--log-interval", type=int, metavar="K",
                        help="print the loss every K epochs, 0 for never (default: 100, the blog's; a tenth of --epochs below 1000 epochs)")
    parser.add_argument("--plot", metavar="PATH", help="where to write the figure (default: quadratic_regression_<model>.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    parser.add_argument("--no-show", action="store_true", help="never open a window (none opens anyway without a display)")
    parser.add_argument("--animate", metavar="PATH.gif", help="write a GIF of the fitted curve through training")
    parser.add_argument("--metrics", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--save-model", metavar="PATH", help="save the trained state_dict with torch.save")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default="cpu", help="where to train (default: cpu)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no epoch lines and no progress bar")
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


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
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
    if args.runs > 1 and args.model == "both":
        parser.error("--runs needs one model: --model params or --model linear")
    if args.runs > 1 and args.optimizer == "lbfgs":
        parser.error("--optimizer lbfgs cannot be vectorized over runs: its line search couples them; use sgd, momentum or adam")
    if args.animate is not None and (args.runs > 1 or args.model == "both"):
        parser.error("--animate draws a single run of one model: drop --runs / --model both")
    if args.animate is not None and not args.animate.lower().endswith(".gif"):
        parser.error(f"--animate writes a GIF: the path must end in .gif (got {args.animate})")
    if args.plot is not None and args.no_plot:
        parser.error("--plot and --no-plot contradict each other")
    for option in ("plot", "animate", "metrics", "save_model"):
        check_writable(parser, "--" + option.replace("_", "-"), getattr(args, option))
    if args.plot is None and not args.no_plot:
        check_writable(parser, "--plot", default_plot_path(args.model, args.runs))
    return args


def default_plot_path(model, runs):
    return f"quadratic_regression_{model}{'_runs' if runs > 1 else ''}.png"


if __name__ == "__main__":
    parse_args()  # --help or a mistake ends the program here, before torch is imported

import torch  # noqa: E402
from torch import nn  # noqa: E402


# ----------------------------------------------------------------------------- data
def make_data(samples=100, noise=1.0, x_range=(-2.0, 12.0)):
    """The blog's data: x = linspace(lo, hi) as an (n, 1) column, y = (x - 4)(x - 8) + noise."""
    x = torch.linspace(x_range[0], x_range[1], samples).reshape(samples, 1)
    y = (x - 4) * (x - 8) + noise * torch.randn(x.size())  # draws the noise before any parameter
    return x, y


# ----------------------------------------------------------------------------- the two models
class ParamQuadratic(nn.Module):
    """y = a·x² + b·x + c, with a, b, c three trainable 1×1 parameters (the blog's first model).

    x is an (n, 1) column and a, b, c are 1×1 matrices, as in the blog, so x² @ a is the column
    a·x²; the matrix products keep the arithmetic, and so every loss, identical to the blog's.
    """

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(1, 1))
        self.b = nn.Parameter(torch.randn(1, 1))
        self.c = nn.Parameter(torch.randn(1, 1))

    def forward(self, x):
        return x ** 2 @ self.a + x @ self.b + self.c

    @staticmethod
    def coefficients(p):
        """(a, b, c) from the parameters; p maps names to tensors with an optional leading run axis."""
        return torch.stack([p["a"], p["b"], p["c"]], dim=-1).reshape(-1, 3)

    @staticmethod
    def to_x_units(p, mean, std):
        """Parameters fitted on z = (x - mean)/std, rewritten for x: a z² + b z + c expanded in x."""
        a, b, c = p["a"], p["b"], p["c"]
        return {"a": a / std**2,
                "b": b / std - 2 * a * mean / std**2,
                "c": c - b * mean / std + a * mean**2 / std**2}


class LinearProduct(nn.Module):
    """y = (w1·x + b1)(w2·x + b2), the product of two nn.Linear(1, 1) layers (the blog's second model).

    Expanded: y = w1·w2 x² + (w1·b2 + w2·b1) x + b1·b2. (The blog writes the first term as
    "w1 w2 x"; it is w1 w2 x².)
    """

    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(1, 1)  # created first, so it takes the first random numbers
        self.linear2 = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear2(x) * self.linear1(x)

    @staticmethod
    def coefficients(p):
        w1, b1 = p["linear1.weight"].reshape(-1), p["linear1.bias"].reshape(-1)
        w2, b2 = p["linear2.weight"].reshape(-1), p["linear2.bias"].reshape(-1)
        return torch.stack([w1 * w2, w1 * b2 + w2 * b1, b1 * b2], dim=-1)

    @staticmethod
    def to_x_units(p, mean, std):
        """w z + b = (w/std) x + (b - w·mean/std): each layer rewritten for x."""
        out = {}
        for layer in ("linear1", "linear2"):
            w, b = p[layer + ".weight"], p[layer + ".bias"]
            out[layer + ".weight"] = w / std
            out[layer + ".bias"] = b - w.reshape(b.shape) * mean / std
        return out


MODEL_CLASSES = {"params": ParamQuadratic, "linear": LinearProduct}


def make_model(name):
    return MODEL_CLASSES[name]()


# ----------------------------------------------------------------------------- training
class PlainSGD:
    """θ ← θ − lr·∇θ: the update of torch.optim.SGD (no momentum), written out.

    torch.optim.SGD computes exactly these numbers (tests/test_fidelity.py checks it bit for
    bit), but each of its step() and zero_grad() calls also runs hooks and profiler bookkeeping
    that cost more than the arithmetic on three numbers: written out, the blog's 500000 epochs
    take about half the time.
    """

    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p.add_(p.grad, alpha=-self.lr)


def make_optimizer(name, params, lr):
    if name == "sgd":
        return PlainSGD(params, lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "lbfgs":  # each "epoch" is one .step(): up to 20 iterations with a line search
        return torch.optim.LBFGS(params, lr=lr, max_iter=20, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-9, tolerance_change=1e-12)
    raise ValueError(f"unknown optimizer {name!r}")


@contextmanager
def ctrl_c_ends_training():
    """While training, Ctrl-C ends the loop after the current epoch instead of killing the
    program, so the parameters reached are still printed, plotted and saved."""
    pressed = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    except ValueError:  # not the main thread: Ctrl-C keeps its usual meaning
        previous = None
    try:
        yield pressed
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@dataclass
class TrainLog:
    """What train() saw: the loss at every recorded epoch, why it stopped, and how long it took."""
    epochs_run: int = 0
    history: list = field(default_factory=list)   # (epoch, loss): a float, or a tensor of one loss per run
    frames: list = field(default_factory=list)    # (epoch, prediction at x) for --animate
    stop_reason: str = "epochs"                   # epochs | tol | target | diverged | interrupted
    diverged_at: int | None = None
    seconds: float = 0.0


def train(model, x, y, optimizer, epochs, criterion=None, record_interval=100, on_record=None,
          tol=None, frame_epochs=(), stop_when=None):
    """The blog's training loop: full batch, forward, loss, zero_grad, backward, step.

    Every `record_interval` epochs, and at a few log-spaced epochs before, the loss is kept and
    handed to on_record (which prints it at the log interval). The loop stops early on an inf/NaN
    loss, on Ctrl-C, when `tol` is met, or when stop_when() says so. For a vmapped `Replicas`
    model the recorded loss is a tensor, one entry per run.
    """
    criterion = criterion or nn.MSELoss()
    replicated = isinstance(criterion, SummedRunLosses)
    needs_closure = isinstance(optimizer, torch.optim.LBFGS)  # L-BFGS re-evaluates the loss in its line search
    frame_epochs = set(frame_epochs)
    early_epochs = {round(1.25**k) for k in range(40)}  # also keep a few early losses, for the log-scale plot
    log = TrainLog()
    previous = None

    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    start = time.perf_counter()
    with ctrl_c_ends_training() as ctrl_c:
        for epoch in range(epochs):
            if needs_closure:
                loss = optimizer.step(closure)
            else:
                out = model(x)
                loss = criterion(out, y)

                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            log.epochs_run = epoch + 1

            if not replicated:  # replicas are checked run by run below
                value = loss.item()
                if not math.isfinite(value):
                    log.stop_reason, log.diverged_at = "diverged", epoch + 1
                    break
            if (epoch + 1) % record_interval == 0 or epoch + 1 in early_epochs:
                if replicated:
                    value = criterion.per_run(out.detach(), y).cpu()
                log.history.append((epoch + 1, value))
                if replicated and not torch.isfinite(value).any():
                    log.stop_reason, log.diverged_at = "diverged", epoch + 1
                    break
                if on_record is not None:
                    on_record(epoch + 1, value)
                if stop_when is not None and stop_when():
                    log.stop_reason = "target"
                    break
                if tol is not None and (epoch + 1) % record_interval == 0:
                    if previous is not None and relative_decrease(previous, value) < tol:
                        log.stop_reason = "tol"
                        break
                    previous = value
            if epoch + 1 in frame_epochs:
                with torch.no_grad():
                    log.frames.append((epoch + 1, model(x).detach().cpu()))
            if ctrl_c:
                log.stop_reason = "interrupted"
                break
    log.seconds = time.perf_counter() - start
    return log


def relative_decrease(before, after):
    """(before - after) / before; for a tensor of runs, the largest, so all runs must have settled."""
    if isinstance(after, torch.Tensor):
        finite = torch.isfinite(after) & torch.isfinite(before)
        if not finite.any():
            return 0.0
        return ((before - after) / before)[finite].max().item()
    return (before - after) / before if before > 0 else 0.0


# ----------------------------------------------------------------------------- beyond the blog: one fit, start to end
@dataclass
class Fit:
    """A trained model and everything measured about it, in x's units."""
    model_name: str
    model: nn.Module
    optimizer: str
    lr: float
    epochs: int
    standardize: bool
    log: TrainLog
    final_loss: object        # float, or a tensor with one loss per run
    coefficients: torch.Tensor  # (runs, 3): a, b, c of the expanded quadratic
    initial: dict             # parameters before training, in the space trained in
    trained: dict             # parameters after training, in the space trained in
    mean: float = 0.0         # the standardization, if any: z = (x - mean) / std
    std: float = 1.0

    @property
    def parameters(self):
        return named_tensors(self.model)


def named_tensors(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def model_class(model):
    return model.model_class if isinstance(model, Replicas) else type(model)


def fit(model, x, y, *, model_name, optimizer="sgd", lr=None, epochs=None, standardize=False,
        record_interval=100, on_record=None, tol=None, frame_epochs=(), target=None):
    """Train `model` on (x, y) and return a Fit in x's units. With standardize the model sees
    z = (x - mean)/std, and its parameters are rewritten for x afterwards. With `target`
    (a, b, c), training stops once every coefficient is within 0.01 of it (the benchmark's
    time to fit)."""
    lr = default_lr(optimizer, model_name, standardize) if lr is None else lr
    epochs = default_epochs(optimizer, model_name, standardize) if epochs is None else epochs
    mean, std = (x.mean().item(), x.std().item()) if standardize else (0.0, 1.0)
    inputs = (x - mean) / std if standardize else x
    criterion = SummedRunLosses() if isinstance(model, Replicas) else nn.MSELoss()
    initial = {k: v.clone() for k, v in named_tensors(model).items()}

    cls = model_class(model)

    def coefficients_in_x():
        params = {k: v.cpu().double() for k, v in named_tensors(model).items()}
        return cls.coefficients(cls.to_x_units(params, mean, std) if standardize else params)

    def close_to_target():
        return bool(((coefficients_in_x() - target).abs() <= 0.01).all())

    opt = make_optimizer(optimizer, model.parameters(), lr)
    log = train(model, inputs, y, opt, epochs, criterion=criterion, record_interval=record_interval, on_record=on_record,
                tol=tol, frame_epochs=frame_epochs, stop_when=close_to_target if target is not None else None)
    trained = {k: v.clone() for k, v in named_tensors(model).items()}
    if standardize:
        with torch.no_grad():
            converted = cls.to_x_units(trained, mean, std)
            for name, p in model.named_parameters():
                p.copy_(converted[name])
    with torch.no_grad():  # the loss of the parameters returned (the log's last entry is before the last step)
        out = model(x)
    final_loss = criterion.per_run(out, y).cpu() if isinstance(model, Replicas) else criterion(out, y).item()
    coefficients = cls.coefficients({k: v.cpu().double() for k, v in named_tensors(model).items()})
    return Fit(model_name, model, optimizer, lr, epochs, standardize, log, final_loss, coefficients,
               initial, trained, mean, std)


# ----------------------------------------------------------------------------- analysis: the best possible fit
@dataclass
class LeastSquares:
    """Ordinary least squares for a x² + b x + c, the fit no quadratic can beat on this data."""
    coefficients: torch.Tensor   # (runs, 3)
    loss: torch.Tensor           # (runs,) mean squared error at the optimum
    stderr: torch.Tensor | None  # (runs, 3) standard errors; None with 3 points (no residual left)
    t95: float | None            # Student t quantile for a 95% interval with n - 3 degrees of freedom


def quadratic_features(x):
    x = x.double().reshape(-1, 1)
    return torch.cat([x**2, x, torch.ones_like(x)], dim=1)


def least_squares(x, y):
    """Least squares in float64 by torch.linalg.lstsq. y is (n, 1), or (runs, n, 1) for many
    data sets on the same x."""
    features = quadratic_features(x.cpu())
    targets = y.cpu().double().reshape(-1, features.shape[0]).T   # (n, runs)
    # gelsd (SVD): the default CPU driver, gelsy, can differ in the last bits from call to call
    solution = torch.linalg.lstsq(features, targets, driver="gelsd").solution  # (3, runs)
    residuals = features @ solution - targets
    n = features.shape[0]
    loss = (residuals**2).mean(dim=0)
    stderr = t95 = None
    if n > 3:
        sigma2 = (residuals**2).sum(dim=0) / (n - 3)               # unbiased residual variance
        unscaled = torch.linalg.inv(features.T @ features).diagonal()
        stderr = (sigma2[:, None] * unscaled[None, :]).sqrt()
        t95 = student_t_quantile(0.975, n - 3)
    return LeastSquares(solution.T, loss, stderr, t95)


def student_t_quantile(p, df):
    """The p-quantile of Student's t with df degrees of freedom, for p > 0.5, by bisection on
    its CDF (Simpson's rule on the density), to keep scipy out of the requirements."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(t):
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))

    def cdf(t, steps=2000):
        h = t / steps
        inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
        return 0.5 + h / 3 * (density(0) + inner + density(t))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


# ----------------------------------------------------------------------------- analysis: why SGD is slow
@dataclass
class ParamsDiagnosis:
    """The MSE of a x² + b x + c is a quadratic bowl: its Hessian H = (2/n) FᵀF, F = [x², x, 1],
    does not depend on a, b, c. Plain gradient descent shrinks the error along each eigenvector
    of H by |1 - lr·λ| per epoch, so λmax caps the lr and λmin sets the pace."""
    eigenvalues: torch.Tensor     # ascending
    eigenvectors: torch.Tensor    # columns, in (a, b, c) order
    condition_number: float
    max_stable_lr: float          # 2 / λmax
    lr: float
    epochs_to_converge: float     # epochs for the slowest direction to shrink its error 1000-fold
    predicted: torch.Tensor | None = None  # (a, b, c) plain SGD reaches in exact arithmetic
    steps: torch.Tensor | None = None      # |lr·gradient| at the end, per coefficient
    spacing: torch.Tensor | None = None    # gap between adjacent float32 numbers at the end values


def params_hessian(inputs):
    features = quadratic_features(inputs)
    return 2 / features.shape[0] * features.T @ features


def diagnose_params(inputs, lr, y=None, start=None, end=None, epochs_run=None):
    """Eigen-analysis of the constant Hessian on `inputs` (x, or z when standardized). Given the
    start and end (a, b, c) of a plain-SGD run on (inputs, y), also where exact arithmetic puts
    it, θ_k - θ* = (I - lr·H)^k (θ_0 - θ*), and how the last float32 updates compare with the
    spacing of float32 numbers: an update under half that spacing rounds away."""
    hessian = params_hessian(inputs)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    smallest, largest = eigenvalues[0].item(), eigenvalues[-1].item()
    shrink = abs(1 - lr * smallest)
    epochs_to_converge = math.log(1000) / -math.log(shrink) if shrink < 1 else math.inf
    result = ParamsDiagnosis(eigenvalues, eigenvectors, largest / smallest, 2 / largest, lr, epochs_to_converge)
    if y is not None and start is not None and end is not None:
        features, targets = quadratic_features(inputs), y.double().reshape(-1, 1).cpu()
        optimum = torch.linalg.lstsq(features, targets, driver="gelsd").solution.reshape(3)
        factors = (1 - lr * eigenvalues) ** epochs_run
        result.predicted = optimum + eigenvectors @ (factors * (eigenvectors.T @ (start - optimum)))
        gradient = hessian @ end - 2 / features.shape[0] * (features.T @ targets).reshape(3)
        result.steps = (lr * gradient).abs()
        end32 = end.float()
        result.spacing = (torch.nextafter(end32, end32.sign() * math.inf) - end32).abs().double()
    return result


@dataclass
class LinearDiagnosis:
    """The product model has a valley of equivalent solutions: (s·w1, s·b1, w2/s, b2/s) gives the
    same curve for every s, so its Hessian at a minimum has one eigenvalue near 0. The others are
    those of the bowl in (a, b, c) seen through the product, and far better conditioned. Gradient
    descent (nearly) conserves balance = (w1² + b1²) - (w2² + b2²), which picks the point of the
    valley the model lands on."""
    eigenvalues: torch.Tensor          # ascending
    condition_number: float            # max |λ| / min |λ|, the flat direction included
    condition_without_flat: float      # max |λ| / second smallest |λ|
    params_eigenvalues: torch.Tensor   # the params model's Hessian on the same inputs, for comparison
    balance_start: float
    balance_end: float


def product_loss(theta, inputs, y):
    """The linear model's MSE as a function of (w1, b1, w2, b2), in float64."""
    x = inputs.double().reshape(-1)
    w1, b1, w2, b2 = theta
    return ((w1 * x + b1) * (w2 * x + b2) - y.double().reshape(-1)).pow(2).mean()


def product_theta(p):
    return torch.stack([p[k].cpu().double().reshape(()) for k in
                        ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")])


def product_hessian(theta, inputs, y):
    return torch.autograd.functional.hessian(lambda t: product_loss(t, inputs.cpu(), y.cpu()), theta)


def balance(theta):
    w1, b1, w2, b2 = theta.tolist()
    return (w1**2 + b1**2) - (w2**2 + b2**2)


def diagnose_linear(inputs, y, start, end):
    """start, end: the linear model's parameters (name -> tensor) in the space it was trained in."""
    eigenvalues = torch.linalg.eigvalsh(product_hessian(product_theta(end), inputs, y))
    magnitudes = eigenvalues.abs().sort().values
    condition = (magnitudes[-1] / magnitudes[0]).item() if magnitudes[0] > 0 else math.inf
    return LinearDiagnosis(eigenvalues, condition, (magnitudes[-1] / magnitudes[1]).item(),
                           torch.linalg.eigvalsh(params_hessian(inputs)),
                           balance(product_theta(start)), balance(product_theta(end)))


def stable_lr(model_name, inputs, y, start):
    """The largest lr at which plain SGD is stable, 2/λmax: exact for params, at the start point for linear."""
    if model_name == "params":
        return 2 / torch.linalg.eigvalsh(params_hessian(inputs))[-1].item()
    return 2 / torch.linalg.eigvalsh(product_hessian(product_theta(start), inputs, y)).abs().max().item()


def diagnose(fit_result, x, y):
    """The diagnosis for a finished fit, in the space it was trained in (z when standardized)."""
    inputs = (x - fit_result.mean) / fit_result.std
    if fit_result.model_name == "linear":
        return diagnose_linear(inputs, y, fit_result.initial, fit_result.trained)
    if fit_result.optimizer != "sgd":  # the exact end point below is plain SGD's
        return diagnose_params(inputs, fit_result.lr)
    start, end = (ParamQuadratic.coefficients({k: v.cpu().double() for k, v in p.items()})[0]
                  for p in (fit_result.initial, fit_result.trained))
    result = diagnose_params(inputs, fit_result.lr, y, start, end, fit_result.log.epochs_run)
    if fit_result.standardize:
        p = dict(zip("abc", result.predicted))
        result.predicted = torch.stack(list(ParamQuadratic.to_x_units(p, fit_result.mean, fit_result.std).values()))
    return result


# ----------------------------------------------------------------------------- replications, vectorized
class Replicas(nn.Module):
    """R copies of one model trained as one: every parameter gains a leading run axis
    (torch.func.stack_module_state) and torch.func.vmap maps the model's own forward over it.
    Plain SGD, momentum and Adam update each entry on its own, so run r trains exactly as if alone."""

    def __init__(self, models):
        super().__init__()
        stacked, _ = torch.func.stack_module_state(models)
        self.names = list(stacked)
        self.stacked = nn.ParameterList(nn.Parameter(t) for t in stacked.values())
        self.model_class = type(models[0])
        self.template = [copy.deepcopy(models[0]).to("meta")]  # a shape-only model; in a list, so not a submodule

    def named_parameters(self, *args, **kwargs):
        return zip(self.names, self.stacked)

    def forward(self, x):
        def one_run(params, x):
            return torch.func.functional_call(self.template[0], dict(zip(self.names, params)), (x,))
        return torch.func.vmap(one_run, in_dims=(0, None))(tuple(self.stacked), x)


class SummedRunLosses(nn.Module):
    """The sum over runs of each run's MSE, for (R, n, 1) predictions and targets. Its gradient
    with respect to run r's parameters is run r's own gradient: the runs stay independent."""

    def forward(self, out, target):
        return self.per_run(out, target).sum()

    @staticmethod
    def per_run(out, target):
        return ((out - target) ** 2).mean(dim=(1, 2))


def replication_data(model_name, seeds, samples=100, noise=1.0, x_range=(-2.0, 12.0)):
    """Data and initial models for each seed, each drawn exactly as a single run with that seed."""
    ys, models = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        x, y = make_data(samples, noise, x_range)
        ys.append(y)
        models.append(make_model(model_name))
    return x, torch.stack(ys), models


@dataclass
class ReplicationSummary:
    seeds: list
    succeeded: torch.Tensor          # (R,) bool: final loss within 1% of the run's own least squares
    least: LeastSquares
    coefficients_mean: torch.Tensor
    coefficients_std: torch.Tensor

    @property
    def failed_seeds(self):
        return [s for s, ok in zip(self.seeds, self.succeeded.tolist()) if not ok]


def summarize_replications(fit_result, x, ys, seeds):
    least = least_squares(x, ys)
    final = fit_result.final_loss.double()
    # 1% above the run's own optimum; the small absolute term lets noise-free data (optimum 0) succeed
    floor = 1e-6 * (ys.double() ** 2).mean().item()
    succeeded = torch.isfinite(final) & (final <= 1.01 * least.loss + floor)
    coefficients = fit_result.coefficients
    return ReplicationSummary(list(seeds), succeeded, least, coefficients.nanmean(dim=0),
                              coefficients.std(dim=0) if len(seeds) > 1 else torch.zeros(3))


# ----------------------------------------------------------------------------- plots
def new_figure(show, **kwargs):
    """A pyplot figure when a window will be shown, else a bare Figure: no GUI, no global state."""
    if show:
        import matplotlib.pyplot as plt
        return plt.figure(**kwargs)
    from matplotlib.figure import Figure
    return Figure(**kwargs)


NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def can_show():
    """A window can open: a display exists and matplotlib picked an interactive backend."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import matplotlib
    return matplotlib.get_backend().lower() not in NON_INTERACTIVE_BACKENDS


def curve(coefficients, grid):
    a, b, c = (float(v) for v in coefficients)
    return a * grid**2 + b * grid + c


def draw_fit(ax, x, y, fits, least, title):
    """Left panel: the blog's picture (red dots, fitted line) plus the true and least-squares curves."""
    import numpy as np
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    ax.plot(x.cpu().numpy().ravel(), y.cpu().numpy().ravel(), "ro", markersize=3, label="Original Data")
    for label, coefficients, color in fits:
        ax.plot(grid, curve(coefficients, grid), color=color, linewidth=2, label=label)
    ax.plot(grid, curve(TRUE_COEFFICIENTS, grid), color="gray", linewidth=1, label="True: (x-4)(x-8)")
    ax.plot(grid, curve(least.coefficients[0], grid), "k--", linewidth=1, label="Least squares")
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend()


def draw_losses(ax, curves, least_loss):
    """Right panel: the loss against the epoch, log-log, with the least-squares floor."""
    for label, history, color in curves:
        epochs, losses = zip(*history) if history else ((), ())
        ax.plot(epochs, losses, color=color, label=label)
    ax.axhline(least_loss, color="k", linestyle="--", linewidth=1, label=f"least squares {least_loss:.6f}")
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="MSE loss", title="Loss")
    ax.legend()


COLORS = {"params": "tab:blue", "linear": "tab:orange"}


def plot_fits(fits, x, y, least, path, show):
    """One or both models: fits on the left, loss curves on the right."""
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = " and ".join(f.model_name for f in fits)
    losses = ", ".join(f"{f.final_loss:.6f}" for f in fits)
    draw_fit(left, x, y, [("Fitting Line" if len(fits) == 1 else f"Fitting Line ({f.model_name})",
                           f.coefficients[0], COLORS[f.model_name]) for f in fits],
             least, f"model {names}: final loss {losses}")
    draw_losses(right, [(f.model_name, f.log.history, COLORS[f.model_name]) for f in fits], least.loss[0].item())
    fig.savefig(path, dpi=100)
    return fig


def plot_replications(fit_result, x, ys, summary, path, show):
    """Every run's fit faintly (failed runs dashed), and the median loss with its 10-90% band."""
    import numpy as np
    from matplotlib.collections import LineCollection
    fig = new_figure(show, figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    runs = len(summary.seeds)
    grid = np.linspace(float(x.min()), float(x.max()), 400)
    color = COLORS[fit_result.model_name]
    left.plot(x.numpy().ravel(), ys[0].numpy().ravel(), "ro", markersize=3, label=f"data of seed {summary.seeds[0]}")
    ok = summary.succeeded
    finite = torch.isfinite(fit_result.coefficients).all(dim=1)
    for chosen, style in ((ok, dict(colors=color, alpha=max(0.03, min(0.5, 10 / runs)), label=f"{int(ok.sum())} succeeded fits")),
                          (~ok & finite, dict(colors="purple", alpha=max(0.1, min(0.7, 20 / max(1, int((~ok).sum())))), linestyles="--",
                                                              label=f"{int((~ok).sum())} failed fits"))):
        if chosen.any():  # one LineCollection draws thousands of curves at the cost of one
            curves = [np.column_stack([grid, curve(c, grid)]) for c in fit_result.coefficients[chosen]]
            left.add_collection(LineCollection(curves, linewidths=1, **style))
    left.plot(grid, curve(TRUE_COEFFICIENTS, grid), "k--", linewidth=1, label="True: (x-4)(x-8)")
    left.set(xlabel="x", ylabel="y", title=f"model {fit_result.model_name}, {runs} runs: "
             f"{int(summary.succeeded.sum())} reached least squares")
    for handle in left.legend().legend_handles:
        handle.set_alpha(1)  # the faint lines, drawn solid in the legend
    epochs = [e for e, _ in fit_result.log.history]
    losses = torch.stack([v for _, v in fit_result.log.history]).double()  # (T, R)
    low, median, high = torch.nanquantile(losses, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=1)
    right.fill_between(epochs, low.numpy(), high.numpy(), alpha=0.3, color=color, label="10-90% of runs")
    right.plot(epochs, median.numpy(), color=color, label="median loss")
    right.axhline(summary.least.loss.median().item(), color="k", linestyle="--", linewidth=1, label="median least-squares loss")
    right.set(xscale="log", yscale="log", xlabel="epoch", ylabel="MSE loss", title="Loss across runs")
    right.legend()
    fig.savefig(path, dpi=100)
    return fig


def frame_epochs(epochs, frames=90):
    """`frames` distinct epochs from 1 to `epochs`, spaced logarithmically (all of them if fewer)."""
    chosen = []
    for i in range(min(frames, epochs)):
        target = round(epochs ** (i / (min(frames, epochs) - 1))) if min(frames, epochs) > 1 else 1
        chosen.append(max(target, chosen[-1] + 1 if chosen else 1))
    return chosen


def write_animation(path, x, y, fit_result):
    """The fitted curve through training, one frame per recorded epoch, as a GIF."""
    import numpy as np
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig = new_figure(False, figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    xs, ys = x.cpu().numpy().ravel(), y.cpu().numpy().ravel()
    ax.plot(xs, ys, "ro", markersize=3, label="Original Data")
    (line,) = ax.plot(xs, ys * 0, color=COLORS[fit_result.model_name], linewidth=2, label="Fitting Line")
    ax.set(xlabel="x", ylabel="y", ylim=(ys.min() - 0.15 * np.ptp(ys), ys.max() + 0.15 * np.ptp(ys)))
    ax.legend(loc="upper center")
    frames = fit_result.log.frames

    def draw(i):
        epoch, prediction = frames[i]
        loss = ((prediction - y.cpu()) ** 2).mean().item()
        line.set_ydata(prediction.numpy().ravel())
        ax.set_title(f"{fit_result.model_name}: epoch {epoch}/{fit_result.epochs}, loss {loss:.4f}")
        return (line,)

    FuncAnimation(fig, draw, frames=len(frames), blit=False).save(path, writer=PillowWriter(fps=15))
    return len(frames)


# ----------------------------------------------------------------------------- printing
def format_quadratic(coefficients, digits=4):
    """'1.0048 x^2 - 12.0305 x + 31.8826'; digits=None prints exact values: 'x^2 - 12 x + 32'."""
    def number(v):
        return f"{v:.{digits}f}" if digits is not None else f"{v:g}"
    terms = []
    for value, power in zip((float(v) for v in coefficients), ("x^2", "x", "")):
        magnitude = number(abs(value))
        if digits is None and power and abs(value) == 1:
            magnitude = ""
        text = f"{magnitude} {power}".strip() if magnitude else power
        if not terms:
            terms.append(("-" if value < 0 else "") + text)
        else:
            terms.append(("- " if value < 0 else "+ ") + text)
    return " ".join(terms)


def print_fit(fit_result):
    """The blog's closing lines: each named parameter, then the fitted function beside the true one."""
    for name, param in fit_result.model.named_parameters():
        print(name, param.data.cpu())
    if fit_result.log.stop_reason == "diverged":
        return
    print(f"fitted: y = {format_quadratic(fit_result.coefficients[0])}")
    print(f"true:   y = {format_quadratic(TRUE_COEFFICIENTS, digits=None)}")
    if fit_result.standardize:
        print(f"(trained on z = (x - {fit_result.mean:.4f}) / {fit_result.std:.4f}; the parameters above are rewritten for x)")


def print_least_squares(fit_result, least):
    fitted, best = fit_result.coefficients[0], least.coefficients[0]
    print()
    print("The best possible fit: least squares on the same data (float64, torch.linalg.lstsq)")
    header = f"  {'':5s}{'true':>9s}{'fitted':>12s}{'least sq.':>12s}{'fitted-LS':>12s}"
    if least.stderr is not None:
        header += f"{'std. error':>12s}   95% interval"
    print(header)
    for i, name in enumerate("abc"):
        row = f"  {name:5s}{TRUE_COEFFICIENTS[i]:9g}{fitted[i]:12.4f}{best[i]:12.4f}{fitted[i] - best[i]:+12.4f}"
        if least.stderr is not None:
            se = least.stderr[0, i].item()
            lo, hi = best[i] - least.t95 * se, best[i] + least.t95 * se
            inside = "contains" if lo <= TRUE_COEFFICIENTS[i] <= hi else "misses"
            row += f"{se:12.4f}   [{lo:.4f}, {hi:.4f}] {inside} the true value"
        print(row)
    floor = least.loss[0].item()
    gap = 100 * (fit_result.final_loss - floor) / floor if floor > 0 else math.nan
    print(f"  final loss {fit_result.final_loss:.6f}; least-squares loss {floor:.6f}, "
          f"the floor no quadratic can beat on this data ({gap:+.4f}%)")


def print_diagnosis(fit_result, diagnosis, least, x):
    print()
    space = "z = (x - mean)/std" if fit_result.standardize else "x"
    if isinstance(diagnosis, ParamsDiagnosis):
        ev = diagnosis.eigenvalues.tolist()
        print(f"How fast plain SGD can go: the loss in (a, b, c) is a bowl with constant Hessian (2/n) F^T F, F = [x^2, x, 1] on {space}")
        print(f"  eigenvalues {ev[2]:.4g}, {ev[1]:.4g}, {ev[0]:.4g}: condition number {diagnosis.condition_number:.3g}")
        if fit_result.standardize:
            raw = diagnose_params(x, fit_result.lr)
            print(f"  (on raw x it would be {raw.condition_number:.3g}: standardizing made it {raw.condition_number / diagnosis.condition_number:.0f} times smaller)")
        if fit_result.optimizer != "sgd":
            print(f"  largest stable lr for plain SGD: 2/lambda_max = {diagnosis.max_stable_lr:.4g}; even just under it, plain SGD needs about "
                  f"ln(1000)*kappa/2 = {math.log(1000) * diagnosis.condition_number / 2:.3g} epochs for a 1000-fold error reduction")
            print(f"  (this run used {fit_result.optimizer}, whose steps are not plain SGD's: see --optimizer in the README)")
            return
        print(f"  largest stable lr for plain SGD: 2/lambda_max = {diagnosis.max_stable_lr:.4g} (this run: {fit_result.lr:g})")
        slow = diagnosis.eigenvectors[:, 0]
        mostly = "abc"[int(slow.abs().argmax())]
        print(f"  the slowest direction (mostly {mostly}: {', '.join(f'{v:+.3f}' for v in slow.tolist())}) shrinks by "
              f"1 - lr*lambda_min = {1 - fit_result.lr * ev[0]:.6g} per epoch: a 1000-fold error reduction takes "
              f"{diagnosis.epochs_to_converge:.3g} epochs")
        error = (fit_result.coefficients[0] - least.coefficients[0]).abs()
        worst = int(error.argmax())
        others = ", ".join(f"{n} {error[i]:.4f}" for i, n in enumerate("abc") if i != worst)
        if error[worst] < 5e-4:
            print(f"  after {fit_result.log.epochs_run} epochs every coefficient is within 5e-4 of least squares")
            return
        print(f"  after {fit_result.log.epochs_run} epochs {'abc'[worst]} is still {error[worst]:.4f} from least squares ({others})")
        if diagnosis.predicted is not None:
            predicted = (diagnosis.predicted - least.coefficients[0]).abs()
            print(f"  in exact arithmetic, theta_k - theta* = (I - lr H)^k (theta_0 - theta*) puts {'abc'[worst]} {predicted[worst]:.4f} away")
            frozen = [i for i in range(3) if diagnosis.steps[i] < diagnosis.spacing[i] / 2]
            if frozen:
                names = ", ".join("abc"[i] for i in frozen)
                steps = ", ".join(f"{diagnosis.steps[i]:.2g}" for i in frozen)
                gaps = ", ".join(f"{diagnosis.spacing[i]:.2g}" for i in frozen)
                print(f"  float32 stopped it there: the updates lr*dL/d({names}) = ({steps}) are under half the gap between "
                      f"adjacent float32 numbers at those values ({gaps}), so they round away and {names} no longer move")
                since = unchanged_since(fit_result.log.history)
                if since is not None and since < fit_result.log.epochs_run:
                    print(f"  (the logged loss has not changed since epoch {since}: the blog's last lines repeat for the same reason)")
    else:
        ev = diagnosis.eigenvalues.tolist()
        print(f"Where the product lands: y = (w1 x + b1)(w2 x + b2) on {space}")
        print(f"  Hessian at the end point: eigenvalues {', '.join(f'{v:.3g}' for v in reversed(ev))}: condition number {diagnosis.condition_number:.3g}")
        print("  at a minimum one eigenvalue is ~0: (s w1, s b1, w2/s, b2/s) draws the same curve for every s, a flat valley of solutions")
        slowest, params_slowest = sorted(abs(v) for v in ev)[1], diagnosis.params_eigenvalues[0].item()
        if sum(v > 0 for v in ev) >= 3:  # at (or near) the valley floor
            print(f"  without that direction the condition number is {diagnosis.condition_without_flat:.3g} (the params model on the same data: "
                  f"{diagnosis.params_eigenvalues[-1].item() / params_slowest:.3g}); its slowest curvature is {slowest:.3g} against {params_slowest:.3g},")
            print(f"  so at the same lr its slowest error shrinks {slowest / params_slowest:.0f} times faster than the params model's")
        print(f"  balance (w1^2 + b1^2) - (w2^2 + b2^2): {diagnosis.balance_start:+.4f} at the start, {diagnosis.balance_end:+.4f} at the end;")
        print("  gradient descent (nearly) conserves it, and that picks the point of the valley the model lands on")


def unchanged_since(history):
    """The first recorded epoch from which the loss stayed exactly at its final value."""
    if not history:
        return None
    since = history[-1][0]
    for epoch, value in reversed(history):
        if value != history[-1][1]:
            break
        since = epoch
    return since


def print_comparison(fits, least):
    """--model both: the two models side by side, and the blog's '25 times sooner' checked."""
    print()
    print("== params and linear side by side ==")
    print(f"  {'':24s}" + "".join(f"{f.model_name:>34s}" for f in fits))
    rows = [("epochs run", [str(f.log.epochs_run) for f in fits]),
            ("training seconds", [f"{f.log.seconds:.2f}" for f in fits]),
            ("final loss", [f"{f.final_loss:.6f}" for f in fits]),
            ("fitted y =", [format_quadratic(f.coefficients[0], 3) for f in fits]),
            ("max |coef - least sq.|", [f"{(f.coefficients[0] - least.coefficients[0]).abs().max():.4f}" for f in fits])]
    for label, values in rows:
        print(f"  {label:24s}" + "".join(f"{v:>34s}" for v in values))
    floor = least.loss[0].item()
    reached = {f.model_name: first_epoch_within(f.log.history, floor, 0.01) for f in fits}
    print(f"  least-squares loss {floor:.6f}; first logged epoch within 1% of it: "
          + ", ".join(f"{k} {v if v else 'never'}" for k, v in reached.items()))
    if all(reached.values()):
        print(f"  linear got there {reached['params'] / reached['linear']:.1f} times sooner (the blog says 500000/20000 = 25)")


def first_epoch_within(history, floor, rel):
    return next((e for e, v in history if v <= floor * (1 + rel)), None)


def print_replications(fit_result, summary):
    runs = len(summary.seeds)
    print()
    print(f"{runs} runs (seeds {summary.seeds[0]}-{summary.seeds[-1]}), {fit_result.log.epochs_run} epochs in {fit_result.log.seconds:.2f} s:")
    print(f"  {int(summary.succeeded.sum())} of {runs} succeeded (final loss within 1% of the run's own least-squares loss)")
    failed = summary.failed_seeds
    if failed:
        print(f"  failed seeds: {', '.join(map(str, failed[:20]))}{' ...' if len(failed) > 20 else ''}")
    ok = summary.succeeded
    spread_ok = fit_result.coefficients[ok].std(dim=0) if ok.sum() > 1 else torch.full((3,), math.nan)
    mean_se = summary.least.stderr.mean(dim=0) if summary.least.stderr is not None else torch.full((3,), math.nan)
    print(f"  {'':4s}{'true':>8s}{'mean fitted':>14s}{'std':>10s}{'std (succeeded)':>17s}{'mean LS std. error':>20s}")
    for i, name in enumerate("abc"):
        print(f"  {name:4s}{TRUE_COEFFICIENTS[i]:8g}{summary.coefficients_mean[i]:14.4f}{summary.coefficients_std[i]:10.4f}"
              f"{spread_ok[i]:17.4f}{mean_se[i]:20.4f}")
    if bool((summary.coefficients_std <= 1.5 * mean_se).all()):
        print("  the spread across runs matches the least-squares standard error: it is the noise in the data, not the training")
    else:
        print("  the spread across runs is wider than the least-squares standard error: the training, not the data, adds it"
              + (" (the failed runs)" if failed else ""))


# ----------------------------------------------------------------------------- metrics
def base_metrics(fit_result, seed):
    log = fit_result.log
    metrics = {
        "model": fit_result.model_name, "optimizer": fit_result.optimizer, "seed": seed,
        "lr": fit_result.lr, "epochs": fit_result.epochs, "epochs_run": log.epochs_run,
        "standardize": fit_result.standardize,
        "parameters": {k: v.cpu().tolist() for k, v in fit_result.parameters.items()},
        "train_seconds": log.seconds,
        "stop_reason": log.stop_reason,
        "diverged": log.stop_reason == "diverged",
        "diverged_at_epoch": log.diverged_at,
        "interrupted": log.stop_reason == "interrupted",
    }
    if fit_result.standardize:
        metrics["standardization"] = {"mean": fit_result.mean, "std": fit_result.std}
    return metrics


def fit_metrics(fit_result, least, diagnosis, seed):
    metrics = base_metrics(fit_result, seed)
    metrics.update({
        "final_loss": fit_result.final_loss,
        "coefficients": dict(zip("abc", fit_result.coefficients[0].tolist())),
        "loss_history": fit_result.log.history,
        "least_squares": {**dict(zip("abc", least.coefficients[0].tolist())), "loss": least.loss[0].item(),
                          "stderr": dict(zip("abc", least.stderr[0].tolist())) if least.stderr is not None else None},
    })
    if isinstance(diagnosis, ParamsDiagnosis):
        metrics["diagnosis"] = {"eigenvalues": diagnosis.eigenvalues.tolist(), "condition_number": diagnosis.condition_number,
                                "max_stable_lr": diagnosis.max_stable_lr, "epochs_to_converge": diagnosis.epochs_to_converge}
        if diagnosis.predicted is not None:
            metrics["diagnosis"]["exact_arithmetic_coefficients"] = dict(zip("abc", diagnosis.predicted.tolist()))
            metrics["diagnosis"]["frozen_by_float32"] = ["abc"[i] for i in range(3) if diagnosis.steps[i] < diagnosis.spacing[i] / 2]
    elif isinstance(diagnosis, LinearDiagnosis):
        metrics["diagnosis"] = {"eigenvalues": diagnosis.eigenvalues.tolist(), "condition_number": diagnosis.condition_number,
                                "condition_number_without_flat_direction": diagnosis.condition_without_flat,
                                "balance_start": diagnosis.balance_start, "balance_end": diagnosis.balance_end}
    return metrics


def replication_metrics(fit_result, summary, seed):
    metrics = base_metrics(fit_result, seed)
    stderr = summary.least.stderr
    metrics["replications"] = {
        "runs": len(summary.seeds), "seeds": summary.seeds,
        "final_loss": fit_result.final_loss.tolist(),
        "succeeded": summary.succeeded.tolist(),
        "success_rate": summary.succeeded.double().mean().item(),
        "failed_seeds": summary.failed_seeds,
        "coefficients": fit_result.coefficients.tolist(),
        "coefficients_mean": dict(zip("abc", summary.coefficients_mean.tolist())),
        "coefficients_std": dict(zip("abc", summary.coefficients_std.tolist())),
        "least_squares_loss": summary.least.loss.tolist(),
        "least_squares_stderr_mean": dict(zip("abc", stderr.mean(dim=0).tolist())) if stderr is not None else None,
        "loss_history_median": [[e, v.nanmedian().item()] for e, v in fit_result.log.history],
    }
    return metrics


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


# ----------------------------------------------------------------------------- main
class Progress:
    """Prints the blog's 'Epoch[k/N], loss:...' lines; on a terminal also a tqdm bar (rate, ETA)
    that the lines are written around, so neither garbles the other."""

    def __init__(self, epochs, log_interval, quiet, label=None):
        self.epochs, self.log_interval, self.quiet = epochs, log_interval, quiet
        self.bar = None
        self.done = 0
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=epochs, unit="epoch", desc=label, dynamic_ncols=True, leave=False)

    def __call__(self, epoch, loss):
        if self.bar is not None:
            self.bar.update(epoch - self.done)
            self.done = epoch
        if self.quiet or not self.log_interval or epoch % self.log_interval:
            return
        if isinstance(loss, torch.Tensor):
            text = f"Epoch[{epoch}/{self.epochs}], loss:{loss.nanmedian().item():.6f} (median of {loss.numel()} runs)"
        else:
            text = "Epoch[{}/{}], loss:{:.6f}".format(epoch, self.epochs, loss)
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def resolve_device(name):
    """The torch device, or None if this machine does not have it."""
    if name == "cuda" and not torch.cuda.is_available():
        return None
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return None
    return torch.device(name)


def intervals(args, epochs):
    """(record, print): the loss is kept every `record` epochs (for the plot and --tol) and printed
    every `print` (0: never). By default both are the blog's 100, or a tenth of a shorter run."""
    default = 100 if epochs >= 1000 else max(1, epochs // 10)
    if args.log_interval is None:
        return default, default
    return args.log_interval or default, args.log_interval


def fit_with_progress(args, model, model_name, x, y, label, frames_wanted=False):
    """fit() with the command line's settings, printing the epoch lines (and a bar on a terminal)."""
    epochs = args.epochs or default_epochs(args.optimizer, model_name, args.standardize)
    interval, log_interval = intervals(args, epochs)
    progress = Progress(epochs, log_interval, args.quiet, label=label)
    try:
        return fit(model, x, y, model_name=model_name, optimizer=args.optimizer, lr=args.lr, epochs=epochs,
                   standardize=args.standardize, record_interval=interval, on_record=progress, tol=args.tol,
                   frame_epochs=frame_epochs(epochs) if frames_wanted else ())
    finally:
        progress.close()


def exit_status(log):
    """1 for a diverged run, 130 for an interrupted one (the shell's code for Ctrl-C), else 0."""
    return {"diverged": 1, "interrupted": 130}.get(log.stop_reason, 0)


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit:  # --help, or a mistake already reported in one line
        return exit.code
    device = resolve_device(args.device)
    if device is None:
        print(f"quadratic_regression.py: error: --device {args.device}: not available on this machine (see --help)", file=sys.stderr)
        return 2
    try:
        if args.runs > 1:
            return main_replications(args, device)
        return main_single(args, device)
    except KeyboardInterrupt:  # outside training (training itself stops cleanly on Ctrl-C)
        print("interrupted", file=sys.stderr)
        return 130


def main_single(args, device):
    torch.manual_seed(args.seed)
    x, y = make_data(args.samples, args.noise, args.x_range)
    after_data = torch.get_rng_state()
    least = least_squares(x, y)
    names = MODELS if args.model == "both" else (args.model,)
    fits, diagnoses = [], {}
    for name in names:
        if len(names) > 1:
            print(f"== model {name} ==")
        torch.set_rng_state(after_data)  # with --model both, each model starts as in its own run
        f = fit_with_progress(args, make_model(name).to(device), name, x.to(device), y.to(device), label=name,
                              frames_wanted=args.animate is not None)
        print_fit(f)
        fits.append(f)
        if f.log.stop_reason == "diverged":
            inputs = (x - f.mean) / f.std
            print(f"error: training diverged at epoch {f.log.diverged_at} (the loss became inf/NaN) with lr {f.lr:g}; "
                  f"for this data plain SGD is stable below lr {stable_lr(f.model_name, inputs, y, f.initial):.3g} "
                  f"(2/lambda_max of the loss Hessian{', at the start' if f.model_name == 'linear' else ''})", file=sys.stderr)
            break
        if f.log.stop_reason == "interrupted":
            print(f"interrupted after {f.log.epochs_run} epochs: the parameters above are where training stopped", file=sys.stderr)
        if f.log.stop_reason == "tol":
            print(f"stopped early at epoch {f.log.epochs_run}: the loss fell by less than --tol {args.tol:g} (relative) "
                  f"over the last {intervals(args, f.epochs)[0]} epochs")
        print_least_squares(f, least)
        diagnoses[name] = diagnose(f, x, y)
        print_diagnosis(f, diagnoses[name], least, x)
        if f.log.stop_reason == "interrupted":
            break
    if len(fits) == 2:
        print_comparison(fits, least)

    show = not args.no_show and can_show()
    if not args.no_plot:
        path = args.plot or default_plot_path(args.model, 1)
        plot_fits(fits, x, y, least, path, show)
        print(f"figure written to {path}")
    if args.animate and fits[0].log.frames:
        frames = write_animation(args.animate, x, y, fits[0])
        print(f"animation written to {args.animate} ({frames} frames)")
    if args.metrics:
        records = {f.model_name: fit_metrics(f, least, diagnoses.get(f.model_name), args.seed) for f in fits}
        write_json(args.metrics, records if args.model == "both" else records[args.model])
        print(f"metrics written to {args.metrics}")
    if args.save_model:
        states = {f.model_name: f.model.state_dict() for f in fits}
        torch.save(states if args.model == "both" else states[args.model], args.save_model)
        print(f"model saved to {args.save_model}")
    if show and not args.no_plot:
        import matplotlib.pyplot as plt
        plt.show()
    return exit_status(fits[-1].log)


def main_replications(args, device):
    seeds = list(range(args.seed, args.seed + args.runs))
    x, ys, models = replication_data(args.model, seeds, args.samples, args.noise, args.x_range)
    result = fit_with_progress(args, Replicas(models).to(device), args.model, x.to(device), ys.to(device), label=f"{args.runs} runs")
    summary = summarize_replications(result, x, ys, seeds)
    print_replications(result, summary)
    if result.log.stop_reason == "interrupted":
        print(f"interrupted after {result.log.epochs_run} epochs: the summary above is where training stopped", file=sys.stderr)
    if result.log.stop_reason == "diverged":
        print(f"error: every run diverged by epoch {result.log.diverged_at} with lr {result.lr:g}", file=sys.stderr)
    show = not args.no_show and can_show()
    if not args.no_plot:
        path = args.plot or default_plot_path(args.model, args.runs)
        plot_replications(result, x, ys, summary, path, show)
        print(f"figure written to {path}")
    if args.metrics:
        write_json(args.metrics, replication_metrics(result, summary, args.seed))
        print(f"metrics written to {args.metrics}")
    if args.save_model:
        torch.save({k: v.cpu() for k, v in result.parameters.items()}, args.save_model)
        print(f"model saved to {args.save_model}")
    if show and not args.no_plot:
        import matplotlib.pyplot as plt
        plt.show()
    return exit_status(result.log)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error while exiting
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports it
