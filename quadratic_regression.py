"""Quadratic regression with PyTorch: HansBug's blog post "【学习笔记】深度学习 demo2 二次函数回归"
(deep learning demo 2: quadratic regression), reproduced loss for loss.

The blog samples y = (x - 4)(x - 8) + N(0, 1) noise at 100 points of [-2, 12] and fits it with
two models, trained by full-batch SGD (lr 2e-5) on the mean squared error:

    python quadratic_regression.py --model params   # y = a x^2 + b x + c, 500000 epochs
    python quadratic_regression.py --model linear   # y = (w1 x + b1)(w2 x + b2), 20000 epochs

This file is the lesson, top-down: the data, the two models, the training loop, the two stages
a learner tries next (the gradients by hand, minibatches), the printing, and main(). Everything
beyond the blog (the command line, optimizers, least squares, the diagnosis of why SGD is slow,
replications, figures, metrics) lives in the package beyond_the_blog/ beside it, which hooks
into the loops below without changing them.
"""
import sys

from beyond_the_blog.interruptions import end_at_once_on_signals

if __name__ == "__main__":
    end_at_once_on_signals()  # Ctrl-C while starting up ends the program quietly: nothing is computed yet

from beyond_the_blog.command_line import parse_args  # noqa: E402

if __name__ == "__main__":
    parse_args()  # --help or a mistake ends the program here, before torch (about 1.5 s) is imported

import torch  # noqa: E402
from torch import nn  # noqa: E402

from beyond_the_blog.analysis import diagnose_linear_fit, diagnose_params_fit  # noqa: E402
from beyond_the_blog.manual_gradients import LinearGradients, ParamsGradients  # noqa: E402
from beyond_the_blog.model_registry import register  # noqa: E402
from beyond_the_blog.rescaling import balance_layers  # noqa: E402
from beyond_the_blog.runner import Lesson, run  # noqa: E402


# ----------------------------------------------------------------------------- the data
def make_data(samples=100, noise=1.0, x_range=(-2.0, 12.0)):
    """The blog's data: x = linspace(lo, hi) as an (n, 1) column, y = (x - 4)(x - 8) + noise."""
    x = torch.linspace(x_range[0], x_range[1], samples).reshape(samples, 1)
    y = (x - 4) * (x - 8) + noise * torch.randn(x.size())  # draws the noise before any parameter
    return x, y


# ----------------------------------------------------------------------------- the two models
# These are the blog's two `SquareRegression` classes, one per section of the post. Besides the
# formula, each says how to read a, b, c off its parameters (and how to rewrite them when it was
# trained on standardized inputs z = (x - mean)/std): the analysis and the plots need that.
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

    @staticmethod
    def coefficients(p):
        """(a, b, c) from the parameters; p maps names to tensors with an optional leading run axis."""
        return torch.stack([p["a"], p["b"], p["c"]], dim=-1).reshape(-1, 3)

    @staticmethod
    def to_x_units(p, mean, std):
        """Parameters fitted on z = (x - mean)/std, rewritten for x: a z² + b z + c expanded in x."""
        a, b, c = p["a"], p["b"], p["c"]
        return {"a": a / std**2,
                "b": b / std - 2 * a * mean / std**2,
                "c": c - b * mean / std + a * mean**2 / std**2}


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

    @staticmethod
    def coefficients(p):
        """(a, b, c) = (w1 w2, w1 b2 + w2 b1, b1 b2), one row per run."""
        w1, b1 = p["linear1.weight"].reshape(-1), p["linear1.bias"].reshape(-1)
        w2, b2 = p["linear2.weight"].reshape(-1), p["linear2.bias"].reshape(-1)
        return torch.stack([w1 * w2, w1 * b2 + w2 * b1, b1 * b2], dim=-1)

    @staticmethod
    def to_x_units(p, mean, std):
        """w z + b = (w/std) x + (b - w·mean/std): each layer rewritten for x."""
        out = {}
        for layer in ("linear1", "linear2"):
            w, b = p[layer + ".weight"], p[layer + ".bias"]
            out[layer + ".weight"] = w / std
            out[layer + ".bias"] = b - w.reshape(b.shape) * mean / std
        return out


