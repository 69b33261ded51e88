"""The best possible fit: least squares for a x² + b x + c in float64, its standard errors and Student's t
quantile, and how nearly x², x and 1 depend on each other on the data (the design's condition number)."""
import functools
import math
from dataclasses import dataclass

import torch

TRUE_COEFFICIENTS = (1.0, -12.0, 32.0)  # the lesson's data: (x - 4)(x - 8) = x^2 - 12 x + 32


@dataclass(kw_only=True)
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



RUNS_AT_ONCE = 4096  # data sets solved together: bounds the float64 copies whatever --runs is


def least_squares(x, y):
    """Least squares in float64 by torch.linalg.lstsq. y is (n, 1), or (runs, n, 1) for many
    data sets on the same x."""
    features = quadratic_features(x.cpu())
    n = features.shape[0]
    data_sets = y.cpu().reshape(-1, n)                                   # (runs, n)
    solutions, losses = [], []
    for part in data_sets.split(RUNS_AT_ONCE):
        targets = part.double().T                                       # (n, runs)
        # gelsd (SVD): the default CPU driver, gelsy, can differ in the last bits from call to call
        solution = torch.linalg.lstsq(features, targets, driver="gelsd").solution  # (3, runs)
        solutions.append(solution.T)
        losses.append((features @ solution - targets).square_().mean(dim=0))
    loss = torch.cat(losses)
    stderr = t95 = None
    if n > 3:
        sigma2 = loss * (n / (n - 3))                               # unbiased residual variance
        unscaled = torch.linalg.inv(features.T @ features).diagonal()
        stderr = (sigma2[:, None] * unscaled[None, :]).sqrt()
        t95 = student_t_quantile(0.975, n - 3)
    return LeastSquares(coefficients=torch.cat(solutions), loss=loss, stderr=stderr, t95=t95,
                        scale=(data_sets[0].double() ** 2).mean().item())


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
