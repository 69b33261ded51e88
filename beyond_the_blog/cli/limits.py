"""The checks of a run's size against the limits around it, decided before training: the memory the run needs
against every memory limit on this process, and the data's range against float32's.

torch-free, as the rest of the command line.
"""
from ..models import default_epochs
from ..optimizers import training_loop
from ..system.environment import memory_needed, memory_shortage


def check_memory(parser, args, models):
    """Refused before training: a run that needs more memory than a limit on this process leaves it."""
    epochs = args.epochs or max(default_epochs(args.optimizer, m, args.standardize) for m in models)
    by_hand = args.runs > 1 and training_loop(args.model, args.optimizer, args.runs, args.batch_size,
                                              args.gradients) == "batched"
    need = memory_needed(epochs, args.lr_sweep or args.runs, args.samples, args.log_interval, by_hand)  # a run per lr
    shortage = memory_shortage(need)
    if shortage is not None:
        runs = f"--lr-sweep {args.lr_sweep}" if args.lr_sweep else f"--runs {args.runs}"
        _, cause = max((need.torch, "torch itself"), (need.data, f"the data of --samples {args.samples} with {runs}"),
                       (need.records, f"the losses of --epochs {epochs}, one every {args.log_interval or 100} epochs"))
        parser.error(f"this run needs about {need.total / 2**30:.3g} GiB of memory, most of it for {cause}; {shortage}")


FLOAT32_MAX = 3.4028234663852886e38


def check_float32_range(parser, args):
    """The data and its squared error must stay inside float32, or the loss is inf from the first epoch."""
    lo, hi = args.x_range
    true_y = [abs((v - 4) * (v - 8)) for v in (lo, hi)] + ([4.0] if lo <= 6 <= hi else [])
    largest = max(true_y) + 6 * args.noise  # six standard deviations: no noise draw of 100 million goes past
    if max(abs(lo), abs(hi)) ** 2 >= FLOAT32_MAX or (2 * largest) ** 2 >= FLOAT32_MAX:
        parser.error(f"--x-range {lo:g} {hi:g} with --noise {args.noise:g}: y reaches about {largest:.2g}, and the "
                     f"squared error of a fit, the loss, would pass float32's largest number ({FLOAT32_MAX:.3g})")
