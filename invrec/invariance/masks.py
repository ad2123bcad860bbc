"""Feature masks of invariant learning: the stochastic gates that are learned, and the hard 0/1
mask a final model may read instead.

:class:`StochasticGateMask`: one gate per input feature dimension, shared by all items (Yamada et
al. 2020, as used by InvRL and PaInvRL): ``m_j = clamp(mu_j + 0.5 + eps_j, 0, 1)`` with
``eps_j ~ N(0, sigma^2)`` while training and ``eps = 0`` in evaluation. ``mu`` starts at 0 (every
gate half open). :func:`binarize_mask` turns the learned soft mask into a hard one.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StochasticGateMask", "binarize_mask"]


class StochasticGateMask(nn.Module):
    """Soft mask ``m in [0, 1]^d`` with Gaussian gate noise while training.

    Parameters
    ----------
    n_features : int
        ``d``, the width of the content it masks.
    sigma : float, default=0.01
        Standard deviation of the gate noise (InvRL ``sigma``: 0.01).
    generator : torch.Generator, default=None
        Source of the noise (None uses torch's default generator).

    Attributes
    ----------
    mu : Parameter of shape (d,)
        Gate means; the mask is ``clamp(mu + 0.5, 0, 1)`` in evaluation.

    Examples
    --------
    >>> import torch
    >>> gate = StochasticGateMask(3)
    >>> gate.eval()(), gate.l2()
    (tensor([0.5000, 0.5000, 0.5000], grad_fn=<ClampBackward1>), tensor(0., grad_fn=<SumBackward0>))
    """

    def __init__(self, n_features, *, sigma=0.01, generator=None):
        super().__init__()
        self.sigma = float(sigma)
        self.generator = generator
        self.mu = nn.Parameter(torch.zeros(int(n_features)))

    def forward(self):
        """The mask: noisy in training mode, ``clamp(mu + 0.5, 0, 1)`` in evaluation mode."""
        gate = self.mu + 0.5
        if self.training and self.sigma > 0:
            device = self.generator.device if self.generator is not None else self.mu.device
            noise = torch.randn(self.mu.shape, generator=self.generator, device=device)
            gate = gate + self.sigma * noise.to(self.mu.device, self.mu.dtype)
        return gate.clamp(0.0, 1.0)

    def l2(self):
        """``||mu||^2``: InvRL's pull of the gates towards half open."""
        return self.mu.square().sum()

    def __getstate__(self):      # a torch.Generator does not pickle
        state = self.__dict__.copy()
        state["generator"] = None
        return state



def binarize_mask(mask, threshold):
    """Hard 0/1 mask from a soft one (None: unchanged).

    ``threshold="auto"`` keeps the upper of the two groups that minimise the within-group sum of
    squares of the mask values (a two-means split, Otsu's rule); a float ``t`` keeps
    ``(m - min) / (max - min) >= t``. A constant mask keeps every dimension.

    Examples
    --------
    >>> import torch
    >>> binarize_mask(torch.tensor([0.6, 0.9, 0.7, 1.0]), 0.5).tolist()
    [0.0, 1.0, 0.0, 1.0]
    >>> binarize_mask(torch.tensor([0.80, 0.99, 0.85, 1.0, 0.97]), "auto").tolist()
    [0.0, 1.0, 0.0, 1.0, 1.0]
    """
    if threshold is None:
        return mask
    span = mask.max() - mask.min()
    if float(span) <= 0:
        return torch.ones_like(mask)
    if isinstance(threshold, str):       # "auto": best split of the sorted values
        values = mask.detach().double().sort().values
        n = values.numel()
        sizes = torch.arange(1, n, dtype=torch.float64, device=values.device)
        csum, csq = values.cumsum(0)[:-1], values.square().cumsum(0)[:-1]
        total, total_sq = values.sum(), values.square().sum()
        lower = csq - csum.square() / sizes
        upper = (total_sq - csq) - (total - csum).square() / (n - sizes)
        split = int(torch.argmin(lower + upper))
        cut = (values[split] + values[split + 1]) / 2
        return (mask.double() > cut).to(mask.dtype)
    return ((mask - mask.min()) / span >= threshold).to(mask.dtype)

