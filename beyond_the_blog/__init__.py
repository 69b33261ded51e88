"""Everything beyond the blog, for the lesson in quadratic_regression.py, which it imports.

The package is a stack of layers, each a folder (the two tables are modules of their own). A module imports
only from its own layer and the layers below it, also inside functions; the lesson sits below them all.
LAYERS is that order, bottom first: tests/test_layout.py checks every import against it.

    system     the machine around a run: exit statuses, output files, signals, cores and memory (torch-free)
    theory     least squares, the loss's curvature, each model's diagnosis, the bowl, the product's valley
    steps      what one training step is made of: gradients by hand, update rules, minibatches
    models.py  one entry per model the command line knows (the lesson's classes and what explains them)
    optimizers.py  one entry per optimizer: how to build it and its facts (torch-free, as models.py)
    training   one fit: the monitor after each step, the judge of how a run ended, the loop chosen and run
    many_runs  many runs as one computation: replications, the lr sweep, the explorer's runs
    report     what a person reads: printed text and explanations, the figures, the explorer's page
    program    a whole run as the command line asks: its data, its outputs, its end
    cli        the options and their checks, and main() (torch-free: --help answers before torch loads)
"""
LAYERS = ("system", "theory", "steps", "models", "optimizers", "training", "many_runs", "report", "program", "cli")
TORCH_FREE = ("system", "models", "optimizers", "cli")  # what the command line needs before torch loads
