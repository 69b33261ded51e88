"""Why float32 gradient descent survives lr 4.5e-4 on the product model and float64 does not.

Run: python docs/float32_edge.py   (under a minute on 2 cores; prints five small tables)

The mechanism, measured below. On its way down, the path of gradient descent crosses a sharp
region: lambda_max of the Hessian climbs from about 1.9e3 to about 1.2e4 (at loss about 190).
Once lr * lambda_max passes 2, the component along the top eigenvector flips sign and grows by
|1 - lr * lambda_max| every step. It grows from a seed: in float32 and float64, the rounding error
of each step. float32's seed (2^-24 of each number) reaches full size before float64's (2^-53): see
table A. With 60 digits or more the divergence stops moving (table C): the seed is then what is left of
the start's own component along that direction.
The path keeps sharpening meanwhile, and the size of lr * lambda_max when the blow-up comes decides
the outcome. Below about 4 it is a catapult: the loss jumps, the layers unbalance, the run lands
somewhere flatter. Above 4 the run diverges. Table E shows why 4: for one point and f = u*v, one
step changes the curvature by 4 lr f^2 (lr lambda - 4), so it falls only below 4. The late edge of
stability at the minimum, where 2/lambda_max ends equal to lr, is the same in both precisions.
"""
import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root: this file lives in docs/
from beyond_the_blog.system.environment import same_numbers_on_every_processor  # noqa: E402

same_numbers_on_every_processor()  # before torch loads: the command line's numbers on any machine
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

qr = __import__("quadratic_regression")  # the lesson: make_data and LinearProduct (imported after the path is set)

torch.set_num_threads(1)  # a 4-parameter model: one thread is fastest and deterministic
LR = 4.5e-4  # above float64's limit, below float32's
EPOCHS = 20000  # the lesson's run length for the linear model


def seeded_start():
    """The command line's start: seed 0, the data first, then the model's initial parameters."""
    torch.manual_seed(0)  # the same seed as `--seed 0`, the default
    x, y = qr.make_data()  # x = linspace(-2, 12, 100), y = (x-4)(x-8) + N(0, 1)
    return x, y, qr.LinearProduct()  # linear1 then linear2 take the next random numbers


X, Y, _ = seeded_start()  # the data, shared by every run below
XD, YD = X.double().reshape(-1).numpy(), Y.double().reshape(-1).numpy()  # float64 copies for the Hessian


def flat(model):
    """The four parameters (w1, b1, w2, b2) as float64 numbers."""
    l1, l2 = model.linear1, model.linear2  # y = linear2(x) * linear1(x)
    return np.array([l1.weight.item(), l1.bias.item(), l2.weight.item(), l2.bias.item()])


def balance(p):
    """(w1^2 + b1^2) - (w2^2 + b2^2): constant under gradient flow, since p1.g1 = p2.g2 = mean(2 r u v)."""
    return p[0] ** 2 + p[1] ** 2 - p[2] ** 2 - p[3] ** 2


def lam_max(p):
    """Largest eigenvalue of the float64 Hessian of the MSE at p, written out by hand."""
    w1, b1, w2, b2 = p
    u, v = w1 * XD + b1, w2 * XD + b2  # the two layers' outputs
    r, n = u * v - YD, len(XD)  # the residual and the number of points
    J = np.stack([v * XD, v, u * XD, u], axis=1)  # d(u v)/d(w1, b1, w2, b2) at each point
    H = 2 / n * J.T @ J  # the Gauss-Newton part
    c2, c1, c0 = (2 / n * (r * XD ** 2).sum(), 2 / n * (r * XD).sum(), 2 / n * r.sum())  # residual part
    for (i, j), c in {(0, 2): c2, (0, 3): c1, (1, 2): c1, (1, 3): c0}.items():  # d2(uv)/dw1dw2 = x^2, ...
        H[i, j] += c  # ... /dw1db2 = /db1dw2 = x, /db1db2 = 1: each layer's weight meets the other's
        H[j, i] += c  # the Hessian is symmetric
    return np.linalg.eigvalsh(H)[-1]  # the steepest curvature


