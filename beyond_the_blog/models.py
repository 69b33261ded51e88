"""The models --model knows: the lesson's two classes, and beside each what the rest of the package needs.

A new parametrization is one class plus one entry in MODELS. The command line reads this table before
torch loads (--help lists the defaults), so what needs torch is imported inside the function using it.
"""
from collections.abc import Callable
from dataclasses import dataclass

OPTIMIZER_NAMES = ("sgd", "momentum", "adam", "lbfgs")  # the rows of every defaults table, in --help's order
BLOG_MODELS = ("params", "linear")  # what --model both runs, in this order


@dataclass(frozen=True)
class Model:
    """One model: how to build it, how to read a, b, c off it, its defaults and what explains it."""
    build: Callable          # build() -> a fresh nn.Module; its constructor draws the initial parameters
    coefficients: Callable   # coefficients(p) -> (a, b, c); p maps names to tensors, with an optional run axis
    to_x_units: Callable     # to_x_units(p, mean, std) -> p rewritten for x, for parameters fitted on z
    color: str               # in every figure
    defaults: dict           # (optimizer, standardize) -> (lr, epochs)
    constant_hessian: bool = False    # true of a model linear in its parameters: its loss is one bowl
    stop_when_converged: bool = True  # momentum/adam/lbfgs at the default epochs stop once converged (--help)
    diagnose: Callable | None = None          # diagnose(fit, x, y) -> why the fit is where it is, or None
    manual_gradients: Callable | None = None  # manual_gradients(model, x, y) -> gradients(): sets p.grad
    batched_gradients: Callable | None = None  # batched_gradients(replicas, x, ys) -> gradients(): every run's p.grad
    lockstep: Callable | None = None  # lockstep(replicas, x, y) -> gradients(): each run's p.grad as the single run's
    rebalance: Callable | None = None         # rebalance(model) -> bool: L-BFGS's move along a valley
    balance: Callable | None = None           # balance(p) -> float: where on its valley gradient descent lands


# ----------------------------------------------------------------------------- params: y = a x² + b x + c
def param_quadratic():
    from quadratic_regression import ParamQuadratic  # the lesson imports torch: only once the arguments are checked
    return ParamQuadratic()


def params_coefficients(p):
    return p["a"], p["b"], p["c"]


def params_to_x_units(p, mean, std):
    """Parameters fitted on z = (x - mean)/std, rewritten for x: a z² + b z + c expanded in x."""
    a, b, c = p["a"], p["b"], p["c"]
    return {"a": a / std**2,
            "b": b / std - 2 * a * mean / std**2,
            "c": c - b * mean / std + a * mean**2 / std**2}


def params_diagnosis(fit, x, y):
    from .theory.diagnosis import diagnose_params_fit
    return diagnose_params_fit(fit, x, y)


def params_gradients(model, x, y):
    from .steps.manual_gradients import ParamsGradients
    return ParamsGradients(model, x, y)


def params_batched_gradients(replicas, x, ys):
    from .steps.batched_gradients import BatchedParamsGradients
    return BatchedParamsGradients(replicas, x, ys)


def params_lockstep(replicas, x, y):
    from .steps.lockstep import LockstepParams
    return LockstepParams(replicas, x, y)


# ----------------------------------------------------------------------------- linear: y = (w1 x + b1)(w2 x + b2)
def linear_product():
    from quadratic_regression import LinearProduct
    return LinearProduct()


def linear_coefficients(p):
    """(a, b, c) = (w1 w2, w1 b2 + w2 b1, b1 b2)."""
    w1, b1 = p["linear1.weight"].reshape(-1), p["linear1.bias"].reshape(-1)
    w2, b2 = p["linear2.weight"].reshape(-1), p["linear2.bias"].reshape(-1)
    return w1 * w2, w1 * b2 + w2 * b1, b1 * b2


def linear_balance(p):
    """(w1² + b1²) - (w2² + b2²) of one run: gradient descent keeps it nearly constant (valley.py)."""
    return sum(sign * p[name].double().square().sum().item() for sign, name in
               ((1, "linear1.weight"), (1, "linear1.bias"), (-1, "linear2.weight"), (-1, "linear2.bias")))


def linear_to_x_units(p, mean, std):
    """w z + b = (w/std) x + (b - w·mean/std): each layer rewritten for x."""
    out = {}
    for layer in ("linear1", "linear2"):
        w, b = p[layer + ".weight"], p[layer + ".bias"]
        out[layer + ".weight"] = w / std
        out[layer + ".bias"] = b - w.reshape(b.shape) * mean / std
    return out