# --model params / --model linear; their default lr, epochs and colour are in model_registry.py
register("params", ParamQuadratic, diagnose=diagnose_params_fit, manual_gradients=ParamsGradients)
register("linear", LinearProduct, diagnose=diagnose_linear_fit, manual_gradients=LinearGradients,
         rebalance=balance_layers)  # L-BFGS only: (s w1, s b1, w2/s, b2/s) is the same curve


# ----------------------------------------------------------------------------- training
def train(model, x, y, optimizer, epochs, monitor=None, criterion=None):
    """The blog's training loop: full batch, forward, loss, zero_grad, backward, step.

    Alone, it prints the loss every 100 epochs, as the blog does. Everything beyond the blog hooks
    in through `monitor` (beyond_the_blog/training.py), called after every step instead: it prints
    at the chosen interval, keeps the loss history, and returns True to stop (the loss became
    inf/NaN, Ctrl-C, a stop rule).
    """
    criterion = criterion or nn.MSELoss()
    for epoch in range(epochs):
        out = model(x)
        loss = criterion(out, y)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if monitor is not None:
            if monitor(epoch + 1, loss, out):
                break
        elif (epoch + 1) % 100 == 0:
            print_epoch(epoch + 1, epochs, loss.item())


# ----------------------------------------------------------------------------- the next stages
# PyTorch's own tutorial fits a polynomial in stages: gradients written by hand, then autograd,
# then nn and optim. The blog starts at nn and optim; these two loops are what a learner tries next.
def train_by_hand(gradients, optimizer, epochs, monitor=None):
    """The blog's loop without autograd (--gradients manual): gradients() does the forward pass, the
    loss and every d loss / d p written out as the math, and sets p.grad itself, so there is no
    zero_grad and no backward. Every loss is the autograd loop's, bit for bit, with any optimizer.
    """
    for epoch in range(epochs):
        loss = gradients()  # forward, loss and d loss / d p by hand (see beyond_the_blog/manual_gradients.py)
        optimizer.step()

        if monitor is not None:
            if monitor(epoch + 1, loss, None):  # (no `out`: only replicated runs need it)
                break
        elif (epoch + 1) % 100 == 0:
            print_epoch(epoch + 1, epochs, loss.item())


def train_in_minibatches(model, x, y, optimizer, epochs, minibatches, monitor=None, criterion=None):
    """Minibatch SGD (--batch-size B): each epoch takes a step per batch of B points, the data
    reshuffled every epoch by minibatches(). The loss logged is the full-data loss at the start
    of the epoch, as in `train`, so the two curves compare; B = all points is `train` exactly.
    """
    criterion = criterion or nn.MSELoss()
    for epoch in range(epochs):
        with torch.no_grad():
            out = model(x)
            loss = criterion(out, y)  # on all the data: what the log shows

        for x_batch, y_batch in minibatches():
            batch_loss = criterion(model(x_batch), y_batch)
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()

        if monitor is not None:
            if monitor(epoch + 1, loss, out):
                break
        elif (epoch + 1) % 100 == 0:
            print_epoch(epoch + 1, epochs, loss.item())


# ----------------------------------------------------------------------------- printing
def print_epoch(epoch, epochs, loss):
    """The blog's log line."""
    print('Epoch[{}/{}], loss:{:.6f}'.format(epoch, epochs, loss))


def print_parameters(model):
    """The blog's closing lines: each parameter by name."""
    for name, param in model.named_parameters():
        print(name, param.data.cpu())


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    """Parse the command line, then hand the lesson's pieces to beyond_the_blog.runner, which
    trains, prints what the blog prints and what it leaves out, and writes the figure."""
    try:
        settings = parse_args(argv)
    except SystemExit as exit:  # --help, or a mistake already reported in one line
        return exit.code
    return run(settings, Lesson(make_data, train, print_epoch, print_parameters, train_by_hand, train_in_minibatches))


if __name__ == "__main__":
    sys.exit(main())
