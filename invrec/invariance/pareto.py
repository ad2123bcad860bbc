"""Pareto weighting of two objectives: the closed-form two-task MGDA step (PaInvRL's weighting).

For two objectives with gradients ``g1`` and ``g2`` on shared parameters, the multiple-gradient
descent algorithm (Desideri 2012; Sener & Koltun 2018) steps along the minimum-norm point of their
convex hull, ``d = gamma g1 + (1 - gamma) g2`` with

``gamma* = argmin_{gamma in [0, 1]} ||gamma g1 + (1 - gamma) g2||^2
         = clip(((g2 - g1) . g2) / ||g1 - g2||^2, 0, 1)``.

If ``d = 0`` the point is Pareto-stationary: no direction lowers both objectives. With two
objectives the minimisation is one-dimensional, so no Frank-Wolfe solver is needed.
"""

from __future__ import annotations

import torch

__all__ = ["mgda_weight", "normalized_mgda_weight", "flat_gradient"]


def mgda_weight(g1, g2, *, eps=1e-12):
    """Weight ``gamma`` of the first gradient in the min-norm convex combination of two gradients.

    Parameters
    ----------
    g1, g2 : Tensor
        Gradients of the two objectives on the same parameters (any equal shapes; flattened).
    eps : float, default=1e-12
        When ``||g1 - g2||^2 <= eps`` the two gradients are equal (every ``gamma`` gives the same
        direction) and 0.5 is returned.

    Returns
    -------
    gamma : float
        In [0, 1]. 1 when ``g1`` alone has the smaller norm along the segment (for example when
        ``g1 = 0``), 0 when ``g2`` has; for opposite gradients of equal norm, 0.5 (``d = 0``).

    Examples
    --------
    >>> import torch
    >>> mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    0.5
    >>> mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0]))   # parallel: the shorter
    1.0
    >>> mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([-3.0, 0.0]))  # opposite: d = 0
    0.75
    """
    g1 = g1.detach().reshape(-1).double()
    g2 = g2.detach().reshape(-1).double()
    if g1.shape != g2.shape:
        raise ValueError(f"g1 and g2 must have the same number of entries; got {g1.numel()} and {g2.numel()}.")
    diff = g1 - g2
    denom = float(diff @ diff)
    if denom <= eps:
        return 0.5
    gamma = float((g2 - g1) @ g2) / denom
    return min(1.0, max(0.0, gamma))


def normalized_mgda_weight(g1, g2, *, eps=1e-12):
    """ERM share of the MGDA step taken on unit-normalised gradients, as a weight on the raw objectives.

    MGDA's min-norm point depends on the gradients' norms: when one objective's gradient is much
    shorter it takes the whole step (``gamma`` at 0 or 1), which cancels the other objective.
    Normalising both gradients first makes the step the bisector of the two directions (the
    min-norm point of two unit vectors is their midpoint), so each objective moves the parameters
    by the same amount whatever its scale. Expressed as a weight on the raw objectives,
    ``gamma * L1 + (1 - gamma) * L2`` with ``gamma = ||g2|| / (||g1|| + ||g2||)``.

    Parameters
    ----------
    g1, g2 : Tensor
        Gradients of the two objectives on the same parameters.
    eps : float, default=1e-12
        A gradient whose norm is at most ``eps`` is stationary: the other objective takes the
        whole step (0.5 when both are).

    Returns
    -------
    gamma : float
        In [0, 1].

    Examples
    --------
    >>> import torch
    >>> normalized_mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]))
    0.75
    >>> normalized_mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([100.0, 0.0]))  # any scale
    0.9900990099009901
    """
    n1 = float(g1.detach().double().norm())
    n2 = float(g2.detach().double().norm())
    if g1.numel() != g2.numel():
        raise ValueError(f"g1 and g2 must have the same number of entries; got {g1.numel()} and {g2.numel()}.")
    if n1 <= eps and n2 <= eps:
        return 0.5
    return n2 / (n1 + n2)


def flat_gradient(loss, params, *, retain_graph=True):
    """Gradient of ``loss`` on ``params`` as one flat vector (zeros for unused parameters).

    Parameters
    ----------
    loss : Tensor
        Scalar.
    params : sequence of Tensor
        Parameters that require grad.
    retain_graph : bool, default=True
        Keep the graph for a later backward pass.

    Returns
    -------
    Tensor of shape (sum of numel,)
    """
    grads = torch.autograd.grad(loss, list(params), retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])
