"""The gradients of the mean squared error written out by hand: what loss.backward() computes.

For y = a x^2 + b x + c ("params") and y = (w1 x + b1)(w2 x + b2) ("linear"), with
L = (1/n) sum (out - y)^2, the chain rule gives dL/dout = (2/n)(out - y) and then one sum per
parameter. Computed with the same float32 kernels as autograd, plain SGD on these gradients
gives the autograd loop's numbers bit for bit (tests/test_manual_gradients.py: every logged loss
and the final parameters after 50000 epochs). The recipe, read from a TorchDispatchMode trace of
loss.backward() and checked with torch.equal:

* loss: aten's mse_loss is the mean of (out - y) * (out - y), and mean on CPU is sum() and then a
  division by n: (out - y).square().mean() and (out - y).square().sum() / n give the same bits.
* dL/dout: mse_loss_backward computes norm * (out - y) * grad_output with norm = 2/n rounded to
  float32 and grad_output = 1, backward()'s seed: (out - y) * (2 / n) is that (a Python float is
  rounded to float32 the same way, and the product by 1 changes no bit).
* x^2 @ a: a (1, 1) parameter has strides (1, 1), which mm_mat2_backward takes for column-major,
  so it computes grad.t().mm(mat1).t(): dL/da = g.t().mm(x^2), a (1, n) @ (n, 1) BLAS product with
  the operands in that order and those strides. torch.dot(g, x^2) or (g * x^2).sum() add the n
  terms in another order: the last bit differs already in the first step for most seeds.
* + c: c (1, 1) is broadcast to (n, 1); autograd's sum_to_size reduces with g.sum(0, keepdim=True).
* nn.Linear(1, 1): F.linear(x, w, b) is addmm(b, x, w.t()). Backward: w.t() gets g.t().mm(x).t(),
  whose .t() cancels the transpose, so dL/dw = g.t().mm(x); dL/db = g.sum(0, keepdim=True).view(1),
  the bits of g.sum(0).
* h2 * h1: mul's backward is grad * other: dL/dh1 = g * h2, dL/dh2 = g * h1.

What does not give the same bits: dot products or (g * x).sum() for the mm, one sum(0) over both
columns of [g1, g2] for the two biases, addcmul(b, x, w) for w x + b (it rounds once, like a fused
multiply-add; addmm rounds the product and then the sum).

ParamsGradients and LinearGradients (the lesson's train_by_hand runs them) make the same calls,
faster: x^2 computed once, results written into buffers made once (out=), and the parameters
read through detached aliases, so that no op records a graph and no torch.no_grad() is entered.
A training epoch (with loss.item() and the SGD update) takes about a quarter of the autograd
loop's time, a fifth of the blog's torch.optim.SGD loop's (benchmarks/bench.py measures it).
"""
import torch


def params_gradients(model, x, y):
    """y = a x^2 + b x + c: sets a.grad, b.grad, c.grad as loss.backward() would; returns the loss."""
    with torch.no_grad():
        x2 = x ** 2
        out = x2 @ model.a + x @ model.b + model.c   # the model's forward
        residual = out - y
        loss = residual.square().mean()               # L = (1/n) sum (out - y)^2
        g = residual * (2 / out.numel())              # dL/dout = (2/n) (out - y)
        model.a.grad = g.t().mm(x2).t()               # dL/da = (2/n) sum (out - y) x^2
        model.b.grad = g.t().mm(x).t()                # dL/db = (2/n) sum (out - y) x
        model.c.grad = g.sum(0, keepdim=True)         # dL/dc = (2/n) sum (out - y)
    return loss


def linear_gradients(model, x, y):
    """y = (w1 x + b1)(w2 x + b2): sets the four .grad as loss.backward() would; returns the loss."""
    w1, b1 = model.linear1.weight, model.linear1.bias
    w2, b2 = model.linear2.weight, model.linear2.bias
    with torch.no_grad():
        h1 = torch.addmm(b1, x, w1.t())               # h1 = w1 x + b1, as nn.Linear computes it
        h2 = torch.addmm(b2, x, w2.t())               # h2 = w2 x + b2
        out = h2 * h1
        residual = out - y
        loss = residual.square().mean()               # L = (1/n) sum (out - y)^2
        g = residual * (2 / out.numel())              # dL/dout = (2/n) (out - y)
        g1 = g * h2                                   # dL/dh1 = dL/dout * h2
        g2 = g * h1                                   # dL/dh2 = dL/dout * h1
        w1.grad = g1.t().mm(x)                        # dL/dw1 = (2/n) sum (out - y)(w2 x + b2) x
        b1.grad = g1.sum(0)                           # dL/db1 = (2/n) sum (out - y)(w2 x + b2)
        w2.grad = g2.t().mm(x)                        # dL/dw2 = (2/n) sum (out - y)(w1 x + b1) x
        b2.grad = g2.sum(0)                           # dL/db2 = (2/n) sum (out - y)(w1 x + b1)
    return loss



