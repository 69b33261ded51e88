"""The theory: the best possible fit (least squares, standard errors, t quantiles), the loss bowl and
its eigenvectors, and why gradient descent gets where it gets (each model's diagnosis, the stable lr)."""
import functools
import math
from dataclasses import dataclass

import torch

from .models import coefficients_of

TRUE_COEFFICIENTS = (1.0, -12.0, 32.0)  # the lesson's data: (x - 4)(x - 8) = x^2 - 12 x + 32

# ----------------------------------------------------------------------------- the best possible fit
@dataclass
class LeastSquares:
    """Ordinary least squares for a x² + b x + c, the fit no quadratic can beat on this data."""
    coefficients: torch.Tensor   # (runs, 3)
    loss: torch.Tensor           # (runs,) mean squared error at the optimum
    stderr: torch.Tensor | None  # (runs, 3) standard errors; None with 3 points (no residual left)
    t95: float | None            # Student t quantile for a 95% interval with n - 3 degrees of freedom
    scale: float = 1.0           # mean of y² (of the first data set): what "about 0" means for a loss


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
    return LeastSquares(solution.T, loss, stderr, t95, (targets[:, 0] ** 2).mean().item())


def within_one_percent(floor, scale):
    """The loss below which a run counts as "within 1% of the least-squares loss" `floor`. The small term
    in scale (the mean of y²) lets noise-free data, whose floor is 0 and float32 cannot reach, count too."""
    return 1.01 * floor + 1e-6 * scale


CONVERGED_ATOL = 0.01  # "converged": a, b and c each within this of the least-squares fit, in x's units


def distance_from_least_squares(coefficients, least):
    """(runs,) the largest |fitted - least squares| over a, b and c, in float64: how far each run is
    from the fit no quadratic can beat. A stop rule that fires farther away than CONVERGED_ATOL has
    found a stall (the loss stopped changing in float32), not the optimum."""
    return (coefficients.double().cpu() - least.coefficients).abs().max(dim=1).values


def judge_stop(log, coefficients, least):
    """A stop rule fires when the loss stops changing, which a stall does too: keep "converged" only
    where every run is within CONVERGED_ATOL of its least-squares fit, and call the rest "stalled"."""
    if log.stop_reason == "converged" and not bool((distance_from_least_squares(coefficients, least)
                                                     <= CONVERGED_ATOL).all()):
        log.stop_reason = "stalled"


@functools.cache  # 100000 Python-level density evaluations: computed once per (p, df)
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


def design_condition(x):
    """The condition number of F = [x², x, 1] in float64: how nearly x², x and 1 depend on each other
    on these x. Its square is the condition number of the params model's Hessian."""
    singular_values = torch.linalg.svdvals(quadratic_features(x.cpu()))
    return (singular_values[0] / singular_values[-1]).item() if singular_values[-1] > 0 else math.inf


# ----------------------------------------------------------------------------- any model: the stable lr
def stable_lr(model, start, inputs, y):
    """2/λmax of the loss Hessian at `start`: above it plain SGD diverges from there."""
    return 2 / largest_curvature(model, start, inputs, y)


def largest_curvature(model, start, inputs, y):
    """The largest |eigenvalue| of the loss Hessian at `start` (name -> tensor, in the space trained
    in), by autograd in float64. Exact everywhere for a model linear in its parameters (its Hessian is
    constant); only at `start` for the others."""
    return loss_hessian_eigenvalues(model, start, inputs, y).abs().max().item()


def loss_hessian_eigenvalues(model, start, inputs, y):
    """Ascending eigenvalues of the MSE's Hessian with respect to all parameters at `start`, in float64."""
    names = list(start)
    shapes = [start[name].shape for name in names]
    theta = torch.cat([start[name].detach().cpu().double().reshape(-1) for name in names])
    xs, ys = inputs.detach().cpu().double(), y.detach().cpu().double()

    def loss(flat):
        pieces = torch.split(flat, [shape.numel() for shape in shapes])
        params = {name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes)}
        return ((torch.func.functional_call(model, params, (xs,)) - ys) ** 2).mean()

    return torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, theta))


# ----------------------------------------------------------------------------- params: why SGD is slow
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
    raw_condition_number: float | None = None  # with --standardize: the condition number on raw x

    @property
    def frozen(self):
        """Indices of the coefficients whose last update is under half the float32 spacing."""
        return [i for i in range(3) if self.steps[i] < self.spacing[i] / 2] if self.steps is not None else []


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


def diagnose_params_fit(fit, x, y):
    """The params model's diagnosis for a finished fit, in the space it was trained in."""
    inputs = fit.standardization(x)
    if fit.optimizer != "sgd":  # the exact end point below is plain SGD's
        result = diagnose_params(inputs, fit.lr)
    else:
        start, end = (coefficients_of(fit.model_name, {k: v.cpu().double() for k, v in p.items()})[0]
                      for p in (fit.initial, fit.trained))
        result = diagnose_params(inputs, fit.lr, y, start, end, fit.log.epochs_run)
        if fit.standardize:
            p = dict(zip("abc", result.predicted))
            result.predicted = torch.stack(list(fit.standardization.to_x_units(fit.model_name, p).values()))
    if fit.standardize:
        result.raw_condition_number = diagnose_params(x, fit.lr).condition_number
    return result


# ----------------------------------------------------------------------------- linear: where the product lands
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


