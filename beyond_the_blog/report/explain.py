"""The printed explanations of each model's diagnosis: why plain SGD needs 500000 epochs on
`params`, and where the product lands on `linear`. Each explainer returns the lines to print."""
import math

from ..optimizers import OPTIMIZERS
from ..theory.diagnosis import LinearDiagnosis, ParamsDiagnosis
from ..training.fit import rebalance_for


def explain(diagnosis, fit, least):
    """The lines that explain `diagnosis` (a model's diagnosis of `fit`), or none for an unknown kind."""
    explainer = EXPLAINERS.get(type(diagnosis))
    return explainer(diagnosis, fit, least) if explainer else []


def explain_params(diagnosis, fit, least):
    space = "z = (x - mean)/std" if fit.standardize else "x"
    ev = diagnosis.eigenvalues.tolist()
    lines = ["How fast plain SGD can go: the loss in (a, b, c) is a bowl with constant Hessian (2/n) F^T F, "
             f"F = [x^2, x, 1] on {space}",
             f"  eigenvalues {ev[2]:.4g}, {ev[1]:.4g}, {ev[0]:.4g}: condition number {diagnosis.condition_number:.3g}"]
    if diagnosis.raw_condition_number is not None:
        raw = diagnosis.raw_condition_number
        lines.append(f"  (on raw x it would be {raw:.3g}: standardizing made it "
                     f"{raw / diagnosis.condition_number:.0f} times smaller)")
    if not OPTIMIZERS[fit.optimizer].gradient_steps:
        epochs = math.log(1000) * diagnosis.condition_number / 2
        return lines + [
            f"  largest stable lr for plain SGD: 2/lambda_max = {diagnosis.max_stable_lr:.4g}; even just under it, "
            f"plain SGD needs about ln(1000)*kappa/2 = {epochs:.3g} epochs for a 1000-fold error reduction",
            f"  (this run used {fit.optimizer}, whose steps are not plain SGD's: see --optimizer in the README)"]
    lines.append(f"  largest stable lr for plain SGD: 2/lambda_max = {diagnosis.max_stable_lr:.4g} "
                 f"(this run: {fit.lr:g})")
    slow = diagnosis.eigenvectors[:, 0]
    lines.append(f"  the slowest direction (mostly {'abc'[int(slow.abs().argmax())]}: "
                 f"{', '.join(f'{v:+.3f}' for v in slow.tolist())}) shrinks by "
                 f"1 - lr*lambda_min = {1 - fit.lr * ev[0]:.6g} per epoch: a 1000-fold error reduction takes "
                 f"{diagnosis.epochs_to_converge:.3g} epochs")
    return lines + explain_params_end(diagnosis, fit, least) + [
        "  (--landscape PATH draws this bowl with the run's path and each eigenvector's error against "
        "(1 - lr*lambda)^k; --lr-sweep N measures the largest stable lr)"]


def explain_params_end(diagnosis, fit, least):
    """Where plain SGD stopped: the coefficient furthest from least squares, and why it stopped there."""
    error = (fit.coefficients[0] - least.coefficients[0]).abs()
    worst = int(error.argmax())
    others = ", ".join(f"{n} {error[i]:.4f}" for i, n in enumerate("abc") if i != worst)
    epochs = fit.log.epochs_run
    if error[worst] < 5e-4:
        return [f"  after {epochs} epochs every coefficient is within 5e-4 of least squares"]
    lines = [f"  after {epochs} epochs {'abc'[worst]} is still {error[worst]:.4f} from least squares ({others})"]
    if diagnosis.predicted is None:
        return lines
    predicted = (diagnosis.predicted - least.coefficients[0]).abs()
    lines.append("  in exact arithmetic, theta_k - theta* = (I - lr H)^k (theta_0 - theta*) puts "
                 f"{'abc'[worst]} {predicted[worst]:.4f} away")
    frozen = diagnosis.frozen
    if not frozen:
        return lines
    names = ", ".join("abc"[i] for i in frozen)
    steps = ", ".join(f"{diagnosis.steps[i]:.2g}" for i in frozen)
    gaps = ", ".join(f"{diagnosis.spacing[i]:.2g}" for i in frozen)
    ratios = ", ".join(digits_below_one(diagnosis.steps[i].item() / (diagnosis.spacing[i].item() / 2)) for i in frozen)
    lines.append(f"  float32 stopped it there: the updates lr*dL/d({names}) = ({steps}) are under half the gap "
                 f"between adjacent float32 numbers at those values ({gaps}): update / half-gap = {ratios}, "
                 f"so they round away and {names} no longer move")
    since = unchanged_since(fit.log.history)
    if since is not None and since < epochs:
        lines.append(f"  (the logged loss has not changed since epoch {since}: the blog's last lines repeat "
                     "for the same reason)")
    return lines


def digits_below_one(ratio):
    """A ratio under 1 with the fewest significant digits (at least 2) that still show it is under 1:
    0.86, 0.9999, 0.99995."""
    for digits in range(2, 10):
        text = f"{ratio:.{digits}g}"
        if float(text) < 1:
            return text
    return f"{ratio:.10g}"


def unchanged_since(history):
    """The first recorded epoch from which the loss stayed exactly at its final value."""
    if not history:
        return None
    since = history[-1][0]
    for epoch, value in reversed(history):
        if value != history[-1][1]:
            break
        since = epoch
    return since


