"""The two update rules written here rather than taken as they are from torch.optim: plain SGD spelled
out (torch.optim.SGD's numbers, at half the cost), and L-BFGS as one step per epoch of the blog's loop."""
import torch


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


class LBFGSEpoch:
    """One L-BFGS step (up to 20 iterations with a line search) per epoch, behind the blog's
    zero_grad/backward/step. Its line search evaluates the loss itself, so step() hands it a
    closure; the closure's first loss is the one the loop just computed, bit for bit. With
    `gradients` (the model's gradients by hand, manual_gradients.py) the closure
    is gradients() instead of autograd: the same bits, about four times cheaper per evaluation.
    With `rebalance` (the model's own symmetry, e.g. models.balance_layers bound to the model),
    each epoch first moves along the model's valley of equal loss; if it moved, L-BFGS starts afresh."""

    def __init__(self, params, lr, loss_of_model, gradients=None, rebalance=None):
        self.params, self.lr = list(params), lr
        self.lbfgs = self.fresh_lbfgs()
        self.loss_of_model, self.gradients, self.rebalance = loss_of_model, gradients, rebalance

    def fresh_lbfgs(self):
        # history_size 10 (scipy's default), not torch's 100: with 3 or 4 parameters older curvature pairs add
        # nothing, and each costs two Python-level tensor ops per iteration, most of an epoch's time
        return torch.optim.LBFGS(self.params, lr=self.lr, max_iter=20, history_size=10, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-9, tolerance_change=1e-12)

    def zero_grad(self):
        self.lbfgs.zero_grad()

    def step(self):
        if self.rebalance is not None and self.rebalance():
            self.lbfgs = self.fresh_lbfgs()  # its curvature memory was measured in the old scaling
        if self.gradients is not None:
            return self.lbfgs.step(self.gradients)

        def closure():
            self.lbfgs.zero_grad()
            loss = self.loss_of_model()
            loss.backward()
            return loss
        return self.lbfgs.step(closure)


class PerRunSGD:
    """Plain SGD, or heavy-ball momentum as torch.optim.SGD computes it, over stacked parameters
    (a leading run axis) with one learning rate per run: lrs is an (R,) tensor."""

    def __init__(self, params, lrs, momentum=0.0):
        self.params = list(params)
        self.lrs, self.momentum = lrs, momentum
        self.buffers = [None] * len(self.params)
        # -lr per run, shaped to broadcast over each stacked parameter, in its dtype: made once, not per step
        self.steps = [-lrs.reshape(-1, *[1] * (p.dim() - 1)).to(p.dtype) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            direction = p.grad
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = direction.clone()
                else:
                    self.buffers[i].mul_(self.momentum).add_(direction)
                direction = self.buffers[i]
            p.addcmul_(self.steps[i], direction)