def diagnose_linear_fit(fit, x, y):
    """The linear model's diagnosis for a finished fit, in the space it was trained in."""
    return diagnose_linear(fit.standardization(x), y, fit.initial, fit.trained)


# ----------------------------------------------------------------------------- the bowl behind --landscape
# The geometry behind --landscape: the loss as a function of (a, b, c) is the same bowl for both
# models (both draw a quadratic), with its optimum at least squares and its axes along the
# eigenvectors of the constant Hessian H = (2/n) FᵀF, in the space trained in (x, or z).
#
# A run's path, projected on those axes, shows what the diagnosis says in numbers: plain SGD
# shrinks the error along eigenvector i by (1 - lr·λ_i) per epoch, until float32 stalls it.
@dataclass
class Bowl:
    """The MSE of a x² + b x + c on (inputs, y): L(θ) = L* + ½ (θ - θ*)ᵀ H (θ - θ*), exactly."""
    optimum: torch.Tensor       # θ*, (3,) float64, in the space trained in
    min_loss: float             # L*
    eigenvalues: torch.Tensor   # ascending: flattest first, steepest last
    eigenvectors: torch.Tensor  # columns, in (a, b, c) order

    def errors(self, coefficients):
        """(T, 3) coordinates of (T, 3) coefficients along each eigenvector, measured from θ*."""
        return (coefficients.double() - self.optimum) @ self.eigenvectors

    def loss_on_slice(self, steep, flat):
        """The loss at θ* + steep·v_max + flat·v_min (arrays of equal shape)."""
        return self.min_loss + 0.5 * (self.eigenvalues[-1].item() * steep**2 + self.eigenvalues[0].item() * flat**2)


def bowl(inputs, y):
    """The bowl on `inputs` (x, or z with --standardize) and y, in float64."""
    features = quadratic_features(inputs.cpu())
    targets = y.detach().cpu().double().reshape(-1, 1)
    optimum = torch.linalg.lstsq(features, targets, driver="gelsd").solution.reshape(3)
    min_loss = ((features @ optimum - targets.reshape(-1)) ** 2).mean().item()
    eigenvalues, eigenvectors = torch.linalg.eigh(params_hessian(inputs.cpu()))
    # a fixed sign per eigenvector (largest entry positive), so figures and tests agree from run to run
    signs = torch.sign(eigenvectors.gather(0, eigenvectors.abs().argmax(dim=0, keepdim=True)))
    return Bowl(optimum, min_loss, eigenvalues, eigenvectors * signs)


def predicted_errors(bowl_, start_errors, lr, epochs, momentum=0.0):
    """(T, 3) plain SGD's error along each eigenvector after each of `epochs`: e_0 (1 - lr λ)^k.
    With momentum there is no single factor per epoch, so None."""
    if momentum:
        return None
    factors = 1 - lr * bowl_.eigenvalues
    k = torch.tensor(epochs, dtype=torch.float64).reshape(-1, 1)
    return start_errors.reshape(1, 3) * factors.reshape(1, 3) ** k


def stall_epoch(epochs, coefficients):
    """The first recorded epoch from which the coefficients never change again (float32 froze
    them), or None if they still moved at the end."""
    if len(epochs) < 2 or not torch.equal(coefficients[-1], coefficients[-2]):
        return None
    since = len(epochs) - 1
    while since > 0 and torch.equal(coefficients[since - 1], coefficients[-1]):
        since -= 1
    return epochs[since]


@dataclass
class PathOnBowl:
    """One run's path in the bowl's eigen-coordinates, with what plain SGD predicts for it."""
    model_name: str
    epochs: list
    errors: torch.Tensor            # (T, 3) measured: flattest, middle, steepest
    predicted: torch.Tensor | None  # (T, 3) e_0 (1 - lr λ)^k, for plain SGD on params; else None
    stall: int | None               # the epoch from which float32 froze the coefficients
    layer_sizes: torch.Tensor | None = None  # (T, 2) |(w1, b1)|, |(w2, b2)| for the product model
    balance_start: float | None = None


def path_on_bowl(fit, bowl_):
    """Project a fit's recorded trajectory (space trained in) onto the bowl's axes."""
    trajectory = fit.trajectory
    coefficients = trajectory.coefficients_trained()
    errors = bowl_.errors(coefficients)
    exact = fit.optimizer == "sgd" and fit.model_name == "params"
    predicted = predicted_errors(bowl_, errors[0], fit.lr, trajectory.epochs) if exact else None
    result = PathOnBowl(fit.model_name, trajectory.epochs, errors, predicted, stall_epoch(trajectory.epochs,
                                                                                           coefficients))
    p = trajectory.parameters
    if "linear1.weight" in p:
        first = torch.stack([p["linear1.weight"].reshape(-1), p["linear1.bias"].reshape(-1)], dim=1).norm(dim=1)
        second = torch.stack([p["linear2.weight"].reshape(-1), p["linear2.bias"].reshape(-1)], dim=1).norm(dim=1)
        result.layer_sizes = torch.stack([first, second], dim=1)
        result.balance_start = (first[0] ** 2 - second[0] ** 2).item()
    return result


def slice_extent(paths):
    """(steep, flat) half-widths of a slice that holds every path, with a margin."""
    steep = max(p.errors[:, 2].abs().max().item() for p in paths)
    flat = max(p.errors[:, 0].abs().max().item() for p in paths)
    return 1.15 * steep or 1.0, 1.15 * flat or 1.0