def train(dtype, model=None, first=1, last=EPOCHS, noise=0.0, keep=(), books=None):
    """The lesson's loop (full batch, MSELoss, SGD without momentum) with a few measurements added.

    noise: after each step, add uniform relative noise of size `noise` to every parameter.
    keep: epochs whose model to return a copy of; books: list of (start, end) epochs for balance books.
    """
    model = copy.deepcopy(model or seeded_start()[2]).to(dtype)  # the seed-0 start unless a model is given
    x, y = X.to(dtype), Y.to(dtype)  # the data in the run's precision
    opt, crit = torch.optim.SGD(model.parameters(), lr=LR), nn.MSELoss()  # plain gradient descent
    gen = torch.Generator().manual_seed(1)  # the injected noise's own generator
    out = dict(onset=None, lr_lam=None, diverged=None, kept={}, books={})  # what the run reports
    prev_loss, lam_hist, bal_prev = math.inf, {}, balance(flat(model))  # the running state
    sums = {b: [0.0, 0.0] for b in books or ()}  # per window: measured and predicted balance change
    for epoch in range(first, last + 1):
        loss = crit(model(x), y)  # forward pass on all 100 points
        opt.zero_grad()  # clear the last step's gradient
        loss.backward()  # d loss / d parameters by autograd
        opt.step()  # one step of gradient descent: p -= lr * grad
        if noise:  # optional: a rounding-sized kick to each parameter
            with torch.no_grad():
                for q in model.parameters():
                    q.add_(q * noise * (2 * torch.rand(q.shape, generator=gen, dtype=dtype) - 1))
        L = loss.item()  # the loss before this step, as the lesson logs it
        if not math.isfinite(L) or L > 1e6:  # the run has blown up
            out["diverged"] = epoch
            break
        p = flat(model)  # parameters after the step
        if out["onset"] is None:  # until the instability shows, track lr * lambda_max on the path
            lam_hist[epoch] = LR * lam_max(p)
            if epoch > 20 and prev_loss < L:  # the first rise of the loss: the oscillation is full size
                out["onset"], out["lr_lam"] = epoch, lam_hist.get(epoch - 2)  # lr*lam just before it
        for (a, b), s in sums.items():  # balance books: measured change vs lr^2 (|g1|^2 - |g2|^2)
            if a < epoch <= b:
                g = [q.grad.double().pow(2).sum().item() for q in model.parameters()]
                s[0] += balance(p) - bal_prev  # the change the step made
                s[1] += LR ** 2 * (g[0] + g[1] - g[2] - g[3])  # exact-arithmetic prediction for that step
        bal_prev, prev_loss = balance(p), L
        if epoch in keep:  # a snapshot for restarts
            out["kept"][epoch] = copy.deepcopy(model)
    out["books"] = sums
    out["loss"], out["p"] = L, flat(model)  # the last loss and the end point
    return out


BLOWUPS = []  # (lr * lambda_max at the onset, survived) of every run in tables A and B


def row(name, r):
    """One line of table A."""
    if r["lr_lam"]:
        BLOWUPS.append((r["lr_lam"], not r["diverged"]))
    on = f"{r['onset']:>5}" if r["onset"] else "    -"
    ll = f"{r['lr_lam']:5.2f}" if r["lr_lam"] else "    -"
    if r["diverged"]:
        return f"{name:<28} {on} {ll}  diverged at epoch {r['diverged']}"
    p = r["p"]
    return f"{name:<28} {on} {ll}  loss {r['loss']:.6f}  bal {balance(p):+7.3f}  2/lam {2 / lam_max(p):.4e}"


t0 = time.time()
print(f"A. lr {LR:g}, seed-0 start, {EPOCHS} epochs. onset: first epoch the loss rises;")
print(f"   lr*lam: lr * lambda_max two epochs before it (catapult needs < ~4). "
      f"Start balance {balance(flat(seeded_start()[2])):.4f}.")
print(f"{'run':<28} onset lr*lam  outcome")
f32 = train(torch.float32, keep=(100, 150), books=[(0, 140), (140, 200), (200, EPOCHS)])  # the lesson's run
print(row("float32 (the lesson)", f32))
f64 = train(torch.float64)  # the same run in double precision
print(row("float64", f64))
print(row("float64 + noise 2^-24/step", train(torch.float64, noise=2.0 ** -24)))  # float32-sized kicks
for e in (150, 100):  # float64 restarted from the float32 run's state at epoch e
    print(row(f"float64 from float32 @{e}", train(torch.float64, model=f32["kept"][e], first=e + 1)))
x64 = train(torch.float64, last=150)["p"]  # where float64 is at epoch 150
print(f"   at epoch 150 the float32 and float64 parameters differ by at most "
      f"{np.abs(flat(f32['kept'][150]) - x64).max():.1e}")