def attach(params, grads):
    """Make each p.grad its buffer: set once, and again only if something (zero_grad) has set it to None."""
    for p, grad in zip(params, grads):
        if p.grad is not grad:
            p.grad = grad


class ManualGradients:
    """The functions above, faster, for a training loop over one model and one data set; one
    subclass per model (ParamsGradients, LinearGradients), named by its entry in models.py:

        gradients = ParamsGradients(model, x, y)
        loss = gradients()   # each epoch: every p.grad set, the bits of loss.backward()

    The gradients live in buffers made here and overwritten by each call: p.grad is set to its
    buffer, again if something (zero_grad) has set it to None. The instance holds aliases of the
    parameters: build it after the model has its final device and dtype.
    """

    def __init__(self, model, x, y):
        self.params = self.parameters_of(model)
        self.values = [p.detach() for p in self.params]    # the same storage, seen by no autograd
        self.grads = [torch.zeros_like(v) for v in self.values]
        self.transposed = [v.t() for v in self.values]     # w.t() for addmm: views, they follow the updates
        self.x, self.y, self.x2 = x, y, x ** 2
        n = x.numel()
        self.n = torch.tensor(float(n), dtype=x.dtype, device=x.device)
        self.norm = torch.tensor(2 / n, dtype=x.dtype, device=x.device)  # aten's norm: 2/n rounded to x's dtype
        self.out, self.residual, self.g, self.h1, self.h2, self.g1, self.g2 = (torch.empty_like(x) for _ in range(7))
        self.g_t, self.g1_t, self.g2_t = self.g.t(), self.g1.t(), self.g2.t()   # (1, n) views, made once

    def __call__(self):
        attach(self.params, self.grads)
        return self.step()

    def _loss_and_g(self, out):
        """L = (1/n) sum (out - y)^2, returned; self.g = dL/dout = (2/n) (out - y)."""
        residual = torch.sub(out, self.y, out=self.residual)
        torch.mul(residual, self.norm, out=self.g)
        return residual.square().sum().div_(self.n)


class ParamsGradients(ManualGradients):
    """params_gradients, fast: y = a x^2 + b x + c."""

    @staticmethod
    def parameters_of(model):
        return [model.a, model.b, model.c]

    def step(self):
        a, b, c = self.values
        grad_a, grad_b, grad_c = self.grads
        out = torch.mm(self.x2, a, out=self.out)
        out.add_(torch.mm(self.x, b, out=self.h1)).add_(c)           # out = a x^2 + b x + c (h1: a spare buffer)
        loss = self._loss_and_g(out)
        torch.mm(self.g_t, self.x2, out=grad_a)                      # dL/da = (2/n) sum (out - y) x^2
        torch.mm(self.g_t, self.x, out=grad_b)                       # dL/db = (2/n) sum (out - y) x
        torch.sum(self.g, 0, keepdim=True, out=grad_c)               # dL/dc = (2/n) sum (out - y)
        return loss


class LinearGradients(ManualGradients):
    """linear_gradients, fast: y = (w1 x + b1)(w2 x + b2)."""

    @staticmethod
    def parameters_of(model):
        return [model.linear1.weight, model.linear1.bias, model.linear2.weight, model.linear2.bias]

    def step(self):
        _, b1, _, b2 = self.values
        w1_t, _, w2_t, _ = self.transposed
        grad_w1, grad_b1, grad_w2, grad_b2 = self.grads
        h1 = torch.addmm(b1, self.x, w1_t, out=self.h1)              # h1 = w1 x + b1
        h2 = torch.addmm(b2, self.x, w2_t, out=self.h2)              # h2 = w2 x + b2
        loss = self._loss_and_g(torch.mul(h2, h1, out=self.out))     # out = h2 h1
        g1 = torch.mul(self.g, h2, out=self.g1)                      # dL/dh1 = dL/dout * h2
        g2 = torch.mul(self.g, h1, out=self.g2)                      # dL/dh2 = dL/dout * h1
        torch.mm(self.g1_t, self.x, out=grad_w1)                     # dL/dw1 = (2/n) sum (out - y) h2 x
        torch.sum(g1, 0, out=grad_b1)                                # dL/db1 = (2/n) sum (out - y) h2
        torch.mm(self.g2_t, self.x, out=grad_w2)                     # dL/dw2 = (2/n) sum (out - y) h1 x
        torch.sum(g2, 0, out=grad_b2)                                # dL/db2 = (2/n) sum (out - y) h1
        return loss

