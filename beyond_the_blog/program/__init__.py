"""A whole run, as the command line asks.

    data      the data a run trains on, and the check that refuses data float32 cannot fit
    outputs   a run's files, and the metrics JSON, assembled here only
    explorer  a whole --explore run: every setting trained, a line about each, the page
    run       a whole run: one model, both, many replications or an lr sweep; then the report and the files
"""
