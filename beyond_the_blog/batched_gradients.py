"""The gradients of every run's MSE written out by hand for R runs at once: the formulas of manual_gradients.py
with a leading run axis, as one matrix product per layer over all the runs instead of autograd's graph.

Each layer's parameters, one row per run, form a matrix Θ (R, k); its inputs form a feature matrix F (n, k).
params has one layer, Θ = [a, b, c] on F = [x², x, 1]; linear has two, Θ1 = [w1, b1] and Θ2 = [w2, b2], on
F = [x, 1]. With E = out - y, the (R, n) matrix whose row r is run r's residual:

    params:  out = Θ Fᵀ                              dL/dΘ  = (2/n) E F
    linear:  h1 = Θ1 Fᵀ,  h2 = Θ2 Fᵀ,  out = h1 ⊙ h2   dL/dΘ1 = (2/n) (E ⊙ h2) F,   dL/dΘ2 = (2/n) (E ⊙ h1) F

Row r of each gradient is run r's own gradient, so the runs stay independent. An epoch of 25 runs of params
costs a concatenation, two matrix products and the updates: about 20 µs on one core, where autograd through the
same replicas takes about ten times as long, and one run of the command line's default loop about 120 µs.
The sums over the n points run in BLAS's order, not in autograd's: the runs equal the autograd replicas
(and single runs) to float32 rounding, not bit for bit (tests/test_explorer.py checks it).
"""
import torch


class BatchedGradients:
    """gradients = BatchedParamsGradients(replicas, inputs, ys); gradients() sets every stacked p.grad.

    replicas: a replicas.Replicas (each parameter has a leading run axis); inputs (n, 1), shared by the runs;
    ys (R, n, 1), each run's targets. The gradients live in buffers made here, one (R, k) matrix per layer,
    and each p.grad is a view of its column(s). It returns nothing: the per-run loss is not needed every
    epoch, and computing it would cost a fifth of the epoch (whoever records it computes it at its records).
    """
    layers = ()  # one tuple of parameter names per layer, in the order of its feature columns

    def __init__(self, replicas, inputs, ys):
        params = dict(replicas.named_parameters())
        runs, n = ys.shape[0], inputs.shape[0]
        self.params = [params[name] for layer in self.layers for name in layer]
        # each layer's parameters as views (R, 1) of the very tensors the optimizer updates, seen by no autograd
        self.columns = [[params[name].detach().view(runs, 1) for name in layer] for layer in self.layers]
        self.thetas = [torch.empty(runs, len(layer), dtype=inputs.dtype, device=inputs.device)
                       for layer in self.layers]
        self.grad_buffers = [torch.empty_like(theta) for theta in self.thetas]
        self.grads = [grad[:, j:j + 1].view(params[name].shape)
                      for grad, layer in zip(self.grad_buffers, self.layers) for j, name in enumerate(layer)]
        features = self.features_of(inputs.reshape(n, 1))
        self.features_t = features.t().contiguous()          # Fᵀ (k, n), for Θ Fᵀ
        self.scaled_features = features * (2 / n)           # (2/n) F: dL/dΘ = E (2/n) F, the 2/n folded in once
        self.neg_y = -ys.reshape(runs, n)                    # addmm(-y, Θ, Fᵀ) is E = out - y in one product
        self.residual = torch.empty(runs, n, dtype=inputs.dtype, device=inputs.device)

    def __call__(self):
        for p, grad in zip(self.params, self.grads):
            if p.grad is not grad:  # set once; again only if something (zero_grad) has set it to None
                p.grad = grad
        for theta, columns in zip(self.thetas, self.columns):
            torch.cat(columns, dim=1, out=theta)             # this epoch's Θ, one row per run
        self.step()


class BatchedParamsGradients(BatchedGradients):
    """y = a x² + b x + c: Θ = [a, b, c], F = [x², x, 1]."""
    layers = (("a", "b", "c"),)

    @staticmethod
    def features_of(x):
        return torch.cat([x**2, x, torch.ones_like(x)], dim=1)

    def step(self):
        residual = torch.addmm(self.neg_y, self.thetas[0], self.features_t, out=self.residual)  # E = Θ Fᵀ - y
        torch.mm(residual, self.scaled_features, out=self.grad_buffers[0])                     # dL/dΘ = (2/n) E F


class BatchedLinearGradients(BatchedGradients):
    """y = (w1 x + b1)(w2 x + b2): Θ1 = [w1, b1], Θ2 = [w2, b2], F = [x, 1]."""
    layers = (("linear1.weight", "linear1.bias"), ("linear2.weight", "linear2.bias"))

    def __init__(self, replicas, inputs, ys):
        super().__init__(replicas, inputs, ys)
        self.h1, self.h2, self.g1, self.g2 = (torch.empty_like(self.residual) for _ in range(4))

    @staticmethod
    def features_of(x):
        return torch.cat([x, torch.ones_like(x)], dim=1)

    def step(self):
        h1 = torch.mm(self.thetas[0], self.features_t, out=self.h1)                 # h1 = w1 x + b1, every run
        h2 = torch.mm(self.thetas[1], self.features_t, out=self.h2)                 # h2 = w2 x + b2
        residual = torch.addcmul(self.neg_y, h1, h2, out=self.residual)             # E = h1 h2 - y
        torch.mm(torch.mul(residual, h2, out=self.g1), self.scaled_features, out=self.grad_buffers[0])  # (2/n)(E h2) F
        torch.mm(torch.mul(residual, h1, out=self.g2), self.scaled_features, out=self.grad_buffers[1])  # (2/n)(E h1) F


BATCHED_GRADIENTS = {"params": BatchedParamsGradients, "linear": BatchedLinearGradients}
