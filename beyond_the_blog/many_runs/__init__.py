"""Many runs as one vectorized computation.

    replicas       --runs: R models as one, their data and starts, the summary of their spread
    sweep          --lr-sweep: many learning rates from one start, each run's verdict, the measured limit
    explorer_runs  --explore: each setting's learning rates trained together and recorded for the page
"""
