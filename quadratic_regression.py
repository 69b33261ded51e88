"""Quadratic regression with PyTorch: HansBug's blog post "【学习笔记】深度学习 demo2 二次函数回归"
(deep learning demo 2: quadratic regression), reproduced loss for loss.

The blog samples y = (x - 4)(x - 8) + N(0, 1) noise at 100 points of [-2, 12] and fits it with
two models, trained by full-batch SGD (lr 2e-5) on the mean squared error:

    python quadratic_regression.py --model params   # y = a x^2 + b x + c, 500000 epochs
    python quadratic_regression.py --model linear   # y = (w1 x + b1)(w2 x + b2), 20000 epochs

This file is the lesson and nothing else, top-down: the data, the two models, the blog's training
loop and the two next stages a learner tries (the gradients by hand, minibatches), the printing.
The package beyond_the_blog/ beside it imports this file and does the rest: the command line,
optimizers, least squares, why SGD is slow, replications, figures, metrics.
"""
if __name__ == "__main__":  # the command line answers --help and mistakes before torch (about 1.5 s) loads
    from beyond_the_blog.cli import main
    raise SystemExit(main())

import torch
from torch import nn


# ----------------------------------------------------------------------------- the data
def make_data(samples=100, noise=1.0, x_range=(-2.0, 12.0)):
    """The blog's data: x = linspace(lo, hi) as an (n, 1) column, y = (x - 4)(x - 8) + noise."""
    x = torch.linspace(x_range[0], x_range[1], samples).reshape(samples, 1)
    y = (x - 4) * (x - 8) + noise * torch.randn(x.size())  # draws the noise before any parameter
    return x, y


# ----------------------------------------------------------------------------- the two models
class ParamQuadratic(nn.Module):
    """y = a·x² + b·x + c, with a, b, c three trainable 1×1 parameters (the blog's first model).

    x is an (n, 1) column and a, b, c are 1×1 matrices, as in the blog, so x² @ a is the column
    a·x²; the matrix products keep the arithmetic, and so every loss, identical to the blog's.
    """

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(1, 1))
        self.b = nn.Parameter(torch.randn(1, 1))
        self.c = nn.Parameter(torch.randn(1, 1))

    def forward(self, x):
        return x ** 2 @ self.a + x @ self.b + self.c


class LinearProduct(nn.Module):
    """y = (w1·x + b1)(w2·x + b2), the product of two nn.Linear(1, 1) layers (the blog's second model).

    Expanded: y = w1·w2 x² + (w1·b2 + w2·b1) x + b1·b2. (The blog writes the first term as
    "w1 w2 x"; it is w1 w2 x².)
    """

    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(1, 1)  # created first, so it takes the first random numbers
        self.linear2 = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear2(x) * self.linear1(x)


# ----------------------------------------------------------------------------- training
def log_every_100(epoch, epochs, loss, out):
    """The hook every loop below calls after each step, by default: the blog's log line every 100 epochs.
    The package passes its own hook instead (it records, prints and stops); returning True stops training."""
    if epoch % 100 == 0:
        print_epoch(epoch, epochs, loss.item())


def train(model, x, y, optimizer, epochs, after_step=log_every_100, criterion=None):
    """The blog's training loop: full batch, forward, loss, zero_grad, backward, step."""
    criterion = criterion or nn.MSELoss()
    for epoch in range(1, epochs + 1):
        out = model(x)
        loss = criterion(out, y)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if after_step(epoch, epochs, loss, out):
            break


# ----------------------------------------------------------------------------- the next stages
# PyTorch's own tutorial fits a polynomial in stages: gradients written by hand, then autograd,
# then nn and optim. The blog starts at nn and optim; these two loops are what a learner tries next.
def train_by_hand(gradients, optimizer, epochs, after_step=log_every_100):
    """The blog's loop without autograd (--gradients manual): gradients() does the forward pass, the
    loss and every d loss / d p written out as the math, and sets p.grad itself, so there is no
    zero_grad and no backward. Every loss is the autograd loop's, bit for bit, with any optimizer.
    """
    for epoch in range(1, epochs + 1):
        loss = gradients()  # forward, loss and d loss / d p by hand (see beyond_the_blog/manual_gradients.py)
        optimizer.step()

        if after_step(epoch, epochs, loss, None):  # (no `out`: only replicated runs need it)
            break


def train_in_minibatches(model, x, y, optimizer, epochs, minibatches, after_step=log_every_100, criterion=None):
    """Minibatch SGD (--batch-size B): each epoch takes a step per batch of B points, the data
    reshuffled every epoch by minibatches(). The loss logged is the full-data loss at the start
    of the epoch, as in `train`, so the two curves compare; B = all points is `train` exactly.
    """
    criterion = criterion or nn.MSELoss()
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            out = model(x)
            loss = criterion(out, y)  # on all the data: what the log shows

        for x_batch, y_batch in minibatches():
            batch_loss = criterion(model(x_batch), y_batch)
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()

        if after_step(epoch, epochs, loss, out):
            break


# ----------------------------------------------------------------------------- printing
def print_epoch(epoch, epochs, loss):
    """The blog's log line."""
    print('Epoch[{}/{}], loss:{:.6f}'.format(epoch, epochs, loss))


def print_parameters(model):
    """The blog's closing lines: each parameter by name."""
    for name, param in model.named_parameters():
        print(name, param.data.cpu())