print(f"\nB. float64, lr {LR:g}, 400 epochs, uniform relative noise eps added to the parameters each step")
print(f"{'eps':>8} {'onset':>6} {'lr*lam':>7}  outcome after the transient")
for k in (None, 53, 45, 40, 35, 30, 24):  # noise from none to float32's unit roundoff 2^-24
    r = train(torch.float64, last=400, noise=0.0 if k is None else 2.0 ** -k)
    if r["lr_lam"]:
        BLOWUPS.append((r["lr_lam"], not r["diverged"]))
    out = f"diverged at epoch {r['diverged']}" if r["diverged"] else f"alive, balance {balance(r['p']):+.3f}"
    on, ll = (f"{r['onset']:>6}", f"{r['lr_lam']:7.2f}") if r["onset"] else (f"{'-':>6}", f"{'-':>7}")
    print(f"{'0' if k is None else f'2^-{k}':>8} {on} {ll}  {out}")

alive = [v for v, survived in BLOWUPS if survived]
dead = [v for v, survived in BLOWUPS if not survived]
if alive and dead and max(alive) < min(dead):
    print(f"   in A and B every blow-up from lr*lam {max(alive):.2f} down survived, every one from "
          f"{min(dead):.2f} up diverged")
else:
    print("   in A and B no single lr*lam separates the blow-ups that survived from those that diverged")

print(f"\nC. exact-ish arithmetic (mpmath, the same float64 start and data), lr {LR:g}")
try:
    import mpmath  # arbitrary precision: does float64's own rounding seed its divergence?
    p0 = flat(seeded_start()[2])  # the float32 initial parameters, exactly
    for digits in (16, 25, 40, 60, 100):
        mpmath.mp.dps = digits  # working precision in decimal digits
        xs, ys = [mpmath.mpf(float(v)) for v in XD], [mpmath.mpf(float(v)) for v in YD]
        w1, b1, w2, b2 = [mpmath.mpf(float(v)) for v in p0]
        lr, n, died = mpmath.mpf(LR), len(xs), None
        for epoch in range(1, 401):  # the same gradient descent, written out
            g, L = [0, 0, 0, 0], 0
            for xi, yi in zip(xs, ys):
                u, v = w1 * xi + b1, w2 * xi + b2
                r = u * v - yi  # the residual at this point
                L += r * r  # the summed squared error
                g = [g[0] + 2 * r / n * v * xi, g[1] + 2 * r / n * v, g[2] + 2 * r / n * u * xi, g[3] + 2 * r / n * u]
            w1, b1, w2, b2 = w1 - lr * g[0], b1 - lr * g[1], w2 - lr * g[2], b2 - lr * g[3]
            if L / n > 1e6:  # blown up
                died = epoch
                break
        print(f"   {digits:3d} digits: " + (f"diverged at epoch {died}" if died else "alive at epoch 400"))
except ImportError:
    print("   (mpmath is not installed: skipped)")

print("\nD. balance books of the float32 run: each step changes the balance by lr^2(|g1|^2-|g2|^2)")
print(f"{'epochs':>12} {'measured':>10} {'sum lr^2(|g1|^2-|g2|^2)':>24} {'rounding residual':>18}")
for (a, b), (meas, pred) in f32["books"].items():  # smooth descent, catapult, edge-of-stability drift
    print(f"{f'{a}-{b}':>12} {meas:+10.4f} {pred:+24.4f} {meas - pred:+18.1e}")
print(f"\n({time.time() - t0:.0f} s)")

print(f"\nE. one point, target 0, f = u*v (Lewkowycz et al.'s model), float64, lr {LR:g}, start u = 10v")
print("   loss f^2; each step changes lambda = 2(u^2+v^2) by exactly 4 lr f^2 (lr lambda - 4)")
print(f"{'lr*lam':>9} {'peak/start loss':>16}  outcome")
for start in (1.5, 2.5, 3.9, 3.99, 4.01, 4.1):
    v = math.sqrt(start / LR / 202)  # lambda = 2(100 v^2 + v^2) = 202 v^2
    u, first, peak, worst, outcome = 10 * v, (10 * v * v) ** 2, (10 * v * v) ** 2, 0.0, None
    for step in range(1, 20001):
        f, lam = u * v, 2 * (u * u + v * v)
        u, v = u - 2 * LR * f * v, v - 2 * LR * f * u  # gradient descent on f^2
        change = 2 * (u * u + v * v) - lam
        worst = max(worst, abs(change - 4 * LR * f * f * (LR * lam - 4)) / lam)  # rounding only
        peak = max(peak, (u * v) ** 2)
        if not (u * v) ** 2 < 1e30:
            outcome = f"diverged at step {step}"
            break
    outcome = outcome or f"converged, lr*lam at the end {LR * 2 * (u * u + v * v):.2f}"
    print(f"{start:9.2f} {peak / first:16.3g}  {outcome}   (identity off by {worst:.0e} of lambda)")