def explain_linear(diagnosis, fit, least):
    space = "z = (x - mean)/std" if fit.standardize else "x"
    ev = diagnosis.eigenvalues.tolist()
    lines = [f"Where the product lands: y = (w1 x + b1)(w2 x + b2) on {space}",
             f"  Hessian at the end point: eigenvalues {', '.join(f'{v:.3g}' for v in reversed(ev))}: "
             f"condition number {diagnosis.condition_number:.3g}",
             "  at a minimum one eigenvalue is ~0: (s w1, s b1, w2/s, b2/s) draws the same curve for every s, "
             "a flat valley of solutions"]
    slowest, params_slowest = sorted(abs(v) for v in ev)[1], diagnosis.params_eigenvalues[0].item()
    if sum(v > 0 for v in ev) >= 3:  # at (or near) the valley floor
        params_condition = diagnosis.params_eigenvalues[-1].item() / params_slowest
        lines += [f"  without that direction the condition number is {diagnosis.condition_without_flat:.3g} "
                  f"(the params model on the same data: {params_condition:.3g}); its slowest curvature is "
                  f"{slowest:.3g} against {params_slowest:.3g},",
                  f"  so at the same lr its slowest error shrinks {slowest / params_slowest:.0f} times faster "
                  "than the params model's"]
    return lines + [
        f"  balance (w1^2 + b1^2) - (w2^2 + b2^2): {diagnosis.balance_start:+.4f} at the start, "
        f"{diagnosis.balance_end:+.4f} at the end;", balance_verdict(diagnosis, fit),
        "  (--landscape PATH draws the run's path on the (a, b, c) bowl and the two layers' sizes on the curve of "
        "equal balance)"]


def balance_verdict(diagnosis, fit):
    """What happened to the balance in this run: gradient flow conserves it, other optimizers need not."""
    if OPTIMIZERS[fit.optimizer].gradient_steps:
        return "  gradient descent (nearly) conserves it, and that picks the point of the valley the model lands on"
    change = diagnosis.balance_end - diagnosis.balance_start
    if rebalance_for(fit.optimizer, fit.model_name) is not None:
        return (f"  L-BFGS's steps are not gradient steps, and left alone it drifts to ever more unequal layers, "
                f"where it stalls; so before each epoch, if their sizes differed by more than 1%, it rescaled "
                f"them to equal sizes (the same curve: beyond_the_blog/rescaling.py); the end is where the last "
                f"epoch's step went from there: the balance changed by {change:+.4g}")
    return (f"  gradient flow would conserve it, but {fit.optimizer}'s steps are not gradient steps: it changed by "
            f"{change:+.4g}, so {fit.optimizer}, not the start, picked the point of the valley the model lands on")


def explain_divergence(optimizer, lr, log, curvature, constant_hessian, what="training", batches=None,
                       standardized=False):
    """Why a run diverged, in one line: how its loss broke, and the lr limit that applies to its
    optimizer. curvature: the largest |eigenvalue| of the loss Hessian at the start, in the space
    trained in; constant_hessian: the model is linear in its parameters, so that Hessian is exact.
    batches: (B, the largest curvature of one point's loss) for minibatch SGD, else None;
    standardized: trained on z already (no use advising --standardize)."""
    broke = "overflowed float32 (inf)" if log.diverged_loss == math.inf else "became inf/NaN"
    head = f"error: {what} diverged at epoch {log.diverged_at} (the loss {broke}) with lr {lr:g}; "
    if log.diverged_at is None:  # every logged loss finite, but the last step ended above the start
        ended = (f"{log.diverged_loss:.4g}, above its start, {log.start_loss:.4g}" if math.isfinite(log.diverged_loss)
                 else "inf/NaN")
        head = (f"error: {what} diverged with lr {lr:g}: after {log.epochs_run} epoch{'s' * (log.epochs_run != 1)} "
                f"the loss is {ended}; ")
    where = "" if constant_hessian else ", at the start"
    facts = OPTIMIZERS[optimizer]
    if facts.stability is not None:
        factor, formula = facts.stability
        limit = factor / curvature
        tail = f"for this data {facts.title} is stable below lr {limit:.3g} ({formula} of the loss Hessian{where})"
        if lr <= limit and batches is not None:
            size, point = batches
            tail += (f", but each step follows the loss of only {size} point{'s' if size > 1 else ''}, "
                     f"which curves more: one point's loss up to {point:.3g}, a limit of {factor / point:.3g}")
        elif lr <= limit and not constant_hessian:
            tail += ": the Hessian grew during training and the limit with it fell below this lr"
        return head + tail
    if optimizer == "lbfgs" and lr >= 1 and not standardized:
        return head + ("L-BFGS's line search keeps the loss from rising, but its first trial step left "
                       "float32's range on data this far from 0: --standardize trains on z, whose scale is 1")
    return head + WITHOUT_A_LIMIT.get(optimizer, f"{facts.title} has no lr limit to predict; try a smaller --lr")


# Why an optimizer without a limit from the Hessian diverged, and what to try instead
WITHOUT_A_LIMIT = {
    "adam": ("Adam has no such limit from the Hessian: its steps are about lr in size whatever the "
             "gradient, so too large an lr overshoots; try a smaller --lr (the default is in --help)"),
    "lbfgs": ("L-BFGS's line search keeps the loss from rising, but a first trial step scaled by this lr "
              "left float32's range; try --lr 1, its default"),
}


EXPLAINERS = {ParamsDiagnosis: explain_params, LinearDiagnosis: explain_linear}
