"""The optimizers --optimizer knows, one entry each: how to build it and what the rest needs to know of it.

torch-free, so that the command line can check what an optimizer can be combined with before torch loads;
each factory imports torch when it is called.
"""
from collections.abc import Callable
from dataclasses import dataclass

from .models import MODELS, OPTIMIZER_NAMES

MOMENTUM = 0.9  # the beta of --optimizer momentum: torch.optim.SGD(momentum=0.9)


@dataclass(frozen=True)
class Optimizer:
    """One optimizer's facts. stability: plain gradient descent on a bowl diverges above 2/lambda_max,
    heavy-ball momentum above 2(1 + beta)/lambda_max; None where no such limit applies."""
    build: Callable          # build(params, lr, loss_of_model, gradients, rebalance) -> an optimizer
    title: str               # how the printed text names it
    vectorizable: bool       # every parameter entry updated on its own from its p.grad, so runs stay independent:
    #                          --runs can train them as one, with autograd or with the batched gradients by hand
    minibatches: bool        # --batch-size: it can take a step on part of the data
    stops_early: bool = True  # at its default epochs it stops once converged (monitor.convergence_rule)
    stability: tuple | None = None  # (factor, formula): stable below factor/lambda_max
    beta: float = 0.0               # momentum's beta (0: none)
    gradient_steps: bool = False    # its steps are (plain) gradient steps: it conserves the product's balance
    line_search: bool = False       # it evaluates the loss itself: gradients by hand make that cheaper
    rebalances: bool = False        # before each epoch it moves the product along its valley (rescaling.py)
    help: str = ""                  # what --help says of it after its name ("": the name says it)
    no_limit: str = ""              # where stability is None: why no limit can be predicted


def plain_sgd(params, lr, **_):
    from .steps.updates import PlainSGD
    return PlainSGD(params, lr)


def momentum_sgd(params, lr, **_):
    import torch
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)


def adam(params, lr, **_):
    import torch
    return torch.optim.Adam(params, lr=lr)


def lbfgs(params, lr, loss_of_model=None, gradients=None, rebalance=None):
    from .steps.updates import LBFGSEpoch
    return LBFGSEpoch(params, lr, loss_of_model, gradients, rebalance)


OPTIMIZERS = {
    "sgd": Optimizer(plain_sgd, "plain SGD", vectorizable=True, minibatches=True, stops_early=False,
                     stability=(2.0, "2/lambda_max"), gradient_steps=True, help="the blog's plain gradient descent"),
    "momentum": Optimizer(momentum_sgd, f"SGD with momentum {MOMENTUM:g}", vectorizable=True, minibatches=True,
                          stability=(2 * (1 + MOMENTUM), "2(1 + beta)/lambda_max"), beta=MOMENTUM,
                          help=f"heavy ball, {MOMENTUM:g}"),
    "adam": Optimizer(adam, "Adam", vectorizable=True, minibatches=True, no_limit="scales its steps"),
    "lbfgs": Optimizer(lbfgs, "L-BFGS", vectorizable=False, minibatches=False, line_search=True, rebalances=True,
                       help="each epoch one L-BFGS step of up to 20 iterations", no_limit="searches its own"),
}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES


def optimizers_with(fact):
    """The names of the optimizers whose `fact` (a field above) is set, in the table's order."""
    return tuple(name for name, facts in OPTIMIZERS.items() if getattr(facts, fact))


def listed(names, last="or"):
    """Names as a sentence lists them: "sgd, momentum or adam"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def make_optimizer(name, params, lr, loss_of_model=None, gradients=None, rebalance=None):
    """loss_of_model() recomputes the loss: L-BFGS needs it for its line search; gradients(), if
    given, does it and sets every p.grad by hand, and L-BFGS uses it instead; rebalance(), if given,
    moves L-BFGS along the model's valley of equal loss before each epoch (see updates.LBFGSEpoch)."""
    return OPTIMIZERS[name].build(params, lr, loss_of_model=loss_of_model, gradients=gradients, rebalance=rebalance)


def batched_gradients_apply(model_name, optimizer, batch_size=None):
    """Whether --runs can train with every run's gradients by hand (batched_gradients.py): the model has them
    (its Model's batched_gradients), the optimizer updates each entry on its own, and each step sees all points."""
    return (MODELS[model_name].batched_gradients is not None and OPTIMIZERS[optimizer].vectorizable
            and batch_size is None)


def training_loop(model_name, optimizer, runs, batch_size, gradients):
    """The lesson's loop (fit.LOOPS) for checked options; gradients is --gradients, None if not given. --runs
    takes the batched gradients by hand where they apply, unless --gradients autograd asks for autograd's
    (the command line has refused a --gradients manual that they cannot serve)."""
    if runs > 1 and gradients != "autograd" and batched_gradients_apply(model_name, optimizer, batch_size):
        return "batched"
    if batch_size is not None:
        return "minibatches"
    return "manual" if gradients == "manual" and runs == 1 else "blog"
