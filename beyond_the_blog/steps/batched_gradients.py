"""The gradients of every run's MSE written out by hand for R runs at once, from a few sums of each run's data
computed once: an epoch then costs a few operations per run, whatever the number of points. --runs trains with
them, and so does the explorer.

Both models output a quadratic in x, out = A x² + B x + C, with coefficients q = [A, B, C]:

    params:  q = [a, b, c]
    linear:  q = [w1 w2,  w1 b2 + b1 w2,  b1 b2]      (the product (w1 x + b1)(w2 x + b2) multiplied out)

With Q = [x², x, 1] (n, 3), the same for every run, a run's residual is E = Q q - y, and the sums the gradients
need are

    m = (2/n) Qᵀ E = G q - v,    G = (2/n) QᵀQ  (3, 3: sums of x⁰ to x⁴),    v = (2/n) Qᵀ y  (3 numbers a run)

    params:  dL/d[a, b, c] = m
    linear:  dL/dw1 = w2 m[x²] + b2 m[x],  dL/db1 = w2 m[x] + b2 m[1]   (the chain rule through h2 = w2 x + b2;
             dL/dw2, dL/db2 likewise with w1, b1)
    loss:    L = (1/n) Σ E² = ½ qᵀ (m - v) + (1/n) Σ y²

G, v and (1/n) Σ y² are computed once, before the first epoch. An epoch is then one (3, 3) @ (3, R) product and
a few products of R numbers: no pass over the n points, which is why a run-epoch costs no more at 100000 runs
than at 1000 (benchmarks/bench.py measures it). These are the same gradients as autograd's, regrouped.

The regrouping needs float64. Near the fit, m is a small difference of sums near 10⁴ (x⁴ reaches 2·10⁴): 0.075
from the fit along the bowl's flattest direction, float32 sums get dL/da wrong by tens of percent
(tests/test_batched_gradients.py). So the sums are taken in float64 (SUMS), and each gradient is rounded to the
parameters' float32 once. The runs then equal the autograd replicas (and single runs) to the single runs' own
float32 rounding, not bit for bit: tests/test_replicas.py and tests/test_explorer.py check it.
"""
import torch

from .manual_gradients import attach

SUMS = torch.float64  # the dtype of G, v and every epoch's sums (MPS has no float64: there, float32)


def sums_dtype(device):
    return torch.float32 if torch.device(device).type == "mps" else SUMS


class BatchedGradients:
    """gradients = BatchedParamsGradients(replicas, inputs, ys); gradients() sets every stacked p.grad.

    replicas: a replicas.Replicas (each parameter has a leading run axis); inputs (n, 1), shared by the runs;
    ys (R, n, 1), each run's targets. Θ and the gradients live in buffers made here, one row per parameter and
    one column per run, and each p.grad is a view of its row. It returns nothing: the per-run loss is not
    needed every epoch. run_losses() computes it at the parameters the last call saw, for whoever records it.
    """
    rows = ()       # the parameters in the order of Θ's rows
    grad_rows = ()  # the parameters in the order of the gradient buffer's rows

    def __init__(self, replicas, inputs, ys):
        params = dict(replicas.named_parameters())
        runs, n = ys.shape[0], inputs.shape[0]
        dtype, device = sums_dtype(inputs.device), inputs.device
        self.params = [params[name] for name in self.grad_rows]
        # each parameter as a row (1, R) of the very tensor the optimizer updates, seen by no autograd
        self.sources = [params[name].detach().view(1, runs) for name in self.rows]
        self.theta = torch.empty(len(self.rows), runs, dtype=inputs.dtype, device=device)
        self.grad_buffer = torch.empty_like(self.theta)
        self.grads = [self.grad_buffer[j].view(p.shape) for j, p in enumerate(self.params)]
        self.wide = torch.empty(len(self.rows), runs, dtype=dtype, device=device)     # Θ in the sums' dtype
        self.m = torch.empty(3, runs, dtype=dtype, device=device)                      # G q - v, every run
        self.gram, self.neg_v, self.mean_square = data_sums(inputs, ys, dtype)
        self.n = n

    def __call__(self):
        attach(self.params, self.grads)
        torch.cat(self.sources, dim=0, out=self.theta)  # this epoch's Θ, one column per run
        self.wide.copy_(self.theta)
        self.q = self.coefficients()  # [A, B, C], every run
        torch.addmm(self.neg_v, self.gram, self.q, out=self.m)  # m = G q - v
        self.step()

    def run_losses(self):
        """(R,) each run's MSE at the parameters the last call saw: before the optimizer's step."""
        loss = (self.q * (self.m + self.neg_v)).sum(0).mul_(0.5).add_(self.mean_square)  # ½ qᵀ(m - v) + (1/n) Σ y²
        # a single run sums the n squares in float32, then divides: the sum, rounded there, is inf where it is
        return (loss * self.n).to(self.theta.dtype) / self.n


