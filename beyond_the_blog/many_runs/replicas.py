"""Many runs at once: R copies of a model trained as one vectorized computation.

--runs trains them with every run's gradients by hand (batched_gradients.py, through fit's "batched" loop and
batched_runs.BatchedMonitor) where the model has them, the optimizer updates each entry on its own and every step
is full-batch. Otherwise, or with --gradients autograd, autograd trains them through Replicas' forward and
SummedRunLosses. Either way run r trains as if alone, to float32 rounding.
"""
import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

import quadratic_regression as lesson

from ..models import MODELS
from ..theory.least_squares import RUNS_AT_ONCE, LeastSquares, least_squares
from ..training.judge import RunVerdicts, distance_from_least_squares, judge_replicas, within_one_percent


class Replicas(nn.Module):
    """R copies of one model trained as one: every parameter gains a leading run axis
    (torch.func.stack_module_state). Plain SGD, momentum and Adam update each entry on its own, so
    run r trains as if alone. The forward (what autograd trains through, and the final losses) is the
    model's own forward on the stacked parameters, every nn.Linear of one input swapped for a
    StackedLinear: a x² + b x + c broadcasts over (R, 1, 1) parameters by itself. torch.func.vmap, which
    maps the model's forward over the run axis, would do for any model, but its per-call cost dwarfs a few
    numbers' arithmetic (2-3 times the whole epoch). The first call checks the direct forward against
    vmap's, bit for bit; a model for which it differs keeps vmap. (The gradients' sums over the samples
    may add in another order than a single run's: runs equal single runs to float32 rounding.)"""

    def __init__(self, models):
        """models: a list of models, or the Starts of replication_data (their parameters already stacked)."""
        super().__init__()
        if isinstance(models, Starts):  # copied, so that the Starts still hold where training began
            model, stacked = models.template, {name: t.clone() for name, t in models.parameters.items()}
        else:
            model, stacked = models[0], torch.func.stack_module_state(models)[0]
        self.names = list(stacked)
        self.stacked = nn.ParameterList(nn.Parameter(t) for t in stacked.values())
        self.template = [copy.deepcopy(model).to("meta")]  # a shape-only model; in a list, so not a submodule
        self.stacked_model = [stacked_model_of(model, dict(zip(self.names, self.stacked)))]  # not a submodule
        self.direct = None  # whether the stacked model's forward is vmap's, bit for bit: decided on the first call
        self.criterion = SummedRunLosses()  # what fit() trains replicas on: each run's loss, summed

    def named_parameters(self, *args, **kwargs):
        return zip(self.names, self.stacked)

    def forward(self, x):
        if self.direct is None:
            mapped = self.mapped_forward(x)
            try:
                self.direct = torch.equal(self.stacked_model[0](x), mapped)
            except (RuntimeError, ValueError):
                self.direct = False
            return mapped
        return self.stacked_model[0](x) if self.direct else self.mapped_forward(x)

    def mapped_forward(self, x):
        def one_run(params, x):
            return torch.func.functional_call(self.template[0], dict(zip(self.names, params)), (x,))
        runs_axis = 0 if x.dim() == 3 else None  # (R, n, 1): each run its own inputs (minibatches)
        return torch.func.vmap(one_run, in_dims=(0, runs_axis))(tuple(self.stacked), x)


class StackedLinear(nn.Module):
    """nn.Linear(1, k) over a leading run axis: weight (R, k, 1), bias (R, k). With one input feature the
    matrix product in F.linear (addmm: the product rounded, then the sum) is one multiplication per entry,
    so w x + b written elementwise gives its bits, broadcast over the runs at the cost of one run."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x):
        return x * self.weight.transpose(1, 2) + self.bias.unsqueeze(1)


def stacked_model_of(model, stacked):
    """A copy of `model` whose parameters are the stacked tensors (the very ones the optimizer updates),
    with every nn.Linear of one input swapped for a StackedLinear over them."""
    stacked_model = copy.deepcopy(model)
    for name, param in stacked.items():
        owner, _, attribute = name.rpartition(".")
        setattr(stacked_model.get_submodule(owner), attribute, param)
    for name, module in list(stacked_model.named_modules()):
        if name and type(module) is nn.Linear and module.in_features == 1 and module.bias is not None:
            owner, _, attribute = name.rpartition(".")
            setattr(stacked_model.get_submodule(owner), attribute,
                    StackedLinear(stacked[f"{name}.weight"], stacked[f"{name}.bias"]))
    return stacked_model


class SummedRunLosses(nn.Module):
    """The sum over runs of each run's MSE, for (R, n, 1) predictions and targets. Its gradient
    with respect to run r's parameters is run r's own gradient: the runs stay independent."""

    def forward(self, out, target):
        return self.per_run(out, target).sum()

    @staticmethod
    def per_run(out, target):
        return ((out - target) ** 2).mean(dim=(1, 2))


@dataclass(kw_only=True)
class Starts:
    """Every run's initial parameters, stacked: row r of each tensor is what the model's constructor draws in the
    single run with run r's seed. The template is one model of the kind: its names, shapes and forward."""
    template: nn.Module
    parameters: dict  # name -> (R, *shape) tensor, in the order of template.named_parameters()

    def __len__(self):
        return next(iter(self.parameters.values())).shape[0]

    def __getitem__(self, r):
        """Run r's initial model, for what needs one run's module (the curvature at its start)."""
        model = copy.deepcopy(self.template)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(self.parameters[name][r])
        return model


