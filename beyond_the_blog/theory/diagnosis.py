"""Why gradient descent gets where it gets: each model's diagnosis of a finished fit.

params: its loss is a bowl with a constant Hessian, so the eigenvalues say how fast plain SGD can go, exact
arithmetic says where it ends, and the float32 spacing says where rounding froze it. linear: the product has a
valley of equal fits, and gradient descent keeps the balance of its layers."""
import math
from dataclasses import dataclass

import torch

from .curvature import balance, params_hessian, product_hessian, product_theta
from .least_squares import quadratic_features


def slowest_shrink(eigenvalues, lr):
    """Plain gradient descent on a bowl multiplies the error along eigenvector i by 1 - lr·λ_i each epoch, so
    the slowest direction is the one with the largest |1 - lr·λ_i|: λmin's below 2/(λmin + λmax), λmax's
    above. Returns (i, ln|1 - lr·λ_i|) for it; log1p keeps a factor within 1e-16 of 1 off exactly 1."""
    logs = []
    for value in (float(v) for v in eigenvalues):
        step = lr * value
        logs.append(-math.inf if step == 1 else math.log1p(-step) if step < 1 else math.log1p(step - 2))
    slowest = max(range(len(logs)), key=logs.__getitem__)
    return slowest, logs[slowest]


def epochs_for_1000_fold(log_rate):
    """Epochs for an error that shrinks by exp(log_rate) per epoch to shrink 1000-fold: ln(1000)/-ln(rate),
    finite for any rate below 1."""
    return math.log(1000) / -log_rate if log_rate < 0 else math.inf


@dataclass(kw_only=True)
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
    slowest: int                  # the slowest direction at this lr: its index among the eigenvalues
    log_rate: float               # ln|1 - lr·λ| along it: the error's factor per epoch, as a logarithm
    predicted: torch.Tensor | None = None  # (a, b, c) plain SGD reaches in exact arithmetic
    steps: torch.Tensor | None = None      # |lr·gradient| at the end, per coefficient
    spacing: torch.Tensor | None = None    # gap between adjacent float32 numbers at the end values
    raw_condition_number: float | None = None  # with --standardize: the condition number on raw x
    plain_steps: bool = True      # the run took plain SGD's full-batch steps, which the rates above describe

    @property
    def best_lr(self):
        """2/(λmin + λmax): the lr whose slowest direction shrinks fastest."""
        return 2 / (self.eigenvalues[0].item() + self.eigenvalues[-1].item())

    @property
    def frozen(self):
        """Indices of the coefficients whose last update is under half the float32 spacing."""
        return [i for i in range(3) if self.steps[i] < self.spacing[i] / 2] if self.steps is not None else []



def diagnose_params(inputs, lr, y=None, start=None, end=None, epochs_run=None):
    """Eigen-analysis of the constant Hessian on `inputs` (x, or z when standardized). Given the
    start and end (a, b, c) of a plain-SGD run on (inputs, y), also where exact arithmetic puts
    it, θ_k - θ* = (I - lr·H)^k (θ_0 - θ*), and how the last float32 updates compare with the
    spacing of float32 numbers: an update under half that spacing rounds away."""
    hessian = params_hessian(inputs)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    smallest, largest = eigenvalues[0].item(), eigenvalues[-1].item()
    slowest, log_rate = slowest_shrink(eigenvalues, lr)
    result = ParamsDiagnosis(eigenvalues=eigenvalues, eigenvectors=eigenvectors, condition_number=largest / smallest,
                             max_stable_lr=2 / largest, lr=lr, epochs_to_converge=epochs_for_1000_fold(log_rate),
                             slowest=slowest, log_rate=log_rate)
    if y is not None and start is not None and end is not None:
        features, targets = quadratic_features(inputs), y.double().reshape(-1, 1).cpu()
        optimum = torch.linalg.lstsq(features, targets, driver="gelsd").solution.reshape(3)
        step = lr * eigenvalues  # (1 - step)^k; log1p keeps a step under 1e-16 from vanishing
        shrunk = torch.exp(epochs_run * torch.log1p(-step.clamp(max=1)))
        factors = torch.where(step < 1, shrunk, (1 - step) ** epochs_run)
        result.predicted = optimum + eigenvectors @ (factors * (eigenvectors.T @ (start - optimum)))
        gradient = hessian @ end - 2 / features.shape[0] * (features.T @ targets).reshape(3)
        result.steps = (lr * gradient).abs()
        end32 = end.float()
        result.spacing = (torch.nextafter(end32, end32.sign() * math.inf) - end32).abs().double()
    return result



def float32_held_it(diagnosis, reached, optimum):
    """Whether float32 is why plain SGD ended where it did: some last update rounds away in float32, and exact
    arithmetic ends measurably closer to least squares on the coefficient furthest from it (by more than
    MEASURABLY of its distance). reached, optimum: (a, b, c) in x's units, as diagnosis.predicted."""
    if not diagnosis.frozen or diagnosis.predicted is None:
        return False
    error = (reached.double() - optimum.double()).abs()
    worst = int(error.argmax())
    exact = (diagnosis.predicted - optimum.double()).abs()[worst]
    return bool(error[worst] - exact > MEASURABLY * error[worst])


MEASURABLY = 0.01  # how much closer exact arithmetic must end, as a share of the distance left, to blame float32


def full_batch_sgd(fit, samples):
    """Whether the fit took plain SGD's steps on all its `samples` points: what (I - lr H)^k describes."""
    return fit.optimizer == "sgd" and (fit.batch_size is None or fit.batch_size >= samples)


def diagnose_params_fit(fit, x, y):
    """The params model's diagnosis for a finished fit, in the space it was trained in."""
    inputs = fit.standardization(x)
    if not full_batch_sgd(fit, x.shape[0]):  # the exact end point below is plain SGD's on the full batch
        result = diagnose_params(inputs, fit.lr)
        result.plain_steps = False
    else:
        start, end = (torch.cat([p[k].cpu().double().reshape(-1) for k in "abc"]) for p in (fit.initial, fit.trained))
        result = diagnose_params(inputs, fit.lr, y, start, end, fit.log.epochs_run)
        if fit.standardize:
            p = dict(zip("abc", result.predicted))
            result.predicted = torch.stack(list(fit.standardization.to_x_units(fit.model_name, p).values()))
    if fit.standardize:
        result.raw_condition_number = diagnose_params(x, fit.lr).condition_number
    return result



@dataclass(kw_only=True)
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



def diagnose_linear(inputs, y, start, end):
    """start, end: the linear model's parameters (name -> tensor) in the space it was trained in."""
    eigenvalues = torch.linalg.eigvalsh(product_hessian(product_theta(end), inputs, y))
    magnitudes = eigenvalues.abs().sort().values
    condition = (magnitudes[-1] / magnitudes[0]).item() if magnitudes[0] > 0 else math.inf
    return LinearDiagnosis(eigenvalues=eigenvalues, condition_number=condition,
                           condition_without_flat=(magnitudes[-1] / magnitudes[1]).item(),
                           params_eigenvalues=torch.linalg.eigvalsh(params_hessian(inputs)),
                           balance_start=balance(product_theta(start)), balance_end=balance(product_theta(end)))



def diagnose_linear_fit(fit, x, y):
    """The linear model's diagnosis for a finished fit, in the space it was trained in."""
    return diagnose_linear(fit.standardization(x), y, fit.initial, fit.trained)
