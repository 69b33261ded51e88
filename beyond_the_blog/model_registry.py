"""The models the command line knows, and what it needs of each besides the class itself.

torch-free, so that `--help` can list the models and their defaults before torch loads. The
blog's two models have their settings here (the lesson script binds their classes with
`register`); a new parametrization brings its settings in its one `register` call.
"""
from dataclasses import dataclass

OPTIMIZERS = ("sgd", "momentum", "adam", "lbfgs")
BLOG_MODELS = ("params", "linear")  # what --model both runs, in this order


@dataclass
class ModelSettings:
    """Per model: the plot colour, the default (lr, epochs) per (optimizer, standardize), and
    whether the loss Hessian is the same everywhere (true of a model linear in its parameters)."""
    color: str
    defaults: dict
    constant_hessian: bool = False
    model_class: type | None = None   # bound by register()
    diagnose: object = None           # diagnose(fit, x, y) -> a diagnosis, or None
    manual_gradients: object = None   # gradients = manual_gradients(model, x, y); gradients() -> loss, sets p.grad
    stop_when_converged: bool = False  # momentum/adam/lbfgs at the default epochs stop once converged (see --help)
    rebalance: object = None          # rebalance(model) -> bool: a move along a valley of equal loss, for L-BFGS


# Plain "sgd" is the blog's own setting. The others were chosen so that both models reach the
# least-squares fit (coefficients within 0.01, loss within 0.1%) on the default data for seeds
# 0-9 (tests/test_fast.py checks it), also when they stop once converged (the rule in --help's
# "stopping", checked by tests/test_stages.py). With --standardize the inputs z = (x - mean)/std span
# about [-1.7, 1.7], the loss is well conditioned, and steps can be 10000 times larger.
MODELS = {
    "params": ModelSettings("tab:blue", constant_hessian=True, stop_when_converged=True, defaults={
        ("sgd", False): (2e-5, 500_000), ("momentum", False): (4e-4, 5_000),
        ("adam", False): (0.02, 6_000), ("lbfgs", False): (1.0, 20),
        ("sgd", True): (0.3, 1_000), ("momentum", True): (0.05, 500),
        ("adam", True): (0.05, 2_000), ("lbfgs", True): (1.0, 20)}),
    "linear": ModelSettings("tab:orange", stop_when_converged=True, defaults={
        ("sgd", False): (2e-5, 20_000), ("momentum", False): (5e-5, 5_000),
        ("adam", False): (0.02, 3_000), ("lbfgs", False): (1.0, 20),
        ("sgd", True): (0.01, 1_000), ("momentum", True): (0.005, 500),
        ("adam", True): (0.05, 2_000), ("lbfgs", True): (1.0, 20)}),
}


def register(name, model_class, settings=None, diagnose=None, manual_gradients=None, rebalance=None):
    """Make `model_class` available as --model NAME. The blog's models have their settings above;
    any other brings a ModelSettings. diagnose(fit, x, y), if given, explains the fit;
    manual_gradients(model, x, y), if given, lets --gradients manual train it; rebalance(model), if
    given, rescales it along a symmetry (the same function, another point) before each L-BFGS epoch."""
    if settings is None:
        if name not in MODELS:
            raise ValueError(f"model {name!r} needs its ModelSettings (colour and default lr/epochs)")
        settings = MODELS[name]
    settings.model_class = model_class
    settings.diagnose = diagnose
    settings.manual_gradients = manual_gradients
    settings.rebalance = rebalance
    MODELS[name] = settings
    return model_class


def settings_of(name):
    return MODELS[name]


def make_model(name):
    """A fresh model; its constructor draws its initial parameters from torch's generator."""
    model_class = MODELS[name].model_class
    if model_class is None:
        raise LookupError(f"model {name!r} has no class: import quadratic_regression first")
    return model_class()


def default_lr(optimizer, model, standardize):
    return MODELS[model].defaults[optimizer, standardize][0]


def default_epochs(optimizer, model, standardize):
    return MODELS[model].defaults[optimizer, standardize][1]


def defaults_table():
    """The --help epilog: default lr and epochs per optimizer, one column per blog model."""
    lines = ["defaults per optimizer (params model / linear model):"]
    for optimizer_and_standardize in MODELS["params"].defaults:
        name, standardize = optimizer_and_standardize
        label = f"{name} --standardize" if standardize else name
        per_model = [MODELS[m].defaults[optimizer_and_standardize] for m in BLOG_MODELS]
        lrs = " / ".join(f"{lr:g}" for lr, _ in per_model)
        epochs = " / ".join(str(e) for _, e in per_model)
        lines.append(f"  {label:22s} lr {lrs:15s} epochs {epochs}")
    return "\n".join(lines)
