"""The machine around a run, torch-free and importing nothing else of the package.

    status         the exit statuses as an enum, the --help list made from it, the one-line error
    paths          output paths: checked before training, written atomically; the metrics' strict JSON
    interruptions  Ctrl-C, SIGTERM, SIGHUP and a closed standard output, at every stage
    environment    cores, memory, matplotlib's settings and MKL's code path, checked before any work
"""
