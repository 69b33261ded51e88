"""One fit, start to end.

    judge         how a run ended: diverged, converged or stalled, decided here for every mode
    monitor       the hook after each step: records, prints, keeps the path, stops (and the stop rules)
    batched_runs  the monitor of --runs trained with the gradients by hand: losses at the check epochs only
    fit           one fit: the lesson's loop chosen and run with the monitor as its hook, reported in x's units
"""
