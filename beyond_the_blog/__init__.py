"""Everything beyond the blog, one module per concern, for the lesson in quadratic_regression.py.

In reading order:
    command_line    the options, their checks, the settings resolved once (torch-free)
    model_registry  the models --model knows, with their defaults and colours (torch-free)
    training        what hooks into the lesson's loop: optimizers, the monitor, Ctrl-C, progress
    manual_gradients  every d loss / d p by hand, autograd's bits (the lesson's train_by_hand)
    minibatches     --batch-size: each epoch's batches, one seeded generator per run
    stopping        stop when done: momentum, Adam and L-BFGS end once converged
    rescaling       the product's rescaling symmetry: L-BFGS's move back to layers of equal size
    fitting         one fit, start to end: standardize, train, report in x's units
    analysis        least squares, t quantiles, each model's diagnosis, the largest stable lr
    replications    many runs at once: the model's own forward on stacked parameters
    plots           the figures and the GIF
    explanations    the printed prose of each diagnosis
    report          printed tables and the metrics JSON
    runner          a whole run, start to end, as the command line asks
    trajectory      the path of the parameters, recorded beside the progress printer
    landscape       the loss bowl's geometry, and a path projected on its eigenvectors
    lr_sweep        many learning rates from one start, as one vectorized run
    why_figures     the --landscape and --lr-sweep figures
    sweep_report    what --lr-sweep prints and writes

The package never imports the script: the runner is handed the lesson's pieces.
"""