def linear_diagnosis(fit, x, y):
    from .theory.diagnosis import diagnose_linear_fit
    return diagnose_linear_fit(fit, x, y)


def linear_gradients(model, x, y):
    from .steps.manual_gradients import LinearGradients
    return LinearGradients(model, x, y)


def linear_batched_gradients(replicas, x, ys):
    from .steps.batched_gradients import BatchedLinearGradients
    return BatchedLinearGradients(replicas, x, ys)


def linear_lockstep(replicas, x, y):
    from .steps.lockstep import LockstepLinear
    return LockstepLinear(replicas, x, y)


def balance_layers(model):
    """(s w1, s b1, w2/s, b2/s) draws the same curve: L-BFGS rescales to equal layers (rescaling.py)."""
    from .steps.rescaling import balance_layers
    return balance_layers(model)


# Plain "sgd" is the blog's own setting. The others were chosen so that both models reach the
# least-squares fit (coefficients within 0.01, loss within 0.1%) on the default data for seeds
# 0-9 (tests/test_optimizers.py checks it), also when they stop once converged (the rule in --help's
# "stopping"). With --standardize the inputs z = (x - mean)/std span about [-1.7, 1.7], the loss is
# well conditioned, and steps can be 10000 times larger.
MODELS = {
    "params": Model(param_quadratic, params_coefficients, params_to_x_units, "tab:blue", constant_hessian=True,
                    diagnose=params_diagnosis, manual_gradients=params_gradients,
                    batched_gradients=params_batched_gradients, lockstep=params_lockstep, defaults={
        ("sgd", False): (2e-5, 500_000), ("momentum", False): (4e-4, 5_000),
        ("adam", False): (0.02, 6_000), ("lbfgs", False): (1.0, 20),
        ("sgd", True): (0.3, 1_000), ("momentum", True): (0.05, 500),
        ("adam", True): (0.05, 2_000), ("lbfgs", True): (1.0, 20)}),
    "linear": Model(linear_product, linear_coefficients, linear_to_x_units, "tab:orange",
                    diagnose=linear_diagnosis, manual_gradients=linear_gradients,
                    batched_gradients=linear_batched_gradients, lockstep=linear_lockstep, rebalance=balance_layers,
                    balance=linear_balance, defaults={
        ("sgd", False): (2e-5, 20_000), ("momentum", False): (5e-5, 5_000),
        ("adam", False): (0.02, 3_000), ("lbfgs", False): (1.0, 20),
        ("sgd", True): (0.01, 1_000), ("momentum", True): (0.005, 500),
        ("adam", True): (0.05, 2_000), ("lbfgs", True): (1.0, 20)}),
}


def coefficients_of(name, p):
    """(runs, 3) a, b, c of model `name` with parameters p (a run axis, or a time axis, comes first)."""
    import torch
    return torch.stack([t.reshape(-1) for t in MODELS[name].coefficients(p)], dim=-1)


@dataclass(frozen=True)
class Standardization:
    """z = (x - mean)/std, the inputs --standardize trains on; without it, the identity (applied False)."""
    mean: float = 0.0
    std: float = 1.0
    applied: bool = False

    @classmethod
    def of(cls, x):
        return cls(x.mean().item(), x.std().item(), True)

    def __call__(self, x):
        return (x - self.mean) / self.std

    def to_x_units(self, model_name, p):
        """Parameters fitted on z rewritten for x (unchanged without standardization)."""
        return MODELS[model_name].to_x_units(p, self.mean, self.std) if self.applied else p


def default_lr(optimizer, model, standardize):
    return MODELS[model].defaults[optimizer, standardize][0]


def default_epochs(optimizer, model, standardize):
    return MODELS[model].defaults[optimizer, standardize][1]


def defaults_table():
    """The --help epilog: default lr and epochs per optimizer, one column per blog model."""
    lines = ["defaults per optimizer (params model / linear model):"]
    for optimizer_and_standardize in MODELS[BLOG_MODELS[0]].defaults:
        name, standardize = optimizer_and_standardize
        label = f"{name} --standardize" if standardize else name
        per_model = [MODELS[m].defaults[optimizer_and_standardize] for m in BLOG_MODELS]
        lrs = " / ".join(f"{lr:g}" for lr, _ in per_model)
        epochs = " / ".join(str(e) for _, e in per_model)
        lines.append(f"  {label:22s} lr {lrs:15s} epochs {epochs}")
    return "\n".join(lines)
