"""Single runs in lockstep: R runs of one model on the same inputs, one row each, computed together, every
number of each row the single run's, bit for bit (the runs of --lr-sweep, one lr per row).

manual_gradients.py writes out what loss.backward() computes for one run. Here the same operations take a
leading run axis, each chosen so that a row rounds exactly as the single run does:

* w x + b: nn.Linear(1, 1) and x @ a round the one product, then the sum; so does x * w + b, broadcast over
  (R, 1) parameters.
* a sum over the n points that the single run computes as g.t().mm(x), a (1, n) @ (n, 1) product: torch.bmm
  over R such products adds in the same order (its kernel for small matrices); g.sum(0) is a row's sum(1).
* sums of each run's data taken once, as batched_gradients.py regroups the gradients for a thousand runs, add in
  another order: far faster there, equal to the single runs only to rounding.

That bmm adds like mm is a fact of the kernels, not a promise of torch: matches_single_run() checks the first
step against the single run's recipe, and the sweep says so where it does not hold. An epoch of 54 runs of
the product takes about 26 µs on one core; one run of the blog's loop takes about 150 µs.
"""
import copy

import torch

from .manual_gradients import attach


class Lockstep:
    """gradients = LockstepLinear(replicas, inputs, y); losses = gradients(): each run's MSE (R,), every
    stacked p.grad set as R calls of loss.backward() would.

    replicas: a replicas.Replicas (each parameter has a leading run axis); inputs (n, 1), shared by the runs;
    y (n, 1) shared, or (R, n, 1), each run's own. The parameters are read through detached (R, 1) views, so
    the optimizer's updates show and no op records a graph.
    """
    names = ()  # the model's parameter names, in the single run's order

    def __init__(self, replicas, inputs, y):
        params = dict(replicas.named_parameters())
        self.params = [params[name] for name in self.names]
        self.runs, n = self.params[0].shape[0], inputs.shape[0]
        self.values = [p.detach().view(self.runs, 1) for p in self.params]
        self.grads = [torch.zeros_like(p) for p in self.params]
        self.n = n
        self.row = inputs.reshape(1, n)                              # x as a row, broadcast over the runs
        self.y = y.reshape(-1, n)                                    # (1, n) shared or (R, n)
        self.norm = torch.tensor(2 / n, dtype=inputs.dtype, device=inputs.device)  # aten's 2/n, in x's dtype

    def __call__(self):
        attach(self.params, self.grads)
        return self.step()

    def sums(self, g, feature):
        """(R, 1): each run's sum over the points of g · feature, as the single run's g.t().mm(feature)."""
        return torch.bmm(g.unsqueeze(1), feature.reshape(1, self.n, 1).expand(self.runs, self.n, 1)).view(self.runs, 1)

    def residual_and_loss(self, out):
        residual = out - self.y
        return residual, residual.square().sum(1) / self.n            # L = (1/n) sum (out - y)^2, per run

    def losses(self):
        """Each run's loss at its parameters now, as the single run computes it."""
        return self.residual_and_loss(self.forward())[1]

    def set(self, i, grad):
        self.grads[i].copy_(grad.view(self.grads[i].shape))


class LockstepParams(Lockstep):
    """y = a x² + b x + c."""
    names = ("a", "b", "c")

    def __init__(self, replicas, inputs, y):
        super().__init__(replicas, inputs, y)
        self.squares = self.row ** 2                                  # x², the same bits as the single run's x ** 2

    def forward(self):
        a, b, c = self.values
        return self.squares * a + self.row * b + c                    # x² @ a + x @ b + c, per run

    def step(self):
        residual, loss = self.residual_and_loss(self.forward())
        g = residual * self.norm                                      # dL/dout = (2/n) (out - y)
        self.set(0, self.sums(g, self.squares))                       # dL/da = (2/n) sum (out - y) x²
        self.set(1, self.sums(g, self.row))                           # dL/db = (2/n) sum (out - y) x
        self.set(2, g.sum(1))                                         # dL/dc = (2/n) sum (out - y)
        return loss


class LockstepLinear(Lockstep):
    """y = (w1 x + b1)(w2 x + b2)."""
    names = ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")

    def hidden(self):
        w1, b1, w2, b2 = self.values
        return self.row * w1 + b1, self.row * w2 + b2                 # h1 = w1 x + b1, h2 = w2 x + b2, per run

    def forward(self):
        h1, h2 = self.hidden()
        return h2 * h1

    def step(self):
        h1, h2 = self.hidden()
        residual, loss = self.residual_and_loss(h2 * h1)
        g = residual * self.norm                                      # dL/dout = (2/n) (out - y)
        g1, g2 = g * h2, g * h1                                       # dL/dh1, dL/dh2
        self.set(0, self.sums(g1, self.row))                          # dL/dw1 = (2/n) sum (out - y) h2 x
        self.set(1, g1.sum(1))                                        # dL/db1 = (2/n) sum (out - y) h2
        self.set(2, self.sums(g2, self.row))                          # dL/dw2 = (2/n) sum (out - y) h1 x
        self.set(3, g2.sum(1))                                        # dL/db2 = (2/n) sum (out - y) h1
        return loss



def matches_single_run(gradients, single_run_gradients, model, inputs, y):
    """Whether row 0's first loss and gradients are the single run's, bit for bit, for row 0 started from `model`:
    single_run_gradients(model, inputs, y)() is the model's gradients by hand (manual_gradients.py), which are
    loss.backward()'s. It takes that first step's gradients."""
    alone = copy.deepcopy(model)
    loss = single_run_gradients(alone, inputs, y.reshape(-1, *inputs.shape)[0])()
    losses = gradients()
    single = dict(alone.named_parameters())
    return torch.equal(loss.reshape(()), losses[0]) and all(
        torch.equal(single[name].grad.reshape(-1), grad[0].reshape(-1)) for name, grad in zip(gradients.names,
                                                                                           gradients.grads))
