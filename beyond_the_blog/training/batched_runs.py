"""--runs with every run's gradients by hand (batched_gradients.py): the lesson's train_by_hand over the stacked
replicas, and the monitor that sees each run's loss only at its check epochs.

An epoch computes the gradients of all runs and takes the optimizer's step, nothing else. Each run's loss, a few
more operations on every run's sums, is computed only before the step of a check epoch: every record epoch, every
CHECK_INTERVAL epochs and the last. The monitor records those losses and applies the stop rules to them as the
autograd replicas' monitor does.

A run diverged at epoch K if K is its first epoch whose loss is inf or NaN, as with autograd. A check that finds
a run newly inf/NaN brackets K. The monitor then trains that bracket again, one epoch at a time, from the state
saved at its start: the same computation, so the same numbers, looked at each epoch. A Ctrl-C between checks
does the same up to the epoch it stopped at.
"""
import copy

import torch

from .monitor import EARLY_EPOCHS, Monitor

CHECK_INTERVAL = 100  # at least one check every this many epochs: a bracket is trained again in a few ms


class CheckedLosses:
    """gradients() for the lesson's train_by_hand: the batched gradients every epoch, and at the epochs that
    checks(epoch) names each run's loss before the step, (R,); None at the other epochs."""

    def __init__(self, batched, checks):
        self.batched, self.checks, self.epoch = batched, checks, 0

    def __call__(self):
        self.epoch += 1
        self.batched()
        return self.batched.run_losses() if self.checks(self.epoch) else None


class BatchedMonitor(Monitor):
    """The Monitor of replicas trained with the batched gradients: it is handed each run's loss (R,) at the check
    epochs and None at the others. attach() gives it the gradients and the optimizer, whose state it saves at
    every check, to train a bracket again."""

    def __init__(self, model, inputs, y, criterion, config, stop_when=None):
        super().__init__(model, inputs, y, criterion, config, stop_when)
        self.last_epoch = config.resolved_epochs()
        self.batched = self.optimizer = self.saved = None

    def attach(self, batched, optimizer):
        """The gradients() to train with: `batched` with the losses at the check epochs."""
        self.batched, self.optimizer = batched, optimizer
        self.saved = (0, self.state())
        return CheckedLosses(batched, self.checks)

    def records(self, epoch):
        return epoch % self.record_interval == 0 or epoch in EARLY_EPOCHS  # where the Monitor records

    def checks(self, epoch):
        return (self.records(epoch) or epoch % CHECK_INTERVAL == 0 or epoch == self.last_epoch
                or self.rule_compares(epoch))

    def __call__(self, epoch, epochs, losses, out):
        self.log.epochs_run = epoch
        if losses is not None:
            losses = losses.cpu()
            if self.newly_diverged(losses) and (self.train_bracket_again(epoch) or self.note_run_losses(epoch, losses)):
                return True  # every run has diverged (the second note only if the bracket found nothing new)
            if self.records(epoch) and self.record(epoch, losses):
                return True
            if self.settled(epoch, losses):
                return self.stop("converged")
            self.saved = (epoch, self.state())
        if self.signals:
            return self.train_bracket_again(epoch) or self.stop("interrupted")
        return False

    def loss_at_end(self):
        """Each run's loss after the last step, by the gradients' own run_losses, as every checked loss was."""
        self.batched()  # the residual at the parameters training ended with (the gradients it sets go unused)
        return self.batched.run_losses().cpu()

    def newly_diverged(self, losses):
        bad = ~torch.isfinite(losses)
        at = self.log.run_diverged_at
        return bool((bad if at is None else bad & (at == 0)).any())

    def train_bracket_again(self, epoch):
        """Train the epochs since the last check again, one at a time, noting each run's first inf/NaN loss;
        True (training ends there) once every run has diverged. Otherwise the state is left as it was."""
        start, saved = self.saved
        now = self.state()
        self.restore(saved)
        for k in range(start + 1, epoch + 1):
            self.batched()
            losses = self.batched.run_losses().cpu()
            self.optimizer.step()
            if self.newly_diverged(losses) and self.note_run_losses(k, losses):
                self.log.epochs_run = k
                return True
        self.restore(now)
        return False

    def state(self):
        """The parameters and the optimizer's state (momentum's buffers, Adam's moments), copied."""
        params = [p.detach().clone() for p in self.model.parameters()]
        return params, copy.deepcopy(self.optimizer.state_dict()) if hasattr(self.optimizer, "state_dict") else None

    def restore(self, state):
        params, optimizer_state = state
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), params):
                p.copy_(saved)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
