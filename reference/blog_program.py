"""The blog's two programs, copied from the post with four changes: the oracle the tests and the benchmark
compare the script against.

The changes: each model's `if __name__ == "__main__"` block is split into blog_data() and blog_training();
`Variable(x)` is gone (since PyTorch 0.4 a tensor is its own Variable, and the wrap is a no-op); the prints are
collected into a list instead of printed; and the plot is left out. The shared class name is split in two, one
per model. Every line that computes (the data, the models, the loss, the optimizer, the step) is the post's."""
import torch
from torch import nn


class SquareRegression(nn.Module):  # the blog's first model: three nn.Parameters
    def __init__(self):
        nn.Module.__init__(self)
        self.a = nn.Parameter(torch.randn(1, 1), requires_grad=True)  # 1 x 1
        self.b = nn.Parameter(torch.randn(1, 1), requires_grad=True)  # 1 x 1
        self.c = nn.Parameter(torch.randn(1, 1), requires_grad=True)  # 1 x 1

    def forward(self, x_):
        p_ = (x_ ** 2).mm(self.a)  # n x 1
        q_ = x_.mm(self.b)         # n x 1
        t_ = self.c                # 1 x 1
        return p_ + q_ + t_.expand_as(p_)  # n x 1


class LinearSquareRegression(nn.Module):  # the blog's second model: two nn.Linear layers
    def __init__(self):
        nn.Module.__init__(self)
        self.linear1 = nn.Linear(1, 1)
        self.linear2 = nn.Linear(1, 1)

    def forward(self, x_):
        return self.linear2(x_) * self.linear1(x_)  # n x 1


def blog_data():
    """The blog's data, drawn as its program draws it."""
    n = 100
    x = torch.linspace(-2, 12, n).resize_((n, 1))  # n x 1 tensor
    y = (x - 4) * (x - 8) + torch.randn(x.size())  # n x 1 tensor
    return x, y


def blog_training(model, x, y, num_epochs, lr=2e-5):
    """The blog's training loop, as the post has it, its prints collected into a list.
    Returns the printed lines and the logged losses."""
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    lines, losses = [], []
    for epoch in range(num_epochs):
        out = model(x)
        loss = criterion(out, y)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if (epoch + 1) % 100 == 0:
            losses.append(loss.item())
            lines.append('Epoch[{}/{}], loss:{:.6f}'.format(epoch + 1, num_epochs, loss.item()))
    for name, param in model.named_parameters():
        lines.append(f"{name} {param.data}")
    return lines, losses