def data_sums(inputs, ys, dtype, points_at_once=2**18):
    """G = (2/n) QᵀQ (3, 3), -v = -(2/n) Qᵀ y (3, R) and (1/n) Σ y² (R,), in `dtype`: a block of runs at a time,
    so that no copy of every run's data is made in `dtype`."""
    n = inputs.shape[0]
    features = quadratic_features(inputs.reshape(n, 1).to(dtype))  # Q = [x², x, 1], (n, 3)
    gram = features.t() @ features * (2 / n)
    ys = ys.reshape(ys.shape[0], n)
    neg_v = torch.empty(3, ys.shape[0], dtype=dtype, device=ys.device)
    mean_square = torch.empty(ys.shape[0], dtype=dtype, device=ys.device)
    runs_at_once = max(1, points_at_once // n)
    for start in range(0, ys.shape[0], runs_at_once):
        block = ys[start:start + runs_at_once].to(dtype)
        # each run's own sum over its points, in an order that does not depend on the other runs (a matrix
        # product's kernel would change with the block's size)
        for row, feature in enumerate(features.t()):
            neg_v[row, start:start + runs_at_once] = (block * feature).sum(dim=1) * (-2 / n)
        mean_square[start:start + runs_at_once] = block.square().mean(dim=1)
    return gram, neg_v, mean_square


def quadratic_features(x):
    return torch.cat([x**2, x, torch.ones_like(x)], dim=1)


class BatchedParamsGradients(BatchedGradients):
    """y = a x² + b x + c: q = Θ = [a, b, c], and the gradient is m."""
    rows = grad_rows = ("a", "b", "c")

    def coefficients(self):
        return self.wide  # the parameters are the coefficients: nothing to multiply out

    def step(self):
        self.grad_buffer.copy_(self.m)  # rounded to float32 once


class BatchedLinearGradients(BatchedGradients):
    """y = (w1 x + b1)(w2 x + b2): q = [w1 w2, w1 b2 + b1 w2, b1 b2].

    Θ's rows are w1, w2, b1, b2: viewed (2, 2, R), it is [w; b] with one layer's (w, b) per row. The gradient's
    rows are Θ2's then Θ1's: each layer's is the other layer's (w, b) applied to m, one broadcast product for
    both."""
    rows = ("linear1.weight", "linear2.weight", "linear1.bias", "linear2.bias")
    grad_rows = ("linear2.weight", "linear2.bias", "linear1.weight", "linear1.bias")

    def __init__(self, replicas, inputs, ys):
        super().__init__(replicas, inputs, ys)
        runs = self.theta.shape[1]
        self.w1, self.w2, self.b1, self.b2 = self.wide
        w, b = self.wide.view(2, 2, runs)                   # w = [w1; w2], b = [b1; b2]
        self.w, self.b = w.unsqueeze(1), b.unsqueeze(1)     # (2, 1, R): one layer's (w, b) per row
        self.m_x = self.m[0:2].unsqueeze(0)                 # (1, 2, R): m[x², x]
        self.m_1 = self.m[1:3].unsqueeze(0)                 # (1, 2, R): m[x, 1]
        self.wide_grads = torch.empty(2, 2, runs, dtype=self.m.dtype, device=self.m.device)
        self.products = torch.empty_like(self.m)  # [A, B, C], every run

    def coefficients(self):
        a, b, c = self.products
        torch.mul(self.w1, self.w2, out=a)                              # A = w1 w2
        torch.mul(self.w1, self.b2, out=b).addcmul_(self.b1, self.w2)   # B = w1 b2 + b1 w2
        torch.mul(self.b1, self.b2, out=c)                              # C = b1 b2
        return self.products

    def step(self):
        # dL/dΘ1 = w2 m[x², x] + b2 m[x, 1]; dL/dΘ2 likewise with w1, b1
        torch.mul(self.m_x, self.w, out=self.wide_grads).addcmul_(self.m_1, self.b)
        self.grad_buffer.view(2, 2, -1).copy_(self.wide_grads)  # rounded to float32 once
