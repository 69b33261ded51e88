"""The bowl behind --landscape: the loss as a function of (a, b, c), its eigen-axes, and a run's path on them."""
from dataclasses import dataclass

import torch

from .curvature import params_hessian
from .least_squares import quadratic_features


# The geometry behind --landscape: the loss as a function of (a, b, c) is the same bowl for both
# models (both draw a quadratic), with its optimum at least squares and its axes along the
# eigenvectors of the constant Hessian H = (2/n) FᵀF, in the space trained in (x, or z).
#
# A run's path, projected on those axes, shows what the diagnosis says in numbers: plain SGD
# shrinks the error along eigenvector i by (1 - lr·λ_i) per epoch, until float32 stalls it.
@dataclass(kw_only=True)
class Bowl:
    """The MSE of a x² + b x + c on (inputs, y): L(θ) = L* + ½ (θ - θ*)ᵀ H (θ - θ*), exactly."""
    optimum: torch.Tensor       # θ*, (3,) float64, in the space trained in
    min_loss: float             # L*
    eigenvalues: torch.Tensor   # ascending: flattest first, steepest last
    eigenvectors: torch.Tensor  # columns, in (a, b, c) order

    def errors(self, coefficients):
        """(T, 3) coordinates of (T, 3) coefficients along each eigenvector, measured from θ*."""
        return (coefficients.double() - self.optimum) @ self.eigenvectors

    def loss_on_slice(self, steep, flat):
        """The loss at θ* + steep·v_max + flat·v_min (arrays of equal shape)."""
        return self.min_loss + 0.5 * (self.eigenvalues[-1].item() * steep**2 + self.eigenvalues[0].item() * flat**2)



def bowl(inputs, y):
    """The bowl on `inputs` (x, or z with --standardize) and y, in float64."""
    features = quadratic_features(inputs.cpu())
    targets = y.detach().cpu().double().reshape(-1, 1)
    optimum = torch.linalg.lstsq(features, targets, driver="gelsd").solution.reshape(3)
    min_loss = ((features @ optimum - targets.reshape(-1)) ** 2).mean().item()
    eigenvalues, eigenvectors = torch.linalg.eigh(params_hessian(inputs.cpu()))
    # a fixed sign per eigenvector (largest entry positive), so figures and tests agree from run to run
    signs = torch.sign(eigenvectors.gather(0, eigenvectors.abs().argmax(dim=0, keepdim=True)))
    return Bowl(optimum=optimum, min_loss=min_loss, eigenvalues=eigenvalues, eigenvectors=eigenvectors * signs)



def predicted_errors(bowl_, start_errors, lr, epochs, momentum=0.0):
    """(T, 3) plain SGD's error along each eigenvector after each of `epochs`: e_0 (1 - lr λ)^k.
    With momentum there is no single factor per epoch, so None."""
    if momentum:
        return None
    factors = 1 - lr * bowl_.eigenvalues
    k = torch.tensor(epochs, dtype=torch.float64).reshape(-1, 1)
    return start_errors.reshape(1, 3) * factors.reshape(1, 3) ** k



def stall_epoch(epochs, coefficients):
    """The first recorded epoch from which the coefficients never change again (float32 froze
    them), or None if they still moved at the end."""
    if len(epochs) < 2 or not torch.equal(coefficients[-1], coefficients[-2]):
        return None
    since = len(epochs) - 1
    while since > 0 and torch.equal(coefficients[since - 1], coefficients[-1]):
        since -= 1
    return epochs[since]



@dataclass(kw_only=True)
class PathOnBowl:
    """One run's path in the bowl's eigen-coordinates, with what plain SGD predicts for it."""
    model_name: str
    epochs: list
    errors: torch.Tensor            # (T, 3) measured: flattest, middle, steepest
    predicted: torch.Tensor | None  # (T, 3) e_0 (1 - lr λ)^k, for plain SGD on params; else None
    stall: int | None               # the epoch from which float32 froze the coefficients
    layer_sizes: torch.Tensor | None = None  # (T, 2) |(w1, b1)|, |(w2, b2)| for the product model
    balance_start: float | None = None



def path_on_bowl(fit, bowl_, exact):
    """Project a fit's recorded trajectory (space trained in) onto the bowl's axes; `exact`: plain SGD on a model
    linear in its parameters, whose errors (1 - lr λ)^k predicts."""
    trajectory = fit.trajectory
    coefficients = trajectory.coefficients_trained()
    errors = bowl_.errors(coefficients)
    predicted = predicted_errors(bowl_, errors[0], fit.lr, trajectory.epochs) if exact else None
    result = PathOnBowl(model_name=fit.model_name, epochs=trajectory.epochs, errors=errors, predicted=predicted,
                        stall=stall_epoch(trajectory.epochs,
                                                                                           coefficients))
    p = trajectory.parameters
    if "linear1.weight" in p:
        first = torch.stack([p["linear1.weight"].reshape(-1), p["linear1.bias"].reshape(-1)], dim=1).norm(dim=1)
        second = torch.stack([p["linear2.weight"].reshape(-1), p["linear2.bias"].reshape(-1)], dim=1).norm(dim=1)
        result.layer_sizes = torch.stack([first, second], dim=1)
        result.balance_start = (first[0] ** 2 - second[0] ** 2).item()
    return result



def slice_extent(paths):
    """(steep, flat) half-widths of a slice that holds every path, with a margin."""
    steep = max(p.errors[:, 2].abs().max().item() for p in paths)
    flat = max(p.errors[:, 0].abs().max().item() for p in paths)
    return 1.15 * steep or 1.0, 1.15 * flat or 1.0
