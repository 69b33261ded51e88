"""The printed explanations of each model's diagnosis: why plain SGD needs 500000 epochs on
`params`, and where the product lands on `linear`. Each explainer returns the lines to print."""
import math

from ..optimizers import OPTIMIZERS
from ..theory.diagnosis import (
    LinearDiagnosis,
    ParamsDiagnosis,
    epochs_for_1000_fold,
    float32_held_it,
    slowest_shrink,
)
from ..training.fit import rebalance_for
from .words import approx, count, formula, subject, times


def explain(diagnosis, fit, least):
    """The lines that explain `diagnosis` (a model's diagnosis of `fit`), or none for an unknown kind."""
    explainer = EXPLAINERS.get(type(diagnosis))
    return explainer(diagnosis, fit, least) if explainer else []


def explain_params(diagnosis, fit, least):
    space = "z = (x - mean)/std" if fit.standardize else "x"
    ev = diagnosis.eigenvalues.tolist()
    lines = ["How fast plain SGD can go: the loss in (a, b, c) is a bowl with constant Hessian "
             f"{formula('(2/n) F^T F')}, {formula('F = [x^2, x, 1]')} on {formula(space)}",
             f"  eigenvalues {ev[2]:.4g}, {ev[1]:.4g}, {ev[0]:.4g}: condition number {diagnosis.condition_number:.3g}"]
    if diagnosis.raw_condition_number is not None:
        lines.append(standardizing_effect(diagnosis.raw_condition_number, diagnosis.condition_number))
    limit = formula(f"2/lambda_max = {diagnosis.max_stable_lr:.4g}")
    if not diagnosis.plain_steps:
        best = diagnosis.best_lr
        epochs = epochs_for_1000_fold(slowest_shrink(diagnosis.eigenvalues, best)[1])
        steps = (f"{fit.optimizer}, whose steps are not plain SGD's: see --optimizer in the README"
                 if fit.optimizer != "sgd" else f"batches of {count(fit.batch_size, 'point')}, not the full batch")
        return lines + [
            f"  largest stable lr for plain SGD: {limit}; even at its best lr, "
            f"{formula(f'2/(lambda_min + lambda_max) = {best:.4g}')}, plain SGD needs {epochs_text(epochs)} "
            "for a 1000-fold error reduction", f"  (this run used {steps})"]
    lines.append(f"  largest stable lr for plain SGD: {limit} (this run: {fit.lr:g})")
    lines.append(slowest_direction(diagnosis))
    return lines + explain_params_end(diagnosis, fit, least) + [
        "  (--landscape PATH draws this bowl with the run's path and each eigenvector's error against "
        f"{formula('(1 - lr*lambda)^k')}; --lr-sweep N measures the largest stable lr)"]


def standardizing_effect(raw, condition):
    """What standardizing did to the condition number, in the direction it went."""
    ratio = raw / condition
    if ratio >= 1.05:
        effect = f"standardizing made it {times(ratio)} smaller"
    elif ratio <= 1 / 1.05:
        effect = f"standardizing made it {times(1 / ratio)} larger"
    else:
        effect = "standardizing left it about the same"
    return f"  (on raw x it would be {raw:.3g}: {effect})"


def epochs_text(epochs):
    return count(approx(epochs), "epoch")


def factor_text(log_rate):
    """|1 - lr*lambda| from its logarithm, in 6 digits, or as 1 - d where 6 digits would show just 1."""
    text = f"{math.exp(log_rate):.6g}"
    if text != "1":
        return text
    below = -math.expm1(log_rate)
    return f"1 - {below:.2g}" if below > 0 else f"1 + {-below:.2g}"


def slowest_direction(diagnosis):
    """The direction plain SGD is slowest along at this lr (λmin's below 2/(λmin + λmax), λmax's above), and
    its pace."""
    i, count_of = diagnosis.slowest, len(diagnosis.eigenvalues)
    vector = diagnosis.eigenvectors[:, i]
    name = f"mostly {'abc'[int(vector.abs().argmax())]}: {', '.join(f'{v:+.3f}' for v in vector.tolist())}"
    which = {0: "lambda_min", count_of - 1: "lambda_max"}.get(i, f"lambda_{i + 1}")
    step = diagnosis.lr * diagnosis.eigenvalues[i].item()
    factor = formula((f"1 - lr*{which}" if step < 1 else f"|1 - lr*{which}|")
                     + f" = {factor_text(diagnosis.log_rate)}")
    if diagnosis.log_rate >= 0:
        return f"  the steepest direction ({name}) does not shrink: its error is multiplied by {factor} per epoch"
    epochs = epochs_text(diagnosis.epochs_to_converge)
    pace = f"shrinks by {factor} per epoch: a 1000-fold error reduction takes {epochs}"
    if step < 1:
        return f"  the slowest direction ({name}) {pace}"
    above = formula(f"2/(lambda_min + lambda_max) = {diagnosis.best_lr:.4g}")
    return (f"  the slowest direction is the steepest one ({name}): above {above} each step overshoots it, and its "
            f"error {pace}")