def replication_data(model_name, seeds, samples=100, noise=1.0, x_range=(-2.0, 12.0)):
    """Data and initial parameters for each seed, each bit for bit what a single run with that seed draws:
    torch.manual_seed(seed), make_data's noise, then the model's constructor. Returns (x, ys (R, n, 1), Starts).
    One generator is seeded per run, the global one is left as it was, and no model is built per run where
    DIRECT_DRAWS knows the constructor's draws."""
    seeds = list(seeds)
    with torch.random.fork_rng(devices=[]):  # the template's and the clean data's draws leave no trace
        template = MODELS[model_name].build()
        x, clean = lesson.make_data(samples, 0.0, x_range)  # x and (x - 4)(x - 8): its noise times 0 adds 0
        draw = DIRECT_DRAWS.get(type(template))
        if draw is None:
            draws, parameters = built_one_by_one(model_name, seeds, samples)
        else:
            draws, flat = draw_runs(seeds, samples, sum(p.numel() for p in template.parameters()), draw)
            parameters = split_runs(template, flat)
    return x, clean + noise * draws, Starts(template=template, parameters=parameters)


def draw_runs(seeds, samples, width, draw):
    """Each run's noise (R, samples, 1) and its constructor's numbers (R, width), from one generator seeded per
    run: Generator.manual_seed is torch.manual_seed's CPU part (75 times cheaper: no lazy CUDA seeding)."""
    noise, flat = torch.empty(len(seeds), samples, 1), torch.empty(len(seeds), width)
    generator = torch.Generator()
    for seed, noise_row, row in zip(seeds, noise.unbind(0), flat.unbind(0)):
        generator.manual_seed(seed)
        noise_row.normal_(generator=generator)  # make_data's torch.randn(x.size())
        draw(row, generator)
    return noise, flat


def split_runs(template, flat):
    """The (R, width) rows cut into each parameter's (R, *shape) tensor, in the constructor's order."""
    shapes = [(name, p.shape) for name, p in template.named_parameters()]
    pieces = flat.split([shape.numel() for _, shape in shapes], dim=1)
    return {name: piece.reshape(len(flat), *shape).contiguous() for (name, shape), piece in zip(shapes, pieces)}


def built_one_by_one(model_name, seeds, samples):
    """A model without an entry in DIRECT_DRAWS: each run's draws and model, the global generator seeded per run
    by its own manual_seed (the caller's fork_rng restores it)."""
    noise, models = torch.empty(len(seeds), samples, 1), []
    for r, seed in enumerate(seeds):
        torch.default_generator.manual_seed(seed)
        noise[r] = torch.randn(samples, 1)
        models.append(MODELS[model_name].build())
    return noise, dict(torch.func.stack_module_state(models)[0])


# nn.Linear(1, 1)'s bound of its uniform draws, as its reset_parameters computes it: kaiming_uniform_ with a = √5
# gives the weight √3·gain/√(fan_in 1) = 0.9999999999999999, the bias 1/√1 = 1; both are 1 in float32
LINEAR_BOUND = math.sqrt(3.0) * nn.init.calculate_gain("leaky_relu", math.sqrt(5))


# What each lesson model's constructor draws after the data, as one call on a run's row (its parameters in order).
# torch draws fewer than 16 normal or uniform numbers one at a time, so one call draws what the separate
# parameters' calls draw: test_replicas.py checks every field bit for bit against the single runs.
DIRECT_DRAWS = {
    lesson.ParamQuadratic: lambda row, generator: row.normal_(generator=generator),  # three torch.randn(1, 1)
    lesson.LinearProduct: lambda row, generator: row.uniform_(-LINEAR_BOUND, LINEAR_BOUND, generator=generator),
}


