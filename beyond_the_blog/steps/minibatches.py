"""Minibatches for the lesson's train_in_minibatches (--batch-size B): the data in a new random
order every epoch, B points at a time, for one run or for many trained as one."""
import torch


class Minibatches:
    """minibatches() -> [(x_batch, y_batch), ...], one epoch's batches in a new random order.

    The order comes from one torch.Generator per run, seeded with that run's seed: the global
    generator, which drew the data and the initial parameters, is never touched, so they stay
    those of the full-batch run. For replicated runs (y of shape (R, n, 1)) run r draws its own
    order, as it would alone. A batch of all the points is the data in its own order: the
    full-batch arithmetic, bit for bit (a shuffled sum would round differently).
    """

    def __init__(self, x, y, batch_size, seeds):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.points = x.shape[0]
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.replicated = y.dim() == 3

    def __call__(self):
        if self.batch_size >= self.points:
            return [(self.x, self.y)]
        orders = torch.stack([torch.randperm(self.points, generator=g) for g in self.generators]).to(self.x.device)
        if not self.replicated:
            return [(self.x[batch], self.y[batch]) for batch in orders[0].split(self.batch_size)]
        runs = torch.arange(len(self.generators), device=self.x.device)[:, None]
        # x[batch] with batch (R, B) is each run's own (R, B, 1) inputs; y[runs, batch] its targets
        return [(self.x[batch], self.y[runs, batch]) for batch in orders.split(self.batch_size, dim=1)]