def explain_params_end(diagnosis, fit, least):
    """Where plain SGD stopped: the coefficient furthest from least squares, and why it stopped there."""
    error = (fit.coefficients[0] - least.coefficients[0]).abs()
    worst = int(error.argmax())
    others = ", ".join(f"{n} {error[i]:.4f}" for i, n in enumerate("abc") if i != worst)
    epochs = fit.log.epochs_run
    if error[worst] < 5e-4:
        return [f"  after {count(epochs, 'epoch')} every coefficient is within 5e-4 of least squares"]
    lines = [f"  after {count(epochs, 'epoch')} {'abc'[worst]} is still {error[worst]:.4f} from least squares "
             f"({others})"]
    if diagnosis.predicted is None:
        return lines
    predicted = (diagnosis.predicted - least.coefficients[0]).abs()
    lines.append(f"  in exact arithmetic, {formula('theta_k - theta* = (I - lr H)^k (theta_0 - theta*)')} puts "
                 f"{'abc'[worst]} {predicted[worst]:.4f} away")
    if not diagnosis.frozen:
        return lines
    lines.append(frozen_updates(diagnosis, float32_held_it(diagnosis, fit.coefficients[0], least.coefficients[0])))
    since = unchanged_since(fit.log.history)
    if since is not None and since < epochs:
        lines.append(f"  (the logged loss has not changed since epoch {since}: the blog's last lines repeat "
                     "for the same reason)")
    return lines


def frozen_updates(diagnosis, cause):
    """The updates that round away in float32; named as the cause only where exact arithmetic ends measurably
    closer (cause), else the lr's pace is."""
    frozen = diagnosis.frozen
    names = [n for i, n in enumerate("abc") if i in frozen]
    steps = ", ".join(f"{diagnosis.steps[i]:.2g}" for i in frozen)
    gaps = ", ".join(f"{diagnosis.spacing[i]:.2g}" for i in frozen)
    ratios = ", ".join(digits_below_one(diagnosis.steps[i].item() / (diagnosis.spacing[i].item() / 2)) for i in frozen)
    ratio, listed = formula(f"update / half-gap = {ratios}"), ", ".join(names)
    if not cause:
        return (f"  the last updates of {listed} round away in float32 ({ratio}), but exact arithmetic "
                "ends no measurably closer: the pace of plain SGD at this lr, not float32, kept it there")
    return (f"  float32 stopped it there: the updates {formula(f'lr*dL/d({listed}) = ({steps})')} "
            f"are under half the gap between adjacent float32 numbers at those values ({gaps}): {ratio}, so they "
            f"round away and {subject(names, 'no longer moves', 'no longer move')}")


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
                  f"{slowest:.3g} against {params_slowest:.3g},", relative_pace(diagnosis, fit)]
    return lines + [
        f"  balance (w1^2 + b1^2) - (w2^2 + b2^2): {diagnosis.balance_start:+.4f} at the start, "
        f"{diagnosis.balance_end:+.4f} at the end;", balance_verdict(diagnosis, fit),
        "  (--landscape PATH draws the run's path on the (a, b, c) bowl and the two layers' sizes on the curve of "
        "equal balance)"]


def relative_pace(diagnosis, fit):
    """How fast the product's slowest error shrinks against the params model's: under plain SGD at this run's lr,
    from |1 - lr*lambda| of each; for other steps, under plain SGD at a small lr, where it is the curvatures' ratio."""
    product = sorted(diagnosis.eigenvalues.tolist(), key=abs)[1:]  # the flat direction left out
    params = diagnosis.params_eigenvalues.tolist()
    if not (OPTIMIZERS[fit.optimizer].gradient_steps and fit.batch_size is None):
        return f"  so under plain SGD at a small lr its slowest error would shrink {pace(abs(product[0]) / params[0])}"
    mine, theirs = slowest_shrink(product, fit.lr)[1], slowest_shrink(params, fit.lr)[1]
    if theirs >= 0:
        return (f"  at the same lr ({fit.lr:g}) plain SGD would not converge on the params model: it is above that "
                f"model's {formula(f'2/lambda_max = {2 / params[-1]:.4g}')}")
    if mine >= 0:
        return "  at this lr the product's end point is at the edge of stability: its steepest error does not shrink"
    return f"  so at the same lr its slowest error shrinks {pace(mine / theirs)}"


def pace(ratio):
    """'68 times faster than the params model's', or slower, or about as fast."""
    if 1 / 1.05 < ratio < 1.05:
        return "about as fast as the params model's"
    return f"{times(ratio)} faster than the params model's" if ratio > 1 else \
        f"{times(1 / ratio)} slower than the params model's"


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
