"""Invariance penalties across environments: InvRL's gradient variance, IRMv1 and V-REx.

Each is a small differentiable function of per-environment quantities, so it can be added to a
loss and back-propagated (the gradient-based ones need their inputs built with
``create_graph=True``).

* :func:`gradient_variance_penalty` -- InvRL (Du et al., ACM MM 2022): the variance over
  environments of the risk gradient on the content projection ``W``, weighted per input feature by
  its gate ``mu_j + 0.5`` and squared, so that features whose gradient differs between
  environments are pushed to be masked out.
* :func:`irmv1_penalty` -- IRMv1 (Arjovsky et al. 2019): the squared gradient of each environment's
  risk with respect to a dummy scale on its scores, at scale 1.
* :func:`vrex_penalty` -- V-REx (Krueger et al. 2021): the variance of the environment risks.
"""

from __future__ import annotations

import torch

__all__ = ["gradient_variance_penalty", "irmv1_penalty", "vrex_penalty"]


def gradient_variance_penalty(env_gradients, feature_weights=None):
    """InvRL's penalty: ``sum_{k,j} [ (sum_e (G_e - mean_e G_e)^2)_{kj} * w_j ]^2``.

    Parameters
    ----------
    env_gradients : Tensor of shape (K, c, d)
        Gradient of each environment's risk on the projection weight ``W`` (``c`` outputs, ``d``
        input features), built with ``create_graph=True`` to back-propagate the penalty.
    feature_weights : Tensor of shape (d,), default=None
        Per-feature weights ``w_j`` (InvRL: the gate means ``mu_j + 0.5``); None means ones.

    Returns
    -------
    Tensor
        Scalar, >= 0; zero when every environment has the same gradient.

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]]])       # K=2, c=1, d=2
    >>> float(gradient_variance_penalty(g, torch.tensor([0.5, 1.0])))   # ((1 + 1) * 0.5)^2
    1.0
    """
    if env_gradients.ndim != 3:
        raise ValueError(f"env_gradients must have shape (K, c, d); got {tuple(env_gradients.shape)}.")
    spread = (env_gradients - env_gradients.mean(dim=0, keepdim=True)).square().sum(dim=0)
    if feature_weights is not None:
        spread = spread * feature_weights
    return spread.square().sum()


def irmv1_penalty(total_risk, scales):
    """IRMv1: ``sum_e (d R_e / d s_e)^2`` at ``s_e = 1``.

    Build the risks with every environment's scores multiplied by its own entry of ``scales`` (a
    ``(K,)`` tensor of ones that requires grad) and pass their sum: since environment ``e``'s risk
    depends on ``scales[e]`` only, one gradient call gives every environment's derivative.

    Parameters
    ----------
    total_risk : Tensor
        Scalar ``sum_e R_e``.
    scales : Tensor of shape (K,)
        The dummy scales (ones, ``requires_grad=True``) the risks were built with.

    Returns
    -------
    Tensor
        Scalar, differentiable (the gradient is taken with ``create_graph=True``).

    Examples
    --------
    >>> import torch
    >>> s = torch.ones(2, requires_grad=True)
    >>> risk = torch.nn.functional.softplus(-s * torch.tensor([0.0, 2.0])).sum()
    >>> round(irmv1_penalty(risk, s).item(), 6)     # (-0 * 0.5)^2 + (-2 * sigmoid(-2))^2
    0.056837
    """
    (grad,) = torch.autograd.grad(total_risk, scales, create_graph=True)
    return grad.square().sum()


def vrex_penalty(risks):
    """V-REx: the (population) variance of the environment risks.

    Parameters
    ----------
    risks : Tensor of shape (K,)

    Returns
    -------
    Tensor
        Scalar.

    Examples
    --------
    >>> import torch
    >>> float(vrex_penalty(torch.tensor([1.0, 3.0])))
    1.0
    """
    if risks.ndim != 1:
        raise ValueError(f"risks must have shape (K,); got {tuple(risks.shape)}.")
    return (risks - risks.mean()).square().mean()
