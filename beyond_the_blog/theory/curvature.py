"""How curved the loss is: the largest eigenvalue of its Hessian at a point (2/λmax is plain SGD's largest
stable lr there), the params model's constant Hessian (2/n) FᵀF, and the product model's loss and Hessian in
(w1, b1, w2, b2), all in float64."""
import torch

from .least_squares import quadratic_features


def stable_lr(model, start, inputs, y):
    """2/λmax of the loss Hessian at `start`: above it plain SGD diverges from there."""
    return 2 / largest_curvature(model, start, inputs, y)



def largest_curvature(model, start, inputs, y):
    """The largest |eigenvalue| of the loss Hessian at `start` (name -> tensor, in the space trained
    in), by autograd in float64. Exact everywhere for a model linear in its parameters (its Hessian is
    constant); only at `start` for the others."""
    return loss_hessian_eigenvalues(model, start, inputs, y).abs().max().item()



def loss_hessian_eigenvalues(model, start, inputs, y):
    """Ascending eigenvalues of the MSE's Hessian with respect to all parameters at `start`, in float64."""
    names = list(start)
    shapes = [start[name].shape for name in names]
    theta = torch.cat([start[name].detach().cpu().double().reshape(-1) for name in names])
    xs, ys = inputs.detach().cpu().double(), y.detach().cpu().double()

    def loss(flat):
        pieces = torch.split(flat, [shape.numel() for shape in shapes])
        params = {name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes)}
        return ((torch.func.functional_call(model, params, (xs,)) - ys) ** 2).mean()

    return torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, theta))



def params_hessian(inputs):
    features = quadratic_features(inputs)
    return 2 / features.shape[0] * features.T @ features



def product_loss(theta, inputs, y):
    """The linear model's MSE as a function of (w1, b1, w2, b2), in float64."""
    x = inputs.double().reshape(-1)
    w1, b1, w2, b2 = theta
    return ((w1 * x + b1) * (w2 * x + b2) - y.double().reshape(-1)).pow(2).mean()



def product_theta(p):
    return torch.stack([p[k].cpu().double().reshape(()) for k in
                        ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")])



def product_hessian(theta, inputs, y):
    return torch.autograd.functional.hessian(lambda t: product_loss(t, inputs.cpu(), y.cpu()), theta)



def balance(theta):
    w1, b1, w2, b2 = theta.tolist()
    return (w1**2 + b1**2) - (w2**2 + b2**2)