@dataclass(kw_only=True)
class ReplicationSummary:
    """Which runs reached their own least-squares loss, and the statistics of the runs that did not
    diverge. A statistic that cannot be computed is NaN, and missing_statistics says why."""
    seeds: list
    succeeded: torch.Tensor          # (R,) bool: final loss within 1% of the run's own least squares
    judged: RunVerdicts              # each run's verdict, as its single run's (judge.judge_replicas)
    least: LeastSquares
    coefficients_mean: torch.Tensor  # over the runs that did not diverge
    coefficients_std: torch.Tensor
    spread_succeeded: torch.Tensor   # the standard deviation over the runs that succeeded
    mean_stderr: torch.Tensor        # the mean least-squares standard error
    missing_statistics: list         # why a statistic above is n/a
    spread_verdict: str | None = None  # noise | training | too few: see spread_verdict()
    spread_bound: float = math.nan     # the largest spread / standard error the succeeded runs' sampling allows

    @property
    def diverged(self):
        """(R,) bool: the run diverged (its loss became inf/NaN, or it ended above its start)."""
        return self.judged.diverged

    @property
    def failed_seeds(self):
        return [s for s, ok in zip(self.seeds, self.succeeded.tolist()) if not ok]

    @property
    def diverged_seeds(self):
        return [s for s, bad in zip(self.seeds, self.diverged.tolist()) if bad]


def mean_square(ys):
    """The mean of y² over every run's data, in float64 a block of runs at a time (no float64 copy of all of it)."""
    return sum((part.double() ** 2).sum().item() for part in ys.reshape(len(ys), -1).split(RUNS_AT_ONCE)) / ys.numel()


def summarize_replications(fit_result, x, ys, seeds):
    """Each run judged as its single run is (judge.judge_replicas: this sets the log's stop_reason when every run
    diverged), which runs succeeded, and the statistics of those that did not diverge."""
    least = least_squares(x, ys)
    final = fit_result.final_loss.double()
    coefficients = fit_result.coefficients
    judged = judge_replicas(fit_result.log, fit_result.end_loss,
                            distance_from_least_squares(coefficients, least))
    diverged = judged.diverged
    scale = mean_square(ys)
    succeeded = ~diverged & (final <= within_one_percent(least.loss, scale))  # of the run's own optimum
    kept, missing = coefficients[~diverged], []
    nan = torch.full((3,), math.nan, dtype=torch.float64)
    mean = kept.mean(dim=0) if len(kept) else nan
    if len(kept) < 2:
        missing.append(f"the spread needs at least 2 runs that did not diverge ({len(kept)} here)")
    elif int(succeeded.sum()) < 2:
        missing.append(f"the spread of the succeeded runs needs at least 2 of them ({int(succeeded.sum())} here)")
    if least.stderr is None:
        missing.append(f"a standard error needs more than 3 points ({x.numel()} here: no residual is left)")
    summary = ReplicationSummary(seeds=list(seeds), succeeded=succeeded, judged=judged, least=least,
                                 coefficients_mean=mean, coefficients_std=kept.std(dim=0) if len(kept) > 1 else nan,
                                 spread_succeeded=coefficients[succeeded].std(dim=0) if succeeded.sum() > 1 else nan,
                                 mean_stderr=least.stderr.mean(dim=0) if least.stderr is not None else nan,
                                 missing_statistics=missing)
    summary.spread_verdict, summary.spread_bound = spread_verdict(summary)
    return summary


SMALLEST_EXCESS = 1.5   # with fewer runs than it takes to tell a spread 1.5 times the standard error, say so


def spread_verdict(summary):
    """Whether the succeeded runs spread as the data's noise alone makes them, within sampling error.
    Runs that each reach their own least-squares fit spread like the least-squares estimates, whose
    standard deviation is the standard error s. The standard deviation of R such runs then lies in
    s·[lo, hi] with probability 0.95 (spread_range). Above hi, the training adds spread. Below it,
    the data explain the spread; but when hi is above SMALLEST_EXCESS, so few runs could not have told
    a 1.5 times wider spread either. Returns (verdict, hi): verdict None where a statistic is n/a."""
    runs = int(summary.succeeded.sum())
    ratio = summary.spread_succeeded / summary.mean_stderr
    if runs < 2 or not bool(torch.isfinite(ratio).all()):
        return None, math.nan
    hi = spread_range(runs)[1]
    if ratio.max().item() > hi:
        return "training", hi
    return ("too few" if hi > SMALLEST_EXCESS else "noise"), hi


def spread_range(runs):
    """(lo, hi): the central 95% range of the sample standard deviation of `runs` normal draws, divided by the
    true one: sqrt(q / (runs - 1)) for q the chi-square quantiles with runs - 1 degrees of freedom, by
    Wilson and Hilferty's cube-root approximation (hi within 2% from 1 degree of freedom up)."""
    df = runs - 1
    quantile = [df * (1 - 2 / (9 * df) + sign * NORMAL_975 * math.sqrt(2 / (9 * df))) ** 3 for sign in (-1, 1)]
    return tuple(math.sqrt(max(q, 0.0) / df) for q in quantile)


NORMAL_975 = 1.959963984540054  # the standard normal's 97.5% quantile
