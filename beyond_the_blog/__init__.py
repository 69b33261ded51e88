"""Everything beyond the blog, for the lesson in quadratic_regression.py, which it imports.

In reading order:
    cli               the options, their checks, the settings resolved once, main() (torch-free)
    status            the exit statuses and the one-line error (torch-free)
    models            the models --model knows: the lesson's classes, their a, b, c, defaults, colours
    optimizers        the optimizers --optimizer knows, one table of facts (torch-free)
    updates           plain SGD written out, and L-BFGS as one step per epoch
    fit               one fit: the lesson's loop chosen and run with the monitor as its hook
    monitor           the hook after each step: records, prints, keeps the path, stops (stop rules too)
    manual_gradients  every d loss / d p by hand, autograd's bits (the lesson's train_by_hand)
    minibatches       --batch-size: each epoch's batches, one seeded generator per run
    rescaling         the product's rescaling symmetry: L-BFGS's move back to layers of equal size
    theory            least squares, the loss bowl and its eigenvectors, each model's diagnosis
    replicas          many runs at once: the model's own forward on stacked parameters
    batched_runs      --runs with every run's gradients by hand: the losses at the check epochs only
    lockstep          single runs in lockstep: R runs as one, each bit for bit the single run (--lr-sweep)
    sweep             --lr-sweep: many learning rates from one start, each run's verdict, the measured limit
    valley            the product's valley: the limit where a run ends on it, at the balanced fit
    text              everything printed besides the blog's lines and the explanations
    explain           the printed prose: why the fit is where it is, why a run diverged
    figures           the figures, the GIF and the sweep
    landscape_figure  --landscape: the bowl with the run's path, the error along each eigenvector
    environment       cores, memory and matplotlib's settings, checked before any work (torch-free)
    paths             output paths: checked before training, written atomically (torch-free)
    outputs           a run's files, and the metrics JSON assembled in one place
    interruptions     Ctrl-C, SIGTERM, SIGHUP and a closed standard output, at every stage
    batched_gradients every run's gradients by hand at once, a few matrix products over the runs
    explorer*         --explore: its option, its runs, its page, the whole run
    run               a whole run, start to end, as the command line asks
"""
