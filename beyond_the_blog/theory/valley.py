"""The product's valley of fits, and how curved the loss is where a run ends on it: the lr limit that moves.

y = (w1 x + b1)(w2 x + b2) draws the least-squares quadratic a (x - r1)(x - r2) all along a valley:
w1 = u, b1 = -u r1, w2 = v, b2 = -v r2 with u v = a, for every u (and r1, r2 swapped). Gradient descent
with a small lr keeps the balance (w1² + b1²) - (w2² + b2²) of its start, which picks one point of it.
The loss's largest curvature λmax differs along the valley: plain SGD can stay at a point only if
lr <= 2/λmax there. A run with a larger lr that still converges must end where the valley is flatter.
"""
import math

import torch

from .curvature import largest_curvature, product_hessian


def valley_point(coefficients, balance, near):
    """(w1, b1, w2, b2) in float64 on the valley of the quadratic `coefficients` (a, b, c, in the space
    trained in) with that balance, of its two pairings of roots the one nearer `near` (up to the sign that
    flips both layers, which draws the same curve); None if the quadratic has no real roots to share."""
    a, b, c = (float(v) for v in coefficients)
    discriminant = b * b - 4 * a * c
    if a == 0 or discriminant < 0:
        return None
    roots = ((-b - math.sqrt(discriminant)) / (2 * a), (-b + math.sqrt(discriminant)) / (2 * a))
    near = torch.as_tensor(near, dtype=torch.float64)
    best = None
    for r1, r2 in (roots, roots[::-1]):
        # balance = u²(1 + r1²) - v²(1 + r2²) with v = a/u: a quadratic in u², one positive root
        p, q = 1 + r1 * r1, a * a * (1 + r2 * r2)
        u = math.sqrt((balance + math.sqrt(balance * balance + 4 * p * q)) / (2 * p))
        point = torch.tensor([u, -u * r1, a / u, -a / u * r2], dtype=torch.float64)
        for candidate in (point, -point):
            distance = (candidate - near).norm().item()
            if best is None or distance < best[0]:
                best = (distance, candidate)
    return best[1]


def limit_at(theta, inputs, y, factor=1.0):
    """factor · 2/λmax of the product's loss at (w1, b1, w2, b2): the largest lr that can stay there."""
    return factor * 2 / torch.linalg.eigvalsh(product_hessian(theta, inputs, y)).abs().max().item()


def end_limits(model, params, inputs, y, rows, factor=1.0):
    """factor · 2/λmax at the end point of each run in `rows` (params: name -> stacked tensor), NaN elsewhere."""
    limits = torch.full((next(iter(params.values())).shape[0],), math.nan, dtype=torch.float64)
    for r in rows:
        limits[r] = factor * 2 / largest_curvature(model, {k: v[r] for k, v in params.items()}, inputs, y)
    return limits


