"""The product model's rescaling symmetry, and what L-BFGS needs of it.

(w1 x + b1)(w2 x + b2) draws the same curve for (s w1, s b1, w2/s, b2/s), any s > 0: a valley of
equal loss. At a small lr, gradient descent keeps the balance (w1² + b1²) - (w2² + b2²) nearly constant, so
the blog's SGD stays put along it (near the lr limit it does not: docs/lr-limits.md). L-BFGS wanders: its
steps are not gradient steps, and on raw x it drifts to ever more unequal layers (seed 11: |(w1, b1)| ~ 1e5,
|(w2, b2)| ~ 1e-5), where the loss is so badly conditioned that it stalls 200 times above the least-squares
loss, reporting no progress.
About one seed in twenty did. Rescaling the layers to equal sizes moves along the valley only (the
same curve, the loss unchanged up to rounding) and restores the conditioning; L-BFGS, whose memory
of curvature was measured in the old scaling, then starts afresh (updates.LBFGSEpoch).
"""
import torch

TOLERANCE = 1.01  # layers within 1% of each other's size are left alone, bit for bit


def balance_layers(model):
    """Rescale linear1 by s and linear2 by 1/s so that |(w1, b1)| = |(w2, b2)|, in place; True if it did
    (False when the sizes are already within 1%, or a layer is zero or not finite)."""
    first, second = model.linear1, model.linear2
    with torch.no_grad():
        size1 = torch.cat([first.weight.reshape(-1), first.bias]).norm().item()
        size2 = torch.cat([second.weight.reshape(-1), second.bias]).norm().item()
        if not (0 < size1 < float("inf") and 0 < size2 < float("inf")):
            return False
        if max(size1 / size2, size2 / size1) <= TOLERANCE:
            return False
        s = (size2 / size1) ** 0.5
        for p in (first.weight, first.bias):
            p.mul_(s)
        for p in (second.weight, second.bias):
            p.div_(s)
    return True
