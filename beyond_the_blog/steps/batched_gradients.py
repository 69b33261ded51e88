"""The gradients of every run's MSE written out by hand for R runs at once: the formulas of manual_gradients.py
with a run axis, as matrix products over all the runs instead of autograd's graph. --runs trains with them, and
so does the explorer.

Each layer's parameters, one column per run, form a matrix Θ (k, R); its inputs form a feature matrix F (n, k).
params has one layer, Θ = [a, b, c] on F = [x², x, 1]; linear has two, Θ1 = [w1, b1] and Θ2 = [w2, b2], on
F = [x, 1]. With E = out - y, the (R, n) matrix whose row r is run r's residual:

    params:  out = Θᵀ Fᵀ                               dL/dΘ  = (2/n) Fᵀ Eᵀ
    linear:  h1 = Θ1ᵀ Fᵀ,  h2 = Θ2ᵀ Fᵀ,  out = h1 ⊙ h2   dL/dΘ1 = (2/n) Fᵀ (E ⊙ h2)ᵀ,   dL/dΘ2 = (2/n) Fᵀ (E ⊙ h1)ᵀ

Column r of each gradient is run r's own gradient, so the runs stay independent. For the product, h2 = w2 x + b2
turns (2/n) Σ E h2 [x, 1] into w2 M[x², x] + b2 M[x, 1], with M = (2/n) [x², x, 1]ᵀ Eᵀ the residual's moments:
one matrix product over the runs for both layers, and a few products of R numbers, instead of two passes over
the (R, n) residual and two products. Each gradient lands in a (k, R) buffer whose row j is one parameter's
gradient for every run, contiguous, and p.grad is a view of it. benchmarks/bench.py times an epoch of 1000 runs
against one run's.

The sums over the n points run in BLAS's order, not in autograd's, and the product's moments regroup them: the
runs equal the autograd replicas (and single runs) to float32 rounding, not bit for bit (tests/test_explorer.py
and tests/test_replicas.py check it).
"""
import torch

from .manual_gradients import attach


class BatchedGradients:
    """gradients = BatchedParamsGradients(replicas, inputs, ys); gradients() sets every stacked p.grad.

    replicas: a replicas.Replicas (each parameter has a leading run axis); inputs (n, 1), shared by the runs;
    ys (R, n, 1), each run's targets. Θ and the gradients live in buffers made here, one row per parameter and
    one column per run, and each p.grad is a view of its row. It returns nothing: the per-run loss is not
    needed every epoch, and computing it takes a pass over the residual. run_losses() computes it from the
    last call's residual, for whoever records it.
    """
    rows = ()       # the parameters in the order of Θ's rows
    grad_rows = ()  # the parameters in the order of the gradient buffer's rows

    def __init__(self, replicas, inputs, ys):
        params = dict(replicas.named_parameters())
        runs, n = ys.shape[0], inputs.shape[0]
        self.params = [params[name] for name in self.grad_rows]
        # each parameter as a row (1, R) of the very tensor the optimizer updates, seen by no autograd
        self.sources = [params[name].detach().view(1, runs) for name in self.rows]
        self.theta = torch.empty(len(self.rows), runs, dtype=inputs.dtype, device=inputs.device)
        self.grad_buffer = torch.empty_like(self.theta)
        self.grads = [self.grad_buffer[j].view(p.shape) for j, p in enumerate(self.params)]
        x = inputs.reshape(n, 1)
        self.neg_y = -ys.reshape(runs, n)  # addmm(-y, ...) and addcmul(-y, ...) are E = out - y in one op
        self.residual = torch.empty(runs, n, dtype=inputs.dtype, device=inputs.device)
        self.setup(x, n)

    def __call__(self):
        attach(self.params, self.grads)
        torch.cat(self.sources, dim=0, out=self.theta)  # this epoch's Θ, one column per run
        self.step()

    def run_losses(self):
        """(R,) each run's MSE at the parameters the last call saw: before the optimizer's step."""
        return self.residual.square().mean(dim=1)


def quadratic_features(x):
    return torch.cat([x**2, x, torch.ones_like(x)], dim=1)


class BatchedParamsGradients(BatchedGradients):
    """y = a x² + b x + c: Θ = [a, b, c], F = [x², x, 1]."""
    rows = grad_rows = ("a", "b", "c")

    def setup(self, x, n):
        features = quadratic_features(x)
        self.features_t = features.t().contiguous()                  # Fᵀ (3, n), for Θᵀ Fᵀ
        self.scaled_features_t = (features * (2 / n)).t().contiguous()  # (2/n) Fᵀ: the 2/n folded in once

    def step(self):
        residual = torch.addmm(self.neg_y, self.theta.t(), self.features_t, out=self.residual)  # E = out - y
        torch.mm(self.scaled_features_t, residual.t(), out=self.grad_buffer)                  # (2/n) Fᵀ Eᵀ


class BatchedLinearGradients(BatchedGradients):
    """y = (w1 x + b1)(w2 x + b2): Θ1 = [w1, b1], Θ2 = [w2, b2], F = [x, 1].

    Θ's rows are w1, w2, b1, b2: viewed (2, 2R), it is [w; b] for the 2R layers of the runs, so one product
    gives h1 and h2 stacked. The gradient's rows are Θ2's then Θ1's: each layer's is the other layer's
    (w, b) applied to the moments, one broadcast product for both."""
    rows = ("linear1.weight", "linear2.weight", "linear1.bias", "linear2.bias")
    grad_rows = ("linear2.weight", "linear2.bias", "linear1.weight", "linear1.bias")

    def setup(self, x, n):
        runs = self.residual.shape[0]
        self.features_t = torch.cat([x, torch.ones_like(x)], dim=1).t().contiguous()  # Fᵀ (2, n)
        self.moment_features_t = (quadratic_features(x) * (2 / n)).t().contiguous()    # (2/n) [x², x, 1]ᵀ
        self.layers = torch.empty(2 * runs, n, dtype=x.dtype, device=x.device)       # [h1; h2]
        self.h1, self.h2 = self.layers[:runs], self.layers[runs:]
        self.moments = torch.empty(3, runs, dtype=x.dtype, device=x.device)
        w, b = self.theta.view(2, 2, runs)                    # w = [w1; w2], b = [b1; b2]
        self.w, self.b = w.unsqueeze(1), b.unsqueeze(1)       # (2, 1, R): one layer's (w, b) per row
        self.m_x = self.moments[0:2].unsqueeze(0)             # (1, 2, R): (2/n) Σ E [x², x]
        self.m_1 = self.moments[1:3].unsqueeze(0)             # (1, 2, R): (2/n) Σ E [x, 1]
        self.grad_layers = self.grad_buffer.view(2, 2, runs)  # [dL/dΘ2; dL/dΘ1]

    def step(self):
        torch.mm(self.theta.view(2, -1).t(), self.features_t, out=self.layers)        # h1, h2 = w x + b, every run
        residual = torch.addcmul(self.neg_y, self.h1, self.h2, out=self.residual)     # E = h1 h2 - y
        torch.mm(self.moment_features_t, residual.t(), out=self.moments)              # (2/n) Σ E [x², x, 1]
        # dL/dΘ1 = (2/n) Σ E h2 [x, 1] = w2 M[x², x] + b2 M[x, 1]; dL/dΘ2 likewise with w1, b1
        torch.mul(self.m_x, self.w, out=self.grad_layers).addcmul_(self.m_1, self.b)

